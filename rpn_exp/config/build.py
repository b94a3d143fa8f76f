"""From a composed Hydra config to objects: the functions, the data module and the network."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rpn_exp.config.grid import dataset_grid, grid_arguments
from rpn_exp.functions.geometry import PatchTooLarge
from rpn_exp.functions.remainder import ZeroRemainder
from rpn_exp.functions.shapes import divisors
from rpn_exp.nn import RPNNetwork
from rpn_exp.nn.describe import STRUCTURE_HPARAMS, output_rank_limit
from rpn_exp.nn.grid import GridNetwork
from rpn_exp.nn.head import INITS

log = logging.getLogger("rpn_exp")

#: The config groups of an RPN layer's functions (κ, ψ, ξ, π), which a baseline model does not use.
FUNCTION_GROUPS = ("expansion", "reconciliation", "interdependence", "remainder")
#: ``model.compile`` values: torch.compile modes (null: eager). reduce-overhead replays CUDA graphs on a GPU.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class ConfigError(ValueError):
    """A configuration value that cannot work, found before any training."""


#: Errors that a bad config value causes when a node is instantiated (a wrong value, argument or ``_target_``);
#: anything else raised while instantiating is a bug and propagates as it is.
USER_ERRORS = (ValueError, TypeError, ImportError, AttributeError)


def qualify(key: str, error: BaseException | str, names: Iterable[str] = ()) -> str:
    """A component's message about its own arguments (``root=/x does not exist``) in the terms of the config:
    each ``name=`` of the node's ``names`` becomes ``key.name=`` (the override to change); a message that does not
    start with one is prefixed ``key: ``; the component's own name before such a message is dropped."""
    text = str(error)
    names = sorted(set(names), key=len, reverse=True)
    if names:
        named = "|".join(map(re.escape, names))
        text = re.sub(rf"^[\w ]+: (?=(?:{named})=)", "", text)  # "lorr reconciliation: r=0 ..." -> "r=0 ..."
        text = re.sub(rf"(?<![\w.])({named})(?==)", rf"{key}.\1", text)
    return text if text.startswith(f"{key}.") else f"{key}: {text}"


def instantiate_node(node, key: str, **kwargs):
    """``hydra.utils.instantiate`` that reports a bad value with its config key (ConfigError, :func:`qualify`)."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:  # Hydra wraps the real cause (or says what it could not resolve)
        cause = error.__cause__
        if cause is None or isinstance(cause, USER_ERRORS):
            names = [k for k in node if not str(k).startswith("_")] if isinstance(node, Mapping) else []
            raise ConfigError(qualify(key, cause or error, names)) from error
        raise cause from error


def function_configs(cfg: DictConfig) -> dict[str, tuple[str, DictConfig]]:
    """Each layer function's config node and its key: the expansion/reconciliation/... groups, or the functions
    the model fixes for itself (``model.functions``, e.g. the dense baseline ``model=mlp``)."""
    fixed = OmegaConf.select(cfg, "model.functions")
    if fixed:
        return {group: (f"model.functions.{group}", fixed[group]) for group in FUNCTION_GROUPS}
    return {group: (group, cfg[group]) for group in FUNCTION_GROUPS}


def reconciliation_hparams(cfg: DictConfig) -> dict:
    """The structure hyper-parameters (r, p, q, k, ...) and l the config sets on ψ, as given (None values left out)."""
    psi = function_configs(cfg)["reconciliation"][1]
    return {k: v for k, v in psi.items() if k in (*STRUCTURE_HPARAMS, "l") and v is not None}


def instantiate_functions(cfg: DictConfig) -> dict:
    """The function objects every layer shares: {expansion, reconciliation, interdependence, remainder}."""
    return {group: instantiate_node(node, key) for group, (key, node) in function_configs(cfg).items()}


#: Models whose layers come from the expansion/reconciliation/interdependence/remainder groups; every other model
#: (mlp, linear, cnn) is a dense baseline whose config fixes its functions (``model.functions``).
STRUCTURED_MODELS = ("rpn", "grid")


def is_baseline_model(name: str | None) -> bool:
    """Whether a model name (a record's ``model``) is a dense baseline rather than a structured model."""
    return bool(name) and name not in STRUCTURED_MODELS


def model_name(cfg: DictConfig) -> str:
    """What kind of model the config builds: ``rpn``, ``grid``, ``mlp``, ``linear`` (an MLP without hidden layers) or
    ``cnn`` (the dense convolutional baseline)."""
    name = OmegaConf.select(cfg, "model.name", default="rpn")
    return "linear" if name == "mlp" and not cfg.model.hidden else name


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


def build_network(cfg: DictConfig, num_features: int, num_classes: int, shapes_only: bool = False,
                  grid: tuple[int, int, int, int] | None = None) -> RPNNetwork | GridNetwork:
    """The RPN network [num_features, *model.hidden, num_classes] with the configured functions; with
    ``model=grid``, the grid layers of ``model.grid`` on the dataset's ``grid`` (channels, h, w, d) first.

    The network is first built on PyTorch's meta device (shapes and parameter counts, no memory) and checked
    (:func:`check_ranks`); ``shapes_only`` returns that skeleton (a dry run: nothing is allocated, whatever the
    size). With ``model.compile`` set, the forward is compiled in place (``nn.Module.compile``; the state dict
    keeps its keys, so checkpoints do not depend on it).
    """
    model = cfg.model
    init = model.get("init", "variance")
    if init not in INITS:
        raise ConfigError(f"model.init={init!r} is invalid; valid choices: {', '.join(INITS)}")
    mode = model.get("compile")
    if mode is not None and mode not in COMPILE_MODES:
        raise ConfigError(f"model.compile={mode!r} is invalid; valid choices: null (eager), {', '.join(COMPILE_MODES)}")

    def make() -> RPNNetwork | GridNetwork:
        return _network(cfg, num_features, num_classes, grid, init)

    with torch.device("meta"):
        skeleton = make()
    check_factors(skeleton, cfg)
    check_ranks(skeleton)
    check_degenerate(skeleton)
    warn_rank_limit(skeleton)
    batch = max(OmegaConf.select(cfg, "dataset.batch_size", default=1) or 1,
                OmegaConf.select(cfg, "dataset.eval_batch_size", default=1) or 1)
    if shapes_only:
        problem = memory_problem(skeleton, batch)
        if problem:  # a dry run shows the sizes; a run of them would be refused
            log.warning("this network would not fit: %s", problem)
        return skeleton
    check_memory(skeleton, batch)
    net = make()
    if mode is not None:
        net.compile(mode=mode)
    return net


def _network(cfg: DictConfig, num_features: int, num_classes: int, grid, init: str) -> RPNNetwork | GridNetwork:
    """The network of :func:`build_network`, built on the current device; a bad value raises ConfigError."""
    model = cfg.model
    try:
        if OmegaConf.select(model, "grid") is not None:
            shape = grid_arguments(model, dataset_grid(grid, num_features), num_classes)
        else:
            shape = {"widths": [num_features, *model.hidden, num_classes]}
        processing = model.output_processing
        return (GridNetwork if "grid" in shape else RPNNetwork)(
            **shape,
            **instantiate_functions(cfg),
            heads=model.heads,
            channels=model.channels,
            init=init,
            bias=model.bias,
            output_processing=OmegaConf.to_container(processing) if OmegaConf.is_config(processing) else processing,
            activation=model.get("activation"),
            materialize=model.materialize,
            chunk_elements=model.chunk_elements,
            layer_overrides=_layer_overrides(cfg),
        )
    except ConfigError:
        raise
    except PatchTooLarge as error:
        raise ConfigError(f"{'model.grid.pooling.patch' if error.pooling else 'model.patch'}: {error}") from error
    except ValueError as error:
        raise ConfigError(str(error)) from error


def check_degenerate(net: RPNNetwork) -> None:
    """Refuse a layer whose output is 0 for every input: ψ gives W = 0 (rank bound 0, ``zero``), or rows of W that
    are constant (``ψ.constant_rows``: one, constant) against a κ whose layer norm makes each row sum to 0, with no
    remainder or bias to add anything."""
    for layer in net.layers:
        head = layer.heads[0]
        psi = head.reconciliation
        zero = psi.rank_bound(layer.n, layer.D) == 0
        if not (zero or psi.constant_rows) or not isinstance(layer.remainder, ZeroRemainder) or layer.bias is not None:
            continue
        normalized = head.kappa.norm_eps is not None
        if zero or normalized:
            why = "W = 0" if zero else "every row of W is constant and the layer-normalized κ sums to 0, so W κ = 0"
            raise ConfigError(
                f"{layer.name}: reconciliation={psi.name} gives an output of 0 for every input ({why}) and nothing "
                "is added (remainder=zero, no bias): it cannot learn. Use another reconciliation, a remainder "
                "(remainder=linear), model.bias=true, or expansion.postprocess=null"
            )


#: Bytes a learnable float32 parameter takes while training: itself, its gradient and two optimizer moments.
TRAINING_BYTES_PER_PARAMETER = 16
#: Bytes per sample, head, channel and output of a layer that a step holds (its outputs and what the backward pass
#: keeps, float32): measured 4.2 MB per channel of the default digits model at its eval batch of 1,024 (peak RSS
#: with model.channels=1,000 and 4,000), i.e. about 30 bytes for each of its 1,024 × 138 outputs.
ACTIVATION_BYTES = 32


def check_memory(net: RPNNetwork, batch: int = 1) -> None:
    """Refuse a network that cannot train in this machine's memory (:func:`memory_problem`): it would be killed,
    or swap for hours, before its first step."""
    problem = memory_problem(net, batch)
    if problem:
        raise ConfigError(problem)


def memory_problem(net: RPNNetwork, batch: int = 1) -> str | None:
    """Why ``net`` (built on any device, the meta one included) cannot train on batches of ``batch`` samples in this
    machine's memory, or None: its parameters with their gradients and optimizer state, and the outputs of every
    head's channels for one batch (:data:`ACTIVATION_BYTES` each)."""
    import os

    params = sum(p.numel() for p in net.parameters()) + sum(b.numel() for b in net.buffers())
    outputs = sum(layer.outputs_per_sample for layer in net.layers)
    weights, activations = params * TRAINING_BYTES_PER_PARAMETER, batch * outputs * ACTIVATION_BYTES
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if weights + activations <= total:
        return None
    return (f"the network has {params:,} parameters and {outputs:,} channel outputs per sample: about "
            f"{weights / 2**30:.1f} GiB with gradients and optimizer state and {activations / 2**30:.1f} GiB for a "
            f"batch of {batch:,}, more than this machine's {total / 2**30:.1f} GiB; make it smaller (model.channels, "
            f"model.heads, model.hidden, reconciliation.r, reconciliation.k, dataset.eval_batch_size); dry_run=true "
            f"shows sizes")


def check_factors(net: RPNNetwork, cfg: DictConfig) -> None:
    """The p/q rule, said where it applies: a requested p or q that divides no layer's width is refused with the
    valid values of each layer; a layer where it was fitted to a smaller divisor is named with the value in force
    (which result.json, the layer table and the summary record)."""
    uses: dict[int, list] = {}  # one ψ object serves every layer that shares it
    for index, layer in enumerate(net.layers):
        psi = layer.heads[0].reconciliation
        if psi.requested():
            uses.setdefault(id(psi), []).append((index, layer, psi))
    for layers in uses.values():
        first, _, psi = layers[0]
        overridden = OmegaConf.select(cfg, f"model.layer_overrides.{first}.reconciliation") is not None
        prefix = f"model.layer_overrides.{first}.reconciliation" if overridden else "reconciliation"
        for key, value in psi.requested().items():
            fits = [(layer, psi.factor_dims(layer.n, layer.D)[key], psi.hparams(layer.n, layer.D)[key])
                    for _, layer, _ in layers]
            if all(used != value for _, _, used in fits):
                listed = "; ".join(f"{layer.name} ({key} divides {width}): {', '.join(map(str, divisors(width)))}"
                                   for layer, width, _ in fits)
                raise ConfigError(f"{prefix}.{key}={value} divides no layer's width, so no layer would use it. Valid "
                                  f"values per layer: {listed}. Give one of them, or leave {key} unset (null) for "
                                  f"each layer's automatic choice")
            for layer, width, used in fits:
                if used != value:
                    log.warning("%s: %s.%s=%s does not divide %d; this layer uses %s=%d, the largest divisor below "
                                "it", layer.name, prefix, key, value, width, key, used)


def check_ranks(net: RPNNetwork) -> None:
    """Refuse a rank r that no layer's factors can reach (``reconciliation.r`` too large everywhere: the extra
    parameters cannot change W); warn for each layer where r is capped by its shape."""
    bounds = []
    for layer in net.layers:
        psi = layer.heads[0].reconciliation
        bound = psi.max_rank(layer.n, layer.D)
        if bound is not None:
            bounds.append((layer.name, psi.r, bound))
    capped = [(name, r, bound) for name, r, bound in bounds if r > bound]
    if bounds and len(capped) == len(bounds):
        listed = ", ".join(f"{name}: {bound}" for name, _, bound in bounds)
        raise ConfigError(
            f"reconciliation.r={bounds[0][1]} is above the rank that any layer's factors can reach ({listed}); the "
            f"parameters beyond it cannot change W. Give reconciliation.r <= {max(b for _, _, b in bounds)}"
        )
    for name, r, bound in capped:
        log.warning("%s: r=%d is capped at rank %d by the layer's shape; its extra parameters do not raise the rank",
                    name, r, bound)


def warn_rank_limit(net: RPNNetwork) -> None:
    """Warn when the output layer's W cannot reach rank classes − 1 (``rpn_exp.run.record.output_rank_limit``): the run
    still trains, but its structure, not its training, limits how well the classes can be separated."""
    limit = output_rank_limit(net.describe())
    if limit is None:
        return
    bound, classes = limit
    last = net.layers[-1]
    psi = last.heads[0].reconciliation
    if psi.rank_bound(last.n, last.D) >= min(last.n, last.D):  # W is not what limits it: the width before it is
        cause, remedy = f"its input width {last.m}", f"give the last hidden layer at least {classes - 1} units"
    else:
        cause = f"reconciliation={psi.name}" + "".join(f" {k}={v}" for k, v in psi.hparams(last.n, last.D).items())
        remedy = (f"raise reconciliation.r (or p/q), or give the output layer a dense W of its own: "
                  f"+reconciliation@model.layer_overrides.{len(net.layers) - 1}.reconciliation=identity")
    log.warning(
        "%s: %s caps W at rank %d, below classes - 1 = %d: the logits lie in a %d-dimensional subspace, which limits "
        "how the %d classes can be told apart%s. To lift it, %s", last.name, cause, bound, classes - 1, bound,
        classes, " (at rank 1 every input's logits are multiples of one vector: at most two classes can ever be "
        "predicted)" if bound <= 1 else "", remedy)


def build_datamodule(cfg: DictConfig):
    """The configured data module (cheap: nothing is loaded until ``setup``)."""
    return instantiate_node(cfg.dataset, "dataset")


def build_model(cfg: DictConfig):
    """The network for a composed config: maps (batch, num_features) to class logits.

    The input and output widths come from the configured dataset; no data is loaded.
    """
    datamodule = build_datamodule(cfg)
    return build_network(cfg, datamodule.num_features, datamodule.num_classes, grid=datamodule.grid)
