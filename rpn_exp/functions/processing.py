"""Named per-layer processing modules: κ post-processing and layer output processing.

A spec is a name (``"layer_norm"``), a mapping with ``name`` and keyword arguments
(``{"name": "dropout", "p": 0.1}``), or an ``nn.Module`` factory object. ``build_processing(specs, dim)``
returns an ``nn.Sequential`` for a feature width ``dim``; the names are those of :data:`REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from torch import nn

ProcessingFactory = Callable[..., nn.Module]

REGISTRY: dict[str, ProcessingFactory] = {
    "layer_norm": lambda dim, elementwise_affine=False, eps=1e-5: nn.LayerNorm(
        dim, eps=eps, elementwise_affine=elementwise_affine
    ),
    "batch_norm": lambda dim, affine=False, eps=1e-5: nn.BatchNorm1d(dim, eps=eps, affine=affine),
    "dropout": lambda dim, p=0.1: nn.Dropout(p),
    "relu": lambda dim: nn.ReLU(),
    "gelu": lambda dim: nn.GELU(),
    "sigmoid": lambda dim: nn.Sigmoid(),
    "tanh": lambda dim: nn.Tanh(),
    "silu": lambda dim: nn.SiLU(),
}

#: The modules of :data:`REGISTRY` that act on each entry alone, without parameters or randomness: any leading
#: dimensions pass through them (a stacked group's members, ``RPNNetwork.carries_members``).
ELEMENTWISE = (nn.ReLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.SiLU)


def _normalize(specs) -> list:
    if specs is None:
        return []
    if isinstance(specs, (str, Mapping)) or callable(specs):
        return [specs]
    if isinstance(specs, Sequence):
        return list(specs)
    raise ValueError(f"processing spec {specs!r} is not a name, a mapping or a list of them")


def build_processing(specs, dim: int) -> nn.Sequential:
    """``nn.Sequential`` of the modules named by ``specs`` for features of width ``dim``."""
    modules = []
    for spec in _normalize(specs):
        if isinstance(spec, str):
            name, kwargs = spec, {}
        elif isinstance(spec, Mapping):
            kwargs = dict(spec)
            name = kwargs.pop("name", None)
        else:
            modules.append(spec(dim))
            continue
        if name not in REGISTRY:
            raise ValueError(
                f"unknown processing {name!r}; valid choices: {sorted(REGISTRY)} (or register a new one with "
                "rpn_exp.functions.processing.register)"
            )
        modules.append(REGISTRY[name](dim, **kwargs))
    return nn.Sequential(*modules)


def plain_layer_norm_eps(module: nn.Sequential) -> float | None:
    """The eps of ``module`` when it is exactly one LayerNorm without affine parameters; None otherwise."""
    plain = (len(module) == 1 and isinstance(module[0], nn.LayerNorm) and not module[0].elementwise_affine
             and len(module[0].normalized_shape) == 1)
    return module[0].eps if plain else None
