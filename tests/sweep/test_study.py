"""``study=<name>`` (``hydra/sweeper=study``): several grid sweeps as one multirun — every sweep's jobs in one
sweep folder, in order, each sweep's ``hparams_search`` expanded, the command's overrides added to each; with
``launcher=stacked`` and ``pruner=halving`` the sweeps' configurations train and are judged together."""

import json

import pytest
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from hydra_plugins.rpn_exp_stacked.stacked_launcher import StackedLauncher
from hydra_plugins.rpn_exp_study.study_sweeper import StudySweeper
from rpn_exp.config.sweep_definition import swept_keys
from rpn_exp.run.rungs import read_decisions
from rpn_exp.sweep.summary import read_csv
from tests.conftest import run_cli

STUDY = """# @package _global_
defaults:
  - override /hydra/sweeper: study
hydra:
  sweeper:
    sweeps:
{sweeps}
"""


def study(tmp_path, name: str, sweeps: dict[str, list[str]]) -> str:
    """A study config ``name`` in a config folder of the test's; the override that adds that folder to Hydra's."""
    folder = tmp_path / "configs" / "study"
    folder.mkdir(parents=True, exist_ok=True)
    lines = "\n".join(f"      {key}: {json.dumps(overrides)}" for key, overrides in sweeps.items())
    (folder / f"{name}.yaml").write_text(STUDY.format(sweeps=lines))
    return f"hydra.searchpath=[file://{tmp_path / 'configs'}]"


def test_a_study_runs_each_sweeps_jobs_in_one_folder(tmp_path):
    searchpath = study(tmp_path, "two", {"ranks": ["reconciliation=lorr", "reconciliation.r=1,2"],
                                         "baselines": ["hparams_search=mlp_baseline"]})
    folder = tmp_path / "sweep"
    done = run_cli("-m", "study=two", searchpath, "dry_run=true", "seed=1,2", f"hydra.sweep.dir={folder}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    names = sorted(p.parent.name for p in folder.glob("*/result.json"))
    assert names[:4] == ["000_lorr_r1_seed1", "001_lorr_r1_seed2", "002_lorr_r2_seed1", "003_lorr_r2_seed2"]
    assert names[4:] == [f"{4 + 2 * i + s:03d}_hidden{width}_seed{s + 1}"
                         for i, width in enumerate(["none", 4, 8, 16, 32, 64]) for s in (0, 1)]
    rows = read_csv(folder / "summary.csv")
    assert sorted(int(row["learnable_params"]) for row in rows if row["job"].startswith("004_"))  # a dry run counts
    saved = json.loads((folder / "sweep.json").read_text())
    sweeps = saved["definition"]["sweeps"]
    assert [s["name"] for s in sweeps] == ["ranks", "baselines"]
    assert sweeps[1]["params"] == {"model.hidden": "[],[4],[8],[16],[32],[64]"}  # hparams_search's, composed
    assert len(saved["plan"]["parts"]) == 2
    assert {"seed", "reconciliation", "reconciliation.r", "model.hidden", "hparams_search"} <= swept_keys(
        saved["definition"])
    assert "[sweep 16/16]" in done.stdout  # the progress lines count every sweep's jobs


def test_a_changed_study_does_not_take_the_folder_of_another(tmp_path):
    folder = tmp_path / "sweep"
    searchpath = study(tmp_path, "one", {"a": ["reconciliation.r=1"]})
    assert run_cli("-m", "study=one", searchpath, "dry_run=true", f"hydra.sweep.dir={folder}").returncode == 0
    study(tmp_path, "one", {"a": ["reconciliation.r=2"]})
    done = run_cli("-m", "study=one", searchpath, "dry_run=true", "skip_completed=true", f"hydra.sweep.dir={folder}")
    assert done.returncode == 2 and "belongs to another sweep" in done.stderr


def test_a_study_without_sweeps_is_refused_with_what_to_write(tmp_path):
    searchpath = study(tmp_path, "empty", {})
    (tmp_path / "configs" / "study" / "empty.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/sweeper: study\n")
    done = run_cli("-m", "study=empty", searchpath, "dry_run=true", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert done.returncode != 0 and "hydra.sweeper.sweeps is empty" in done.stderr
    assert not list((tmp_path / "sweep").glob("*/result.json"))


def test_a_job_that_does_not_compose_stops_a_stacked_study_before_any_trains(tmp_path):
    searchpath = study(tmp_path, "bad", {"good": ["reconciliation.r=1"], "bad": ["reconciliation=nonesuch"]})
    folder = tmp_path / "sweep"
    done = run_cli("-m", "study=bad", searchpath, "launcher=stacked", "dry_run=true", f"hydra.sweep.dir={folder}")
    assert done.returncode != 0
    assert "reconciliation" in done.stderr and "nonesuch" in done.stderr and "lphm" in done.stderr  # the choices
    assert not list(folder.glob("*/result.json"))


def test_the_study_leaves_the_check_that_each_job_composes_to_a_launcher_that_makes_it(monkeypatch):
    checked = []
    monkeypatch.setattr(BasicSweeper, "validate_batch_is_legal", lambda self, batch: checked.append(batch))
    sweeper = StudySweeper(sweeps={"a": ["seed=1"]})
    sweeper.launcher = StackedLauncher()  # composes every job before it trains any
    sweeper.validate_batch_is_legal([["seed=1"]])
    assert checked == []
    sweeper.launcher = BasicLauncher()  # composes each job as it runs it
    sweeper.validate_batch_is_legal([["seed=1"]])
    assert checked == [[["seed=1"]]]


@pytest.mark.slow
def test_the_sweeps_of_a_study_are_stacked_and_pruned_together(tmp_path):
    # the same shape in both sweeps: one stacked group; lr=1e-6 learns nothing and is behind lr=0.01 at epoch 1
    searchpath = study(tmp_path, "lr", {"fast": ["optimizer.lr=0.01"], "slow": ["optimizer.lr=0.000001"]})
    folder = tmp_path / "sweep"
    done = run_cli("-m", "study=lr", searchpath, "launcher=stacked", "pruner=halving", "pruner.first_rung=1",
                   "seed=1,2", "trainer.max_epochs=3", "debug=limit", "callbacks.progress_bar.refresh_rate=0",
                   "threads=1", f"hydra.sweep.dir={folder}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "1 stacked groups (4 members)" in done.stdout + done.stderr
    records = {p.parent.name: json.loads(p.read_text()) for p in folder.glob("*/result.json")}
    status = {name: (record["status"], record["lr"]) for name, record in records.items()}
    assert sorted(status.values()) == [("completed", 0.01)] * 2 + [("pruned", 1e-6)] * 2
    assert [d["decision"] for d in read_decisions(folder) if "lr=1e-06" in d["overrides"]] == ["pruned"]
