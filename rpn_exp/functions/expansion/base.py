"""The κ protocol: ``calculate_D(m)`` (the true output width) and ``__call__(x)``, x (batch, m) -> κ(x) (batch, D),
with per-layer ``postprocess`` modules, and what κ declares about κ(x) (``structure(m)``: a product layout, the
normalisation over it); and the simplest expansions (identity, reciprocal, linear).

A κ that lays κ(x) out as a product ``u ⊗ [1, t]`` declares it (``product_layout(m)``) and gives the factors
(``product_factors(x)``): a layer then applies a Kronecker W as (A u) ⊗ (B [1, t]) and any other W as a bilinear
form in (u, [1, t]), never building κ(x) (``rpn_exp.nn.head``). The Taylor expansion declares it; so can yours.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rpn_exp.functions.base import Function
from rpn_exp.functions.processing import build_processing, plain_layer_norm_eps


@dataclass(frozen=True)
class ProductLayout:
    """κ(x) = u ⊗ [1, t] row by row, or [1, t] ⊗ u (``ones_first``), for the factors ``(u, t)`` of
    ``Expansion.product_factors(x)``: u (b, ``u_width``) and t (b, D/u_width − 1).

    For the Taylor expansion of order d, u = x and t = κ_{d−1}(x) (``ones_first`` in its reference order).
    ``leading_dims``: ``product_factors`` also takes x (..., b, m) with leading dimensions and keeps them in u and t,
    so a stacked group's members (x (K, b, m)) need no ``vmap`` on the product path (``RPNHead.carries_members``).
    """

    u_width: int
    ones_first: bool = False
    leading_dims: bool = False

    def factors(self, u: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(left, right) with κ = left ⊗ right: (u, [1, t]), or ([1, t], u) when ``ones_first``."""
        v = torch.cat([t.new_ones(t.shape[0], 1), t], dim=1)
        return (v, u) if self.ones_first else (u, v)

    def left_width(self, D: int) -> int:
        """The width of ``left`` for a κ of width D."""
        return D // self.u_width if self.ones_first else self.u_width

    def kappa(self, u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """κ = left ⊗ right built, (b, D)."""
        left, right = self.factors(u, t)
        return (left.unsqueeze(2) * right.unsqueeze(1)).reshape(u.shape[0], -1)


@dataclass(frozen=True)
class ExpansionStructure:
    """What a κ declares about κ(x) for inputs of width m, before any input exists (``Expansion.structure(m)``).

    * ``product``: its :class:`ProductLayout`, or None when κ(x) has none;
    * ``processed``: whether post-processing modules follow κ (``postprocess``);
    * ``norm_eps``: when that post-processing is exactly a non-affine layer norm, its eps (None otherwise): the
      fused paths fold it in from the factors' moments;
    * ``identity``: κ(x) = x exactly (D = m, nothing follows it): W applies to x itself (a grid layer convolves).
    """

    product: ProductLayout | None = None
    processed: bool = False
    norm_eps: float | None = None
    identity: bool = False

    @property
    def fused(self) -> bool:
        """Whether a layer may apply W to κ(x) through its factors: a product layout whose post-processing, if
        any, is a layer norm it folds in."""
        return self.product is not None and (not self.processed or self.norm_eps is not None)


class Expansion(Function):
    """Base class: κ(x) for x of shape (batch, m), width ``calculate_D(m)``."""

    name = "expansion"
    #: Whether κ(x) = x (a subclass that is the identity says so; declared in :meth:`structure`).
    identity = False

    def __init__(self, postprocess=None):
        self.postprocess = postprocess

    def calculate_D(self, m: int) -> int:
        raise NotImplementedError

    def product_layout(self, m: int) -> ProductLayout | None:
        """κ(x)'s product layout for inputs of width m, if it has one (then implement :meth:`product_factors`)."""
        return None

    def product_factors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, t) of the declared :class:`ProductLayout`, x (b, m) -> u (b, u_width), t (b, D/u_width − 1)."""
        raise NotImplementedError(f"{type(self).__name__} declares no product layout")

    def structure(self, m: int) -> ExpansionStructure:
        """What this κ declares for inputs of width m: its product layout and the normalisation over κ."""
        postprocess = self.build_postprocess(1)  # the modules' kinds and settings, at any width
        return ExpansionStructure(self.product_layout(m), bool(len(postprocess)), plain_layer_norm_eps(postprocess),
                                  identity=self.identity and not len(postprocess))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """κ(x), (b, D); by default built from the declared product layout."""
        layout = self.product_layout(x.shape[-1])
        if layout is None:
            raise NotImplementedError
        return layout.kappa(*self.product_factors(x))

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
        parts = self.basis(x)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)  # one part (identity: x itself) is not copied


class IdentityExpansion(_ElementwiseExpansion):
    """κ(x) = x; D = m."""

    name = "identity"
    identity = True

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
