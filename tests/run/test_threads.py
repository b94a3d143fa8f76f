"""Each run computes with its share of the machine's cores (``rpn_exp.run.threads``), settable with ``threads`` and
recorded in ``result.json``."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rpn_exp.config.build import ConfigError
from rpn_exp.run.record import read_record
from rpn_exp.run.task import train
from rpn_exp.run.threads import available_cores, busy_elsewhere, thread_share
from tests.conftest import FAST

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"


@pytest.mark.parametrize("threads, launcher, trainer, expected", [
    (None, None, {"accelerator": "cpu", "devices": 1}, 8),  # a single run on an idle machine: every core
    (None, {"_target_": JOBLIB, "n_jobs": 2}, {}, 4),  # two workers share the cores
    (None, {"_target_": JOBLIB, "n_jobs": -1}, {}, 1),  # one worker per core
    (None, {"_target_": JOBLIB, "n_jobs": 16}, {}, 1),  # never below one
    (None, {"_target_": SUBMITIT, "cpus_per_task": 3}, {}, 3),  # what each job was given
    (None, None, {"strategy": "ddp", "accelerator": "cpu", "devices": 2}, 4),  # two DDP ranks
    (None, {"_target_": "hydra_plugins.rpn_exp_stacked.stacked_launcher.StackedLauncher"}, {}, 8),  # one process
    (None, {"_target_": "hydra_plugins.rpn_exp_stacked.stacked_launcher.StackedLauncher", "n_jobs": 2}, {}, 4),
    (3, {"_target_": JOBLIB, "n_jobs": 2}, {}, 3),  # set explicitly
])
def test_a_run_takes_its_share_of_the_cores(threads, launcher, trainer, expected):
    assert thread_share(threads, launcher, trainer, cores=8, busy=0)[0] == expected


@pytest.mark.parametrize("busy, expected", [(0, 8), (3, 5), (7, 1), (30, 1)])
def test_a_run_alone_takes_the_cores_other_work_leaves_idle(busy, expected):
    assert thread_share(None, None, {"accelerator": "cpu", "devices": 1}, cores=8, busy=busy)[0] == expected
    assert thread_share(2, None, {}, cores=8, busy=busy)[0] == 2  # unless threads says otherwise


def test_processes_running_elsewhere_are_counted():
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(available_cores())]
    try:
        import time

        while any(Path(f"/proc/{p.pid}/stat").read_text().split()[2] != "R" for p in spinners):
            time.sleep(0.05)  # until every one of them is running
        assert busy_elsewhere() >= 1
        assert thread_share(None, None, {}, cores=available_cores(), busy=busy_elsewhere())[0] == 1
    finally:
        for process in spinners:
            process.kill()
            process.wait()


def test_the_threads_in_force_are_recorded(make_config, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        train(make_config(*FAST, "threads=1", output_dir=tmp_path))
        assert read_record(tmp_path)["threads"] == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_a_bad_thread_count_is_refused_before_training(make_config, tmp_path):
    with pytest.raises(ConfigError, match=r"threads=0 is invalid; it must be an integer >= 1, or null"):
        train(make_config(*FAST, "threads=0", output_dir=tmp_path))
