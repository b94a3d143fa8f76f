"""A sweep resumed into its folder (``skip_completed=true``) runs what it ran before: a job whose recorded settings
differ from the composed config (an edited config file) is refused with the keys that differ, its record kept,
unless ``allow_config_change=true`` asks for a fresh run with the new settings."""

import json

import pytest

from tests.conftest import FAST, run_cli

pytestmark = pytest.mark.slow


def sweep(conf, folder, *extra):
    done = run_cli("-m", "reconciliation=mine", "seed=1", *FAST, f"hydra.searchpath=[file://{conf}]",
                   f"hydra.sweep.dir={folder}", *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_a_config_file_edited_between_a_sweep_and_its_resume_is_refused_then_allowed(tmp_path):
    conf = tmp_path / "conf" / "reconciliation"
    conf.mkdir(parents=True)
    option = conf / "mine.yaml"
    option.write_text("_target_: rpn_exp.functions.reconciliation.LPHMReconciliation\nr: 2\n")
    folder = tmp_path / "sweep"
    sweep(tmp_path / "conf", folder)
    jobs = sorted(p for p in folder.iterdir() if (p / "result.json").is_file())
    before = {job.name: (job / "result.json").read_text() for job in jobs}
    assert len(before) == 1

    option.write_text("_target_: rpn_exp.functions.reconciliation.LPHMReconciliation\nr: 3\n")  # edited
    done = sweep(tmp_path / "conf", folder, "skip_completed=true")
    refused = [line for line in (done.stdout + done.stderr).splitlines() if "[refused]" in line]
    assert len(refused) == 1 and "reconciliation.r: 2 -> 3" in refused[0]
    assert {job.name: (job / "result.json").read_text() for job in jobs} == before  # nothing trained, nothing lost

    sweep(tmp_path / "conf", folder, "skip_completed=true", "allow_config_change=true")
    for job in jobs:
        record = json.loads((job / "result.json").read_text())
        assert record["status"] == "completed" and record["settings"]["reconciliation.r"] == 3
        assert [row["r"] for row in record["layers"]] == [3, 3]
