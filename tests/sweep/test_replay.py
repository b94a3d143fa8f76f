"""The pruning rule replayed on recorded validation curves: what it would have stopped, the epochs saved, whether the
final front is kept; on a real sweep it makes the decisions a pruning sweep makes live."""

import json

import pytest
from torch.utils.tensorboard import SummaryWriter

from rpn_exp.replay import FRONT_LOST, REPLAY_JSONL, REPLAY_MD
from rpn_exp.replay import main as replay_main
from rpn_exp.run.pruning import SuccessiveHalving
from rpn_exp.run.rungs import read_decisions
from rpn_exp.sweep.replay import replay, val_curve
from tests.conftest import run_cli


def job(configuration, params, curve, seed=1):
    """A completed job's record and its validation curve (one value per epoch)."""
    record = {"configuration": configuration, "output_dir": f"/sweep/{configuration}_seed{seed}",
              "overrides": [f"cfg={configuration}", f"seed={seed}"], "learnable_params": params,
              "max_epochs": len(curve)}
    return record, curve


def test_a_dominated_configuration_stops_at_its_first_rung_and_its_later_epochs_are_saved():
    jobs = [job("good", 100, [0.80, 0.85, 0.88, 0.90], 1), job("good", 100, [0.81, 0.86, 0.89, 0.91], 2),
            job("bad", 100, [0.10, 0.11, 0.12, 0.13], 1), job("bad", 100, [0.11, 0.12, 0.13, 0.14], 2)]
    outcome = replay(jobs, SuccessiveHalving(first_rung=1, eta=2))
    assert set(outcome.pruned) == {"bad"}
    assert (outcome.pruned["bad"]["epoch"], outcome.pruned["bad"]["rung"]) == (1, 0)
    assert outcome.pruned["bad"]["dominated_by"]["configuration"] == "good"
    assert (outcome.epochs_saved, outcome.epochs_total) == (2 * 3, 16)
    assert [(d["epoch"], d["configuration"]) for d in outcome.decisions] == [(1, "good"), (1, "bad"), (2, "good")]


def test_a_small_model_behind_a_larger_one_is_never_stopped_and_ties_are_kept():
    jobs = [job("small", 10, [0.50, 0.60, 0.70, 0.72], 1), job("small", 10, [0.52, 0.61, 0.71, 0.73], 2),
            job("large", 1000, [0.90, 0.92, 0.93, 0.94], 1), job("large", 1000, [0.91, 0.93, 0.94, 0.95], 2),
            job("twin", 1000, [0.905, 0.925, 0.935, 0.945], 1), job("twin", 1000, [0.905, 0.925, 0.935, 0.945], 2)]
    outcome = replay(jobs, SuccessiveHalving(first_rung=1, eta=2))
    assert outcome.pruned == {} and outcome.epochs_saved == 0


def test_without_seeds_to_measure_a_spread_nothing_is_stopped_unless_a_margin_is_given():
    jobs = [job("good", 100, [0.8, 0.9, 0.9]), job("bad", 100, [0.1, 0.1, 0.1])]
    assert replay(jobs, SuccessiveHalving(first_rung=1)).pruned == {}
    assert set(replay(jobs, SuccessiveHalving(first_rung=1, margin=0.1)).pruned) == {"bad"}


def test_the_curve_is_read_from_the_event_files_a_resumed_run_keeping_the_last_value_of_a_step(tmp_path):
    first = SummaryWriter(tmp_path, filename_suffix=".a")
    for step, value in [(10, 0.5), (20, 0.6), (30, 0.65)]:
        first.add_scalar("val/acc", value, step)
        first.add_scalar("val/loss", 1 - value, step)
    first.close()
    resumed = SummaryWriter(tmp_path, filename_suffix=".b")  # resumed from epoch 2: epoch 3 logged again
    for step, value in [(30, 0.7), (40, 0.75)]:
        resumed.add_scalar("val/acc", value, step)
    resumed.close()
    assert val_curve(tmp_path) == pytest.approx([0.5, 0.6, 0.7, 0.75])
    assert val_curve(tmp_path / "nothing") == []


SWEEP = ["launcher=stacked", "optimizer.lr=0.01,0.000001", "seed=1,2", "trainer.max_epochs=4", "threads=1",
         "callbacks.progress_bar.refresh_rate=0"]
PRUNER = ["pruner=halving", "pruner.first_rung=1", "pruner.margin=0.1"]


@pytest.mark.slow
def test_replayed_on_a_real_sweep_it_makes_the_decisions_of_a_pruning_sweep_run_live(tmp_path, capsys):
    """The same sweep on the digits, once without the pruner (its curves replayed) and once with it."""
    unpruned, live = tmp_path / "unpruned", tmp_path / "live"
    for folder, extra in ((unpruned, []), (live, PRUNER)):
        done = run_cli("-m", *SWEEP, *extra, f"hydra.sweep.dir={folder}")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert not (unpruned / "pruning.jsonl").exists()

    assert replay_main([str(unpruned), "--first-rung", "1", "--margin", "0.1"]) == 0
    printed = capsys.readouterr().out
    assert "1 of 2 configurations would have stopped; 6 of 16 epochs saved (38%)" in printed
    assert "Front kept" in printed and "pruned at epoch 1 (rung 0), behind `optimizer.lr=0.01`" in printed
    assert (unpruned / REPLAY_MD).read_text().strip() in printed

    def essentials(decisions):
        return sorted((d["epoch"], d["configuration"], d["decision"], round(d["val_acc_mean"], 6)) for d in decisions)

    replayed = [json.loads(line) for line in (unpruned / REPLAY_JSONL).read_text().splitlines()]
    assert essentials(replayed) == essentials(read_decisions(live))
    assert {d["decision"] for d in replayed} == {"kept", "pruned"}


def test_a_replay_that_would_stop_a_configuration_on_the_front_says_so(tmp_path, capsys):
    """A margin of 0 stops the small configuration at its rung although it ends on the front: exit status 3."""
    from rpn_exp.replay import report
    from rpn_exp.sweep.replay import Replay

    groups = [{"config": "r=1", "configuration": "c1", "learnable_params": 10, "n": 2, "pareto": True,
               "val_acc_best_mean": 0.7}]
    decision = {"epoch": 2, "rung": 0, "overrides": "r=1", "val_acc_mean": 0.5, "margin": 0.0,
                "dominated_by": {"configuration": "c0", "overrides": "r=0", "val_acc_mean": 0.6}}
    lines, lost = report(groups, Replay(pruned={"c1": decision}), SuccessiveHalving(margin=0.0), 2, [])
    assert lost == ["r=1"] and lines[-1].startswith("FRONT LOST: the replay stops `r=1`")
    assert FRONT_LOST == 3


def test_a_folder_without_recorded_curves_is_an_error(tmp_path, capsys):
    assert replay_main([str(tmp_path)]) == 1
    assert "no completed job with a recorded val/acc curve" in capsys.readouterr().err
    assert replay_main([str(tmp_path), "--eta", "1"]) == 2
    assert "pruner.eta=1.0 is invalid" in capsys.readouterr().err
