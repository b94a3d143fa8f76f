"""Real multiruns (``python -m rpn_exp -m ...``): the summary callback, the report, failures, resume, launchers."""

import importlib.util
import json
import shutil

import pytest
import yaml

from rpn_exp.report import main as report
from rpn_exp.sweep.summary import read_csv
from tests.conftest import FAST, hparams_plugin, load_events, multirun, run_cli

pytestmark = pytest.mark.slow
PNG = b"\x89PNG\r\n\x1a\n"
GRID = ["reconciliation=lphm,dual_lphm", "reconciliation.r=1,2"]
JOBS = ["000_lphm_r1", "001_lphm_r2", "002_dual_lphm_r1", "003_dual_lphm_r2"]  # numbered, named by what they set


def sweep_again(folder, *overrides):
    done = run_cli("-m", *overrides, *FAST, f"paths.log_dir={folder.parents[2]}", f"hydra.sweep.dir={folder}",
                   "skip_completed=true")
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def formula_params(family: str, layer: dict) -> int:
    """Learnable parameters of one layer from the formulas in the reconciliation functions' docstrings (no bias, zero remainder, one head)."""
    n, D, r, p, q = layer["n"], layer["D"], layer["r"], layer["p"], layer["q"]
    if family == "lphm":
        return p * q + r * (n // p + D // q)
    if family == "dual_lphm":
        return r * (p + q + n // p + D // q)
    raise AssertionError(family)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """Two families × two ranks on digits, a few batches each."""
    return multirun(tmp_path_factory.mktemp("grid"), *GRID)


def test_a_multirun_summarizes_every_job(grid):
    done, folder = grid
    rows = read_csv(folder / "summary.csv")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    assert sorted((r["reconciliation"], r["r"]) for r in rows) == [
        ("dual_lphm", "1"), ("dual_lphm", "2"), ("lphm", "1"), ("lphm", "2")]
    for row in rows:
        record = json.loads((folder / row["job"] / "result.json").read_text())
        expected = sum(formula_params(row["reconciliation"], layer) for layer in record["layers"])
        assert int(row["learnable_params"]) == expected
        assert float(row["test_acc"]) == pytest.approx(record["metrics"]["test/acc"])
        assert row["dataset"] == "digits" and row["expansion"] == "taylor" and row["frozen_params"] == "0"
    assert [r["job"] for r in rows] == JOBS
    front = [r for r in rows if r["pareto"] == "True"]
    useful = [r for r in rows if float(r["test_acc"]) > 0.1 + 0.05]  # digits: 10 classes, chance 0.1
    smallest = min(useful, key=lambda r: int(r["learnable_params"]))
    assert front and smallest in front  # the smallest run above chance is always on the front
    text = (folder / "summary.md").read_text()
    assert text.count("| ★ |") == len(front) and "4 jobs: 4 completed." in text
    assert (folder / "pareto.png").read_bytes().startswith(PNG)
    assert "sweep summary: 4 jobs (4 completed)" in done.stdout
    for k, job in enumerate(JOBS, start=1):  # one line per job start and end, with k/N
        assert f"[sweep {k}/4] started   {job}" in done.stdout
        assert f"[sweep {k}/4] completed {job}: test acc " in done.stdout
    assert "4 of 4 done in" in done.stdout
    assert "it/s" not in done.stdout + done.stderr and "Epoch 0" not in done.stdout + done.stderr  # no progress bars


def test_every_job_is_in_tensorboard_with_its_hyper_parameters(grid):
    _, folder = grid
    for row in read_csv(folder / "summary.csv"):
        hparams, status, _ = hparams_plugin(load_events(folder / row["job"]))
        assert hparams["reconciliation"].string_value == row["reconciliation"]
        assert hparams["r"].string_value == str(row["r"])
        assert hparams["p"].string_value == row["p"] and hparams["q"].string_value == row["q"]
        assert hparams["learnable_params"].number_value == int(row["learnable_params"])


def test_the_report_rebuilds_the_same_summary(grid, tmp_path):
    _, folder = grid
    copy = shutil.copytree(folder, tmp_path / "train" / "multiruns" / folder.name)
    for name in ("summary.csv", "summary.md", "pareto.png"):
        (copy / name).unlink()
    assert report([str(copy)]) == 0
    assert (copy / "summary.csv").read_text() == (folder / "summary.csv").read_text()
    assert (copy / "summary.md").read_text() == (folder / "summary.md").read_text()


def test_the_report_lists_a_missing_and_a_failed_job(grid, tmp_path):
    _, folder = grid
    copy = shutil.copytree(folder, tmp_path / folder.name)
    (copy / JOBS[1] / "result.json").unlink()
    record = json.loads((copy / JOBS[2] / "result.json").read_text())
    record.update(status="failed", error="RuntimeError: out of memory")
    (copy / JOBS[2] / "result.json").write_text(json.dumps(record))
    assert report([str(copy)]) == 0
    rows = {r["job"]: r for r in read_csv(copy / "summary.csv")}
    assert rows[JOBS[1]]["status"] == "missing" and rows[JOBS[1]]["overrides"].startswith("reconciliation=lphm")
    assert rows[JOBS[2]]["status"] == "failed" and rows[JOBS[2]]["error"] == "RuntimeError: out of memory"
    assert rows[JOBS[2]]["pareto"] == "False" and rows[JOBS[0]]["status"] == "completed"


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    done, folder = multirun(tmp_path, "reconciliation=lphm", "reconciliation.p=2,3", status=3)  # 3 divides no width
    rows = {r["job"]: r for r in read_csv(folder / "summary.csv")}
    assert rows["000_lphm_p2"]["status"] == "completed" and rows["000_lphm_p2"]["p"] == "2"
    failed = rows["001_lphm_p3"]
    assert failed["status"] == "failed" and failed["reconciliation"] == "lphm" and failed["p"] == "3"
    assert "reconciliation.p=3 divides no layer's width" in failed["error"]
    assert "1 completed, 1 failed" in (folder / "summary.md").read_text()
    assert "Error: 1 of 2 jobs did not complete (1 failed; see summary.md)" in done.stderr  # and the exit status 3


def test_a_p_sweep_trains_every_job_with_each_layers_p_recorded(tmp_path):
    # digits [64, 128, 10]: p applies where it divides n (128 takes every power of 2), the largest divisor below it
    # on the 10-wide output layer (4 -> 2, 8 -> 5)
    done, folder = multirun(tmp_path, "reconciliation=lphm", "reconciliation.p=1,2,4,8")
    rows = {r["job"]: r for r in read_csv(folder / "summary.csv")}
    assert {job: (row["status"], row["p"]) for job, row in rows.items()} == {
        "000_lphm_p1": ("completed", "1"), "001_lphm_p2": ("completed", "2"),
        "002_lphm_p4": ("completed", "4/2"), "003_lphm_p8": ("completed", "8/5")}
    record = json.loads((folder / "003_lphm_p8" / "result.json").read_text())
    assert [(row["n"], row["p"]) for row in record["layers"]] == [(128, 8), (10, 5)]
    assert "p=8/5" in done.stdout + done.stderr  # the job's summary line says what each layer used
    assert "| 8/5 |" in (folder / "summary.md").read_text()


def test_resume_skips_completed_jobs_and_runs_only_the_rest(grid, tmp_path):
    _, original = grid
    folder = shutil.copytree(original, tmp_path / "train" / "multiruns" / original.name)
    before = {job: (folder / job / "result.json").read_text() for job in JOBS}

    done = sweep_again(folder, *GRID)
    assert done.stdout.count("[skipped: already completed]") == 4
    assert {job: (folder / job / "result.json").read_text() for job in JOBS} == before

    (folder / JOBS[2] / "result.json").unlink()
    done = sweep_again(folder, *GRID)
    assert done.stdout.count("[skipped: already completed]") == 3
    rerun = json.loads((folder / JOBS[2] / "result.json").read_text())
    assert rerun["status"] == "completed" and "skip_completed=true" in [o.lower() for o in rerun["overrides"]]
    kept = [JOBS[0], JOBS[1], JOBS[3]]
    assert {job: (folder / job / "result.json").read_text() for job in kept} == {j: before[j] for j in kept}
    assert [r["status"] for r in read_csv(folder / "summary.csv")] == ["completed"] * 4


def test_the_same_sweep_into_its_folder_without_resume_is_refused(grid, tmp_path):
    _, original = grid
    folder = shutil.copytree(original, tmp_path / "train" / "multiruns" / original.name)
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    done = run_cli("-m", *GRID, *FAST, f"hydra.sweep.dir={folder}")
    assert done.returncode == 2 and "already holds this sweep's jobs; nothing was run" in done.stderr
    assert "skip_completed=true" in done.stderr
    assert {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_resume_refuses_a_folder_of_another_sweep(grid, tmp_path):
    _, original = grid
    folder = shutil.copytree(original, tmp_path / "train" / "multiruns" / original.name)
    before = (folder / JOBS[0] / "result.json").read_text()
    done = run_cli("-m", "reconciliation=hm", *FAST, f"hydra.sweep.dir={folder}", "skip_completed=true")
    assert done.returncode != 0 and "give a fresh hydra.sweep.dir" in done.stderr
    assert (folder / JOBS[0] / "result.json").read_text() == before  # nothing lost


def plugin(module: str):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[sweeps]')")


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_launchers_run_a_sweep_whose_summary_reads_the_records(launcher, tmp_path):
    plugin(f"hydra_plugins.hydra_{launcher.split('_')[0]}_launcher")
    done, folder = multirun(tmp_path, f"launcher={launcher}", "reconciliation=lorr,hm")
    rows = read_csv(folder / "summary.csv")
    assert sorted(r["reconciliation"] for r in rows) == ["hm", "lorr"]
    assert {r["status"] for r in rows} == {"completed"}
    assert all(f"launcher={launcher}" in r["overrides"] for r in rows)
    for k, job in enumerate(["000_lorr", "001_hm"], start=1):  # progress lines with every launcher
        assert f"[sweep {k}/2] completed {job}: test acc " in done.stdout
    from rpn_exp.run.threads import available_cores

    share = {"joblib": max(1, available_cores() // 2), "submitit_local": 1}[launcher]  # 2 workers; cpus_per_task 1
    assert [json.loads((folder / job / "result.json").read_text())["threads"] for job in ("000_lorr", "001_hm")] == [
        share, share]


def test_optuna_multi_objective_search_lands_in_the_summary(tmp_path):
    plugin("hydra_plugins.hydra_optuna_sweeper")
    done, folder = multirun(tmp_path, "hparams_search=optuna_pareto", "hydra.sweeper.n_trials=3",
                            "hydra.sweeper.sampler.population_size=2")
    assert "NSGAIISampler" in done.stdout + done.stderr
    rows = read_csv(folder / "summary.csv")
    assert len(rows) == 3 and {r["status"] for r in rows} == {"completed"}
    results = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    measured = {(json.loads((folder / r["job"] / "result.json").read_text())["metrics"]["val/acc_best"],
                 int(r["learnable_params"])) for r in rows}
    for solution in results["solutions"]:  # Optuna's Pareto set is made of the recorded jobs
        accuracy, params = solution["values"]
        assert any(abs(a - accuracy) < 1e-6 and p == params for a, p in measured)


def test_optuna_search_goes_on_past_trials_that_have_no_value(tmp_path):
    plugin("hydra_plugins.hydra_optuna_sweeper")
    done, folder = multirun(tmp_path, "hparams_search=optuna_pareto", "hydra.sweeper.n_trials=2",
                            "hydra.sweeper.sampler.population_size=2", "optimizer=sgd", "optimizer.lr=1e30",
                            "expansion.postprocess=null", status=3)
    rows = read_csv(folder / "summary.csv")
    assert len(rows) == 2 and {r["status"] for r in rows} == {"diverged"}  # recorded; the search ended normally
    assert "Failed experiment" in done.stdout + done.stderr  # Optuna marked the trials failed


def test_the_optuna_preset_searches_r_from_1_to_8():
    plugin("hydra_plugins.hydra_optuna_sweeper")
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

    from tests.conftest import compose_config

    params = compose_config(["hparams_search=optuna_pareto"], hydra_config=True).hydra.sweeper.params
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    family, rank = (create_optuna_distribution_from_override(o) for o in overrides)
    assert list(family.choices) == ["lorr", "lphm", "dual_lphm"]
    assert (rank.low, rank.high) == (1, 8)  # inclusive bounds: r = 9 is never drawn


def test_two_sweeps_at_once_into_one_folder_the_second_is_refused(tmp_path):
    import os
    import subprocess
    import time

    from tests.conftest import cli_command

    folder = tmp_path / "shared"
    command = cli_command("-m", "reconciliation=lorr,hm", "trainer.max_epochs=30", "callbacks.progress_bar.refresh_rate=0",
                          f"hydra.sweep.dir={folder}")
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (folder / "sweep.lock").exists():  # the first sweep has started: an event, however loaded the machine
        assert first.poll() is None, "the first sweep ended before it started: " + first.communicate()[1][-2000:]
        time.sleep(0.1)
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2
    assert f"is in use by a running sweep (pid {first.pid} on" in second.stderr and "nothing was run" in second.stderr
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    rows = read_csv(folder / "summary.csv")
    assert [(r["job"], r["status"]) for r in rows] == [("000_lorr", "completed"), ("001_hm", "completed")]
    assert {json.loads((folder / r["job"] / "result.json").read_text())["pid"] for r in rows} == {first.pid}
    assert not (folder / "sweep.lock").exists() and os.path.exists(folder / "sweep.json")


def test_a_lock_left_by_a_dead_sweep_is_taken_over(tmp_path):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = tmp_path / "sweep"
    folder.mkdir()
    import socket

    (folder / "sweep.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    done = run_cli("-m", "reconciliation=hm", *FAST, f"hydra.sweep.dir={folder}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["status"] for r in read_csv(folder / "summary.csv")] == ["completed"]


def test_an_interrupted_sweep_still_writes_its_summary(tmp_path):
    import os

    folder = tmp_path / "sweep"
    env = {**os.environ, "RPN_TEST_SIGNAL": "001:3:SIGTERM"}
    done = run_cli("-m", "reconciliation=lphm,dual_lphm,hm", "+callbacks.signal._target_=tests.callbacks.SignalFromEnv",
                   *FAST, f"hydra.sweep.dir={folder}", env=env)
    assert done.returncode == 143, done.stderr[-2000:]
    assert "stopped before its end; summarizing" in done.stdout
    rows = {r["job"]: r for r in read_csv(folder / "summary.csv")}
    assert {job: row["status"] for job, row in rows.items()} == {
        "000_lphm": "completed", "001_dual_lphm": "interrupted", "002_hm": "pending"}
    assert "SIGTERM" in rows["001_dual_lphm"]["error"]
    assert not (folder / "sweep.lock").exists()


def test_the_mlp_baseline_preset_sweeps_the_linear_classifier_and_mlp_widths(tmp_path):
    _, folder = multirun(tmp_path, "hparams_search=mlp_baseline")
    rows = read_csv(folder / "summary.csv")
    assert {r["status"] for r in rows} == {"completed"}
    # every layer is nn.Linear-like with a bias: 64·h + h + 10·h + 10 parameters
    assert [(r["model"], r["widths"], int(r["learnable_params"])) for r in rows] == [
        ("linear", "64-10", 650), *((("mlp", f"64-{h}-10", 75 * h + 10)) for h in (4, 8, 16, 32, 64))]
    record = json.loads((folder / rows[1]["job"] / "result.json").read_text())
    assert (record["expansion"], record["reconciliation"], record["model"]) == ("identity", "identity", "mlp")
    assert (folder / "pareto.png").read_bytes().startswith(PNG)


def test_the_summary_marks_output_layers_below_classes_minus_1(grid):
    """Digits, [64, 128, 10]: the output layer's W has rank min(p, q)·r (lphm) or r² (dual_lphm, p = 2 there), all
    below 9 at r = 1, 2; the first layer's is min(8, 64)·r or r·r."""
    _, folder = grid
    rows = {row["job"]: row for row in read_csv(folder / "summary.csv")}
    assert {job: rows[job]["rank_bound"] for job in JOBS} == {
        "000_lphm_r1": "8/2", "001_lphm_r2": "16/4", "002_dual_lphm_r1": "1", "003_dual_lphm_r2": "4"}
    assert {rows[job]["rank_limited"] for job in JOBS} == {"True"}
    lines = (folder / "summary.md").read_text().splitlines()
    (line,) = [row for row in lines if "002_dual_lphm_r1" in row]
    assert "| 1 ⚠ |" in line


@pytest.mark.parametrize("settings, message", [
    ({"launcher": {"n_jobs": 0}}, "hydra.launcher.n_jobs=0 is invalid; give a number of parallel jobs >= 1, or -1 "
                                  "for one per core"),
    ({"launcher": {"max_members": 0}}, "hydra.launcher.max_members=0 is invalid; it must be an integer >= 1"),
    ({"sweeper": {"n_trials": 0}}, "hydra.sweeper.n_trials=0 is invalid; it must be an integer >= 1"),
    ({"launcher": {"n_jobs": "two"}}, "hydra.launcher.n_jobs='two' is invalid; it must be an integer"),
    ({"launcher": {"n_jobs": -1, "max_members": 16}, "sweeper": {"n_trials": 20}}, None),
])
def test_launch_settings_that_run_nothing_are_named(settings, message):
    from omegaconf import OmegaConf

    from rpn_exp.sweep.callback import launch_settings_problem

    assert launch_settings_problem(OmegaConf.create(settings)) == message


def test_a_sweep_with_no_trials_is_refused_before_it_starts(tmp_path):
    done = run_cli("-m", "hparams_search=optuna_pareto", "hydra.sweeper.n_trials=0", f"hydra.sweep.dir={tmp_path / 's'}")
    assert done.returncode == 2 and "hydra.sweeper.n_trials=0 is invalid" in done.stderr
    assert not (tmp_path / "s").exists()


@pytest.fixture(scope="module")
def unfinished_sweeps(tmp_path_factory):
    """Two sweeps run at once: one whose every job is refused a setting, one whose dataset cannot be found."""
    import subprocess

    from tests.conftest import cli_command

    root = tmp_path_factory.mktemp("unfinished")
    commands = {"failed": ["-m", "seed=1,2", "optimizer.lr=-1", *FAST],
                "no data": ["-m", "seed=1,2", "dataset=mnist", "dataset.root=/nonexistent", *FAST]}
    started = {name: subprocess.Popen(cli_command(*args, f"hydra.sweep.dir={root / name}"), text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for name, args in commands.items()}
    return root, {name: (p.wait(timeout=600), *p.communicate()) for name, p in started.items()}


def test_a_sweep_whose_jobs_failed_exits_non_zero_after_its_summary(unfinished_sweeps):
    root, done = unfinished_sweeps
    code, _, err = done["failed"]
    assert code == 3, err[-2000:]
    assert "Error: 2 of 2 jobs did not complete (2 failed; see summary.md)" in err
    assert (root / "failed" / "summary.md").is_file()


def test_a_missing_dataset_is_refused_once_before_any_job_runs(unfinished_sweeps):
    root, done = unfinished_sweeps
    code, _, err = done["no data"]
    assert code == 2 and err.count("dataset.root=/nonexistent does not exist") == 1
    assert not list((root / "no data").glob("*/result.json"))
