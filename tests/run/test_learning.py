"""A completed run that learned nothing, or whose loss exploded, says so (``rpn_exp.run.learning``)."""

import math

import pytest
import torch

from rpn_exp.run.learning import frequency_loss, learning_flag
from rpn_exp.run.record import read_record, summary_line, write_record
from rpn_exp.run.task import train
from rpn_exp.sweep.rows import job_row, pareto_front
from tests.conftest import FAST, record


def test_the_frequency_loss_is_the_entropy_of_the_class_frequencies():
    assert frequency_loss(torch.arange(10).repeat(7), 10) == pytest.approx(math.log(10))
    assert frequency_loss(torch.tensor([0, 0, 0, 1]), 3) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert frequency_loss(torch.zeros(5, dtype=torch.long), 10) == 0.0  # one class: nothing to learn


def test_the_flag_compares_the_last_training_loss_with_the_frequency_loss():
    chance = math.log(10)
    assert learning_flag(0.4, chance) is None
    assert learning_flag(2.31, chance).startswith("learned nothing: final training loss 2.3100 is not below 2.3026")
    assert learning_flag(5e6, chance).startswith("exploded: final training loss 5e+06 is 2.17e+06 times 2.3026")
    assert learning_flag(None, chance) is None and learning_flag(float("nan"), chance) is None


def test_a_run_whose_loss_explodes_is_completed_and_flagged_in_its_record_and_line(make_config, tmp_path):
    out = tmp_path / "run"
    train(make_config(*FAST, "optimizer.lr=10", output_dir=out))
    done = read_record(out)
    assert done["status"] == "completed" and done["flag"].startswith("exploded: final training loss")
    assert done["frequency_loss"] == pytest.approx(math.log(10), abs=0.01)  # digits: ten nearly balanced classes
    assert "| exploded: final training loss" in summary_line(done)


def test_a_flagged_job_shows_its_flag_in_the_summary_and_is_never_on_the_front(tmp_path):
    write_record(tmp_path / "0", record("lphm", 983, 0.80))
    write_record(tmp_path / "1", record("hm", 500, 0.95, flag="learned nothing: final training loss ..."))
    rows = [job_row(tmp_path / "0"), job_row(tmp_path / "1")]
    assert [row["flag"] for row in rows] == ["", "learned nothing"]
    assert pareto_front(rows) == [0]  # fewer parameters and higher accuracy, but flagged
