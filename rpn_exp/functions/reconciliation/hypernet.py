"""ψ families that make W with a small network from a short code w (l given, not derived from n and D): hypernet
and random_matrix_hypernet. Their W is dense; its scale is set by frozen random matrices drawn for the target
variance (measured on 256 draws of w)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rpn_exp.functions.reconciliation.base import Reconciliation, dense_variance
from rpn_exp.functions.shapes import check_positive_int


def _probes(l: int, generator: torch.Generator | None, count: int = 256) -> torch.Tensor:
    """``count`` draws of w ~ N(0, I_l), to measure a hypernet's hidden code at initialization."""
    return torch.randn(count, l, generator=generator)


def _scale_for(codes: torch.Tensor, variance: float) -> float:
    """Std of an N(0, σ²) output matrix M so that M·code has the given variance: σ² = variance / E‖code‖².

    On the meta device (a network built for its shapes only) there are no values to measure: 1.
    """
    if codes.is_meta:
        return 1.0
    return math.sqrt(variance / codes.square().sum(1).mean().clamp_min(1e-12).item())


#: The largest frozen matrix a reconciliation allocates (elements: 1 GiB in float32); larger ones are refused.
MAX_STATE_ELEMENTS = 2**28


def _check_state_size(owner: str, n: int, D: int, width: int, width_name: str) -> None:
    """Refuse an n·D × width frozen matrix beyond MAX_STATE_ELEMENTS with what to change instead."""
    size = n * D * width
    if size > MAX_STATE_ELEMENTS:
        raise ValueError(
            f"{owner}: its frozen output matrix would be n·D × {width_name} = {n}·{D} × {width} = {size:,} values "
            f"({size * 4 / 2**30:.1f} GiB in float32, the limit is {MAX_STATE_ELEMENTS * 4 / 2**30:.0f} GiB); lower "
            f"{width_name}, use a narrower expansion, or give this layer a structured reconciliation (e.g. dual_lphm)"
        )


class _CodeReconciliation(Reconciliation):
    """A W linear in one frozen output matrix (``output``) applied to a code of w: the channel average is
    calibrated by scaling that matrix, which the channels share (their codes correlate)."""

    output: str

    def calibrate(self, w, n, D, variance, state=None):
        gain = self.average_gain(w, n, D, variance, state)
        with torch.no_grad():
            state[self.output].mul_(gain)
        return w, state


class HypernetReconciliation(_CodeReconciliation):
    """ψ(w) = reshape(MLP(w)), MLP: l → hidden_dim (ReLU) → nD; l is given, not derived from n, D.

    With ``static`` (default) the MLP is frozen (buffers); otherwise its weights are learnable too.
    Init: w ~ N(0, 1); the output layer is N(0, σ²) with σ² = variance / E‖h‖², h the hidden code of w,
    so W has the target variance at init (E‖h‖² measured over 256 draws of w).
    """

    name = "hypernet"
    output = "net_1_weight"

    def __init__(self, l: int = 64, hidden_dim: int = 128, static: bool = True, seed: int = 0):
        super().__init__(seed)
        owner = "hypernet reconciliation"
        self.l = check_positive_int(l, name="l", owner=owner)
        self.hidden_dim = check_positive_int(hidden_dim, name="hidden_dim", owner=owner)
        self.static = static

    def pieces(self, n, D):
        return [("w", (self.l,))]

    def hparams(self, n, D):
        return {"l": self.l, "hidden_dim": self.hidden_dim}

    def factor_std(self, n, D, variance):
        return 1.0

    def create_state(self, n, D, generator=None, variance=None):
        variance = dense_variance(D) if variance is None else variance
        h = self.hidden_dim
        _check_state_size("hypernet reconciliation", n, D, h, "hidden_dim")
        first = torch.randn(h, self.l, generator=generator) / math.sqrt(self.l)
        first_bias = torch.zeros(h)
        hidden = torch.relu(_probes(self.l, generator) @ first.T)
        second = torch.randn(n * D, h, generator=generator) * _scale_for(hidden, variance)
        state = {"net_0_weight": first, "net_0_bias": first_bias, "net_1_weight": second}
        if not self.static:
            state = {k: nn.Parameter(v) for k, v in state.items()}
        return state

    def factors(self, w, n, D, state=None):
        state = self.state_or_default(n, D, state)
        hidden = torch.relu(F.linear(self.split(w, n, D)["w"], state["net_0_weight"], state["net_0_bias"]))
        return F.linear(hidden, state["net_1_weight"]).reshape(n, D)


class RandomMatrixHypernetReconciliation(_CodeReconciliation):
    """ψ(w) = reshape(((σ((w P) Qᵀ)) S) Tᵀ) ∈ R^{n×D}, σ the sigmoid, with fixed random
    P (l×r), Q (hidden_dim×r), S (hidden_dim×r), T (nD×r); l is given.

    Init: w ~ N(0, 1); P ~ N(0, 1/l), Q ~ N(0, 1/r) keep the pre-activation at unit variance,
    S ~ N(0, 1/hidden_dim) and T ~ N(0, variance / E‖z‖²) for the code z = σ(w P Qᵀ) S, so W has the
    target variance.
    """

    name = "random_matrix_hypernet"
    output = "T"

    def __init__(self, r: int = 2, l: int = 64, hidden_dim: int = 128, seed: int = 0):
        super().__init__(seed)
        owner = "random_matrix_hypernet reconciliation"
        self.r = check_positive_int(r, name="r", owner=owner)
        self.l = check_positive_int(l, name="l", owner=owner)
        self.hidden_dim = check_positive_int(hidden_dim, name="hidden_dim", owner=owner)

    def pieces(self, n, D):
        return [("w", (self.l,))]

    def hparams(self, n, D):
        return {"r": self.r, "l": self.l, "hidden_dim": self.hidden_dim}

    def factor_std(self, n, D, variance):
        return 1.0

    def create_state(self, n, D, generator=None, variance=None):
        variance = dense_variance(D) if variance is None else variance
        r, h, l = self.r, self.hidden_dim, self.l
        _check_state_size("random_matrix_hypernet reconciliation", n, D, r, "r")
        P = torch.randn(l, r, generator=generator) / math.sqrt(l)
        Q = torch.randn(h, r, generator=generator) / math.sqrt(r)
        S = torch.randn(h, r, generator=generator) / math.sqrt(h)
        code = self._code(_probes(l, generator), P, Q, S)
        T = torch.randn(n * D, r, generator=generator) * _scale_for(code, variance)
        return {"P": P, "Q": Q, "S": S, "T": T}

    @staticmethod
    def _code(w, P, Q, S):
        return torch.sigmoid((w @ P) @ Q.T) @ S

    def factors(self, w, n, D, state=None):
        state = self.state_or_default(n, D, state)
        code = self._code(self.split(w, n, D)["w"], state["P"], state["Q"], state["S"])
        return (state["T"] @ code).reshape(n, D)
