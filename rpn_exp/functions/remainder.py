"""Remainder functions π: R^m → R^n, added to the RPN layer's output.

Interface: ``pi.check(m, n)`` raises ValueError for shapes it cannot serve, ``pi.create_state(m, n)``
returns its per-layer tensors (``nn.Parameter`` entries are learnable) and ``pi(x, n, state)`` returns
(batch, n), or None for the zero remainder (nothing to add).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rpn_exp.functions.base import Function

__all__ = ["Remainder", "ZeroRemainder", "IdentityRemainder", "LinearRemainder", "ConstantRemainder"]


class Remainder(Function):
    name = "remainder"
    #: Whether π(x) also takes x (..., b, m) with leading dimensions (a stacked group's members, no ``vmap``).
    leading_dims = False

    def check(self, m: int, n: int) -> None:
        """Raise ValueError when this remainder cannot map R^m to R^n."""

    def create_state(self, m: int, n: int, generator: torch.Generator | None = None) -> dict:
        return {}

    def rank_bound(self, m: int, n: int) -> int:
        """An upper bound on the rank π adds to the layer's linear map (min(m, n) for a matrix)."""
        return min(m, n)

    def __call__(self, x: torch.Tensor, n: int, state: dict | None = None) -> torch.Tensor | None:
        raise NotImplementedError



class ZeroRemainder(Remainder):
    """π(x) = 0."""

    name = "zero"
    leading_dims = True

    def __call__(self, x, n, state=None):
        return None

    def rank_bound(self, m, n):
        return 0


class IdentityRemainder(Remainder):
    """π(x) = x; requires m = n."""

    name = "identity"

    def check(self, m, n):
        if m != n:
            raise ValueError(
                f"identity remainder needs equal input and output widths, got m={m}, n={n}; a linear or a zero "
                "remainder serves any widths"
            )

    def __call__(self, x, n, state=None):
        return x


class LinearRemainder(Remainder):
    """π(x) = x W_πᵀ (+ b_π), W_π ∈ R^{n×m} learnable, PyTorch's default initialization."""

    name = "linear"

    def __init__(self, bias: bool = False):
        self.bias = bias

    def create_state(self, m, n, generator=None):
        bound = 1.0 / math.sqrt(m)
        state = {"weight": nn.Parameter((torch.rand(n, m, generator=generator) * 2 - 1) * bound)}
        if self.bias:
            state["bias"] = nn.Parameter((torch.rand(n, generator=generator) * 2 - 1) * bound)
        return state

    def __call__(self, x, n, state=None):
        weight, bias = state["weight"], state.get("bias")
        return F.linear(x, weight, bias)


class ConstantRemainder(Remainder):
    """π(x) = c·1_n."""

    name = "constant"

    def __init__(self, c: float = 1.0):
        self.c = float(c)

    def __call__(self, x, n, state=None):
        return x.new_full((x.shape[0], n), self.c)

    def rank_bound(self, m, n):
        return 0  # a constant shift: it does not depend on x
