"""The LightningModule: trains any ``nn.Module`` classifier with cross entropy."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


def divergence_message(loss: float, epoch: int, step: int) -> str:
    """What a run whose training loss became ``loss`` (NaN or infinite) records, with what to change."""
    return (f"training loss became {loss} at epoch {epoch}, step {step}; lower optimizer.lr or check the data "
            "normalization")


class RPNClassifier(L.LightningModule):
    """Cross-entropy classification of (batch, num_features) tensors.

    Args:
        net: maps (batch, num_features) to class logits (see ``rpn_exp.build_model``); None: built from ``config``.
        optimizer: a partial optimizer (``_partial_: true``) called with the parameters (None: evaluation only).
        scheduler: a partial LR scheduler called with the optimizer, stepped once per epoch; or None.
        config: the run's composed config as a plain dict. It is saved in every checkpoint, so
            ``RPNClassifier.load_from_checkpoint(path)`` rebuilds the network without the run folder.

    Logs ``train/loss_step`` (every ``log_every_n_steps``), ``train/loss_epoch``, ``train/acc``, ``train/lr``,
    ``{val,test}/loss`` and ``/acc`` and ``val/acc_best``: each series once (TensorBoard's HPARAMS tab reads
    ``test/acc`` and ``val/acc_best`` from these).
    """

    def __init__(
        self,
        net: torch.nn.Module | None = None,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        config: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters("config", logger=False)
        if net is None:
            if config is None:
                raise ValueError("RPNClassifier needs a network or the config to build it from")
            from omegaconf import OmegaConf

            from rpn_exp.config.build import build_model
            from rpn_exp.config.legacy import upgrade_targets

            net = build_model(OmegaConf.create(upgrade_targets(config)))
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.val_acc_best = 0.0
        self._train_totals: torch.Tensor | None = None  # [Σ loss·b, Σ correct, Σ b] over the epoch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(dim=1) == y).float().mean()
        # sync_dist: under DDP the epoch metrics are averaged over all ranks (a no-op in one process)
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log(f"{stage}/acc", acc, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        """Cross entropy; the epoch's loss and accuracy are summed in place and logged at its end.

        ``self.log`` costs about as much as the forward pass of a small structured model, so a training step
        calls it only every ``trainer.log_every_n_steps`` steps (``train/loss_step``, the progress bar).
        """
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        if not torch.isfinite(loss):
            raise DivergenceError(divergence_message(loss.item(), self.current_epoch, self.global_step))
        with torch.no_grad():
            totals = torch.stack([loss * len(y), (logits.argmax(dim=1) == y).sum(), loss.new_tensor(len(y))])
            self._train_totals = totals if self._train_totals is None else self._train_totals + totals
        if (self.global_step + 1) % max(1, self.trainer.log_every_n_steps) == 0:  # when Lightning writes logs
            self.log("train/loss_step", loss, prog_bar=True)
        return loss

    def on_train_epoch_end(self):
        if self._train_totals is None:
            return
        loss_sum, correct, count = self._train_totals
        self.log("train/loss_epoch", loss_sum / count, sync_dist=True)
        self.log("train/acc", correct / count, sync_dist=True)
        self._train_totals = None

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def on_validation_epoch_end(self):
        acc = self.trainer.callback_metrics.get("val/acc")
        if acc is not None and not self.trainer.sanity_checking:
            self.val_acc_best = max(self.val_acc_best, float(acc))
        self.log("val/acc_best", self.val_acc_best, prog_bar=False, sync_dist=True)

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_save_checkpoint(self, checkpoint):
        """Besides what Lightning saves: the best validation accuracy so far and every RNG's state (torch, CUDA,
        numpy, python), so that a resumed run draws the same random numbers as an uninterrupted one."""
        from rpn_exp.run.checkpointing import rng_states

        checkpoint["val_acc_best"] = self.val_acc_best
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, checkpoint):
        """Resuming training: the best validation accuracy, every RNG's state, and the best-checkpoint bookkeeping
        (found beside the checkpoint when its folder moved, ``relocate_best``; carried into this run's folder when the
        checkpoint came from another, ``carry_best_checkpoints``). A stacked member's checkpoint resumes as a solo
        run's (``as_solo_checkpoint``)."""
        from lightning.pytorch.callbacks import ModelCheckpoint

        from rpn_exp.run.checkpointing import (
            as_solo_checkpoint,
            carry_best_checkpoints,
            relocate_best,
            restore_rng_states,
        )

        self.val_acc_best = checkpoint.get("val_acc_best", 0.0)
        if self._trainer is None:  # loaded for evaluation, not resumed
            return
        relocate_best(checkpoint, self.trainer.ckpt_path)
        as_solo_checkpoint(checkpoint, self.trainer)
        if "rng_states" in checkpoint:
            restore_rng_states(checkpoint["rng_states"])
        if carry_best_checkpoints(checkpoint, [c for c in self.trainer.callbacks if isinstance(c, ModelCheckpoint)]):
            self.val_acc_best = 0.0  # its best epoch's weights are gone: the best is chosen again from here on

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("this RPNClassifier was built for evaluation (no optimizer); give one to train it")
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        # "name": LearningRateMonitor logs it as train/lr (beside the other training curves)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "name": "train/lr"}}
