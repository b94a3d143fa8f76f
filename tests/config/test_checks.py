"""Settings refused before anything is built (``rpn_exp.config.checks``): each refusal names the key, the value and
what to give."""

import pytest

from rpn_exp.config.build import ConfigError
from rpn_exp.config.checks import check_added_keys, check_settings
from tests.conftest import compose_config


def test_the_default_settings_pass(tmp_path):
    check_settings(compose_config(output_dir=tmp_path))


@pytest.mark.parametrize("override, message", [
    ("optimizer.lr=0", r"optimizer.lr=0 is invalid; it must be a number > 0, e.g. optimizer.lr=1e-3"),
    ("optimizer.lr=nan", r"optimizer.lr=nan is invalid; it must be a finite number"),
    ("seed=1.5", r"seed=1.5 is invalid; it must be an integer"),
    ("scheduler.gamma=2", r"scheduler.gamma=2 is invalid; it must be a number <= 1"),
    ("dataset.batch_size=0", r"dataset.batch_size=0 is invalid; it must be an integer >= 1"),
    ("trainer.max_epochs=0", r"trainer.max_epochs=0 is invalid; .* python -m rpn_exp.eval"),
    ("trainer.log_every_n_steps=0", r"trainer.log_every_n_steps=0 is invalid; it must be an integer >= 1"),
    ("+trainer.gradient_clip_val=-1", r"trainer.gradient_clip_val=-1 is invalid; it must be a number >= 0"),
    ("trainer.devices=-2", r"trainer.devices=-2 is invalid; give a number of devices >= 1, -1 \(all\) or auto"),
    ("callbacks.progress_bar.refresh_rate=-3", r"callbacks.progress_bar.refresh_rate=-3 is invalid; it must be an "
                                               r"integer >= 0"),
])
def test_a_bad_setting_names_key_value_and_what_to_give(override, message):
    with pytest.raises(ConfigError, match=message):
        check_settings(compose_config([override]))


def test_fractions_that_leave_no_training_data_are_refused():
    with pytest.raises(ConfigError, match="leaves no training data; keep their sum below 1"):
        check_settings(compose_config(["dataset.val_fraction=0.5", "dataset.test_fraction=0.5"]))


def test_a_dry_run_needs_no_epochs():
    check_settings(compose_config(["trainer.max_epochs=0", "dry_run=true"]))


def test_added_keys_that_nothing_reads_are_refused_with_a_guess():
    with pytest.raises(ConfigError, match="did you mean model.hidden"):
        check_added_keys(["+model.hiden=[64]"], {"model"})
    with pytest.raises(ConfigError, match=r"\+foo=1 adds a top-level key that nothing reads"):
        check_added_keys(["+foo=1"], {"model"})
    check_added_keys(["+model.heads=2", "+reconciliation@model.layer_overrides.1.reconciliation=identity",
                      "++anything=1"], {"model"})
