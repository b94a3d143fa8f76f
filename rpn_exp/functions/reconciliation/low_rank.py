"""ψ families with a thin factorization W = U Vᵀ: lorr and random_matrix_adaption."""

from __future__ import annotations

import math

import torch

from rpn_exp.functions.factors import LowRank
from rpn_exp.functions.reconciliation.base import (
    LOW_RANK,
    Reconciliation,
    Structure,
    dense_variance,
    normalized_normal,
)
from rpn_exp.functions.shapes import check_positive_int


class LowRankReconciliation(Reconciliation):
    """lorr: ψ(w) = A Bᵀ, A (n×r), B (D×r); l = r(n + D). Init σ = (variance / r)^{1/4}."""

    name = "lorr"
    degree = 2
    rank_pads = True

    def __init__(self, r: int = 5, seed: int = 0):
        super().__init__(seed)
        self.r = check_positive_int(r, name="r", owner="lorr reconciliation")

    def pieces(self, n, D):
        return [("A", (n, self.r)), ("B", (D, self.r))]

    def hparams(self, n, D):
        return {"r": self.r}

    def structure(self, n, D):
        return Structure(LOW_RANK)

    def factor_std(self, n, D, variance):
        return (variance / self.r) ** 0.25

    def factors(self, w, n, D, state=None):
        parts = self.split(w, n, D)
        return LowRank(parts["A"], parts["B"])

    def max_rank(self, n, D):
        return min(n, D)

    def rank_bound(self, n, D):
        return min(self.r, n, D)


class RandomMatrixAdaptionReconciliation(Reconciliation):
    """ψ(w) = diag(λ₁) A diag(λ₂) Bᵀ with A (n×r), B (D×r) fixed N(0, 1) buffers; w = [λ₁ (n), λ₂ (r)];
    l = n + r. Init: λ₂ = 1, λ₁ ~ N(0, variance / r) (normalized), so W has the target variance.
    """

    name = "random_matrix_adaption"

    def __init__(self, r: int = 2, seed: int = 0):
        super().__init__(seed)
        self.r = check_positive_int(r, name="r", owner="random_matrix_adaption reconciliation")

    def pieces(self, n, D):
        return [("lambda1", (n,)), ("lambda2", (self.r,))]

    def hparams(self, n, D):
        return {"r": self.r}

    def structure(self, n, D):
        return Structure(LOW_RANK)

    def init_w(self, n, D, channels=1, generator=None, variance=None):
        std = math.sqrt((dense_variance(D) if variance is None else variance) / self.r)
        lambda1 = torch.stack([normalized_normal((n,), std, generator) for _ in range(channels)])
        return torch.cat([lambda1, torch.ones(channels, self.r)], dim=1)

    def create_state(self, n, D, generator=None, variance=None):
        return {"A": torch.randn(n, self.r, generator=generator), "B": torch.randn(D, self.r, generator=generator)}

    def calibrate(self, w, n, D, variance, state=None):
        """W is linear in λ₁: every channel's λ₁ is scaled (the random A and B set W's scale otherwise)."""
        gain = self.average_gain(w, n, D, variance, state)
        with torch.no_grad():
            w[:, :n] *= gain
        return w, state

    def factors(self, w, n, D, state=None):
        parts, state = self.split(w, n, D), self.state_or_default(n, D, state)
        return LowRank(parts["lambda1"][:, None] * state["A"] * parts["lambda2"], state["B"])

    def linear(self, x, w, n, D, state=None):
        """((x B) λ₂ Aᵀ) λ₁: the diagonal scalings applied to the thin products."""
        parts, state = self.split(w, n, D), self.state_or_default(n, D, state)
        return (((x @ state["B"]) * parts["lambda2"]) @ state["A"].T) * parts["lambda1"]

    def max_rank(self, n, D):
        return min(n, D)

    def rank_bound(self, n, D):
        return min(self.r, n, D)
