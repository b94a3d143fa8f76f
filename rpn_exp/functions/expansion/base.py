"""The κ protocol: ``calculate_D(m)`` (the true output width) and ``__call__(x)``, x (batch, m) -> κ(x) (batch, D),
with per-layer ``postprocess`` modules; and the simplest expansions (identity, reciprocal, linear)."""

from __future__ import annotations

import torch

from rpn_exp.functions.base import Function
from rpn_exp.functions.processing import build_processing


class Expansion(Function):
    """Base class: κ(x) for x of shape (batch, m), width ``calculate_D(m)``."""

    name = "expansion"

    def __init__(self, postprocess=None):
        self.postprocess = postprocess

    def calculate_D(self, m: int) -> int:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def build_postprocess(self, D: int) -> torch.nn.Sequential:
        """The per-layer post-processing modules for width D (empty when none)."""
        return build_processing(self.postprocess, D)



class _ElementwiseExpansion(Expansion):
    """κ(x) = [φ_1(x), ..., φ_k(x)] with each φ applied entry by entry: D = k·m."""

    def orders(self) -> int:
        raise NotImplementedError

    def basis(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def calculate_D(self, m):
        return self.orders() * m

    def forward(self, x):
        return torch.cat(self.basis(x), dim=-1)


class IdentityExpansion(_ElementwiseExpansion):
    """κ(x) = x; D = m."""

    name = "identity"

    def orders(self):
        return 1

    def basis(self, x):
        return [x]


class ReciprocalExpansion(_ElementwiseExpansion):
    """κ(x) = 1/x, with |x| clamped to at least ``eps`` (sign kept); D = m."""

    name = "reciprocal"

    def __init__(self, eps: float = 1e-6, postprocess=None):
        super().__init__(postprocess)
        self.eps = eps

    def orders(self):
        return 1

    def basis(self, x):
        sign = torch.where(x < 0, -1.0, 1.0).to(x.dtype)
        return [sign / x.abs().clamp_min(self.eps)]


class LinearExpansion(_ElementwiseExpansion):
    """κ(x) = c·x; D = m."""

    name = "linear"

    def __init__(self, c: float = 1.0, postprocess=None):
        super().__init__(postprocess)
        self.c = c

    def orders(self):
        return 1

    def basis(self, x):
        return [self.c * x]


#: How the Taylor features are ordered (``TaylorExpansion.order``).
