"""The order a stacked sweep's workers take its units in: the one that ends soonest, from a few timed steps of each."""

import logging
import math
from pathlib import Path

import pytest
import torch

from hydra_plugins.rpn_exp_stacked.stacked_launcher import _by_cost
from rpn_exp.sweep import costs
from rpn_exp.sweep.costs import SEARCHED, largest, launch_order, makespan, step_ms, unit_cost
from tests.conftest import compose_config


def job(*overrides):
    return compose_config(overrides, output_dir=Path("outputs/job"))


def test_units_go_by_cost_and_ties_keep_their_order():
    assert launch_order([1.0, 3.0, 1.0, math.inf], [1, 1, 1, 1], workers=2, pruning=False) == [3, 1, 0, 2]


def test_the_estimated_end_is_that_of_list_scheduling():
    assert makespan([3.0, 3.0, 2.0, 2.0, 2.0], [0, 1, 2, 3, 4], workers=2) == 7.0  # 3+2+2 on one worker
    assert makespan([3.0, 3.0, 2.0, 2.0, 2.0], [0, 2, 3, 1, 4], workers=2) == 6.0  # 3+3 against 2+2+2
    assert makespan([1.0, 2.0], [0, 1], workers=3) == 2.0


def test_the_order_that_ends_soonest_is_taken_where_longest_first_ends_later():
    costs = [3.0, 3.0, 2.0, 2.0, 2.0]
    assert makespan(costs, sorted(range(5), key=lambda i: -costs[i]), workers=2) == 7.0
    order = launch_order(costs, [1] * 5, workers=2, pruning=False)
    assert makespan(costs, order, workers=2) == 6.0
    assert order == [0, 2, 3, 1, 4]  # of the orders ending at 6, the nearest to longest first


def test_with_a_pruner_the_units_of_the_most_configurations_start_first():
    """The first study: the reference layout (1 configuration), dual_lphm and lphm (4 each), the MLPs (5), the linear
    classifier (1): the MLPs, which stop configurations of the others at their first rung, start at once, dual_lphm
    beside them and the reference layout after the MLPs: 2.5 + 7.2 = 9.7 on one worker, 4.8 + 4.2 + 0.7 = 9.7 on the
    other. The longest beside the MLPs would end at 11.4 (7.2 + 4.2 on one worker)."""
    costs, configurations = [7.2, 4.8, 4.2, 2.5, 0.7], [1, 4, 4, 5, 1]
    order = launch_order(costs, configurations, workers=2, pruning=True)
    assert order == [3, 1, 0, 2, 4] and makespan(costs, order, workers=2) == pytest.approx(9.7)
    assert launch_order(costs, configurations, workers=3, pruning=True) == [3, 1, 0, 2, 4]
    assert launch_order(costs, configurations, workers=2, pruning=False) == [0, 1, 2, 3, 4]  # longest first is best
    assert launch_order(costs, configurations, workers=5, pruning=True) == [0, 1, 2, 3, 4]  # all start at once


def test_many_units_go_longest_first_after_the_units_of_the_most_configurations():
    lengths = [float(c) for c in range(SEARCHED + 3)]  # too many orders to search
    configurations = [9] + [1] * (len(lengths) - 1)
    order = launch_order(lengths, configurations, workers=2, pruning=True)
    assert order == [0, *range(len(lengths) - 1, 0, -1)]


def test_a_padded_group_is_timed_in_the_shape_of_its_largest_member():
    widths = [job("model=mlp", f"model.hidden=[{w}]") for w in (4, 64, 16)]
    assert largest(widths).model.hidden == [64]
    ranks = [job("reconciliation=lphm", f"reconciliation.r={r}") for r in (2, 5, 1)]
    assert largest(ranks).reconciliation.r == 5


def test_a_timed_step_is_a_duration_and_leaves_threads_and_the_random_state_alone():
    threads, state = torch.get_num_threads(), torch.random.get_rng_state()
    ms = step_ms(job("model.hidden=[8]"), members=2, threads=1, steps=2)
    assert 0 < ms < math.inf
    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), state)


def test_the_cost_is_the_step_time_per_sample_times_epochs_times_the_waves_of_members(monkeypatch):
    timed = []
    monkeypatch.setattr(costs, "step_ms", lambda cfg, members, threads: timed.append((members, threads)) or 8.0)
    group = [job("trainer.max_epochs=3", "dataset.batch_size=16"), job("trainer.max_epochs=5", "dataset.batch_size=16")]
    assert unit_cost(group, max_members=16, threads=1) == pytest.approx(8.0 * 5 / 16)  # the longest member's epochs
    assert unit_cost(group * 3, max_members=4, threads=2) == pytest.approx(8.0 * 5 * 2 / 16)  # 6 members, 2 waves
    assert timed == [(2, 1), (4, 2)]  # at most max_members at once, with a worker's threads


def test_a_unit_that_cannot_be_built_goes_first_and_its_run_reports_why():
    assert unit_cost([job("reconciliation=lphm", "reconciliation.p=7")], max_members=16, threads=1) == math.inf


@pytest.mark.parametrize("pruner", [[], ["pruner=halving"]])
def test_the_launcher_hands_out_the_units_by_their_costs_and_says_so(monkeypatch, caplog, pruner):
    estimates = {1: 0.5, 3: 2.0, 2: 7.0}
    monkeypatch.setattr(costs, "unit_cost", lambda cfgs, max_members, threads: estimates[len(cfgs)])
    units = [[0], [1, 2, 3], [4, 5]]
    tasks = [(job(*pruner, "seed=1"), {})] + [(job(*pruner, f"model.hidden=[{4 + j}]"), {}) for j in range(1, 4)]
    tasks += [(job(*pruner, f"seed={j}"), {}) for j in (4, 5)]  # one configuration, two seeds
    with caplog.at_level(logging.INFO):
        order = _by_cost(units, tasks, workers=2, max_members=16)
    if pruner:  # #1+#2+#3 holds 3 configurations, #4+#5 one, #0 one
        assert order == [[1, 2, 3], [4, 5], [0]]
        assert "#1+#2+#3 2, #4+#5 7, #0 0.5" in caplog.text
    else:
        assert order == [[4, 5], [1, 2, 3], [0]]
        assert "#4+#5 7, #1+#2+#3 2, #0 0.5" in caplog.text
    assert "2 workers train the units at once, in the order that ends soonest" in caplog.text
    assert ("the units of the most configurations first (pruning)" in caplog.text) == bool(pruner)
