"""Pruning across the jobs of a sweep through a PostgreSQL database (``pruner.storage``): the same rule and log as
the file store, whole under jobs reporting at once from their own processes."""

import json
import multiprocessing

import pytest

from rpn_exp.run.pruning import SuccessiveHalving
from rpn_exp.run.rung_database import database_session
from rpn_exp.run.rung_store import RUNGS_FILE, report_and_judge
from rpn_exp.run.rungs import Entry, read_decisions

pytestmark = pytest.mark.slow  # a PostgreSQL server is started for them


def entry(job, configuration, val_acc, params=1000):
    return Entry(job, configuration, f"optimizer.lr={configuration}", params, 8, val_acc)


def stored(url, folder):
    with database_session(url, str(folder.resolve())) as reports:
        return reports.read()


def test_a_job_is_judged_on_the_reports_in_the_database_and_the_decision_logged_beside_the_summary(postgres, tmp_path):
    pruner = SuccessiveHalving(first_rung=1, margin=0.1, storage=postgres)
    assert report_and_judge(tmp_path, pruner, 1, entry("000_good", "good", 0.80)) is None
    pruned = report_and_judge(tmp_path, pruner, 1, entry("001_bad", "bad", 0.20))
    assert pruned["dominated_by"]["configuration"] == "good" and pruned["judged"] == "001_bad"
    again = report_and_judge(tmp_path, pruner, 1, entry("001_bad", "bad", 0.20))  # resumed after a kill
    assert again == pruned
    assert [(e, r.job) for e, r in stored(postgres, tmp_path)] == [(1, "000_good"), (1, "001_bad")]
    assert not (tmp_path / RUNGS_FILE).exists()  # the reports are in the database only
    assert [(d["judged"], d["decision"]) for d in read_decisions(tmp_path)] == [("000_good", "kept"),
                                                                                ("001_bad", "pruned")]


def test_two_sweeps_keep_their_reports_apart(postgres, tmp_path):
    pruner = SuccessiveHalving(first_rung=1, margin=0.1, storage=postgres)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    report_and_judge(tmp_path / "a", pruner, 1, entry("000_good", "good", 0.80))
    assert report_and_judge(tmp_path / "b", pruner, 1, entry("000_bad", "bad", 0.20)) is None  # nothing ahead in b
    assert [r.job for _, r in stored(postgres, tmp_path / "b")] == ["000_bad"]


def _report(url, folder, k):
    report_and_judge(folder, SuccessiveHalving(first_rung=1, margin=0.1, storage=url), 1,
                     entry(f"{k:03d}", f"c{k}", 0.5 + k / 100))


def test_jobs_reporting_at_once_from_their_own_processes_lose_no_report(postgres, tmp_path):
    processes = [multiprocessing.get_context("fork").Process(target=_report, args=(postgres, tmp_path, k))
                 for k in range(8)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
        assert process.exitcode == 0
    assert sorted(r.job for _, r in stored(postgres, tmp_path)) == [f"{k:03d}" for k in range(8)]
    decisions = read_decisions(tmp_path)
    assert sorted(d["judged"] for d in decisions) == [f"{k:03d}" for k in range(8)]
    assert all(len(d["jobs"]) == 1 for d in decisions)  # one configuration a job


def test_a_storage_that_is_no_postgresql_url_is_refused_with_the_key():
    with pytest.raises(ValueError, match=r"pruner.storage='sqlite:///x.db' is invalid; give null .* PostgreSQL URL"):
        SuccessiveHalving(storage="sqlite:///x.db")


def test_a_joblib_sweep_prunes_its_solo_jobs_through_the_database(postgres, tmp_path):
    from tests.conftest import run_cli
    from tests.run.test_rung_store import JOBLIB_SWEEP
    from tests.sweep.test_sweep_callback import plugin

    plugin("hydra_plugins.hydra_joblib_launcher")
    folder = tmp_path / "sweep"
    done = run_cli("-m", *JOBLIB_SWEEP, f"pruner.storage='{postgres}'", f"hydra.sweep.dir={folder}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    status = {p.parent.name: json.loads(p.read_text())["status"] for p in folder.glob("*/result.json")}
    assert status == {"000_lr0.01_seed1": "completed", "001_lr0.01_seed2": "completed",
                      "002_lr1e-06_seed1": "pruned", "003_lr1e-06_seed2": "pruned"}
    assert sorted((e, r.job) for e, r in stored(postgres, folder) if e == 1) == [(1, job) for job in sorted(status)]
    assert not (folder / RUNGS_FILE).exists()
