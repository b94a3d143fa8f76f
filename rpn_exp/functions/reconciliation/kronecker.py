"""ψ families with a Kronecker form W = A ⊗ B: duplicated padding, hm, lphm and dual_lphm.

A (p×q) and B (n/p × D/q), each possibly low rank. ``x Wᵀ`` is computed as ``vec(A K Bᵀ)`` on each row reshaped to
K (q × D/q), never building W; with the Taylor expansion's κ = x ⊗ [1, x] and q = m the layer computes
(A x) ⊗ (B [1, x]) without building κ either.

``layout="reference"`` builds instead the W of the reference implementation (tinybig 0.2.1), from the same
parameter count: W = reshape_{n×D}(vec(A) vec(B)ᵀ), the outer product of the row-major flattened factors reshaped
row-major, with its low-rank factors read as P (p×r)·Q′ (r×q) and S (n/p × r)·T′ (r × D/q) (the slices of w
reshaped row-major). Its W is not A ⊗ B (rank 1 in its blocks rather than rank(A)·rank(B)); it reproduces
published numbers. Such a ψ declares the ``outer`` structure and is applied without building W either.
"""

from __future__ import annotations

import math

import torch

from rpn_exp.functions.factors import Factor, Kronecker, LowRank, Outer, dense, outer_segments
from rpn_exp.functions.reconciliation.base import KRONECKER, OUTER, Reconciliation, Structure
from rpn_exp.functions.shapes import check_positive_int, resolve_factor

#: How a Kronecker family lays its two factors out in W (``layout``).
LAYOUTS = ("kronecker", "reference")


class KroneckerReconciliation(Reconciliation):
    """W = A ⊗ B with A (p×q) and B (n/p × D/q): the base of the Kronecker families (module docstring).

    A family gives ``pieces`` and ``kron_factors(parts, n, D)`` -> (A, B); the rest follows.
    """

    def __init__(self, p: int | None = None, q: int | None = None, layout: str = "kronecker", seed: int = 0):
        super().__init__(seed)
        for key, value in (("p", p), ("q", q)):
            if value is not None:
                check_positive_int(value, name=key, owner=f"{self.name} reconciliation")
        if layout not in LAYOUTS:
            raise ValueError(f"{self.name} reconciliation: layout={layout!r} is invalid; valid choices: "
                             f"{', '.join(LAYOUTS)}")
        self.p, self.q, self.layout = p, q, layout

    @property
    def reference(self) -> bool:
        return self.layout == "reference"

    def dims(self, n: int, D: int) -> tuple[int, int, int, int]:
        """(p, q, n/p, D/q) with automatic p and q resolved for this n and D."""
        owner = f"{self.name} reconciliation"
        p = resolve_factor(self.p, n, factor="p", dim="n", owner=owner)
        q = resolve_factor(self.q, D, factor="q", dim="D", owner=owner)
        return p, q, n // p, D // q

    def hparams(self, n, D):
        p, q, _, _ = self.dims(n, D)
        return {"p": p, "q": q, **({"layout": self.layout} if self.reference else {})}

    def structure(self, n, D):
        if self.reference:
            return Structure(OUTER)
        p, q, _, _ = self.dims(n, D)
        return Structure(KRONECKER, blocks=(p, q))

    def kron_factors(self, parts: dict[str, torch.Tensor], n: int, D: int) -> tuple[Factor, Factor]:
        """(A, B) from the pieces of w."""
        raise NotImplementedError

    def factors(self, w, n, D, state=None):
        A, B = self.kron_factors(self.split(w, n, D), n, D)
        if self.reference:
            return Outer(dense(A).reshape(-1), dense(B).reshape(-1))
        return Kronecker(A, B)

    def factor_ranks(self, n: int, D: int) -> tuple[int, int]:
        """Upper bounds on rank(A) and rank(B) (A p×q, B n/p × D/q)."""
        p, q, s, t = self.dims(n, D)
        return min(p, q), min(s, t)

    def rank_bound(self, n, D):
        """rank(A ⊗ B) = rank(A)·rank(B) (at most min(n, D)). In the reference layout each row of W is a
        combination of the β·(segments) vectors of b read per row class and segment
        (:func:`~rpn_exp.functions.factors.outer_linear`)."""
        if self.reference:
            p, q, s, t = self.dims(n, D)
            beta, _, segments = outer_segments(n, D, p * q, s * t)
            return min(n, D, beta * segments)
        rank_a, rank_b = self.factor_ranks(n, D)
        return min(rank_a * rank_b, n, D)


class DuplicatedPaddingReconciliation(KroneckerReconciliation):
    """ψ(w) = 1_{p×q} ⊗ B, B (n/p × D/q); l = (n/p)(D/q). q defaults to p; both automatic if unset.

    Init: σ = √variance (every entry of W is an entry of B).
    """

    name = "duplicated_padding"
    degree = 1

    def __init__(self, p: int | None = None, q: int | None = None, layout: str = "kronecker", seed: int = 0):
        super().__init__(p=p, q=q if q is not None else p, layout=layout, seed=seed)

    def pieces(self, n, D):
        _, _, s, t = self.dims(n, D)
        return [("B", (s, t))]

    def factor_std(self, n, D, variance):
        return math.sqrt(variance)

    def kron_factors(self, parts, n, D):
        p, q, _, _ = self.dims(n, D)
        B = parts["B"]
        return B.new_ones(p, q), B

    def factor_ranks(self, n, D):
        _, _, s, t = self.dims(n, D)
        return 1, min(s, t)  # A = 1_{p×q}

    def linear(self, x, w, n, D, state=None):
        """(1 ⊗ B) x: the q column blocks of each row summed, then B applied and repeated p times."""
        if self.reference:
            return super().linear(x, w, n, D, state)
        p, q, s, t = self.dims(n, D)
        B = self.split(w, n, D)["B"]
        return (x.reshape(-1, q, t).sum(dim=1) @ B.T).repeat(1, p)


class DuplicatedDiagonalPaddingReconciliation(KroneckerReconciliation):
    """ψ(w) = I_p ⊗ B, B (n/p × D/p); l = (n/p)(D/p). p must divide both n and D.

    Init: σ = √(p·variance): a row of W has D/p non-zero entries, so its squared norm matches dense.
    """

    name = "duplicated_diagonal_padding"
    degree = 1

    def __init__(self, p: int | None = None, seed: int = 0):
        super().__init__(p=p, q=p, seed=seed)

    def dims(self, n, D):
        owner = f"{self.name} reconciliation"
        g = math.gcd(n, D)
        p = resolve_factor(self.p, g, factor="p", dim="gcd(n, D)", owner=owner)
        return p, p, n // p, D // p

    def hparams(self, n, D):
        return {"p": self.dims(n, D)[0]}

    def pieces(self, n, D):
        _, _, s, t = self.dims(n, D)
        return [("B", (s, t))]

    def factor_std(self, n, D, variance):
        return math.sqrt(self.dims(n, D)[0] * variance)

    def kron_factors(self, parts, n, D):
        p = self.dims(n, D)[0]
        B = parts["B"]
        return torch.eye(p, dtype=B.dtype, device=B.device), B

    def factor_ranks(self, n, D):
        p, _, s, t = self.dims(n, D)
        return p, min(s, t)  # A = I_p

    def linear(self, x, w, n, D, state=None):
        """(I_p ⊗ B) x: B applied to each of the p blocks of each row."""
        p, _, s, t = self.dims(n, D)
        B = self.split(w, n, D)["B"]
        return (x.reshape(-1, p, t) @ B.T).reshape(-1, n)


class HMReconciliation(KroneckerReconciliation):
    """hm: ψ(w) = A ⊗ B, A (p×q), B (n/p × D/q); l = pq + (n/p)(D/q). Init σ = variance^{1/4}."""

    name = "hm"
    degree = 2

    def pieces(self, n, D):
        p, q, s, t = self.dims(n, D)
        return [("A", (p, q)), ("B", (s, t))]

    def factor_std(self, n, D, variance):
        return variance ** 0.25

    def kron_factors(self, parts, n, D):
        return parts["A"], parts["B"]


class LPHMReconciliation(KroneckerReconciliation):
    """lphm: ψ(w) = A ⊗ (S Tᵀ), A (p×q), S (n/p × r), T (D/q × r); l = pq + r(n/p + D/q).

    Init σ = (variance / r)^{1/6}.
    """

    name = "lphm"
    degree = 3
    rank_pads = True

    def __init__(self, r: int = 5, p: int | None = None, q: int | None = None, layout: str = "kronecker",
                 seed: int = 0):
        super().__init__(p=p, q=q, layout=layout, seed=seed)
        self.r = check_positive_int(r, name="r", owner=f"{self.name} reconciliation")

    def hparams(self, n, D):
        return {"r": self.r, **super().hparams(n, D)}

    def pieces(self, n, D):
        p, q, s, t = self.dims(n, D)
        return [("A", (p, q)), ("S", (s, self.r)), ("T", (self.r, t) if self.reference else (t, self.r))]

    def factor_std(self, n, D, variance):
        return (variance / self.r) ** (1 / 6)

    def max_rank(self, n, D):
        _, _, s, t = self.dims(n, D)
        return min(s, t)  # S Tᵀ

    def factor_ranks(self, n, D):
        p, q, s, t = self.dims(n, D)
        return min(p, q), min(self.r, s, t)  # A, S Tᵀ

    def kron_factors(self, parts, n, D):
        return parts["A"], _low_rank(parts["S"], parts["T"], self.reference)


class DualLPHMReconciliation(LPHMReconciliation):
    """dual_lphm: ψ(w) = (P Qᵀ) ⊗ (S Tᵀ), P (p×r), Q (q×r), S (n/p × r), T (D/q × r);
    l = r(p + q + n/p + D/q). Init σ = (variance / r²)^{1/8}.
    """

    name = "dual_lphm"
    degree = 4

    def pieces(self, n, D):
        p, q, s, t = self.dims(n, D)
        r = self.r
        if self.reference:  # Q′ (r×q) and T′ (r × D/q): their slices of w reshaped row-major
            return [("P", (p, r)), ("Q", (r, q)), ("S", (s, r)), ("T", (r, t))]
        return [("P", (p, r)), ("Q", (q, r)), ("S", (s, r)), ("T", (t, r))]

    def factor_std(self, n, D, variance):
        return (variance / self.r**2) ** 0.125

    def max_rank(self, n, D):
        p, q, s, t = self.dims(n, D)
        return max(min(p, q), min(s, t))  # r still raises the rank of P Qᵀ or of S Tᵀ up to here

    def factor_ranks(self, n, D):
        p, q, s, t = self.dims(n, D)
        return min(self.r, p, q), min(self.r, s, t)  # P Qᵀ, S Tᵀ

    def kron_factors(self, parts, n, D):
        return _low_rank(parts["P"], parts["Q"], self.reference), _low_rank(parts["S"], parts["T"], self.reference)


def _low_rank(U: torch.Tensor, V: torch.Tensor, reference: bool) -> LowRank:
    """U Vᵀ from the pieces: V is stored (cols × r), or (r × cols) in the reference layout (U V′ with V′ = V)."""
    return LowRank(U, V.T if reference else V)
