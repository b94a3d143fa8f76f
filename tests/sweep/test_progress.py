"""Progress lines of a sweep, read from the job records on disk: k/N, status, accuracy, time, time left."""

import pytest

from rpn_exp.run.record import write_record
from rpn_exp.sweep.progress import SweepProgress, grid_jobs, planned_jobs


@pytest.mark.parametrize("params, overrides, n_trials, total", [
    (None, ["reconciliation=lorr,hm", "reconciliation.r=1,2,4", "debug=limit"], None, 6),
    ({"reconciliation": "lorr,lphm,dual_lphm", "reconciliation.r": "1,2,4,8"}, [], None, 12),
    ({"reconciliation": "lorr,lphm,dual_lphm", "reconciliation.r": "1,2,4,8"}, ["reconciliation.r=1,2"], None, 6),
    (None, ["reconciliation.r=range(1,4)"], None, 3),
    ({"reconciliation": "choice(lorr,lphm)"}, [], 40, 40),  # a search: its number of trials
    ({"optimizer.lr": "interval(0.001,0.1)"}, [], None, None),  # a search space cannot be counted as a grid
])
def test_the_number_of_planned_jobs(params, overrides, n_trials, total):
    assert planned_jobs({"params": params, "overrides": overrides}, n_trials) == total


def test_a_study_plans_every_part_and_a_shared_job_once():
    plan = {"parts": [{"params": {}, "overrides": ["reconciliation=lorr,lphm", "reconciliation.r=1,2", "seed=1,2"]},
                      {"params": {"model.hidden": "[4],[8]"}, "overrides": ["model=mlp", "seed=1,2"]},
                      {"params": {}, "overrides": ["reconciliation.r=2", "reconciliation=lphm", "seed=2,3"]}]}
    jobs = grid_jobs(plan)
    assert len(jobs) == 8 + 4 + 1  # lphm r=2 seed=2 is the first part's already
    assert jobs[8] == ["model.hidden=[4]", "model=mlp", "seed=1"]
    assert jobs[-1] == ["reconciliation.r=2", "reconciliation=lphm", "seed=3"]
    assert planned_jobs(plan) == 13


def job(folder, name, status, **extra):
    write_record(folder / name, {"status": status, "metrics": {}, **extra})


def test_a_line_when_a_job_starts_and_one_when_it_ends(tmp_path):
    lines = []
    progress = SweepProgress(tmp_path, total=3, printer=lambda text, flush: lines.append(text))
    job(tmp_path, "000_lorr", "running")
    progress.poll()
    assert lines == ["[sweep 1/3] started   000_lorr"]
    job(tmp_path, "000_lorr", "completed", metrics={"test/acc": 0.8969}, wall_time_s=4.12)
    job(tmp_path, "001_hm", "failed", error="invalid configuration: p=3 does not divide n=128\nmore", wall_time_s=0.5)
    progress.poll()
    assert lines[1] == "[sweep 2/3] started   001_hm"
    assert lines[2].startswith("[sweep 1/3] completed 000_lorr: test acc 0.8969, 4.1 s | 2 of 3 done in 0:00:0")
    assert lines[2].endswith("left")
    assert lines[3].startswith("[sweep 2/3] failed    001_hm: invalid configuration: p=3 does not divide n=128; more, "
                               "0.5 s")
    progress.poll()
    assert len(lines) == 4  # each event once


def test_jobs_that_end_together_are_counted_together(tmp_path):
    """The members of a stacked group end at once: no line says a job is still to come when none is."""
    lines = []
    progress = SweepProgress(tmp_path, total=3, printer=lambda text, flush: lines.append(text))
    for name in ("000_seed1", "001_seed2", "002_seed3"):
        job(tmp_path, name, "completed", metrics={"test/acc": 0.9})
    progress.poll()
    ended = [line for line in lines if "completed" in line]
    assert len(ended) == 3 and all("3 of 3 done" in line and "left" not in line for line in ended)


def test_a_resumed_sweep_counts_the_jobs_that_already_completed(tmp_path):
    lines = []
    job(tmp_path, "000_lorr", "completed", metrics={"test/acc": 0.9})
    progress = SweepProgress(tmp_path, total=2, interval=0.05, printer=lambda text, flush: lines.append(text)).start()
    job(tmp_path, "001_hm", "completed", metrics={"test/acc": 0.7})
    progress.stop()
    assert lines[0] == "[sweep] resuming: 1 job(s) already completed (000_lorr)"
    assert lines[-1].startswith("[sweep 2/2] completed 001_hm: test acc 0.7000") and "2 of 2 done" in lines[-1]


def test_a_job_interrupted_before_the_resume_is_reported_when_it_runs_again(tmp_path):
    lines = []
    job(tmp_path, "000_lorr", "interrupted", pid=11, error="stopped by SIGTERM")
    progress = SweepProgress(tmp_path, total=1, printer=lambda text, flush: lines.append(text)).start()
    progress.poll()
    assert lines == ["[sweep] resuming: 1 to run again (000_lorr)"]  # the old record is not reported again
    job(tmp_path, "000_lorr", "running", pid=12)
    progress.poll()
    job(tmp_path, "000_lorr", "completed", pid=12, metrics={"test/acc": 0.9})
    progress.poll()
    assert lines[1:] == ["[sweep 1/1] started   000_lorr", lines[2]]
    assert lines[2].startswith("[sweep 1/1] completed 000_lorr: test acc 0.9000")


def test_an_unknown_total_is_shown_as_a_question_mark(tmp_path):
    lines = []
    job(tmp_path, "weird-name", "running")
    SweepProgress(tmp_path, total=None, printer=lambda text, flush: lines.append(text)).poll()
    assert lines == ["[sweep ?/?] started   weird-name"]


def test_a_flagged_job_and_a_missing_dataset_say_so_whole_on_their_line(tmp_path):
    """The flag a completed job got, and an error's fix, not only its first line (``result.json`` keeps it all)."""
    from rpn_exp.data.vision import VisionDataModule

    missing = VisionDataModule("mnist", cache_dir=str(tmp_path / "no-data")).missing_message()
    lines = []
    progress = SweepProgress(tmp_path / "sweep", total=2, printer=lambda text, flush: lines.append(text))
    job(tmp_path / "sweep", "000_lr1", "completed", metrics={"test/acc": 0.1}, flag="learned nothing")
    job(tmp_path / "sweep", "001_mnist", "failed", error=f"dataset: {missing}")
    progress.poll()
    ended = {line.split()[3].rstrip(":"): line for line in lines if "started" not in line}
    assert "test acc 0.1000, learned nothing" in ended["000_lr1"]
    assert "\n" not in ended["001_mnist"] and "dataset: mnist not found. Searched: " in ended["001_mnist"]
    assert "set download=true" in ended["001_mnist"]


def test_a_pruned_job_says_where_and_behind_which_configuration(tmp_path):
    from tests.run.test_pruning import PRUNED

    lines = []
    progress = SweepProgress(tmp_path, total=1, printer=lambda text, flush: lines.append(text))
    job(tmp_path, "000_r8", "pruned", metrics={"val/acc_best": 0.11}, pruned=PRUNED, wall_time_s=3.0)
    progress.poll()
    assert lines[-1].startswith("[sweep 1/1] pruned    000_r8: best val acc 0.1100, pruned at epoch 2 (rung 0), "
                                "behind `reconciliation.r=2 optimizer.lr=0.01`: 0.8123 against 0.1050")
    assert "1 of 1 done" in lines[-1]
