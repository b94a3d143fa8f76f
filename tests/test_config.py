"""Every config group option composes and instantiates; help lists them; YAML defaults match the code."""

import inspect
import subprocess
import sys

import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from rpn_exp import build_model
from rpn_exp.build import FUNCTION_GROUPS
from tests.conftest import CONF, compose_config, options

GROUPS = ["dataset", *FUNCTION_GROUPS, "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "experiment", "debug"]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_instantiates(group, option, tmp_path):
    cfg = compose_config([f"{group}={option}"], output_dir=tmp_path)
    if group in FUNCTION_GROUPS + ("dataset",):
        assert instantiate(cfg[group]) is not None
    elif group in ("optimizer", "scheduler") and cfg[group]:
        assert callable(instantiate(cfg[group]))
    elif group in ("logger", "callbacks"):
        assert all(instantiate(node) is not None for node in cfg[group].values())
    elif group == "trainer" and option == "gpu" and not torch.cuda.is_available():
        with pytest.raises(Exception, match="No supported gpu backend"):
            instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    elif group == "trainer":
        trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
        assert trainer.max_epochs == cfg.trainer.max_epochs
    if (group, option) == ("remainder", "identity"):  # needs m = n in every layer: a clear error instead
        with pytest.raises(ValueError, match="identity remainder needs equal input and output widths"):
            build_model(cfg)
    elif group != "trainer":
        assert build_model(cfg) is not None  # the whole composed config still builds a model


@pytest.mark.parametrize("group", ["reconciliation", "expansion", "remainder"])
def test_yaml_values_are_the_code_defaults(group):
    """One source of truth: a config file states the class defaults, never a second set of values."""
    for option in options(group):
        node = OmegaConf.load(CONF / group / f"{option}.yaml")
        params = inspect.signature(get_class(node._target_)).parameters
        for key, value in node.items():
            if key in ("_target_", "postprocess", "expansions"):
                continue
            default = params[key].default
            assert OmegaConf.to_container(node)[key] == (list(default) if isinstance(default, tuple) else default), (
                f"conf/{group}/{option}.yaml: {key}={value} differs from the class default {default}"
            )


def test_function_nodes_sit_at_the_top_level():
    cfg = compose_config()
    for group in FUNCTION_GROUPS:
        assert "_target_" in cfg[group]
    assert cfg.dataset._target_.endswith("DigitsDataModule") and cfg.interdependence._target_.endswith("NoInterdependence")


def test_a_layer_can_override_the_shared_functions():
    cfg = compose_config(["model.hidden=[16,16]", "+reconciliation@model.layer_overrides.2.reconciliation=identity",
                          "+model.layer_overrides.0.heads=2"])
    net = build_model(cfg)
    assert [layer.heads[0].reconciliation.name for layer in net.layers] == ["dual_lphm", "dual_lphm", "identity"]
    assert len(net.layers[0].heads) == 2


def test_paper_experiment_takes_any_dataset_and_reconciliation():
    cfg = compose_config(["experiment=paper_mnist", "dataset=fashion_mnist", "reconciliation=dual_lphm", "reconciliation.r=5"])
    assert cfg.dataset.dataset == "fashion_mnist" and cfg.trainer.max_epochs == 20 and cfg.optimizer.lr == 2e-3
    assert sum(p.numel() for p in build_model(cfg).parameters()) == 9_330


def test_help_describes_the_app_and_lists_every_group():
    out = subprocess.run([sys.executable, "-m", "rpn_exp", "--help"], capture_output=True, text=True, check=True).stdout
    assert "rpn_exp: experiments with Reconciled Polynomial Networks" in out
    for group in GROUPS:
        assert f"{group}:" in out
    for option in ("dual_lphm", "random_matrix_hypernet", "fashion_mnist", "chebyshev", "paper_mnist"):
        assert option in out
