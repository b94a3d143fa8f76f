"""A resume from ``ckpt_path`` trains what its checkpoint trained, or says what differs: settings are compared
with those saved in the checkpoint before anything is written, a change of the data split is refused always, and a
best checkpoint that is gone is recorded as such, never reported as the best."""

import re

import pytest

from rpn_exp.config.build import ConfigError
from rpn_exp.run.record import read_record
from rpn_exp.run.task import train
from tests.conftest import FAST, compose_config, load_events


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """A completed two-epoch run (seed 42, AdamW lr 0.01) and its last checkpoint."""
    folder = tmp_path_factory.mktemp("first") / "run"
    train(compose_config(FAST, output_dir=folder))
    return folder, folder / "checkpoints" / "last.ckpt"


def resume(last, folder, *overrides):
    train(compose_config([*FAST, "trainer.max_epochs=4", f"ckpt_path={last}", *overrides], output_dir=folder))
    return read_record(folder)


@pytest.mark.parametrize("override, change", [
    ("optimizer.lr=0.05", "optimizer.lr: 0.01 -> 0.05"),
    ("expansion.order=reference", "expansion.order: kronecker -> reference"),
])
def test_another_setting_is_refused_with_the_key_and_the_earlier_record_stays(first, override, change):
    folder, last = first
    before = (folder / "result.json").read_text()
    with pytest.raises(ConfigError, match=re.escape(change) + ".*allow_config_change=true"):
        resume(last, folder, override)  # into its own folder
    assert (folder / "result.json").read_text() == before


def test_allow_config_change_continues_and_records_the_changes_truly(first, tmp_path):
    _, last = first
    record = resume(last, tmp_path / "run", "optimizer.lr=0.05", "allow_config_change=true")
    assert record["status"] == "completed" and record["config_changes"] == ["optimizer.lr: 0.01 -> 0.05"]
    assert record["lr"] == 0.01  # the optimizer's state, its learning rate included, came from the checkpoint


@pytest.mark.parametrize("override, change", [
    ("seed=1", "seed: 42 -> 1"),
    ("dataset.val_fraction=0.2", "dataset.val_fraction: 0.1 -> 0.2"),
    ("dataset.test_fraction=0.3", "dataset.test_fraction: 0.2 -> 0.3"),
])
def test_a_change_of_the_data_split_is_refused_even_when_changes_are_allowed(first, tmp_path, override, change):
    _, last = first
    with pytest.raises(ConfigError, match=re.escape(change) + ".*would change which samples train, validate and test"):
        resume(last, tmp_path / "run", override, "allow_config_change=true")
    assert not (tmp_path / "run" / "result.json").exists()


def test_training_longer_is_what_a_resume_is_for(first, tmp_path):
    _, last = first
    record = resume(last, tmp_path / "run")
    assert record["status"] == "completed" and record["epochs"] == 4 and "config_changes" not in record


def test_a_missing_best_checkpoint_is_recorded_and_the_best_is_chosen_again(tmp_path):
    train(compose_config(FAST, output_dir=tmp_path / "first"))
    named = read_record(tmp_path / "first")["best_checkpoint"]
    (tmp_path / "first" / "checkpoints" / named.rsplit("/", 1)[1]).unlink()
    record = resume(tmp_path / "first" / "checkpoints" / "last.ckpt", tmp_path / "run")
    assert record["missing_best_checkpoint"] == named
    resumed = [e.value for e in load_events(tmp_path / "run").Scalars("val/acc")]  # epochs 2 and 3
    assert len(resumed) == 2 and record["metrics"]["val/acc_best"] == pytest.approx(max(resumed))
    assert int(re.search(r"best-epoch(\d+)", record["best_checkpoint"]).group(1)) >= 2
