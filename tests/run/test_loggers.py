"""TensorBoard as a user reads it: one event file per run, HPARAMS with real values only, no duplicated series."""

import pytest
from tensorboard.plugins.hparams import api_pb2

from rpn_exp.run.module import DivergenceError
from rpn_exp.run.record import read_record
from rpn_exp.run.task import train
from tests.conftest import FAST, hparams_plugin, load_events

#: Every scalar series a run writes: each once (no hp/ copies, no placeholder metric).
SERIES = {"train/loss_step", "train/loss_epoch", "train/acc", "train/lr",
          "val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc"}


def test_a_run_writes_one_event_file_with_its_real_metrics(make_config, tmp_path):
    train(make_config(*FAST, "callbacks.progress_bar.refresh_rate=0", output_dir=tmp_path))
    record = read_record(tmp_path)
    events = load_events(tmp_path)  # asserts a single event file
    assert set(events.Tags()["scalars"]) <= SERIES and {"test/acc", "val/acc_best"} <= set(events.Tags()["scalars"])
    assert [e.value for e in events.Scalars("test/acc")] == [pytest.approx(record["metrics"]["test/acc"])]
    assert events.Scalars("val/acc_best")[-1].value == pytest.approx(record["metrics"]["val/acc_best"])
    hparams, status, has_experiment = hparams_plugin(events)
    assert status == api_pb2.STATUS_SUCCESS and not has_experiment
    assert hparams["seed"].number_value == 42 and hparams["lr"].number_value == pytest.approx(0.01)
    assert hparams["widths"].string_value == "64-128-10" and hparams["learnable_params"].number_value == 2085


def test_without_a_test_the_test_accuracy_is_absent_not_zero(make_config, tmp_path):
    train(make_config(*FAST, "test=false", output_dir=tmp_path))
    events = load_events(tmp_path)
    assert not {"test/acc", "test/loss"} & set(events.Tags()["scalars"])
    assert all(e.value > 0 for e in events.Scalars("val/acc_best"))


def test_a_diverged_run_ends_its_session_as_a_failure(make_config, tmp_path):
    with pytest.raises(DivergenceError):  # a single run fails loudly
        train(make_config(*FAST, "optimizer=sgd", "optimizer.lr=1e30", "expansion.postprocess=null",
                          output_dir=tmp_path))
    assert read_record(tmp_path)["status"] == "diverged"
    _, status, _ = hparams_plugin(load_events(tmp_path))
    assert status == api_pb2.STATUS_FAILURE
