"""The LightningModule (``rpn_exp.run.module.RPNClassifier``): its steps, divergence, best validation accuracy and
what its checkpoints carry."""

import pytest
import torch

from rpn_exp.run.module import DivergenceError, RPNClassifier
from tests.conftest import compose_config


class _Trainer:
    log_every_n_steps = 1


def classifier(tmp_path, **kwargs):
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(compose_config(output_dir=tmp_path), resolve=True)
    return RPNClassifier(config=config, **kwargs)


def test_a_module_is_rebuilt_from_its_config_alone(tmp_path):
    module = classifier(tmp_path)
    assert module.net.widths == [64, 128, 10] and sum(p.numel() for p in module.parameters()) == 2085
    assert module(torch.randn(3, 64)).shape == (3, 10)


def test_a_non_finite_training_loss_raises_divergence_with_what_to_change(monkeypatch, tmp_path):
    module = classifier(tmp_path)
    monkeypatch.setattr(RPNClassifier, "trainer", property(lambda self: _Trainer()))
    x, y = torch.full((4, 64), float("nan")), torch.zeros(4, dtype=torch.long)
    with pytest.raises(DivergenceError, match="training loss became nan at epoch 0, step 0; lower optimizer.lr"):
        module.training_step((x, y), 0)


def test_checkpoints_carry_the_best_validation_accuracy_and_every_rng_state(tmp_path):
    module = classifier(tmp_path)
    module.val_acc_best = 0.75
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["val_acc_best"] == 0.75 and {"torch", "numpy", "python"} <= set(checkpoint["rng_states"])
    restored = classifier(tmp_path)
    restored.on_load_checkpoint(checkpoint)
    assert restored.val_acc_best == 0.75


def test_a_module_without_an_optimizer_is_for_evaluation_only(tmp_path):
    with pytest.raises(ValueError, match="built for evaluation"):
        classifier(tmp_path).configure_optimizers()


def test_the_configured_scheduler_steps_per_epoch_and_is_logged_as_train_lr(tmp_path):
    from functools import partial

    module = classifier(tmp_path, optimizer=partial(torch.optim.AdamW, lr=0.01),
                        scheduler=partial(torch.optim.lr_scheduler.ExponentialLR, gamma=0.9))
    configured = module.configure_optimizers()
    assert configured["lr_scheduler"]["interval"] == "epoch" and configured["lr_scheduler"]["name"] == "train/lr"
