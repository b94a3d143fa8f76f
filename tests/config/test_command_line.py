"""The command line is checked before Hydra composes it (``rpn_exp.config.command_line``): a mistyped option, key or
override is one line naming it with the closest valid choices."""

import pytest

from rpn_exp.config.command_line import command_line_problem
from tests.conftest import CONF, run_cli


@pytest.mark.parametrize("args, message", [
    (["expansion=tayler"], "expansion=tayler is not an option of expansion; did you mean taylor? valid choices: "),
    (["logger=tensorbord"], "logger=tensorbord is not an option of logger; did you mean tensorboard?"),
    (["-m", "reconciliation=lorr,dual_lpmh"], "reconciliation=dual_lpmh is not an option of reconciliation; did you "
                                               "mean dual_lphm"),
    (["trainer.max_epoch=3"], "trainer.max_epoch is not a key of the config; did you mean trainer.max_epochs"),
    (["experiment=paper_mnist", "model.hiden=[32]"], "model.hiden is not a key of the config; did you mean "
                                                      "model.hidden"),
    (["~callbacks.weight_snapshot"], "callbacks.weight_snapshot is not a key of the config; did you mean "
                                     "callbacks.weight_snapshots"),
    (["+seed=3"], "+seed: seed is in the config already; set it with seed=<value> (without '+')"),
    (["optimizer.lr=[0.1"], "cannot read the override 'optimizer.lr=[0.1' ("),
])
def test_a_mistyped_command_is_named_with_the_closest_choices(args, message):
    problem = command_line_problem(args, CONF)
    assert problem is not None and message in problem and "\n" not in problem


@pytest.mark.parametrize("args", [
    [], ["expansion=taylor", "reconciliation=lorr", "reconciliation.r=4"], ["-m", "reconciliation=lorr,lphm"],
    ["experiment=paper_mnist", "reconciliation.k=2"], ["+trainer.limit_train_batches=3"], ["remainder=null"],
    ["~callbacks.weight_snapshots"], ["hydra.run.dir=/tmp/x", "hydra/launcher=basic"], ["--cfg", "job", "nope=1"],
    ["hydra.searchpath=[file:///somewhere]", "reconciliation=my_own_family"],
])
def test_a_valid_command_or_one_for_hydra_to_judge_passes(args):
    assert command_line_problem(args, CONF) is None


def test_the_command_exits_with_status_2_and_one_line():
    done = run_cli("expansion=tayler")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: expansion=tayler is not an option of expansion; did you mean taylor? valid choices: "
                           "bspline, chebyshev, extended, ")
