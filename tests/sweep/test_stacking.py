"""Which jobs of a sweep train together: shape signatures, the settings that keep a job solo, groups."""

from pathlib import Path

import pytest

from rpn_exp.config.settings import run_settings
from rpn_exp.sweep.stacking import signature, solo_reason, stack_groups
from tests.conftest import compose_config


def job(*overrides):
    return compose_config(overrides, output_dir=Path("outputs/job"))


@pytest.mark.parametrize("member_key", ["seed=7", "optimizer.lr=0.5", "optimizer.weight_decay=0", "optimizer=sgd",
                                        "scheduler.gamma=0.5", "scheduler=cosine", "model.init=reference",
                                        "trainer.max_epochs=9", "tags=[a]"])
def test_what_a_member_keeps_for_itself_does_not_change_the_signature(member_key):
    assert signature(job(member_key)) == signature(job())


@pytest.mark.parametrize("shape_key", ["reconciliation=lorr", "model.hidden=[32]",
                                       "dataset.batch_size=32", "expansion.d=3", "model.heads=2", "dataset=mnist"])
def test_what_changes_a_shape_or_the_batches_changes_the_signature(shape_key):
    assert signature(job(shape_key)) != signature(job())


@pytest.mark.parametrize(("family", "pads"), [("dual_lphm", True), ("lphm", True), ("lorr", True),
                                              ("random_matrix_adaption", False)])
def test_the_rank_is_set_aside_only_for_a_family_that_pads_it(family, pads):
    """Jobs that differ only in r stack when ψ zero-pads its rank (rpn_exp.nn.padding)."""
    assert (signature(job(f"reconciliation={family}", "reconciliation.r=2"))
            == signature(job(f"reconciliation={family}", "reconciliation.r=3"))) == pads


@pytest.mark.parametrize(("override", "reason"), [
    ("callbacks=early_stopping", "callbacks.early_stopping"),
    ("debug=limit", "trainer.limit_train_batches"),
    ("logger=mlflow", "logger.mlflow"),
    ("trainer.precision=bf16-mixed", "trainer.precision=bf16-mixed"),
    ("model.compile=default", "model.compile=default"),
    ("dry_run=true", "dry_run=true"),
    ("trainer=gpu", "trainer.accelerator=gpu (the stacked loop trains on the CPU)"),
    ("trainer.deterministic=true", "trainer.deterministic=True"),
    ("+trainer.gradient_clip_algorithm=value", "trainer.gradient_clip_algorithm"),  # any trainer key it does not know
])
def test_a_setting_the_stacked_loop_does_not_implement_keeps_the_job_solo(override, reason):
    assert reason in solo_reason(run_settings(job(override)))
    assert solo_reason(run_settings(job())) is None


def test_jobs_are_grouped_by_signature_in_order_and_split_at_max_members():
    configs = [job("seed=1"), job("model.hidden=[32]"), job("seed=2"), job("callbacks=early_stopping"),
               job("seed=3"), job("model.hidden=[32]", "seed=5")]
    assert stack_groups(configs, max_members=16) == [[0, 2, 4], [1, 5], [3]]
    assert stack_groups(configs, max_members=2) == [[0, 2], [1, 5], [3], [4]]
    with pytest.raises(ValueError, match="max_members=0 is invalid"):
        stack_groups(configs, max_members=0)
