"""Which jobs of a sweep train together: shape signatures, the settings that keep a job solo, groups."""

from pathlib import Path

import pytest

from rpn_exp.config.settings import run_settings
from rpn_exp.sweep.stacking import signature, solo_reason, stack_groups
from tests.conftest import compose_config


def job(*overrides):
    return compose_config(overrides, output_dir=Path("outputs/job"))


@pytest.mark.parametrize("member_key", ["seed=7", "optimizer.lr=0.5", "optimizer.weight_decay=0", "+optimizer.eps=1e-6",
                                        "scheduler.gamma=0.5", "scheduler=cosine", "model.init=reference",
                                        "trainer.max_epochs=9", "tags=[a]"])
def test_what_a_member_keeps_for_itself_does_not_change_the_signature(member_key):
    assert signature(job(member_key)) == signature(job())


@pytest.mark.parametrize("shape_key", ["reconciliation=lorr", "model.hidden=[32]",
                                       "dataset.batch_size=32", "expansion.d=3", "model.heads=2", "dataset=mnist",
                                       "optimizer=sgd", "trainer.precision=bf16-mixed"])
def test_what_changes_a_shape_the_batches_the_optimizers_class_or_the_trainer_changes_the_signature(shape_key):
    assert signature(job(shape_key)) != signature(job())


@pytest.mark.parametrize(("family", "pads"), [("dual_lphm", True), ("lphm", True), ("lorr", True),
                                              ("random_matrix_adaption", False)])
def test_the_rank_is_set_aside_only_for_a_family_that_pads_it(family, pads):
    """Jobs that differ only in r stack when ψ zero-pads its rank (rpn_exp.nn.padding)."""
    assert (signature(job(f"reconciliation={family}", "reconciliation.r=2"))
            == signature(job(f"reconciliation={family}", "reconciliation.r=3"))) == pads


@pytest.mark.parametrize(("others", "pads"), [
    ([], True), (["model.activation=tanh"], True), (["model.bias=false"], True),
    (["model.output_processing=[batch_norm]"], False),  # per-unit statistics of the padded width
    (["+model.functions.expansion.postprocess=[layer_norm]"], False),  # normalized over the padded width
])
def test_an_mlps_hidden_width_is_set_aside_when_padded_units_change_nothing(others, pads):
    narrow, wide = (job("model=mlp", f"model.hidden=[{h}]", *others) for h in (4, 64))
    assert (signature(narrow) == signature(wide)) is pads
    assert signature(job("model=mlp", "model.hidden=[4]")) != signature(job("model=mlp", "model.hidden=[]"))
    assert signature(job("model=mlp", "model.hidden=[4,4]")) != signature(job("model=mlp", "model.hidden=[8,8]"))


@pytest.mark.parametrize(("override", "reason"), [
    ("trainer.devices=2", "trainer.devices=2"),
    ("+trainer.strategy=ddp", "trainer.strategy=ddp"),
    ("+trainer.fast_dev_run=true", "trainer.fast_dev_run=True"),
    ("+trainer.val_check_interval=0.5", "trainer.val_check_interval=0.5"),
    ("optimizer._target_=torch.optim.LBFGS", "optimizer=torch.optim.LBFGS"),
    ("model.compile=default", "model.compile=default"),
    ("dry_run=true", "dry_run=true"),
    ("+callbacks.swa._target_=lightning.pytorch.callbacks.StochasticWeightAveraging", "callbacks.swa"),
])
def test_what_cannot_be_per_member_keeps_the_job_solo(override, reason):
    assert reason in solo_reason(run_settings(job(override)))
    assert solo_reason(run_settings(job())) is None


@pytest.mark.parametrize("override", ["callbacks=early_stopping", "debug=limit", "logger=mlflow", "trainer=gpu",
                                      "trainer.precision=bf16-mixed", "trainer.deterministic=true",
                                      "+trainer.gradient_clip_val=0.5", "+trainer.accumulate_grad_batches=2",
                                      "trainer.check_val_every_n_epoch=2", "+trainer.max_time=00:00:10:00"])
def test_everything_else_a_solo_run_honours_stacks(override):
    assert solo_reason(run_settings(job(override))) is None


def test_jobs_are_grouped_by_signature_in_order():
    configs = [job("seed=1"), job("model.hidden=[32]"), job("seed=2"), job("dry_run=true"),
               job("seed=3"), job("model.hidden=[32]", "seed=5")]
    assert stack_groups(configs) == [[0, 2, 4], [1, 5], [3]]


@pytest.mark.parametrize("workers,groups", [(1, [[0, 2, 3, 4, 5], [1]]), (2, [[0, 2, 3, 4, 5], [1]]),
                                            (3, [[0, 2, 3], [1], [4, 5]]), (4, [[0, 2], [1], [3], [4, 5]]),
                                            (9, [[0], [1], [2], [3], [4], [5]])])
def test_with_more_workers_than_groups_the_largest_group_is_split_in_halves_in_order(workers, groups):
    configs = [job("seed=1"), job("model.hidden=[32]"), job("seed=2"), job("seed=3"), job("seed=4"), job("seed=5")]
    assert stack_groups(configs, workers=workers) == groups
