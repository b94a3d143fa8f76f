"""Every config group option composes and instantiates; help lists them; YAML defaults match the code."""

import inspect
import subprocess
import sys

import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from rpn_exp import build_model
from rpn_exp.config.build import FUNCTION_GROUPS
from tests.conftest import CONF, compose_config, options

GROUPS = ["dataset", *FUNCTION_GROUPS, "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "experiment", "debug"]
SWEEP_GROUPS = ["hparams_search", "launcher"]  # compose with the Hydra plugins; tested below


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
    elif group == "reconciliation" and option in ("zero", "one", "constant"):  # y = 0 without a remainder
        with pytest.raises(ValueError, match=f"reconciliation={option} gives an output of 0 for every input"):
            build_model(cfg)
        assert build_model(compose_config([f"{group}={option}", "remainder=linear"], output_dir=tmp_path))
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
    cfg = compose_config(["model.hidden=[16,16]", "reconciliation.r=2", "+reconciliation@model.layer_overrides.2.reconciliation=identity",
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
    for group in GROUPS + SWEEP_GROUPS:
        assert f"{group}:" in out
    for option in ("dual_lphm", "random_matrix_hypernet", "fashion_mnist", "chebyshev", "paper_mnist"):
        assert option in out


def sweep_grid(cfg) -> list[list[str]]:
    """The jobs of a basic-sweeper preset: every combination of its ``hydra.sweeper.params``."""
    import itertools

    params = cfg.hydra.sweeper.params
    axes = [[f"{key}={value.strip()}" for value in str(values).split(",")] for key, values in params.items()]
    return [list(job) for job in itertools.product(*axes)]


@pytest.mark.parametrize("preset", ["families", "rank"])
@pytest.mark.parametrize("base", [[], ["experiment=paper_mnist"]])
def test_grid_presets_build_every_job_on_any_experiment(preset, base, tmp_path):
    jobs = sweep_grid(compose_config([*base, f"hparams_search={preset}"], hydra_config=True))
    assert len(jobs) >= 4
    for job in jobs:
        net = build_model(compose_config([*base, f"hparams_search={preset}", *job], output_dir=tmp_path))
        assert sum(p.numel() for p in net.parameters() if p.requires_grad) > 0


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(not installed("hydra_plugins.hydra_optuna_sweeper"), reason="needs the sweeps extra")
def test_the_optuna_preset_is_a_two_objective_nsga2_search():
    cfg = compose_config(["hparams_search=optuna_pareto"], hydra_config=True)
    assert "OptunaSweeper" in cfg.hydra.sweeper._target_ and "NSGAIISampler" in cfg.hydra.sweeper.sampler._target_
    assert list(cfg.hydra.sweeper.direction) == ["maximize", "minimize"]
    assert list(cfg.objective) == ["val/acc_best", "learnable_params"]
    for family in str(cfg.hydra.sweeper.params.reconciliation)[len("choice("):-1].split(","):
        assert family.strip() in options("reconciliation")


@pytest.mark.parametrize("launcher, target", [("joblib", "JoblibLauncher"), ("submitit_local", "LocalLauncher"),
                                              ("submitit_slurm", "SlurmLauncher")])
def test_launcher_presets_select_hydras_launchers(launcher, target):
    plugin = f"hydra_plugins.hydra_{launcher.split('_')[0]}_launcher"
    if not installed(plugin):
        pytest.skip(f"{plugin} is not installed (the sweeps extra)")
    cfg = compose_config([f"launcher={launcher}"], hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)


def test_model_yaml_states_the_layer_defaults():
    from rpn_exp.nn import RPNHead, RPNLayer

    node = OmegaConf.load(CONF / "model" / "rpn.yaml")
    params = {**inspect.signature(RPNHead).parameters, **inspect.signature(RPNLayer).parameters}
    for key in ("heads", "channels", "bias", "materialize", "chunk_elements"):
        assert node[key] == params[key].default, f"conf/model/rpn.yaml: {key}"


def test_grid_expansions_cover_the_standardized_data_by_default():
    from rpn_exp.data import DigitsDataModule

    dm = DigitsDataModule()
    x, _ = dm.standardized("train")
    for option, key in (("bspline", "grid_range"), ("gaussian_rbf", "base_range"), ("inverse_quadratic_rbf", "base_range")):
        low, high = compose_config([f"expansion={option}"]).expansion[key]
        assert low <= float(x.min()) and float(x.max()) <= high and high >= 2.82  # MNIST's brightest pixel
