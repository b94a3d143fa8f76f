"""Evaluation from a checkpoint: the network and data come back from the config saved in the checkpoint."""

import json

import pytest
import torch

from rpn_exp.eval import EVAL_FILE, main
from rpn_exp.run.module import RPNClassifier
from rpn_exp.run.record import read_record
from rpn_exp.run.task import train
from tests.conftest import FAST


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from tests.conftest import compose_config

    folder = tmp_path_factory.mktemp("run")
    train(compose_config([*FAST, "callbacks.progress_bar.refresh_rate=0"], output_dir=folder))
    return folder, read_record(folder)


def test_the_test_split_reproduces_the_recorded_accuracy_exactly(finished_run, capsys):
    folder, record = finished_run
    assert main([f"ckpt_path={record['best_checkpoint']}"]) == 0
    entry = json.loads((folder / "checkpoints" / EVAL_FILE).read_text())[
        f"{record['best_checkpoint'].rsplit('/', 1)[1]}/test"]
    assert entry["metrics"]["test/acc"] == record["metrics"]["test/acc"]
    assert entry["metrics"]["test/loss"] == pytest.approx(record["metrics"]["test/loss"], rel=1e-6)
    assert entry["samples"] == record["data_sizes"]["test"] and entry["provenance"]["versions"]["torch"]
    assert f"test acc {record['metrics']['test/acc']:.4f}" in capsys.readouterr().out


def test_the_validation_split_and_earlier_entries_are_kept(finished_run):
    folder, record = finished_run
    assert main([f"ckpt_path={record['best_checkpoint']}", "split=test"]) == 0
    assert main([f"ckpt_path={folder / 'checkpoints' / 'last.ckpt'}", "split=val"]) == 0
    entries = json.loads((folder / "checkpoints" / EVAL_FILE).read_text())
    assert "last.ckpt/val" in entries and any(key.endswith("/test") for key in entries)
    assert entries["last.ckpt/val"]["metrics"]["val/acc"] == pytest.approx(record["metrics"]["val/acc"], abs=1e-6)


def test_load_from_checkpoint_rebuilds_the_network(finished_run):
    _, record = finished_run
    model = RPNClassifier.load_from_checkpoint(record["best_checkpoint"])
    state = torch.load(record["best_checkpoint"], weights_only=False)["state_dict"]
    assert set(model.state_dict()) == set(state)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert sum(p.numel() for p in model.parameters()) == record["learnable_params"]


@pytest.mark.parametrize("args, message", [
    ([], "ckpt_path is missing"),
    (["ckpt_path=/nowhere/x.ckpt"], "ckpt_path=/nowhere/x.ckpt: no such file"),
    (["ckpt_path=x", "split=train"], "split='train' is invalid; valid choices: test, val"),
    (["oops"], "'oops' is not key=value"),
])
def test_bad_arguments_say_what_to_give(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_line_prints_the_accuracy(finished_run):
    _, record = finished_run
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "rpn_exp.eval", f"ckpt_path={record['best_checkpoint']}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"test acc {record['metrics']['test/acc']:.4f}" in done.stdout
