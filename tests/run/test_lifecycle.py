"""One lifecycle for solo and stacked runs: the same settings, run by the basic launcher and by ``launcher=stacked``,
end in the same records (status, error, resume point, epochs, metrics), whatever the way the run ends."""

import json
import signal
import subprocess
import time

import pytest

from tests.conftest import cli_command, load_events, run_cli

pytestmark = pytest.mark.slow
SHORT = ["trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0"]
#: Keys that differ between two runs of the same job by construction (where, when, which process, how grouped).
# What a run's record holds of its own: where and when it ran, and its thread count (its share of the cores at its
# start, which follows the machine's load: the suite runs in two worker processes).
OWN = {"pid", "host", "output_dir", "provenance", "wall_time_s", "stacked_group", "overrides", "best_checkpoint",
       "last_checkpoint", "interrupted_checkpoint", "traceback", "threads"}


def sweep(folder, *overrides, status=0):
    """The records of a sweep that exits with ``status`` (3: some job did not complete)."""
    done = run_cli("-m", *overrides, f"hydra.sweep.dir={folder}")
    assert done.returncode == status, done.stdout[-2000:] + done.stderr[-3000:]
    return {job.name: json.loads((job / "result.json").read_text()) for job in sorted(folder.iterdir())
            if (job / "result.json").is_file()}


def both_ways(tmp_path, *overrides, status=0):
    """The records of one sweep run solo and stacked (the stacked one trained as one group)."""
    solo = sweep(tmp_path / "solo", *overrides, status=status)
    stacked = sweep(tmp_path / "stacked", "launcher=stacked", *overrides, status=status)
    assert solo.keys() == stacked.keys() and all("stacked_group" in r for r in stacked.values())
    return solo, stacked


def assert_same_records(solo, stacked, tolerance=2e-5):
    for job, theirs in solo.items():
        ours = stacked[job]
        assert set(ours) - OWN == set(theirs) - OWN, job
        for key in set(theirs) - OWN - {"metrics", "choices"}:
            assert ours[key] == theirs[key], (job, key)
        assert {**ours["choices"], "launcher": None} == theirs["choices"], job  # the one choice that differs
        assert ours["metrics"].keys() == theirs["metrics"].keys(), job
        for key, value in theirs["metrics"].items():
            assert ours["metrics"][key] == pytest.approx(value, rel=1e-6, abs=tolerance), (job, key)  # lr: float32


def test_test_false_and_a_diverging_job_end_the_same_way_both_ways(tmp_path):
    solo, stacked = both_ways(tmp_path, "optimizer.lr=0.01,1e12", "test=false", *SHORT, status=3)
    assert_same_records(solo, stacked)
    completed, diverged = stacked["000_lr0.01"], stacked["001_lr1000000000000.0"]
    assert completed["status"] == "completed" and "test/acc" not in completed["metrics"]
    assert diverged["status"] == "diverged" and "training loss became nan" in diverged["error"]


def test_resuming_from_a_checkpoint_path_continues_it_both_ways(tmp_path):
    first = run_cli("trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0", f"hydra.run.dir={tmp_path / 'one'}")
    assert first.returncode == 0, first.stderr[-3000:]
    last = tmp_path / "one" / "checkpoints" / "last.ckpt"
    solo, stacked = both_ways(tmp_path, f"ckpt_path={last}", "optimizer.weight_decay=0,1e-4", "allow_config_change=true",
                              *SHORT)
    assert_same_records(solo, stacked)
    for record in stacked.values():
        assert record["resumed_from"] == str(last) and record["epochs"] == 2 and record["status"] == "completed"
        assert record["config_changes"][0].startswith("optimizer.weight_decay: 0.0002 -> ")


def stop_when_both_have_a_checkpoint(folder, *overrides):
    """A 2-job sweep stopped by SIGTERM once job 000 has its last.ckpt; the records it left."""
    process = subprocess.Popen(cli_command("-m", "seed=1,2", "trainer.max_epochs=400",
                                           "callbacks.progress_bar.refresh_rate=0", f"hydra.sweep.dir={folder}",
                                           *overrides), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (folder / "000_seed1" / "checkpoints" / "last.ckpt").is_file():  # an event, however loaded the machine
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    assert process.returncode == 143
    return json.loads((folder / "000_seed1" / "result.json").read_text())


def test_sigterm_interrupts_with_the_same_record_both_ways(tmp_path):
    solo = stop_when_both_have_a_checkpoint(tmp_path / "solo")
    stacked = stop_when_both_have_a_checkpoint(tmp_path / "stacked", "launcher=stacked")
    for record in (solo, stacked):
        assert record["status"] == "interrupted" and record["epochs"] >= 1
        assert record["last_checkpoint"].endswith("000_seed1/checkpoints/last.ckpt")
    assert stacked["error"] == solo["error"] == "stopped by SIGTERM (e.g. a cluster's time limit or kill)"
    assert set(stacked) - OWN == set(solo) - OWN


def test_a_full_disk_says_where_to_resume_only_when_there_is_a_checkpoint(tmp_path):
    import errno

    from rpn_exp.run.lifecycle import no_space_message

    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "result.json"))
    assert "no epoch had ended, so there is no checkpoint to resume from" in no_space_message(full, tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert f"resume with ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}" in no_space_message(full, tmp_path)



def test_a_grid_model_sweep_records_its_layers_and_its_stacked_members_train_as_solo_runs_do(tmp_path):
    """RPN 2's grid model end to end: records with the grid layers' rows, summary, TensorBoard filters; stacked = solo."""
    solo, stacked = both_ways(tmp_path, "model=grid", "model.grid.out_channels=[4]", "model/patch=cylinder",
                              "expansion=identity", "reconciliation=lorr", "reconciliation.r=1,2", "debug=limit",
                              "callbacks.progress_bar.refresh_rate=0")
    # b·P rows per batch: float sums in another order (1.1e-4 of a val/loss of 2.26 apart on one CPU)
    assert_same_records(solo, stacked, tolerance=5e-4)
    assert list(solo) == ["000_grid_out_channels4_cylinder_identity_lorr_r1",
                          "001_grid_out_channels4_cylinder_identity_lorr_r2"]
    first = [record["layers"][0] for record in solo.values()]
    assert all(r["status"] == "completed" for r in [*solo.values(), *stacked.values()])
    assert [row["patch"] for row in first] == ["cylinder r=1 (5 cells)"] * 2 and first[0]["path"] == "convolution"
    assert first[0]["grid"] == "1×8×8->4×8×8" and first[0]["pool"] == "max 2×2->4×4×4"
    assert [row["learnable"] for row in first] == [1 * (4 + 5), 2 * (4 + 5)]  # lorr: r (n + D), D = |patch| = 5
    assert "2 jobs: 2 completed" in (tmp_path / "solo" / "summary.md").read_text()
    events = load_events(tmp_path / "solo" / "000_grid_out_channels4_cylinder_identity_lorr_r1")
    images = events.Tags()["images"]
    assert {"weights/layer 0", "weights/layer 1", "filters/layer 0"} <= set(images)
    assert "filters/layer 1" not in images  # the output layer is no grid layer
    assert len(events.Images("filters/layer 0")) == 2 and events.Images("filters/layer 0")[0].step == 0  # start, end
