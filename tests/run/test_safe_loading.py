"""A checkpoint never runs code: a crafted ``.ckpt`` whose pickle carries a ``__reduce__`` payload is refused, with
one line, by every path that reads a checkpoint (eval, ``ckpt_path`` resume, a ``skip_completed`` rerun, a stacked
member's resume), and its payload never runs."""

import os
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from rpn_exp.config.build import ConfigError
from rpn_exp.eval import main as eval_main
from rpn_exp.run.checkpointing import UnsafeCheckpoint, load_checkpoint
from rpn_exp.run.record import read_record
from rpn_exp.run.stacked.task import train_group
from rpn_exp.run.task import train
from tests.conftest import FAST, compose_config

OLD = Path(__file__).parents[1] / "fixtures" / "checkpoint_0_1_0"


class Payload:
    """Unpickled, it runs a shell command that leaves ``marker`` behind."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A real run's last checkpoint, and a copy of it that also carries the payload (in a key nobody reads)."""
    folder = tmp_path_factory.mktemp("run")
    train(compose_config(FAST, output_dir=folder / "run"))
    real = folder / "run" / "checkpoints" / "last.ckpt"
    marker = folder / "payload-ran"
    crafted = torch.load(real, weights_only=True)
    crafted["extra"] = Payload(marker)
    torch.save(crafted, folder / "crafted.ckpt")
    return real, folder / "crafted.ckpt", marker


def test_every_checkpoint_rpn_exp_writes_loads_the_safe_way(checkpoints):
    real, _, _ = checkpoints
    assert set(load_checkpoint(real)) >= {"state_dict", "hyper_parameters", "rng_states", "callbacks", "loops"}
    assert load_checkpoint(OLD / "best-epoch002.ckpt")["epoch"] == 2  # 0.1.0's too


def test_the_payload_is_named_and_never_runs(checkpoints):
    _, crafted, marker = checkpoints
    with pytest.raises(UnsafeCheckpoint, match=r"crafted.ckpt is refused: .* names posix.system .*nothing of it was run"):
        load_checkpoint(crafted)
    assert not marker.exists()


def test_eval_refuses_it_with_one_line(checkpoints, capsys):
    _, crafted, marker = checkpoints
    assert eval_main([f"ckpt_path={crafted}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is refused" in err and "posix.system" in err
    assert not marker.exists()


def test_a_resume_from_it_is_refused_before_training(checkpoints, tmp_path):
    _, crafted, marker = checkpoints
    with pytest.raises(ConfigError, match=r"ckpt_path=.*crafted.ckpt: .* is refused"):
        train(compose_config([*FAST, f"ckpt_path={crafted}"], output_dir=tmp_path / "run"))
    assert not marker.exists() and not (tmp_path / "run" / "result.json").exists()  # refused before any record


def test_a_skip_completed_rerun_refuses_it_as_its_own_last_checkpoint(checkpoints, tmp_path):
    _, crafted, marker = checkpoints
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    shutil.copy(crafted, tmp_path / "run" / "checkpoints" / "last.ckpt")  # planted in a job folder
    with pytest.raises(ConfigError, match="is refused"):
        train(compose_config([*FAST, "skip_completed=true"], output_dir=tmp_path / "run"))
    assert not marker.exists()


def test_a_stacked_member_refuses_it_and_the_others_train(checkpoints, tmp_path):
    _, crafted, marker = checkpoints
    context = {"overrides": [], "choices": {}, "multirun": True, "sweep_dir": str(tmp_path), "launcher": None}
    jobs = [(compose_config([*FAST, f"seed={seed}", *extra], output_dir=tmp_path / f"job{seed}"), context)
            for seed, extra in ((1, [f"ckpt_path={crafted}"]), (2, []))]
    train_group(jobs, "group")
    assert read_record(tmp_path / "job2")["status"] == "completed"
    assert not (tmp_path / "job1" / "result.json").exists()  # refused before it wrote anything
    assert not marker.exists()
