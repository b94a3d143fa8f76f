"""The pruning rule (rpn_exp.run.pruning) on synthetic standings: what stops, what never stops, and the margin."""

import math

import pytest

from rpn_exp.run.pruning import Standing, SuccessiveHalving, decide, margin_of, seed_spread


def test_rungs_are_b_times_powers_of_eta_before_the_last_epoch():
    assert SuccessiveHalving(first_rung=2, eta=2).rungs(20) == [2, 4, 8, 16]
    assert SuccessiveHalving(first_rung=2, eta=2).rungs(16) == [2, 4, 8]  # a rung at the last epoch saves nothing
    assert SuccessiveHalving(first_rung=1, eta=3).rungs(10) == [1, 3, 9]
    assert SuccessiveHalving(first_rung=1, eta=1.5).rungs(5) == [1, 2, 3]  # rounded, without repeats
    assert SuccessiveHalving(first_rung=5).rungs(5) == []


def test_a_configuration_behind_a_smaller_one_by_more_than_the_margin_is_stopped():
    standings = {"small": Standing(100, (0.80, 0.82)), "big": Standing(200, (0.50, 0.52))}
    assert decide(standings, margin=0.05) == {"small": None, "big": "small"}


def test_a_small_model_behind_a_big_one_is_never_stopped_for_being_small():
    standings = {"small": Standing(100, (0.10,)), "big": Standing(200, (0.95,))}
    assert decide(standings, margin=0.0) == {"small": None, "big": None}


def test_ties_and_leads_within_the_margin_are_kept():
    assert decide({"a": Standing(100, (0.8,)), "b": Standing(100, (0.8,))}, margin=0.0) == {"a": None, "b": None}
    assert decide({"a": Standing(100, (0.80,)), "b": Standing(150, (0.77,))}, margin=0.05) == {"a": None, "b": None}


def test_equal_parameters_and_a_clear_lead_stop_the_one_behind():
    assert decide({"a": Standing(100, (0.8,)), "b": Standing(100, (0.5,))}, margin=0.1) == {"a": None, "b": "a"}


def test_the_dominating_configuration_named_is_the_one_furthest_ahead():
    standings = {"a": Standing(50, (0.70,)), "b": Standing(80, (0.90,)), "c": Standing(100, (0.40,))}
    assert decide(standings, margin=0.1)["c"] == "b"


def test_the_default_margin_is_twice_the_pooled_spread_of_the_seeds():
    standings = {"a": Standing(100, (0.70, 0.74)), "b": Standing(200, (0.50, 0.50, 0.56)), "c": Standing(300, (0.2,))}
    squares = (0.02**2 + 0.02**2) + (0.02**2 + 0.02**2 + 0.04**2)  # deviations from each mean (0.72, 0.52)
    assert seed_spread(standings) == pytest.approx(math.sqrt(squares / (1 + 2)))
    assert margin_of(standings, None) == pytest.approx(2 * seed_spread(standings))
    assert margin_of(standings, 0.3) == 0.3


def test_without_two_seeds_of_any_configuration_nothing_is_stopped_unless_a_margin_is_given():
    standings = {"small": Standing(100, (0.9,)), "big": Standing(200, (0.1,))}
    assert seed_spread(standings) is None
    assert decide(standings, margin_of(standings, None)) == {"small": None, "big": None}
    assert decide(standings, margin_of(standings, 0.0)) == {"small": None, "big": "small"}


@pytest.mark.parametrize(("settings", "key"), [({"first_rung": 0}, "pruner.first_rung=0"),
                                                ({"first_rung": 1.5}, "pruner.first_rung=1.5"),
                                                ({"eta": 1}, "pruner.eta=1"),
                                                ({"margin": -0.1}, "pruner.margin=-0.1")])
def test_settings_that_cannot_prune_are_refused_with_their_key(settings, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        SuccessiveHalving(**settings)


PRUNED = {"epoch": 2, "rung": 0, "overrides": "reconciliation=lorr reconciliation.r=8 optimizer.lr=1e-06",
          "val_acc": 0.11, "val_acc_mean": 0.105, "margin": 0.02,
          "dominated_by": {"configuration": "45c51fcff6bc", "overrides": "reconciliation=lorr reconciliation.r=2 "
                           "optimizer.lr=0.01", "learnable_params": 41620, "val_acc_mean": 0.8123}}


def test_a_pruned_run_says_where_it_stopped_and_behind_what_it_differs_in():
    from rpn_exp.run.pruning import pruned_text

    assert pruned_text(PRUNED) == "epoch 2 (rung 0), behind `reconciliation.r=2 optimizer.lr=0.01`"
    assert pruned_text(PRUNED, long=True).endswith(": 0.8123 against 0.1050 (margin 0.0200)")
    same = {**PRUNED, "dominated_by": {**PRUNED["dominated_by"], "overrides": PRUNED["overrides"]}}
    assert pruned_text(same) == "epoch 2 (rung 0), behind configuration 45c51fcff6bc"  # spelled alike: its key
