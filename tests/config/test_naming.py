"""Sweep job names: numbered so they sort, labelled with what the job sets, stable across re-runs."""

import pytest

from rpn_exp.config.naming import comparable_overrides, job_dir, job_label, job_number, run_suffix


@pytest.mark.parametrize("overrides, label", [
    (["reconciliation=lorr", "reconciliation.r=8"], "lorr_r8"),
    (["reconciliation=dual_lphm", "reconciliation.r=2", "seed=3"], "dual_lphm_r2_seed3"),
    (["model.hidden=[64,64]", "optimizer.lr=0.001"], "hidden64-64_lr0.001"),
    (["model=mlp", "model.hidden=[]"], "mlp_hiddennone"),
    (["+model.layer_overrides.0.heads=2", "+model.layer_overrides.0.channels=2"], "L0heads2_L0channels2"),
    (["debug=limit", "paths.log_dir=/tmp/x", "task_name=t", "trainer.max_epochs=3", "skip_completed=true"], ""),
    (["+reconciliation@model.layer_overrides.1.reconciliation=identity", "interdependence=hm"], "L1identity_hm"),
    (["dataset=fashion_mnist", "dataset.root=/usr/share/datasets/fashion-mnist", "seed=2"], "fashion_mnist_seed2"),
    (["model=grid", "model/patch=cylinder", "model.patch.p_r=2", "model.grid.out_channels=[4,8]"],
     "grid_cylinder_p_r2_out_channels4-8"),
])
def test_the_label_names_the_options_and_values_a_job_sets(overrides, label):
    assert job_label(overrides) == label


def test_job_folders_are_zero_padded_so_they_sort_in_job_order():
    names = [job_dir(num, ["reconciliation=lorr"]) for num in range(1000)]
    assert names[3] == "003_lorr" and job_dir(7) == "007"
    assert sorted(names) == names
    assert [job_number(name) for name in names] == list(range(1000))
    assert job_number("summary.csv") is None


@pytest.mark.slow
def test_a_single_run_folder_ends_with_the_label(tmp_path):
    from tests.conftest import run_cli

    done = run_cli("reconciliation=lorr", "reconciliation.r=2", "dry_run=true", f"paths.log_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = (tmp_path / "train" / "runs").iterdir()
    assert run.name.endswith("_lorr_r2") and run.name[:4].isdigit()
    assert run_suffix([]) == ""


def test_paths_and_switches_do_not_change_what_a_job_is():
    a = ["reconciliation=hm", "paths.log_dir=/a", "skip_completed=true"]
    b = ["paths.log_dir=/b", "reconciliation=hm"]
    assert comparable_overrides(a) == comparable_overrides(b) == ["reconciliation=hm"]
    assert comparable_overrides(["reconciliation=hm"]) != comparable_overrides(["reconciliation=lorr"])


def test_how_fast_and_how_verbosely_a_job_runs_is_not_what_it_is():
    """A slow sweep resumed with threads=1 on a busy machine is the same sweep."""
    a = ["reconciliation=hm", "threads=1", "callbacks.progress_bar.refresh_rate=0", "hydra.launcher.n_jobs=2"]
    assert comparable_overrides(a) == comparable_overrides(["reconciliation=hm", "threads=2"]) == ["reconciliation=hm"]
