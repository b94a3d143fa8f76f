"""``launcher=stacked`` end to end: real multiruns whose members are compared with the solo runs of the same jobs."""

import json
from pathlib import Path

import pytest
import torch

from rpn_exp.run.module import RPNClassifier
from rpn_exp.sweep.summary import read_csv
from tests.conftest import hparams_plugin, load_events, run_cli

pytestmark = pytest.mark.slow
SEEDS = ["seed=1,2,3,4", "trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0"]
JOBS = ["000_seed1", "001_seed2", "002_seed3", "003_seed4"]


def sweep(folder, *overrides, status=0):
    done = run_cli("-m", *overrides, f"hydra.sweep.dir={folder}")
    assert done.returncode == status, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def record(folder, job):
    return json.loads((folder / job / "result.json").read_text())


@pytest.fixture(scope="module")
def seed_sweeps(tmp_path_factory):
    """The same 4-job seed sweep on digits, stacked and solo (the basic launcher)."""
    root = tmp_path_factory.mktemp("seeds")
    stacked = sweep(root / "stacked", "launcher=stacked", *SEEDS)
    sweep(root / "solo", *SEEDS)
    return root / "stacked", root / "solo", stacked


def test_a_stacked_seed_sweep_trains_its_four_jobs_as_one_group(seed_sweeps):
    stacked, _, done = seed_sweeps
    assert "4 jobs: 1 stacked groups (4 members), 0 solo" in done.stdout + done.stderr
    for member, job in enumerate(JOBS):
        group = record(stacked, job)["stacked_group"]
        assert (group["members"], group["member"]) == (4, member)


def test_each_member_has_the_metrics_of_its_solo_run(seed_sweeps):
    stacked, solo, _ = seed_sweeps
    for job in JOBS:
        ours, theirs = record(stacked, job), record(solo, job)
        assert ours["status"] == theirs["status"] == "completed"
        assert ours["metrics"].keys() == theirs["metrics"].keys()
        for key, value in theirs["metrics"].items():
            assert ours["metrics"][key] == pytest.approx(value, abs=2e-5), (job, key)
        for key in ("epochs", "global_step", "data_sizes", "learnable_params", "seed", "lr"):
            assert ours[key] == theirs[key], (job, key)
        assert ours["best_checkpoint"].replace(str(stacked), "") == theirs["best_checkpoint"].replace(str(solo), "")


def test_the_summary_cannot_tell_stacked_jobs_from_solo_ones(seed_sweeps):
    stacked, solo, _ = seed_sweeps
    ours, theirs = read_csv(stacked / "summary.csv"), read_csv(solo / "summary.csv")
    assert [r.keys() for r in ours] == [r.keys() for r in theirs]
    for a, b in zip(ours, theirs):
        for key in a.keys() - {"wall_time_s", "output_dir", "overrides"}:  # the launcher is the one override apart
            if "/" in key:  # a metric
                assert float(a[key]) == pytest.approx(float(b[key]), abs=2e-5), key
            else:
                assert a[key] == b[key], key


def test_each_member_has_its_own_tensorboard_run_with_the_solo_series(seed_sweeps):
    stacked, solo, _ = seed_sweeps
    for job in JOBS:
        ours, theirs = load_events(stacked / job), load_events(solo / job)
        assert ours.Tags()["scalars"] and set(ours.Tags()["scalars"]) == set(theirs.Tags()["scalars"])
        assert set(ours.Tags()["images"]) == set(theirs.Tags()["images"])
        for tag in theirs.Tags()["scalars"]:
            ours_series = [(e.step, e.value) for e in ours.Scalars(tag)]
            theirs_series = [(e.step, e.value) for e in theirs.Scalars(tag)]
            assert [s for s, _ in ours_series] == [s for s, _ in theirs_series], tag
            assert [v for _, v in ours_series] == pytest.approx([v for _, v in theirs_series], abs=2e-5), tag
        (ours_hp, ours_end, _), (theirs_hp, theirs_end, _) = hparams_plugin(ours), hparams_plugin(theirs)
        assert dict(ours_hp) == dict(theirs_hp) and ours_end == theirs_end


def test_each_member_keeps_best_and_last_checkpoints_that_load_as_a_solo_runs(seed_sweeps):
    stacked, solo, _ = seed_sweeps
    for job in JOBS:
        folder = stacked / job / "checkpoints"
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (solo / job / "checkpoints").iterdir())
        ours = RPNClassifier.load_from_checkpoint(folder / "last.ckpt", weights_only=False)
        theirs = RPNClassifier.load_from_checkpoint(solo / job / "checkpoints" / "last.ckpt", weights_only=False)
        for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
        state, solo_state = (torch.load(f / job / "checkpoints" / "last.ckpt", weights_only=False)
                             for f in (stacked, solo))
        for key in ("epoch", "global_step", "lr_schedulers"):
            assert state[key] == solo_state[key], key
        assert state["val_acc_best"] == pytest.approx(solo_state["val_acc_best"], abs=2e-5)
        assert state["optimizer_states"][0]["param_groups"] == solo_state["optimizer_states"][0]["param_groups"]
        assert folder.stat().st_size and (folder / "last.ckpt").stat().st_size < 100_000  # its own weights only


def test_a_diverging_member_is_recorded_and_the_others_complete(tmp_path):
    sweep(tmp_path, "launcher=stacked", "optimizer.lr=0.01,1e12,0.02", "trainer.max_epochs=2",
          "callbacks.progress_bar.refresh_rate=0", status=3)
    statuses = {job.name: record(tmp_path, job.name)["status"] for job in tmp_path.iterdir() if job.is_dir()}
    assert statuses == {"000_lr0.01": "completed", "001_lr1000000000000.0": "diverged", "002_lr0.02": "completed"}
    diverged = record(tmp_path, "001_lr1000000000000.0")
    assert "training loss became nan" in diverged["error"] and diverged["stacked_group"]["members"] == 3
    completed = [record(tmp_path, job)["wall_time_s"] for job in ("000_lr0.01", "002_lr0.02")]
    assert diverged["wall_time_s"] < min(completed)  # its time ends where it left the group
    rows = {r["job"]: r["status"] for r in read_csv(tmp_path / "summary.csv")}
    assert rows == statuses


def test_mixed_shapes_stack_by_shape_and_an_unstackable_job_runs_solo(tmp_path):
    done = sweep(tmp_path, "launcher=stacked", "model.hidden=[16],[24]", "+trainer.val_check_interval=1.0,0.5",
                 "seed=1,2", "trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0")
    said = done.stdout + done.stderr
    assert "8 jobs: 2 stacked groups (2 + 2 members), 4 solo" in said
    assert said.count("runs solo: a stacked group cannot honour trainer.val_check_interval=0.5") == 4
    records = {job.name: record(tmp_path, job.name) for job in tmp_path.iterdir() if job.is_dir()}
    assert len(records) == 8 and {r["status"] for r in records.values()} == {"completed"}
    for rec in records.values():
        stacked = "stacked_group" in rec
        assert stacked == ("+trainer.val_check_interval=1.0" in rec["overrides"])
        if stacked:
            assert rec["stacked_group"]["members"] == 2
            assert {r["layers"][0]["n"] for r in records.values() if r.get("stacked_group", {}).get("name")
                    == rec["stacked_group"]["name"]} == {rec["layers"][0]["n"]}


def test_n_jobs_workers_train_the_groups_at_once_each_on_its_share_of_the_cores_as_one_after_another(tmp_path):
    """Two groups of three on three workers: the first is split in two so that no worker waits without one."""
    from rpn_exp.run.threads import available_cores

    overrides = ["model.hidden=[16],[24]", "seed=1,2,3", "trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0"]
    done = sweep(tmp_path / "at_once", "launcher=stacked", "hydra.launcher.n_jobs=3", *overrides)
    sweep(tmp_path / "in_turn", "launcher=stacked", f"threads={max(1, available_cores() // 3)}", *overrides)
    said = done.stdout + done.stderr
    assert "6 jobs: 2 stacked groups (2 + 3 members), 1 solo" in said and "3 workers train the units at once" in said
    at_once = {job.name: record(tmp_path / "at_once", job.name) for job in (tmp_path / "at_once").iterdir()
               if job.is_dir()}
    assert len(at_once) == 6 and {r["status"] for r in at_once.values()} == {"completed"}
    assert {r["threads"] for r in at_once.values()} == {max(1, available_cores() // 3)}
    assert len({r["pid"] for r in at_once.values()}) == 3  # three worker processes, each a group at a time
    assert "stacked_group" not in at_once["002_hidden16_seed3"]  # the second half of a group of three
    for job, rec in at_once.items():  # in turn the groups stay whole: float sums over 3 members instead of 2 or 1
        assert rec["metrics"] == pytest.approx(record(tmp_path / "in_turn", job)["metrics"], rel=1e-6, abs=1e-6), job
    assert len(read_csv(tmp_path / "at_once" / "summary.csv")) == 6


def test_jobs_that_differ_only_in_r_stack_zero_padded_and_end_as_their_solo_runs(tmp_path):
    overrides = ["reconciliation.r=1,3", "trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0"]
    done = sweep(tmp_path / "stacked", "launcher=stacked", *overrides)
    sweep(tmp_path / "solo", *overrides)
    assert "2 jobs: 1 stacked groups (2 members), 0 solo" in done.stdout + done.stderr
    for job in ("000_r1", "001_r3"):
        ours, theirs = record(tmp_path / "stacked", job), record(tmp_path / "solo", job)
        assert ours["status"] == "completed" and ours["learnable_params"] == theirs["learnable_params"]
        for key, value in theirs["metrics"].items():
            assert ours["metrics"][key] == pytest.approx(value, abs=2e-5), (job, key)
        state, solo_state = (torch.load(root / job / "checkpoints" / "last.ckpt", weights_only=False)
                             for root in (tmp_path / "stacked", tmp_path / "solo"))
        for name, value in solo_state["state_dict"].items():  # its own shapes, not the group's largest r; sums over
            # r′ instead of r round differently, and Adam's normalized steps carry that to ~1e-5 in two epochs
            torch.testing.assert_close(state["state_dict"][name], value, rtol=1e-3, atol=1e-4, msg=name)
        ours_adam, theirs_adam = (s["optimizer_states"][0]["state"] for s in (state, solo_state))
        assert [v["exp_avg"].shape for v in ours_adam.values()] == [v["exp_avg"].shape for v in theirs_adam.values()]


def stacked_and_solo(root, *overrides):
    """The same sweep stacked and solo; each job's records (stacked, solo), after checking they all stacked."""
    done = sweep(root / "stacked", "launcher=stacked", "callbacks.progress_bar.refresh_rate=0", *overrides)
    sweep(root / "solo", "callbacks.progress_bar.refresh_rate=0", *overrides)
    assert "0 solo" in done.stdout + done.stderr
    jobs = sorted(p.name for p in (root / "solo").iterdir() if (p / "result.json").is_file())
    return {job: (record(root / "stacked", job), record(root / "solo", job)) for job in jobs}


@pytest.mark.parametrize(("overrides", "tolerance"), [
    (["trainer.precision=bf16-mixed", "seed=1,2", "trainer.max_epochs=2"], 2e-5),
    (["+trainer.gradient_clip_val=0.05", "seed=1,2", "trainer.max_epochs=2"], 2e-5),
    (["+trainer.gradient_clip_val=0.01", "+trainer.gradient_clip_algorithm=value", "seed=1,2", "trainer.max_epochs=2"],
     2e-5),
    (["+trainer.accumulate_grad_batches=2", "seed=1,2", "trainer.max_epochs=2"], 2e-5),
    (["experiment=paper_mnist", "dataset=digits", "reconciliation.r=1,3,5", "trainer.max_epochs=2"], 1e-4),
    (["debug=limit", "seed=1,2"], 2e-5),
    (["model=mlp", "model.hidden=[4],[16]", "seed=1,2", "trainer.max_epochs=2"], 1e-4),
], ids=["bf16", "clip_norm", "clip_value", "accumulate", "paper_model_r_padded", "batch_limits", "mlp_width_padded"])
def test_a_member_trains_as_its_solo_run_under_every_trainer_setting(tmp_path, overrides, tolerance):
    for job, (ours, theirs) in stacked_and_solo(tmp_path, *overrides).items():
        assert ours["status"] == theirs["status"] == "completed" and ours["precision"] == theirs["precision"]
        assert (ours["epochs"], ours["global_step"]) == (theirs["epochs"], theirs["global_step"]), job
        assert ours["metrics"].keys() == theirs["metrics"].keys()
        for key, value in theirs["metrics"].items():
            assert ours["metrics"][key] == pytest.approx(value, abs=tolerance), (job, key)
        assert Path(ours["best_checkpoint"]).name == Path(theirs["best_checkpoint"]).name, job


def test_each_member_stops_early_on_its_own_and_stops_costing_steps(tmp_path):
    records = stacked_and_solo(tmp_path, "callbacks=early_stopping", "callbacks.early_stopping.patience=0",
                               "callbacks.early_stopping.min_delta=0.01", "seed=1,2,3,4", "trainer.max_epochs=12")
    epochs = {job: ours["epochs"] for job, (ours, _) in records.items()}
    assert len(set(epochs.values())) > 1 and min(epochs.values()) < 12  # members stopped, at different epochs
    for job, (ours, theirs) in records.items():
        assert (ours["epochs"], ours["global_step"]) == (theirs["epochs"], theirs["global_step"]), job
        assert ours["global_step"] == ours["epochs"] * 20  # 20 steps an epoch: none after it stopped
        for key, value in theirs["metrics"].items():
            assert ours["metrics"][key] == pytest.approx(value, abs=2e-5), (job, key)
        state = torch.load(tmp_path / "stacked" / job / "checkpoints" / "last.ckpt", weights_only=False)
        assert state["epoch"] + 1 == ours["epochs"]  # its last checkpoint is where it stopped


def test_a_queued_member_takes_a_freed_slot_and_trains_as_its_solo_run_at_its_own_epochs(tmp_path):
    """max_members=3 of 4 jobs: the 3-epoch seed 2 waits until the 1-epoch jobs end, joins at the group's epoch 1 and
    trains its epochs 0-2 beside seed 1's 1-2: its records, checkpoints and TensorBoard steps are its solo run's."""
    overrides = ["trainer.max_epochs=1,3", "seed=1,2", "threads=1"]
    done = sweep(tmp_path / "stacked", "launcher=stacked", "hydra.launcher.max_members=3",
                 "callbacks.progress_bar.refresh_rate=0", *overrides)
    sweep(tmp_path / "solo", "callbacks.progress_bar.refresh_rate=0", *overrides)
    assert "3 members of a group train at once" in done.stdout + done.stderr
    queued = "003_seed2"  # max_epochs=3: the jobs are 1 and 3 epochs of seed 1, seed 2
    for job in ("000_seed1", "001_seed2", "002_seed1", queued):
        ours, theirs = record(tmp_path / "stacked", job), record(tmp_path / "solo", job)
        assert ours["stacked_group"].get("joined_at_epoch") == (1 if job == queued else None), job
        assert (ours["status"], ours["epochs"], ours["global_step"]) == ("completed", theirs["epochs"],
                                                                         theirs["global_step"]), job
        for key, value in theirs["metrics"].items():
            assert ours["metrics"][key] == pytest.approx(value, abs=2e-5), (job, key)
        assert Path(ours["best_checkpoint"]).name == Path(theirs["best_checkpoint"]).name, job
        state, solo_state = (torch.load(root / job / "checkpoints" / "last.ckpt", weights_only=False)
                             for root in (tmp_path / "stacked", tmp_path / "solo"))
        assert (state["epoch"], state["global_step"], state["loops"]) == (
            solo_state["epoch"], solo_state["global_step"], solo_state["loops"]), job
        ours_events, solo_events = (load_events(root / job) for root in (tmp_path / "stacked",
                                                                                       tmp_path / "solo"))
        assert ours_events.Tags()["scalars"] == solo_events.Tags()["scalars"]
        for tag in solo_events.Tags()["scalars"]:  # train/lr, train/loss_step, val/acc, test/acc, ...
            assert [e.step for e in ours_events.Scalars(tag)] == [e.step for e in solo_events.Scalars(tag)], tag


def test_each_member_lands_in_the_mlflow_tracking_store_as_its_own_run(tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install -e '.[mlflow]')")
    done = sweep(tmp_path / "sweep", "launcher=stacked", "logger=mlflow", f"paths.log_dir={tmp_path}", "seed=1,2",
                 "trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0")
    assert "1 stacked groups (2 members)" in done.stdout + done.stderr
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "train"]
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["000_seed1", "001_seed2"]
    for job, run in runs.items():
        assert run.info.status == "FINISHED" and run.data.params["seed"] == job[-1]
        assert run.data.metrics["test/acc"] == pytest.approx(record(tmp_path / "sweep", job)["metrics"]["test/acc"])


#: A stacked member written while stacked groups had their own training loop: no Lightning loop or callback state.
OLD_MEMBER = Path(__file__).resolve().parents[2] / "fixtures" / "checkpoint_stacked_member" / "checkpoints"


def test_a_member_written_by_the_old_stacked_loop_resumes_in_a_group_as_an_uninterrupted_run(tmp_path):
    """Two members resume from the fixture's last.ckpt (seed 2, end of epoch 5) to 8 epochs, as a solo run does."""
    common = ["seed=2", "optimizer.lr=0.05", "trainer.max_epochs=8", "callbacks.progress_bar.refresh_rate=0",
              "threads=1"]
    sweep(tmp_path / "group", "launcher=stacked", *common, "tags=[a],[b]", f"ckpt_path={OLD_MEMBER / 'last.ckpt'}")
    sweep(tmp_path / "straight", *common)
    straight = record(tmp_path / "straight", "000_seed2_lr0.05")
    for job in ("000_seed2_lr0.05", "001_seed2_lr0.05"):
        resumed = record(tmp_path / "group", job)
        assert resumed["stacked_group"]["members"] == 2 and resumed["status"] == "completed"
        assert (resumed["epochs"], resumed["global_step"]) == (straight["epochs"], straight["global_step"]) == (8, 160)
        assert Path(resumed["best_checkpoint"]).name == Path(straight["best_checkpoint"]).name
        for key in ("test/acc", "val/acc_best", "train/acc", "test/loss", "val/loss", "train/loss_epoch"):
            # its first epochs trained in a stack on another CPU (float32 sums in another order, other vector
            # instructions): up to two of the 179 validation images and 5e-3 of a loss (1.5%) apart
            assert resumed["metrics"][key] == pytest.approx(straight["metrics"][key],
                                                            abs=0.012 if "acc" in key else 5e-3), key


def test_a_stacked_sweep_run_again_skips_its_completed_members_and_retrains_the_others(tmp_path):
    import shutil

    overrides = ["launcher=stacked", "seed=1,2,3", "trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0"]
    sweep(tmp_path, *overrides)
    first = {job: record(tmp_path, job) for job in ("000_seed1", "001_seed2", "002_seed3")}
    for job in ("001_seed2", "002_seed3"):  # as if the group had been killed before its first epoch ended
        first[job]["status"] = "killed"
        (tmp_path / job / "result.json").write_text(json.dumps(first[job]))
        shutil.rmtree(tmp_path / job / "checkpoints")
    done = sweep(tmp_path, *overrides, "skip_completed=true")
    assert "3 jobs: 1 stacked groups (2 members), 0 solo, 1 completed earlier" in done.stdout + done.stderr
    assert record(tmp_path, "000_seed1") == first["000_seed1"]
    for job in ("001_seed2", "002_seed3"):
        again = record(tmp_path, job)
        assert again["status"] == "completed" and again["pid"] != first[job]["pid"] and again["resumed_from"] is None
        assert again["metrics"]["test/acc"] == pytest.approx(first[job]["metrics"]["test/acc"], abs=2e-5)
        assert len(list((tmp_path / job).glob("events.out.tfevents.*"))) == 1  # the first attempt's file is gone


def test_a_stopped_group_resumes_from_its_last_checkpoints_to_the_result_of_an_uninterrupted_run(tmp_path):
    """Members of ranks 1 and 3 (the first zero-padded in the stack) stopped by SIGTERM and resumed."""
    stopped = stop_a_group(tmp_path / "stopped", epochs=40, jobs="reconciliation.r=1,3", names=("000_r1", "001_r3"))
    common = ["launcher=stacked", "reconciliation.r=1,3", "trainer.max_epochs=40", "callbacks.progress_bar.refresh_rate=0"]
    sweep(tmp_path / "stopped", *common, "skip_completed=true")  # the same command again
    sweep(tmp_path / "whole", *common)
    for job, before in stopped.items():
        resumed, whole = record(tmp_path / "stopped", job), record(tmp_path / "whole", job)
        assert before["status"] == "interrupted" and 1 <= before["epochs"] < 40 and resumed["status"] == "completed"
        assert resumed["resumed_from"] == str(tmp_path / "stopped" / job / "checkpoints" / "last.ckpt")
        assert (resumed["epochs"], resumed["global_step"]) == (whole["epochs"], whole["global_step"]) == (40, 800)
        for key, value in whole["metrics"].items():
            assert resumed["metrics"][key] == pytest.approx(value, abs=1e-6), (job, key)


def stop_a_group(folder, epochs=400, jobs="seed=1,2", names=("000_seed1", "001_seed2")):
    """A 2-member group of a sweep over ``jobs`` stopped by SIGTERM once both members (``names``) have a last.ckpt;
    their records."""
    import signal
    import subprocess
    import time

    from tests.conftest import cli_command

    command = cli_command("-m", "launcher=stacked", jobs, f"trainer.max_epochs={epochs}",
                          "callbacks.progress_bar.refresh_rate=0", f"hydra.sweep.dir={folder}")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not all((folder / job / "checkpoints" / "last.ckpt").is_file() for job in names):  # an event, not a deadline
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=900)
    assert process.returncode == 143
    return {job: record(folder, job) for job in names}


def test_sigterm_records_every_member_interrupted_with_its_last_checkpoint(tmp_path):
    for job, rec in stop_a_group(tmp_path).items():
        assert rec["status"] == "interrupted" and "SIGTERM" in rec["error"]
        assert rec["last_checkpoint"] == str(tmp_path / job / "checkpoints" / "last.ckpt")
        state = torch.load(rec["last_checkpoint"], weights_only=False)
        assert state["epoch"] + 1 == rec["epochs"] >= 1
