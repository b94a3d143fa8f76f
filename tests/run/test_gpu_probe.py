"""A run asks once whether the machine has a GPU (``rpn_exp.run.gpu_probe``): without one, its optimizer steps no
longer ask NVML, which Lightning's ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` made them do on every step."""

import os
import traceback

import torch

from rpn_exp.run.gpu_probe import NVML_CHECK, probe_gpu_once
from rpn_exp.run.record import read_record
from rpn_exp.run.task import train
from tests.conftest import FAST


def nvml_answering(monkeypatch, devices: int) -> list[bool]:
    """NVML that finds ``devices`` GPUs, as importing Lightning leaves torch set to ask it; the returned list gets, for
    each question asked, whether an optimizer step asked it."""
    asked = []

    def device_count_nvml():
        asked.append(any("torch/optim/" in frame.filename for frame in traceback.extract_stack()))
        return devices

    monkeypatch.setenv(NVML_CHECK, "1")
    monkeypatch.setattr(torch.cuda, "_initialized", False)
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", device_count_nvml)
    return asked


def test_while_the_setting_is_on_every_optimizer_step_asks_nvml(monkeypatch):
    asked = nvml_answering(monkeypatch, devices=0)
    parameter = torch.nn.Parameter(torch.ones(2))
    parameter.grad = torch.ones(2)
    optimizer = torch.optim.AdamW([parameter])
    for _ in range(3):
        optimizer.step()
    assert asked == [True, True, True]


def test_without_a_gpu_a_runs_optimizer_steps_no_longer_ask_nvml(make_config, tmp_path, monkeypatch):
    asked = nvml_answering(monkeypatch, devices=0)
    train(make_config(*FAST, output_dir=tmp_path))
    assert read_record(tmp_path)["global_step"] > 1  # several optimizer steps ...
    assert asked and not any(asked)  # ... none of which asked NVML (the run's probe and Lightning's start-up did)
    assert NVML_CHECK not in os.environ


def test_with_a_gpu_the_setting_stays(monkeypatch):
    nvml_answering(monkeypatch, devices=1)
    assert probe_gpu_once() is True
    assert os.environ[NVML_CHECK] == "1"
