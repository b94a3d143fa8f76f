"""Pruning across the solo jobs of a sweep: reports to a locked store, judged on every report of the rung so far."""

import json
import multiprocessing

import pytest

from rpn_exp.run.pruning import SuccessiveHalving
from rpn_exp.run.rung_store import read_reports, report_and_judge
from rpn_exp.run.rungs import Entry, logged_pruning, read_decisions

PRUNER = SuccessiveHalving(first_rung=1, eta=2, margin=0.1)


def entry(job, configuration, val_acc, params=1000):
    return Entry(job, configuration, f"optimizer.lr={configuration}", params, 8, val_acc)


def test_a_job_is_judged_on_the_reports_that_reached_its_rung_before_it(tmp_path):
    assert report_and_judge(tmp_path, PRUNER, 1, entry("000_good", "good", 0.80)) is None  # alone: nothing ahead
    pruned = report_and_judge(tmp_path, PRUNER, 1, entry("001_bad", "bad", 0.20))
    assert pruned["dominated_by"]["configuration"] == "good" and pruned["val_acc"] == 0.20
    assert (pruned["epoch"], pruned["rung"], pruned["judged"]) == (1, 0, "001_bad")
    assert report_and_judge(tmp_path, PRUNER, 1, entry("002_big", "big", 0.30, params=5000)) is not None
    assert report_and_judge(tmp_path, PRUNER, 1, entry("003_small", "small", 0.30, params=10)) is None  # small
    assert [(d["judged"], d["decision"]) for d in read_decisions(tmp_path)] == [
        ("000_good", "kept"), ("001_bad", "pruned"), ("002_big", "pruned"), ("003_small", "kept")]


def test_a_configuration_that_reached_a_rung_before_the_one_ahead_of_it_stops_at_its_next_rung(tmp_path):
    assert report_and_judge(tmp_path, PRUNER, 1, entry("000_bad", "bad", 0.20)) is None  # first at rung 1: alone
    assert report_and_judge(tmp_path, PRUNER, 1, entry("001_small", "small", 0.10, params=10)) is None
    assert report_and_judge(tmp_path, PRUNER, 1, entry("002_good", "good", 0.80)) is None
    pruned = report_and_judge(tmp_path, PRUNER, 2, entry("000_bad", "bad", 0.25))  # first at rung 2: alone again
    assert (pruned["epoch"], pruned["rung"], pruned["val_acc"]) == (2, 1, 0.25)  # stopped now, as it is now
    assert pruned["judged_on"] == {"epoch": 1, "val_acc": [0.20], "val_acc_mean": 0.20}  # on rung 1's reports now
    assert pruned["dominated_by"]["configuration"] == "good" and pruned["margin"] == 0.1
    assert report_and_judge(tmp_path, PRUNER, 2, entry("001_small", "small", 0.12, params=10)) is None  # smaller
    assert logged_pruning(tmp_path, "000_bad", 2)["judged_on"]["epoch"] == 1  # a resume past epoch 2 keeps it
    assert logged_pruning(tmp_path, "000_bad", 1) is None


def test_a_rung_reported_twice_counts_once_and_is_logged_once(tmp_path):
    report_and_judge(tmp_path, PRUNER, 1, entry("000_good", "good", 0.80))
    first = report_and_judge(tmp_path, PRUNER, 1, entry("001_bad", "bad", 0.20))
    again = report_and_judge(tmp_path, PRUNER, 1, entry("001_bad", "bad", 0.20))  # resumed after a kill
    assert again == first and len(read_reports(tmp_path)) == 2 and len(read_decisions(tmp_path)) == 2
    assert logged_pruning(tmp_path, "001_bad", 1)["judged"] == "001_bad"
    assert logged_pruning(tmp_path, "001_bad", 0) is None and logged_pruning(tmp_path, "000_good", 8) is None


def test_epochs_that_are_no_rung_decide_nothing(tmp_path):
    assert report_and_judge(tmp_path, PRUNER, 3, entry("000", "good", 0.8)) is None  # rungs of 8 epochs: 1, 2, 4
    assert read_decisions(tmp_path) == [] and len(read_reports(tmp_path)) == 1


def _report(folder, k):
    report_and_judge(folder, PRUNER, 1, entry(f"{k:03d}", f"c{k}", 0.5 + k / 100))


def test_jobs_reporting_at_once_from_their_own_processes_lose_no_report(tmp_path):
    """Eight processes at the same rung: the lock makes each read-and-write whole, so every report and decision
    lands."""
    processes = [multiprocessing.get_context("fork").Process(target=_report, args=(tmp_path, k)) for k in range(8)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    assert sorted(r.job for _, r in read_reports(tmp_path)) == [f"{k:03d}" for k in range(8)]
    assert sorted(d["judged"] for d in read_decisions(tmp_path)) == [f"{k:03d}" for k in range(8)]


JOBLIB_SWEEP = ["launcher=joblib", "pruner=halving", "pruner.first_rung=1", "pruner.margin=0.1",
                "optimizer.lr=0.01,0.000001", "seed=1,2", "trainer.max_epochs=4", "threads=1",
                "callbacks.progress_bar.refresh_rate=0"]


def records(folder):
    return {p.parent.name: json.loads(p.read_text()) for p in folder.glob("*/result.json")}


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory):
    from tests.conftest import run_cli
    from tests.sweep.test_sweep_callback import plugin

    plugin("hydra_plugins.hydra_joblib_launcher")
    folder = tmp_path_factory.mktemp("joblib") / "sweep"
    done = run_cli("-m", *JOBLIB_SWEEP, f"hydra.sweep.dir={folder}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return folder, done


@pytest.mark.slow
def test_a_joblib_sweep_prunes_its_solo_jobs_through_the_store(joblib_sweep):
    """Two workers; the learning rate that learns nothing reaches its first rung after a job of the other one has
    reported there (it starts when one of those has ended), so it is judged behind it and stops, untested."""
    folder, done = joblib_sweep
    found = records(folder)
    for job, record in found.items():
        if "lr1e-06" in job:
            assert record["status"] == "pruned" and record["epochs"] == 1 and "test/acc" not in record["metrics"]
            assert record["pruned"]["judged"] == job and "optimizer.lr=0.01" in record["pruned"]["dominated_by"][
                "overrides"]
        else:
            assert record["status"] == "completed" and record["epochs"] == 4 and "test/acc" in record["metrics"]
    steps = {job: r["global_step"] for job, r in found.items()}
    assert all(steps[j] * 4 == steps["000_lr0.01_seed1"] for j in steps if "lr1e-06" in j)  # no step after it
    assert {d["judged"] for d in read_decisions(folder) if d["decision"] == "pruned"} == {
        j for j in found if "lr1e-06" in j}
    assert "pruned at epoch 1 (rung 0)" in done.stdout


@pytest.mark.slow
def test_a_solo_job_killed_after_its_rung_checkpoint_is_pruned_again_by_the_logged_decision(joblib_sweep, tmp_path):
    """Its last.ckpt is past the rung that pruned it, its record still says ``running`` (the process gone): the same
    command with ``skip_completed=true`` records it pruned by the logged decision, without a step more."""
    import shutil

    from tests.conftest import run_cli

    folder = tmp_path / "sweep"
    shutil.copytree(joblib_sweep[0], folder)
    for path in folder.glob("*/.hydra/config.yaml"):  # the copy's own folders
        path.write_text(path.read_text().replace(str(joblib_sweep[0]), str(folder)))
    before = records(folder)
    (job,) = [j for j in before if "lr1e-06_seed1" in j]
    (folder / job / "result.json").write_text(json.dumps({**before[job], "status": "running", "pid": 2 ** 22 + 1}))
    logged = (folder / "pruning.jsonl").read_text()
    again = run_cli("-m", *JOBLIB_SWEEP, f"hydra.sweep.dir={folder}", "skip_completed=true")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    after = records(folder)[job]
    assert after["status"] == "pruned" and after["pid"] != before[job]["pid"]
    assert (after["pruned"], after["global_step"], after["epochs"]) == (
        before[job]["pruned"], before[job]["global_step"], 1)
    assert "test/acc" not in after["metrics"] and (folder / "pruning.jsonl").read_text() == logged


def test_sweeps_that_share_a_store_folder_are_judged_together(tmp_path):
    """Two sweeps (two folders), one store folder: the second sweep's configuration is judged behind the first's, and
    each sweep logs the decisions about its own jobs; a job name both sweeps use is two jobs."""
    shared = SuccessiveHalving(first_rung=1, eta=2, margin=0.1, storage=str(tmp_path / "study"))
    first, second = tmp_path / "baselines", tmp_path / "rpn"
    assert report_and_judge(first, shared, 1, entry("000_seed1", "good", 0.80)) is None
    pruned = report_and_judge(second, shared, 1, entry("000_seed1", "bad", 0.20))  # the same name, another job
    assert pruned["dominated_by"]["configuration"] == "good"
    assert len(read_reports(tmp_path / "study")) == 2 and not (first / "rungs.jsonl").exists()
    assert [d["configuration"] for d in read_decisions(first)] == ["good"]
    assert [d["configuration"] for d in read_decisions(second)] == ["bad"]
    alone = tmp_path / "alone"  # without the shared folder, the same job in a sweep of its own is alone: kept
    assert report_and_judge(alone, PRUNER, 1, entry("000_seed1", "bad", 0.20)) is None


def test_a_shared_store_is_an_absolute_folder_or_a_database():
    with pytest.raises(ValueError, match=r"pruner.storage='outputs/study' is invalid; give null .* an absolute folder"):
        SuccessiveHalving(storage="outputs/study")
    assert SuccessiveHalving(storage="/shared/study").database is False
    assert SuccessiveHalving(storage="postgresql+psycopg2://u@h/d").database is True
