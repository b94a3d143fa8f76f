"""logger=mlflow: the run's parameters and metrics in a real MLflow tracking store (SQLite under outputs/)."""

import pytest

from rpn_exp.run.record import read_record
from rpn_exp.run.task import train
from tests.conftest import FAST

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install -e '.[mlflow]')")


def test_a_run_lands_in_the_local_tracking_store(make_config, tmp_path):
    train(make_config(*FAST, "logger=mlflow", f"paths.log_dir={tmp_path}", "callbacks.progress_bar.refresh_rate=0",
                      output_dir=tmp_path / "run"))
    record = read_record(tmp_path / "run")
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "train"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.params["reconciliation"] == "dual_lphm" and run.data.params["r"] == "5"
    assert run.data.metrics["test/acc"] == pytest.approx(record["metrics"]["test/acc"])
