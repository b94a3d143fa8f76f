"""Shared helpers: compose the real Hydra config the way ``python -m rpn_exp`` does, run the real command line,
read a run's TensorBoard events back, and a job record as the summary reads it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rpn_exp.config.location import config_dir

CONF = Path(config_dir())


def options(group: str) -> list[str]:
    """Every option of a config group, from the files on disk."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_config(overrides=(), output_dir: Path | None = None, hydra_config: bool = False):
    """The composed primary config with ``overrides``; output goes to ``output_dir``.

    ``hydra_config=True`` also returns the ``hydra`` node (launcher, sweeper), as a job would see it.
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=hydra_config)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.data_dir = str(output_dir / "data")
    return cfg


@pytest.fixture
def make_config(tmp_path):
    """Factory fixture: ``make_config("reconciliation=hm", ...)`` -> composed config writing under tmp_path."""

    def make(*overrides, output_dir=None):
        return compose_config(overrides, output_dir=output_dir or tmp_path / "run")

    return make


#: Overrides that make a run short: 2 epochs of 5 batches, no progress bar; one thread, so that two runs compared
#: exactly compute alike whatever else loads the machine (``threads=null`` takes the cores idle when a run starts).
FAST = ["debug=limit", "callbacks.progress_bar.refresh_rate=0", "threads=1"]


def cli_command(*args) -> list[str]:
    """``python -m rpn_exp ARGS`` as an argument list."""
    return [sys.executable, "-m", "rpn_exp", *args]


def run_cli(*args, cwd=None, env=None):
    """``python -m rpn_exp ARGS`` in a process of its own: forked after the imports it shares with the others
    (``tests.forked``), or, with its own environment ``env``, started from scratch."""
    if env is None:
        from tests.forked import run_command

        return run_command(list(args), cwd=cwd)
    return subprocess.run(cli_command(*args), capture_output=True, text=True, cwd=cwd, timeout=300, env=env)


def load_events(folder: Path) -> EventAccumulator:
    """The run's event file (exactly one: fit, test and the weight images share it)."""
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    return EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0}).Reload()


def hparams_plugin(events: EventAccumulator):
    """The run's HPARAMS records: (hyper-parameters of the session start, session end status, has experiment)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    sessions = [plugin_data_pb2.HParamsPluginData.FromString(v) for v in content.values()]
    start = next(s.session_start_info for s in sessions if s.HasField("session_start_info"))
    end = next(s.session_end_info for s in sessions if s.HasField("session_end_info"))
    return start.hparams, end.status, any(s.HasField("experiment") for s in sessions)


def multirun(log_dir, *overrides, status=0):
    """Run a sweep into ``log_dir`` that exits with ``status`` (3: some job did not complete); return (completed
    process, sweep folder)."""
    done = run_cli("-m", *overrides, *FAST, f"paths.log_dir={log_dir}")
    assert done.returncode == status, done.stdout[-2000:] + done.stderr[-3000:]
    (folder,) = list((log_dir / "train" / "multiruns").iterdir())
    return done, folder


def record(family="lphm", params=1000, acc=0.9, status="completed", r=2, **extra):
    layers = [{"layer": "layer 0", "n": 128, "D": 4160, "r": r, "p": 8, "q": 64},
              {"layer": "layer 1", "n": 10, "D": 16512, "r": r, "p": 2, "q": 128}]
    return {
        "status": status, "dataset": "digits", "expansion": "taylor", "reconciliation": family,
        "learnable_params": params, "frozen_params": 0, "layers": layers, "wall_time_s": 1.5,
        "overrides": [f"reconciliation={family}", f"reconciliation.r={r}", "debug=limit"],
        "metrics": {"test/acc": acc, "val/acc_best": acc - 0.01} if acc is not None else {},
        **extra,
    }


# ------------------------------------------------------- a PostgreSQL server shared by processes of one test
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A private PostgreSQL 15 cluster (Debian's postgresql) on a Unix socket; yields the SQLAlchemy URL of its
    database ``optuna``. Its files belong to the ``postgres`` user when the tests run as root (PostgreSQL refuses
    to run as root)."""
    import glob
    import pwd
    import tempfile

    bindir = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"))), None)
    if bindir is None:
        pytest.fail("PostgreSQL not found: apt-get install -y postgresql (.ci/run installs it)")
    root = Path(tempfile.mkdtemp(prefix="rpn_exp_pg_", dir="/tmp"))
    as_user = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = root / "data"

    def pg(tool, *args, check=True):
        return subprocess.run([*as_user, f"{bindir}/{tool}", *args], capture_output=True, text=True, check=check)

    pg("initdb", "-D", str(data), "-A", "trust", "-U", "postgres")
    pg("pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o",
       f"-k {root} -p {port} -c listen_addresses=''", "start")
    try:
        pg("createdb", "-h", str(root), "-p", str(port), "-U", "postgres", "optuna")
        yield f"postgresql+psycopg2://postgres@/optuna?host={root}&port={port}"
    finally:
        pg("pg_ctl", "-D", str(data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)
