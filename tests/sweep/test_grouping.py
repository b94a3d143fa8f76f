"""Seeds as a sweep axis: jobs that differ only in seed pooled into one configuration with mean, std, interval."""

import json
import math
import shutil

import pytest

from rpn_exp.report import main as report
from rpn_exp.sweep.grouping import config_of, group_by_config, interval
from rpn_exp.sweep.summary import read_csv
from tests.conftest import multirun


def test_the_interval_is_students_t_on_the_sample_std():
    mean, std, half = interval([0.8, 0.9])
    assert mean == pytest.approx(0.85) and std == pytest.approx(0.070711, abs=1e-6)
    assert half == pytest.approx(12.7062 * 0.070711 / math.sqrt(2), rel=1e-4)  # t(0.975, 1) = 12.706
    assert interval([0.7])[0] == 0.7 and math.isnan(interval([0.7])[1]) and math.isnan(interval([0.7])[2])


def job(config, seed, test, val, params, status="completed"):
    return {"status": status, "overrides": f"{config} seed={seed} paths.log_dir=/x", "seed": seed,
            "test_acc": test, "val_acc_best": val, "learnable_params": params, "reconciliation": config.split("=")[1],
            "widths": "64-128-10", "r": 2, "p": "8/2", "q": "64/128"}


def test_jobs_that_differ_only_in_seed_form_one_configuration():
    assert config_of(job("reconciliation=lphm", 1, 0.9, 0.9, 10)) == "reconciliation=lphm"
    rows = [job("reconciliation=lphm", 1, 0.80, 0.70, 1000), job("reconciliation=lphm", 2, 0.90, 0.80, 1000),
            job("reconciliation=hm", 1, 0.95, 0.60, 2000), job("reconciliation=hm", 2, 0.97, 0.62, 2000),
            job("reconciliation=hm", 3, "", "", 2000, status="failed")]
    lphm, hm = group_by_config(rows)
    assert (lphm["n"], lphm["seeds"], hm["n"]) == (2, "1 2", 2)  # the failed job is left out
    assert lphm["test_acc_mean"] == pytest.approx(0.85) and hm["val_acc_best_mean"] == pytest.approx(0.61)
    # chosen on validation: hm's higher test accuracy does not buy it a place (its validation mean is lower)
    assert lphm["pareto"] and not hm["pareto"]


@pytest.mark.slow
def test_a_two_seed_sweep_pools_its_jobs_and_the_report_rebuilds_it(tmp_path):
    done, folder = multirun(tmp_path, "reconciliation=lphm,dual_lphm", "reconciliation.r=2", "seed=1,2")
    groups = read_csv(folder / "summary_by_config.csv")
    assert [(g["config"], g["n"], g["seeds"]) for g in groups] == [
        ("reconciliation=lphm", "2", "1 2"), ("reconciliation=dual_lphm", "2", "1 2")]  # labelled by what differs
    for group, family in zip(groups, ("lphm", "dual_lphm")):
        tests = [json.loads((folder / f"00{k}_{family}_r2_seed{seed}" / "result.json").read_text())["metrics"]["test/acc"]
                 for k, seed in ((0 if family == "lphm" else 2, 1), (1 if family == "lphm" else 3, 2))]
        mean, std, half = interval(tests)
        assert float(group["test_acc_mean"]) == pytest.approx(mean) and float(group["test_acc_ci95"]) == pytest.approx(half)
    text = (folder / "summary.md").read_text()
    assert "## By configuration (jobs that differ only in seed pooled)" in text and "## By job" in text
    copy = shutil.copytree(folder, tmp_path / "copy")
    (copy / "summary_by_config.csv").unlink()
    assert report([str(copy)]) == 0
    assert (copy / "summary_by_config.csv").read_text() == (folder / "summary_by_config.csv").read_text()


def test_a_configuration_is_named_without_its_bookkeeping():
    """task_name and tags (and the seed, paths, switches) tell runs apart but train nothing: not in the name."""
    row = job("reconciliation=lphm", 1, 0.9, 0.9, 10)
    row["overrides"] += " task_name=mlpb tags=[a,b] +tags=[c] model.hidden=[32] threads=1"
    assert config_of(row) == "reconciliation=lphm model.hidden=[32]"


def test_a_pruned_configuration_is_a_row_with_its_rung_no_test_accuracy_and_no_place_on_the_front():
    from rpn_exp.sweep.grouping import format_group_table

    rows = [job("reconciliation=lphm", s, 0.80, 0.70, 1000) for s in (1, 2)]
    rows += [{**job("reconciliation=hm", s, "", 0.95, 500, status="pruned"),
              "pruned": "epoch 2 (rung 0), behind `reconciliation=lphm`"} for s in (1, 2)]
    lphm, hm = group_by_config(rows)
    assert (hm["status"], hm["n"], hm["pareto"]) == ("pruned", 2, False)  # ahead on validation, yet off the front
    assert math.isnan(hm["test_acc_mean"]) and hm["val_acc_best_mean"] == pytest.approx(0.95)
    assert lphm["pareto"] and lphm["status"] == "completed"
    table = format_group_table([lphm, hm])
    assert "| pruned at epoch 2 (rung 0), behind `reconciliation=lphm` | 0.9500 ± 0.0000" in table
    completed_seed = job("reconciliation=hm", 3, 0.9, 0.9, 500)  # a seed that completed: the configuration's row
    assert [g["status"] for g in group_by_config([*rows, completed_seed])] == ["completed", "completed"]
