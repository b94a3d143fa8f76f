"""From a composed Hydra config to objects: the functions, the data module and the network."""

from __future__ import annotations

from collections.abc import Mapping

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .layers import RPNNetwork

FUNCTION_GROUPS = ("expansion", "reconciliation", "interdependence", "remainder")
#: ``model.compile`` values: torch.compile modes (null: eager). reduce-overhead replays CUDA graphs on a GPU.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class ConfigError(ValueError):
    """A configuration value that cannot work, found before any training."""


def instantiate_node(node, key: str, **kwargs):
    """``hydra.utils.instantiate`` that reports the config key and the underlying error."""
    try:
        return instantiate(node, **kwargs)
    except Exception as error:  # InstantiationException wraps the real cause
        cause = error.__cause__ or error
        raise ConfigError(f"{key}: {cause}") from cause


def instantiate_functions(cfg: DictConfig) -> dict:
    """The function objects every layer shares: {expansion, reconciliation, interdependence, remainder}."""
    return {group: instantiate_node(cfg[group], group) for group in FUNCTION_GROUPS}


def _layer_overrides(cfg: DictConfig) -> dict[int, dict]:
    overrides = OmegaConf.select(cfg, "model.layer_overrides") or {}
    result = {}
    for index, values in overrides.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"model.layer_overrides.{index} must be a mapping of layer arguments, got {values!r}")
        result[int(index)] = {
            key: instantiate_node(value, f"model.layer_overrides.{index}.{key}")
            if isinstance(value, Mapping)
            else value
            for key, value in values.items()
        }
    return result


def build_network(cfg: DictConfig, num_features: int, num_classes: int) -> RPNNetwork:
    """The RPN network [num_features, *model.hidden, num_classes] with the configured functions.

    With ``model.compile`` set, its forward is compiled in place (``nn.Module.compile``; the state dict keeps
    its keys, so checkpoints do not depend on it).
    """
    model = cfg.model
    mode = model.get("compile")
    if mode is not None and mode not in COMPILE_MODES:
        raise ConfigError(f"model.compile={mode!r} is invalid; valid choices: null (eager), {', '.join(COMPILE_MODES)}")
    try:
        net = RPNNetwork(
            [num_features, *model.hidden, num_classes],
            **instantiate_functions(cfg),
            heads=model.heads,
            channels=model.channels,
            bias=model.bias,
            output_processing=OmegaConf.to_container(model.output_processing)
            if OmegaConf.is_config(model.output_processing)
            else model.output_processing,
            materialize=model.materialize,
            chunk_elements=model.chunk_elements,
            layer_overrides=_layer_overrides(cfg),
        )
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if mode is not None:
        net.compile(mode=mode)
    return net


def build_datamodule(cfg: DictConfig):
    """The configured data module (cheap: nothing is loaded until ``setup``)."""
    return instantiate_node(cfg.dataset, "dataset")


def build_model(cfg: DictConfig):
    """The network for a composed config: maps (batch, num_features) to class logits.

    The input and output widths come from the configured dataset; no data is loaded.
    """
    datamodule = build_datamodule(cfg)
    return build_network(cfg, datamodule.num_features, datamodule.num_classes)
