"""``pruner=halving`` inside a stacked group: a dominated configuration's members stop at a rung, are recorded
``pruned`` and untested; the decisions are logged and reproducible; a resumed sweep keeps them."""

import json

import pytest

from rpn_exp.run.pruning import Standing, decide
from rpn_exp.run.rungs import read_decisions
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
    assert all(r["pruned"] == "epoch 1 (rung 0), behind `optimizer.lr=0.01`" for r in pruned)
    (row,) = [g for g in read_csv(folder / "summary_by_config.csv") if g["status"] == "pruned"]
    assert (row["config"], row["n"], row["test_acc_mean"], row["pareto"]) == ("optimizer.lr=1e-06", "2", "nan", "False")
    assert "| pruned at epoch 1 (rung 0), behind `optimizer.lr=0.01` |" in (folder / "summary.md").read_text()
    assert "pruned    " in done.stdout + done.stderr and "pruned at epoch 1 (rung 0)" in done.stdout + done.stderr


def test_a_resumed_pruning_sweep_keeps_its_decisions(pruned_sweep):
    folder, _ = pruned_sweep
    before = records(folder)
    again = run_cli("-m", *PRUNED_SWEEP, f"hydra.sweep.dir={folder}", "skip_completed=true")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert "already pruned" in again.stdout + again.stderr
    after = records(folder)
    assert {job: r["status"] for job, r in after.items()} == {job: r["status"] for job, r in before.items()}
    assert all(after[job]["pruned"] == before[job]["pruned"] for job in before if before[job]["status"] == "pruned")


def decisions_by_rung(folder):
    return sorted((d["epoch"], d["configuration"], tuple(d["jobs"]), d["decision"]) for d in read_decisions(folder))


@pytest.mark.parametrize("event", ["pruning.jsonl", "000_lr0.01_seed1/checkpoints/last.ckpt"],
                         ids=["rung decided", "first member's last.ckpt written"])
def test_kill_9_at_a_rung_and_resume_give_the_uninterrupted_decisions_and_records(pruned_sweep, tmp_path, event):
    """SIGKILL as soon as ``event``'s file appears: after the rung's decisions are on disk, while the members'
    checkpoints and records of that epoch are being written (some members one epoch ahead of others). The same
    command with ``skip_completed=true`` ends as the sweep that was never killed."""
    import signal
    import subprocess
    import time

    from tests.conftest import cli_command

    whole, _ = pruned_sweep
    folder = tmp_path / "sweep"
    process = subprocess.Popen(cli_command("-m", *PRUNED_SWEEP, f"hydra.sweep.dir={folder}"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (folder / event).is_file():  # an event, not a deadline
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=600)
    again = run_cli("-m", *PRUNED_SWEEP, f"hydra.sweep.dir={folder}", "skip_completed=true")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert decisions_by_rung(folder) == decisions_by_rung(whole)  # each decision once, the same
    resumed, straight = records(folder), records(whole)
    assert {job: r["status"] for job, r in resumed.items()} == {job: r["status"] for job, r in straight.items()}
    for job, record in straight.items():
        assert resumed[job]["global_step"] == record["global_step"], job
        if record["status"] == "pruned":
            assert resumed[job]["pruned"] == record["pruned"] and "test/acc" not in resumed[job]["metrics"]
        else:
            assert resumed[job]["metrics"]["test/acc"] == pytest.approx(record["metrics"]["test/acc"], abs=1e-6)


def test_a_member_killed_after_its_rung_checkpoint_but_before_its_record_is_pruned_by_the_logged_decision(
        pruned_sweep, tmp_path):
    """The narrowest window: the pruned members' last.ckpt of the rung epoch is written, their record still says
    ``running`` (its process gone). Resumed, they are pruned again by the decision in ``pruning.jsonl``, untrained."""
    import shutil

    folder = tmp_path / "sweep"
    shutil.copytree(pruned_sweep[0], folder)
    before = records(folder)
    for job, record in before.items():
        if record["status"] == "pruned":
            (folder / job / "result.json").write_text(json.dumps({**record, "status": "running", "pid": 2 ** 22 + 1}))
    for path in folder.glob("*/.hydra/config.yaml"):  # the copy's own folders (the sweep moved)
        path.write_text(path.read_text().replace(str(pruned_sweep[0]), str(folder)))
    logged = (folder / "pruning.jsonl").read_text()
    again = run_cli("-m", *PRUNED_SWEEP, f"hydra.sweep.dir={folder}", "skip_completed=true")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    after = records(folder)
    for job, record in before.items():
        if record["status"] == "pruned":
            assert after[job]["status"] == "pruned" and after[job]["pid"] != record["pid"]
            assert (after[job]["pruned"], after[job]["global_step"]) == (record["pruned"], record["global_step"])
            assert after[job]["metrics"]["val/acc"] == record["pruned"]["val_acc"]
        else:
            assert after[job] == record  # completed: skipped
    assert (folder / "pruning.jsonl").read_text() == logged


def test_a_pruned_members_mlflow_run_ends_finished_as_a_pruned_solo_run_does(tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install -e '.[mlflow]')")
    done = run_cli("-m", *PRUNED_SWEEP, "logger=mlflow", f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={tmp_path}/s")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "train"]
    runs = {run.info.run_name: run.info.status for run in client.search_runs([experiment.experiment_id])}
    statuses = {job: record["status"] for job, record in records(tmp_path / "s").items()}
    assert sorted(statuses.values()) == ["completed", "completed", "pruned", "pruned"]
    assert runs == {job: "FINISHED" for job in statuses}  # not FAILED: a pruned run was stopped on purpose


REFILLED = [*PRUNED_SWEEP, "pruner.margin=0.1", "threads=1"]


def queued_sweep(folder, max_members):
    done = run_cli("-m", *REFILLED, f"hydra.launcher.max_members={max_members}", f"hydra.sweep.dir={folder}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def refilled_sweep(tmp_path_factory):
    """3 of the 4 jobs at once: lr=1e-6's seed 2 takes the slot its pruned seed 1 leaves at the group's epoch 1."""
    return queued_sweep(tmp_path_factory.mktemp("refilled") / "sweep", 3)


@pytest.mark.parametrize("max_members, joined", [(2, {"002_lr1e-06_seed1": 4, "003_lr1e-06_seed2": 4}),
                                                 (3, {"003_lr1e-06_seed2": 1})])
def test_a_queued_member_takes_a_freed_slot_and_is_judged_at_its_own_rungs(refilled_sweep, tmp_path, max_members,
                                                                             joined):
    """``max_members`` of the 4 jobs at once: lr=1e-6's jobs wait until lr=0.01's end (2), or its seed 2 takes the
    slot its pruned seed 1 left at the group's epoch 1 (3). Each is judged at its own rung epoch, against every report
    of that rung in the sweep's store, and stops there."""
    from rpn_exp.run.rung_store import read_reports

    folder = refilled_sweep if max_members == 3 else queued_sweep(tmp_path / "sweep", max_members)
    status = {job: (r["status"], r["epochs"]) for job, r in records(folder).items()}
    assert status == {"000_lr0.01_seed1": ("completed", 4), "001_lr0.01_seed2": ("completed", 4),
                      "002_lr1e-06_seed1": ("pruned", 1), "003_lr1e-06_seed2": ("pruned", 1)}, max_members
    steps_per_epoch = records(folder)["000_lr0.01_seed1"]["global_step"] // 4
    for job, record in records(folder).items():
        assert record["stacked_group"].get("joined_at_epoch") == joined.get(job), job
        if record["status"] == "pruned":
            assert record["global_step"] == steps_per_epoch  # one epoch of its own, none after its rung
    assert sorted((epoch, r.job) for epoch, r in read_reports(folder) if epoch == 1) == [
        (1, job) for job in sorted(status)]  # every job reported its first rung to the one store
    last = records(folder)["003_lr1e-06_seed2"]["pruned"]
    assert "optimizer.lr=0.01" in last["dominated_by"]["overrides"]
    assert last["dominated_by"]["val_acc_mean"] > last["val_acc"] + 0.1


def test_kill_9_after_a_refilled_members_rung_and_resume_give_the_uninterrupted_decisions(refilled_sweep, tmp_path):
    """SIGKILL once the member that took a freed slot has written its rung epoch's last.ckpt (the group two epochs
    in, that member one): resumed, the members train on from their own epochs and the sweep ends as the one never
    killed, every decision once."""
    import signal
    import subprocess
    import time

    from tests.conftest import cli_command

    folder = tmp_path / "sweep"
    command = cli_command("-m", *REFILLED, "hydra.launcher.max_members=3", f"hydra.sweep.dir={folder}")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (folder / "003_lr1e-06_seed2" / "checkpoints" / "last.ckpt").is_file():  # an event, not a deadline
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=600)
    again = run_cli("-m", *REFILLED, "hydra.launcher.max_members=3", f"hydra.sweep.dir={folder}",
                    "skip_completed=true")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert decisions_by_rung(folder) == decisions_by_rung(refilled_sweep)
    resumed, straight = records(folder), records(refilled_sweep)
    for job, record in straight.items():
        assert (resumed[job]["status"], resumed[job]["global_step"]) == (record["status"], record["global_step"]), job
        if record["status"] == "pruned":
            assert resumed[job]["pruned"]["epoch"] == record["pruned"]["epoch"]
        else:
            assert resumed[job]["metrics"]["test/acc"] == pytest.approx(record["metrics"]["test/acc"], abs=1e-6)


def test_two_sweeps_that_share_a_store_folder_prune_as_one(tmp_path):
    """lr=0.01 in one sweep, lr=1e-6 in another run after it, one ``pruner.storage`` folder: the second sweep's
    members stop at rung 1 behind the first sweep's configuration, which alone they would not (nothing in their own
    sweep is ahead)."""
    shared = ["launcher=stacked", "pruner=halving", "pruner.first_rung=1", "seed=1,2", "trainer.max_epochs=2",
              "callbacks.progress_bar.refresh_rate=0", f"pruner.storage={tmp_path / 'study'}"]
    for lr, name in (("0.01", "good"), ("0.000001", "bad")):
        done = run_cli("-m", *shared, f"optimizer.lr={lr}", f"hydra.sweep.dir={tmp_path / name}")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert {r["status"] for r in records(tmp_path / "good").values()} == {"completed"}
    bad = records(tmp_path / "bad").values()
    assert {(r["status"], r["epochs"]) for r in bad} == {("pruned", 1)}
    assert all("optimizer.lr=0.01" in r["pruned"]["dominated_by"]["overrides"] for r in bad)
    assert [d["decision"] for d in read_decisions(tmp_path / "bad")] == ["pruned"]
    assert not (tmp_path / "bad" / "rungs.jsonl").exists() and (tmp_path / "study" / "rungs.jsonl").is_file()
