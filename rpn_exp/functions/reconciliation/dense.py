"""ψ families whose W is dense: identity, masking, and the constant families (l = 0)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rpn_exp.functions.reconciliation.base import Reconciliation, Structure, dense_variance


class _DenseReconciliation(Reconciliation):
    """W = reshape(w): l = nD, w ~ U(±1/√D) (exactly PyTorch's dense initialization; U(±√(3·variance)) in general)."""

    degree = 1

    def pieces(self, n, D):
        return [("W", (n, D))]

    def init_w(self, n, D, channels=1, generator=None, variance=None):
        variance = dense_variance(D) if variance is None else variance
        bound = math.sqrt(3.0 * variance / self._keep_fraction())
        return (torch.rand(channels, n * D, generator=generator) * 2 - 1) * bound

    def _keep_fraction(self) -> float:
        return 1.0


class IdentityReconciliation(_DenseReconciliation):
    """ψ(w) = reshape(w) ∈ R^{n×D}; l = nD. The l entries of w in any shape -> W (n, D); more, w (..., l) ->
    W (..., n, D) (``leading_dims``)."""

    name = "identity"
    width_pads = True
    leading_dims = True

    def factors(self, w, n, D, state=None):
        return w.reshape(n, D) if w.numel() == n * D else w.reshape(*w.shape[:-1], n, D)


class MaskingReconciliation(_DenseReconciliation):
    """ψ(w) = M ∘ reshape(w), M_ij ~ Bernoulli(p) (p = probability an entry is kept); l = nD.

    With ``fixed_mask`` the mask is drawn once per layer and kept as a buffer; otherwise a new mask is
    drawn on every call. Init: w ~ U(±1/√(pD)), so M ∘ W has variance 1/(3D).
    """

    name = "masking"

    def __init__(self, p: float = 0.5, fixed_mask: bool = True, seed: int = 0):
        super().__init__(seed)
        if not 0.0 < p <= 1.0:
            raise ValueError(f"masking reconciliation: p={p!r} is invalid; p is a keep probability in (0, 1]")
        self.p, self.fixed_mask = p, fixed_mask
        self.stochastic = not fixed_mask  # a new mask per training step; the expected mask p·1 in evaluation

    def hparams(self, n, D):
        return {"p": self.p}

    def expected_state(self, n, D, like):
        return {"mask": torch.full((n, D), self.p, dtype=like.dtype, device=like.device)}

    def _keep_fraction(self):
        return self.p

    def _mask(self, n, D, generator=None):
        return (torch.rand(n, D, generator=generator) < self.p).float()

    def create_state(self, n, D, generator=None, variance=None):
        return {"mask": self._mask(n, D, generator)} if self.fixed_mask else {}

    def factors(self, w, n, D, state=None):
        W = self.split(w, n, D)["W"]
        mask = (state or {}).get("mask")
        return W * (self._mask(n, D).to(W.device) if mask is None else mask)


class ConstantReconciliation(Reconciliation):
    """ψ(w) = c·1_{n×D}; l = 0. x Wᵀ = c·(Σ_j x_j) in every output, without building W."""

    name = "constant"
    constant_rows = True

    def __init__(self, c: float = 1.0, seed: int = 0):
        super().__init__(seed)
        self.c = float(c)

    def pieces(self, n, D):
        return []

    def hparams(self, n, D):
        return {"c": self.c}

    def structure(self, n, D):
        return Structure(cheap_linear=True)

    def factor_std(self, n, D, variance):
        return 0.0

    def factors(self, w, n, D, state=None):
        self.split(w, n, D)  # checks that w is empty
        return torch.full((n, D), self.c, dtype=w.dtype, device=w.device)

    def linear(self, x, w, n, D, state=None):
        return (self.c * x.sum(dim=1, keepdim=True)).expand(-1, n)

    def rank_bound(self, n, D):
        return int(self.c != 0)  # c·1 has rank 1 (0 for c = 0)


class ZeroReconciliation(ConstantReconciliation):
    """ψ(w) = 0_{n×D}; l = 0."""

    name = "zero"

    def __init__(self, seed: int = 0):
        super().__init__(c=0.0, seed=seed)


class OneReconciliation(ConstantReconciliation):
    """ψ(w) = 1_{n×D}; l = 0."""

    name = "one"

    def __init__(self, seed: int = 0):
        super().__init__(c=1.0, seed=seed)


class ConstantEyeReconciliation(ConstantReconciliation):
    """ψ(w) = I_{n×D} (ones on the main diagonal); l = 0."""

    name = "constant_eye"
    constant_rows = False

    def __init__(self, seed: int = 0):
        super().__init__(c=1.0, seed=seed)

    def hparams(self, n, D):
        return {}

    def factors(self, w, n, D, state=None):
        self.split(w, n, D)
        return torch.eye(n, D, dtype=w.dtype, device=w.device)

    def linear(self, x, w, n, D, state=None):
        k = min(n, D)
        return F.pad(x[:, :k], (0, n - k))

    def rank_bound(self, n, D):
        return min(n, D)
