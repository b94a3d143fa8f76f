"""Evaluation from a checkpoint: the network and data come back from the config saved in the checkpoint."""

import json
import shutil
from pathlib import Path

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


@pytest.mark.parametrize("extra, message", [
    (["dataset.eval_batch_size=0"], "dataset.eval_batch_size=0 is invalid; it must be an integer >= 1"),
    (["dataset.rot=/x"], "dataset.rot is not a key of the run's saved config; valid keys of dataset: _target_, "),
    (["dataset.seed=abc"], "dataset.seed='abc' is invalid; it must be an integer"),
])
def test_bad_overrides_of_the_saved_config_say_what_to_give(finished_run, extra, message, capsys):
    _, record = finished_run
    assert main([f"ckpt_path={record['best_checkpoint']}", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_file_that_is_not_a_checkpoint_is_named(finished_run, capsys):
    folder, _ = finished_run
    assert main([f"ckpt_path={folder / 'result.json'}"]) == 2
    assert f"ckpt_path={folder / 'result.json'} is not a readable checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_line_prints_the_accuracy(finished_run):
    _, record = finished_run
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "rpn_exp.eval", f"ckpt_path={record['best_checkpoint']}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"test acc {record['metrics']['test/acc']:.4f}" in done.stdout


#: A checkpoint and record written by rpn_exp 0.1.0 before its modules moved (tests/fixtures/checkpoint_0_1_0).
OLD = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint_0_1_0"


def test_a_checkpoint_written_before_the_code_moved_evaluates_to_its_recorded_accuracy(tmp_path, capsys):
    shutil.copytree(OLD, tmp_path / "old")
    record = json.loads((tmp_path / "old" / "result.json").read_text())
    assert record["provenance"]["git"]["commit"].startswith("96e24b0")  # the flat package
    assert main([f"ckpt_path={tmp_path / 'old' / 'best-epoch002.ckpt'}"]) == 0
    entry = json.loads((tmp_path / "old" / EVAL_FILE).read_text())["best-epoch002.ckpt/test"]
    assert entry["metrics"]["test/acc"] == record["metrics"]["test/acc"]
    assert entry["metrics"]["test/loss"] == pytest.approx(record["metrics"]["test/loss"], rel=1e-6)


#: A stacked member written while stacked groups had their own training loop (tests/fixtures/checkpoint_stacked_member).
MEMBER = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint_stacked_member"


def test_a_stacked_members_checkpoint_from_its_own_loop_evaluates_to_its_recorded_accuracy(tmp_path, capsys):
    shutil.copytree(MEMBER, tmp_path / "member")
    record = json.loads((tmp_path / "member" / "result.json").read_text())
    assert record["stacked_group"]["members"] == 2 and record["best_checkpoint"].endswith("best-epoch004.ckpt")
    assert main([f"ckpt_path={tmp_path / 'member' / 'checkpoints' / 'best-epoch004.ckpt'}"]) == 0
    entry = json.loads((tmp_path / "member" / "checkpoints" / EVAL_FILE).read_text())["best-epoch004.ckpt/test"]
    assert entry["metrics"]["test/acc"] == record["metrics"]["test/acc"]
    assert entry["metrics"]["test/loss"] == pytest.approx(record["metrics"]["test/loss"], rel=1e-6)


def test_a_checkpoint_written_before_the_code_moved_loads_with_its_network():
    model = RPNClassifier.load_from_checkpoint(OLD / "best-epoch002.ckpt").eval()
    record = json.loads((OLD / "result.json").read_text())
    assert sum(p.numel() for p in model.parameters()) == record["learnable_params"]
    assert [layer.path for layer in model.net.layers] == [row["path"] for row in record["layers"]]
    assert model(torch.zeros(3, record["widths"][0])).shape == (3, record["widths"][-1])


def test_every_target_a_checkpoint_written_before_the_code_moved_names_still_resolves():
    from hydra.utils import get_class

    from rpn_exp.config.legacy import upgrade_targets

    config = upgrade_targets(torch.load(OLD / "best-epoch002.ckpt", weights_only=False)["hyper_parameters"]["config"])
    targets = []

    def collect(node):
        if isinstance(node, dict):
            targets.extend(v for k, v in node.items() if k == "_target_")
            [collect(v) for v in node.values()]

    collect(config)
    assert "rpn_exp.run.loggers.TensorBoardLogger" in targets and len(targets) == 12
    assert all(get_class(target) for target in targets)


def test_evaluation_prints_its_result_and_nothing_of_lightnings(finished_run, tmp_path):
    import subprocess
    import sys

    _, record = finished_run
    done = subprocess.run([sys.executable, "-m", "rpn_exp.eval", f"ckpt_path={record['best_checkpoint']}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rpn_exp eval |"), lines


def test_a_grid_models_checkpoint_evaluates_to_its_recorded_accuracy_and_resumes(tmp_path):
    from tests.conftest import compose_config

    grid = ["model=grid", "model/patch=cylinder", "model.grid.out_channels=[3]", *FAST,
            "callbacks.progress_bar.refresh_rate=0"]
    train(compose_config(grid, output_dir=tmp_path / "one"))
    record = read_record(tmp_path / "one")
    assert main([f"ckpt_path={record['best_checkpoint']}"]) == 0
    entry = json.loads((tmp_path / "one" / "checkpoints" / EVAL_FILE).read_text())[
        f"{record['best_checkpoint'].rsplit('/', 1)[1]}/test"]
    assert entry["metrics"]["test/acc"] == record["metrics"]["test/acc"]
    last = tmp_path / "one" / "checkpoints" / "last.ckpt"
    train(compose_config([*grid, "trainer.max_epochs=3", f"ckpt_path={last}"], output_dir=tmp_path / "two"))
    resumed = read_record(tmp_path / "two")
    assert resumed["status"] == "completed" and resumed["epochs"] == 3 and resumed["layers"] == record["layers"]
