"""``pruner=halving`` inside a stacked group: a dominated configuration's members stop at a rung, are recorded
``pruned`` and untested; the decisions are logged and reproducible; a resumed sweep keeps them."""

import json

import pytest

from rpn_exp.run.pruning import Standing, decide
from rpn_exp.run.stacked.pruning import read_decisions
from rpn_exp.sweep.summary import read_csv
from tests.conftest import run_cli

pytestmark = pytest.mark.slow
#: lr=1e-6 learns nothing in 4 epochs; lr=0.01 reaches ~0.9: same parameters, so the first is dominated at rung 1.
PRUNED_SWEEP = ["launcher=stacked", "pruner=halving", "pruner.first_rung=1", "optimizer.lr=0.01,0.000001",
                "seed=1,2", "trainer.max_epochs=4", "callbacks.progress_bar.refresh_rate=0"]


def records(folder):
    return {p.parent.name: json.loads(p.read_text()) for p in folder.glob("*/result.json")}


@pytest.fixture(scope="module")
def pruned_sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pruned") / "sweep"
    done = run_cli("-m", *PRUNED_SWEEP, f"hydra.sweep.dir={folder}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return folder, done


def test_the_members_of_a_dominated_configuration_are_recorded_pruned_at_the_rung_and_not_tested(pruned_sweep):
    folder, _ = pruned_sweep
    by_lr = {}
    for record in records(folder).values():
        by_lr.setdefault(record["lr"], []).append(record)
    for record in by_lr[1e-6]:
        assert record["status"] == "pruned"
        assert (record["pruned"]["epoch"], record["pruned"]["rung"], record["epochs"]) == (1, 0, 1)
        assert "optimizer.lr=0.01" in record["pruned"]["dominated_by"]["overrides"]
        assert record["pruned"]["dominated_by"]["val_acc_mean"] > record["pruned"]["val_acc"] + record["pruned"]["margin"]
        assert "val/acc" in record["metrics"] and "test/acc" not in record["metrics"]
    for record in by_lr[0.01]:
        assert record["status"] == "completed" and record["epochs"] == 4 and "test/acc" in record["metrics"]
    steps_per_epoch = by_lr[0.01][0]["global_step"] // 4
    assert all(r["global_step"] == steps_per_epoch for r in by_lr[1e-6])  # it took no step after the rung


def test_a_pruned_members_last_checkpoint_is_the_end_of_its_rung_epoch(pruned_sweep):
    import torch

    folder, _ = pruned_sweep
    for record in records(folder).values():
        if record["status"] == "pruned":
            checkpoint = torch.load(f"{record['output_dir']}/checkpoints/last.ckpt", weights_only=True)
            assert (checkpoint["epoch"], checkpoint["global_step"]) == (0, record["global_step"])


def test_every_decision_is_logged_and_the_rule_gives_it_again_from_the_log(pruned_sweep):
    folder, _ = pruned_sweep
    decisions = read_decisions(folder)
    assert [(d["epoch"], d["decision"]) for d in decisions if "lr=1e-06" in d["overrides"]] == [(1, "pruned")]
    assert [(d["epoch"], d["decision"]) for d in decisions if "lr=1e-06" not in d["overrides"]] == [(1, "kept"),
                                                                                                     (2, "kept")]
    for epoch in (1, 2):
        rung = [d for d in decisions if d["epoch"] == epoch]
        standings = {d["configuration"]: Standing(d["learnable_params"], tuple(d["val_acc"])) for d in rung}
        again = decide(standings, rung[0]["margin"])
        assert {d["configuration"]: d.get("dominated_by", {}).get("configuration") for d in rung} == again


def test_the_sweep_ends_well_and_its_summary_shows_the_pruned_jobs_off_the_front(pruned_sweep):
    folder, done = pruned_sweep
    rows = read_csv(folder / "summary.csv")
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert len(pruned) == 2 and not any(r["pareto"] == "True" for r in pruned)
    assert "pruned" in (folder / "summary.md").read_text()


def test_a_resumed_pruning_sweep_keeps_its_decisions(pruned_sweep):
    folder, _ = pruned_sweep
    before = records(folder)
    again = run_cli("-m", *PRUNED_SWEEP, f"hydra.sweep.dir={folder}", "skip_completed=true")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert "already pruned" in again.stdout + again.stderr
    after = records(folder)
    assert {job: r["status"] for job, r in after.items()} == {job: r["status"] for job, r in before.items()}
    assert all(after[job]["pruned"] == before[job]["pruned"] for job in before if before[job]["status"] == "pruned")
