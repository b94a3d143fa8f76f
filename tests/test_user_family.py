"""A ψ family, a κ and a ξ defined outside rpn_exp (tests/user_family/my_families.py, the guide's "Add your own family", docs/guide/extending.md)
train through a solo run, a stacked sweep and the summary, on the compute path their declarations allow."""

import json
import os
from pathlib import Path

import pytest

from rpn_exp.sweep.summary import read_csv
from tests.conftest import run_cli

pytestmark = pytest.mark.slow
USER = Path(__file__).resolve().parent / "user_family"
SEARCH = f"hydra.searchpath=[file://{USER / 'conf'}]"


def user_env() -> dict:
    """The environment of a user whose own package is importable (on PYTHONPATH)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(USER), os.environ.get("PYTHONPATH")]))}


def test_a_solo_run_selected_by_target_takes_the_product_path(tmp_path):
    done = run_cli("reconciliation._target_=my_families.KronAdapter", "~reconciliation.r", "~reconciliation.k",
                   "~reconciliation.layout",
                   "trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0", f"hydra.run.dir={tmp_path}",
                   cwd=tmp_path, env=user_env())
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["status"] == "completed" and record["reconciliation"] == "kron_adapter"
    assert [row["path"] for row in record["layers"]] == ["product", "product"]
    # l = pq + n/p per layer (digits [64, 128, 10], q = m): 8·64 + 16 and 2·128 + 5
    assert [row["l"] for row in record["layers"]] == [528, 261] and record["learnable_params"] == 789


def test_an_expansion_of_ones_own_that_declares_a_product_layout_takes_the_product_path(tmp_path):
    done = run_cli("expansion._target_=my_families.TanhPair", "~expansion.d", "~expansion.order",
                   "trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0", f"hydra.run.dir={tmp_path}",
                   cwd=tmp_path, env=user_env())
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["status"] == "completed" and record["expansion"] == "tanh_pair"
    assert [row["path"] for row in record["layers"]] == ["product", "product"]
    assert [row["D"] for row in record["layers"]] == [64 * 65, 128 * 129] and record["learnable_params"] == 2085


def test_an_interdependence_of_ones_own_adds_its_parameters_and_trains(tmp_path):
    done = run_cli("interdependence._target_=my_families.AttributeGate", "trainer.max_epochs=2",
                   "callbacks.progress_bar.refresh_rate=0", f"hydra.run.dir={tmp_path}", cwd=tmp_path, env=user_env())
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["status"] == "completed" and record["interdependence"] == "attribute_gate"
    assert record["learnable_params"] == 2085 + 64 + 128  # the default model's, plus one gate per attribute of each layer
    assert record["metrics"]["test/acc"] > 0.5  # it learns (chance: 0.1)


def test_a_stacked_sweep_of_its_config_file_trains_one_group_and_is_summarized(tmp_path):
    done = run_cli("-m", "reconciliation=kron_adapter", SEARCH, "launcher=stacked", "seed=1,2", "trainer.max_epochs=2",
                   f"hydra.sweep.dir={tmp_path}", cwd=tmp_path, env=user_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 stacked groups (2 members)" in done.stdout + done.stderr
    rows = read_csv(tmp_path / "summary.csv")
    assert [(row["reconciliation"], row["status"], row["learnable_params"]) for row in rows] == [
        ("kron_adapter", "completed", "789")] * 2
    for job in ("000_kron_adapter_seed1", "001_kron_adapter_seed2"):
        record = json.loads((tmp_path / job / "result.json").read_text())
        assert record["stacked_group"]["members"] == 2
        assert {row["path"] for row in record["layers"]} == {"product"}
    assert (tmp_path / "pareto.png").is_file()
