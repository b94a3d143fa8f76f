"""A network of RPN layers over widths [m, h_1, ..., n]."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from rpn_exp.functions.processing import ELEMENTWISE, build_processing
from rpn_exp.functions.shapes import is_positive_int
from rpn_exp.nn.layer import RPNLayer


class RPNNetwork(nn.Module):
    """A stack of RPN layers over ``widths`` = [m, h_1, ..., n] (e.g. [784, 64, 64, 10]).

    ``layer_overrides`` maps a layer index (0-based) to keyword arguments of :class:`RPNLayer` that
    replace the shared ones for that layer (e.g. ``{2: {"reconciliation": IdentityReconciliation()}}``).
    ``activation`` (a processing spec, e.g. ``"relu"``) is applied between layers, not after the last: with identity
    expansion and reconciliation and a bias, that is a dense multilayer perceptron.
    """

    def __init__(self, widths: Sequence[int], *, layer_overrides: Mapping[int, Mapping] | None = None,
                 activation=None, **shared):
        super().__init__()
        widths = list(widths)
        if len(widths) < 2 or not all(map(is_positive_int, widths)):
            raise ValueError(f"widths={widths} is invalid; give at least two positive integers, e.g. [64, 32, 10]")
        overrides = {int(k): dict(v) for k, v in (layer_overrides or {}).items()}
        bad = sorted(set(overrides) - set(range(len(widths) - 1)))
        if bad:
            raise ValueError(
                f"layer_overrides names layers {bad}, but the network has layers 0..{len(widths) - 2}"
            )
        self.widths = widths
        self.layers = nn.ModuleList(
            RPNLayer(m, n, name=f"layer {i}", index=i, **{**shared, **overrides.get(i, {})})
            for i, (m, n) in enumerate(zip(widths[:-1], widths[1:]))
        )
        self.activations = nn.ModuleList(build_processing(activation, n) for n in widths[1:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer, activation in zip(self.layers, [*self.activations, None]):
            x = layer(x)
            if activation is not None:
                x = activation(x)
        return x

    @property
    def carries_members(self) -> bool:
        """Whether :meth:`forward` also takes a stacked group's member dimension without ``vmap``
        (``rpn_exp.nn.stack.MemberStack``): every layer does and the activations between them act entry by entry."""
        return all(layer.carries_members for layer in self.layers) and all(
            isinstance(module, ELEMENTWISE) for activation in self.activations for module in activation)

    def describe(self) -> list[dict]:
        """One row per layer (see :meth:`RPNLayer.describe`)."""
        return [layer.describe() for layer in self.layers]
