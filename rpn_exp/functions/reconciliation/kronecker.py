"""ψ families with a Kronecker form W = A ⊗ B: duplicated padding, hm, lphm and dual_lphm.

A (p×q) and B (n/p × D/q), each possibly low rank. hm, lphm and dual_lphm also build sums of k such terms,
W = Σᵢ₌₁ᵏ Aᵢ ⊗ Bᵢ (as PHM layers do), each term made as the family makes its one term: l(k) = k·l(1) and
rank(W) ≤ k·rank(A)·rank(B). ``x Wᵀ`` is computed as ``vec(A K Bᵀ)`` on each row reshaped to
K (q × D/q), never building W; with the Taylor expansion's κ = x ⊗ [1, x] and q = m the layer computes
(A x) ⊗ (B [1, x]) without building κ either.

``layout="reference"`` builds instead the W of the reference implementation (tinybig 0.2.1), from the same
parameter count: W = reshape_{n×D}(vec(A) vec(B)ᵀ), the outer product of the row-major flattened factors reshaped
row-major, with its low-rank factors read as P (p×r)·Q′ (r×q) and S (n/p × r)·T′ (r × D/q) (the slices of w
reshaped row-major). Its W is not A ⊗ B (rank 1 in its blocks rather than rank(A)·rank(B)); it reproduces
published numbers. Such a ψ declares the ``outer`` structure and is applied without building W either.
"""

from __future__ import annotations

import functools
import math

import torch

from rpn_exp.functions.factors import Factor, Kronecker, KroneckerSum, LowRank, Outer, dense
from rpn_exp.functions.outer import outer_segments
from rpn_exp.functions.reconciliation.base import KRONECKER, OUTER, Pieces, Reconciliation, Structure
from rpn_exp.functions.shapes import check_positive_int, resolve_factor

#: How a Kronecker family lays its two factors out in W (``layout``).
LAYOUTS = ("kronecker", "reference")


class KroneckerReconciliation(Reconciliation):
    """W = Σᵢ₌₁ᵏ Aᵢ ⊗ Bᵢ with Aᵢ (p×q) and Bᵢ (n/p × D/q): the base of the Kronecker families (module docstring).

    A family gives one term: ``term_pieces``, ``term_std`` and ``kron_factors(parts, n, D)`` -> (A, B); the sum
    over k terms, its pieces (``A1, B1, A2, B2, ...`` for k > 1, today's names for k = 1), its initialization
    (each term drawn for variance/k) and its rank bound follow. A family that takes k sets ``sums``.

    p and q follow the p/q rule (:func:`~rpn_exp.functions.shapes.resolve_factor`): unset, the automatic choice
    for each layer; given, that value on every layer it divides and the largest divisor below it elsewhere; the
    values in force are in :meth:`hparams`.
    """

    #: Whether the family takes a number of Kronecker terms k (hm, lphm, dual_lphm; a sum of padded terms
    #: 1 ⊗ Bᵢ is one padded term again).
    sums: bool = False

    def __init__(self, p: int | None = None, q: int | None = None, layout: str = "kronecker", seed: int = 0,
                 k: int = 1):
        super().__init__(seed)
        owner = f"{self.name} reconciliation"
        for key, value in (("p", p), ("q", q)):
            if value is not None:
                check_positive_int(value, name=key, owner=owner)
        if layout not in LAYOUTS:
            raise ValueError(f"{owner}: layout={layout!r} is invalid; valid choices: {', '.join(LAYOUTS)}")
        self.k = check_positive_int(k, name="k", owner=owner)
        if self.k > 1 and layout != "kronecker":
            raise ValueError(f"{owner}: k={k} needs layout=kronecker; the {layout} layout has one term only "
                             f"(give k=1 or layout=kronecker)")
        self.p, self.q, self.layout = p, q, layout

    @property
    def reference(self) -> bool:
        return self.layout == "reference"

    def requested(self) -> dict[str, int]:
        """The p and q asked for (None: automatic), before the p/q rule fits them to a layer."""
        return {key: value for key, value in (("p", self.p), ("q", self.q)) if value is not None}

    def factor_dims(self, n: int, D: int) -> dict[str, int]:
        """The width each factor must divide: p divides n, q divides D."""
        return {"p": n, "q": D}

    def dims(self, n: int, D: int) -> tuple[int, int, int, int]:
        """(p, q, n/p, D/q) in force for this n and D (the p/q rule)."""
        owner = f"{self.name} reconciliation"
        p = resolve_factor(self.p, n, factor="p", owner=owner)
        q = resolve_factor(self.q, D, factor="q", owner=owner)
        return p, q, n // p, D // q

    def hparams(self, n, D):
        p, q, _, _ = self.dims(n, D)
        return {**({"k": self.k} if self.sums else {}), "p": p, "q": q,
                **({"layout": self.layout} if self.reference else {})}

    def structure(self, n, D):
        if self.reference:
            return Structure(OUTER)
        p, q, _, _ = self.dims(n, D)
        return Structure(KRONECKER, blocks=(p, q))

    def term_pieces(self, n: int, D: int) -> Pieces:
        """How one term's part of w splits (the pieces of w when k = 1)."""
        raise NotImplementedError

    def pieces(self, n, D):
        one = self.term_pieces(n, D)
        if self.k == 1:
            return one
        return [(f"{name}{i}", shape) for i in range(1, self.k + 1) for name, shape in one]

    def term_std(self, n: int, D: int, variance: float) -> float:
        """The std of every piece of one term for Var((A ⊗ B)_ij) = ``variance``."""
        raise NotImplementedError

    def factor_std(self, n, D, variance):
        """Each of the k independent terms carries variance/k, so their sum has ``variance``."""
        return self.term_std(n, D, variance / self.k)

    def kron_factors(self, parts: dict[str, torch.Tensor], n: int, D: int) -> tuple[Factor, Factor]:
        """(A, B) of one term from its pieces (named as in ``term_pieces``)."""
        raise NotImplementedError

    def factors(self, w, n, D, state=None):
        parts = self.split(w, n, D)
        if self.k == 1:
            A, B = self.kron_factors(parts, n, D)
            return Outer(dense(A).reshape(-1), dense(B).reshape(-1)) if self.reference else Kronecker(A, B)
        names = [name for name, _ in self.term_pieces(n, D)]
        return KroneckerSum(tuple(
            Kronecker(*self.kron_factors({name: parts[f"{name}{i}"] for name in names}, n, D))
            for i in range(1, self.k + 1)))

    def factor_ranks(self, n: int, D: int) -> tuple[int, int]:
        """Upper bounds on rank(A) and rank(B) of one term (A p×q, B n/p × D/q)."""
        p, q, s, t = self.dims(n, D)
        return min(p, q), min(s, t)

    def rank_bound(self, n, D):
        """rank(A ⊗ B) = rank(A)·rank(B) (at most min(n, D)); for a sum of k terms, :func:`kron_sum_rank`. In the
        reference layout each row of W is a combination of the β·(segments) vectors of b read per row class and
        segment (:func:`~rpn_exp.functions.outer.outer_linear`)."""
        p, q, s, t = self.dims(n, D)
        if self.reference:
            beta, _, segments = outer_segments(n, D, p * q, s * t)
            return min(n, D, beta * segments)
        rank_a, rank_b = self.factor_ranks(n, D)
        if self.k == 1:
            return min(rank_a * rank_b, n, D)
        return kron_sum_rank(self.k, (p, q), (s, t), rank_a, rank_b)


@functools.lru_cache(maxsize=256)
def kron_sum_rank(k: int, a_shape: tuple[int, int], b_shape: tuple[int, int], rank_a: int, rank_b: int) -> int:
    """The largest rank of W = Σᵢ₌₁ᵏ Aᵢ ⊗ Bᵢ with Aᵢ (p×q) of rank ≤ rank_a and Bᵢ (s×t) of rank ≤ rank_b.

    The columns of W lie in Σᵢ col(Aᵢ) ⊗ col(Bᵢ) ⊂ R^{ps} and its rows in Σᵢ row(Aᵢ) ⊗ row(Bᵢ) ⊂ R^{qt}; for
    subspaces in general position (which every w lies in the closure of) each sum has its largest dimension, at most
    k·rank_a·rank_b but less where the terms' subspaces must meet (two 3-dimensional col(Aᵢ) in R⁴ share a plane).
    The dimensions are found exactly from one draw of random bases (:func:`generic_span`), W never built; the bound
    is min(both dimensions), which a random draw of w attains (tests). The column side (ps = n) is counted first and
    the row side only up to it, so the work is bounded by n terms whatever k is.
    """
    generator = torch.Generator().manual_seed(0)
    (p, q), (s, t) = a_shape, b_shape
    columns = generic_span(k, (p, s), (rank_a, rank_b), generator, stop=min(p * s, q * t))
    return generic_span(k, (q, t), (rank_a, rank_b), generator, stop=columns)


def generic_span(k: int, rows: tuple[int, int], ranks: tuple[int, int], generator: torch.Generator,
                 stop: int) -> int:
    """dim Σᵢ₌₁ᵏ col(Uᵢ) ⊗ col(Vᵢ) for random Uᵢ (rows[0] × ranks[0]), Vᵢ (rows[1] × ranks[1]), counted up to
    ``stop``: terms are added one at a time (each generic term adds at least one dimension until the space is full,
    since the products U ⊗ V of all subspaces span it), so at most ``stop`` terms are drawn. Float64 orthonormal
    basis; a new direction counts when its part outside the basis is above 1e-8 of its length."""
    (rows_a, rows_b), (rank_a, rank_b) = rows, ranks
    stop = min(stop, rows_a * rows_b, k * min(rank_a, rows_a) * min(rank_b, rows_b))
    # At most ``stop`` terms are drawn, whose col(Uᵢ) span at most stop·rank_a dimensions: a generic projection onto
    # that many is one-to-one on them, so the count is the same with bases drawn in the smaller space.
    rows_a, rows_b = min(rows_a, stop * rank_a), min(rows_b, stop * rank_b)
    basis = torch.zeros(rows_a * rows_b, 0, dtype=torch.float64)
    for _ in range(k):
        if basis.shape[1] >= stop:
            break
        U = torch.randn(rows_a, rank_a, generator=generator, dtype=torch.float64)
        V = torch.randn(rows_b, rank_b, generator=generator, dtype=torch.float64)
        block = torch.kron(U, V)  # columns uᵢ ⊗ vⱼ
        scale = block.norm(dim=0).max()
        for _ in range(2):  # projected out twice: orthogonal to float precision
            block = block - basis @ (basis.T @ block)
        directions, values, _ = torch.linalg.svd(block, full_matrices=False)
        basis = torch.cat([basis, directions[:, values > 1e-8 * scale]], dim=1)
    return min(basis.shape[1], stop)


class DuplicatedPaddingReconciliation(KroneckerReconciliation):
    """ψ(w) = 1_{p×q} ⊗ B, B (n/p × D/q); l = (n/p)(D/q). q defaults to p; both automatic if unset.

    Init: σ = √variance (every entry of W is an entry of B).
    """

    name = "duplicated_padding"
    degree = 1

    def __init__(self, p: int | None = None, q: int | None = None, layout: str = "kronecker", seed: int = 0):
        super().__init__(p=p, q=q if q is not None else p, layout=layout, seed=seed)

    def term_pieces(self, n, D):
        _, _, s, t = self.dims(n, D)
        return [("B", (s, t))]

    def term_std(self, n, D, variance):
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

    def factor_dims(self, n, D):
        return {"p": math.gcd(n, D)}

    def requested(self):
        return {"p": self.p} if self.p is not None else {}

    def dims(self, n, D):
        owner = f"{self.name} reconciliation"
        g = math.gcd(n, D)
        p = resolve_factor(self.p, g, factor="p", owner=owner)
        return p, p, n // p, D // p

    def hparams(self, n, D):
        return {"p": self.dims(n, D)[0]}

    def term_pieces(self, n, D):
        _, _, s, t = self.dims(n, D)
        return [("B", (s, t))]

    def term_std(self, n, D, variance):
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
    """hm: ψ(w) = Σᵢ₌₁ᵏ Aᵢ ⊗ Bᵢ, Aᵢ (p×q), Bᵢ (n/p × D/q); l = k(pq + (n/p)(D/q)). Init σ = (variance/k)^{1/4}."""

    name = "hm"
    degree = 2
    sums = True

    def term_pieces(self, n, D):
        p, q, s, t = self.dims(n, D)
        return [("A", (p, q)), ("B", (s, t))]

    def term_std(self, n, D, variance):
        return variance ** 0.25

    def kron_factors(self, parts, n, D):
        return parts["A"], parts["B"]


class LPHMReconciliation(KroneckerReconciliation):
    """lphm: ψ(w) = Σᵢ₌₁ᵏ Aᵢ ⊗ (Sᵢ Tᵢᵀ), Aᵢ (p×q), Sᵢ (n/p × r), Tᵢ (D/q × r); l = k(pq + r(n/p + D/q)).

    Init σ = (variance / (k r))^{1/6}.
    """

    name = "lphm"
    degree = 3
    rank_pads = True
    sums = True

    def __init__(self, r: int = 5, p: int | None = None, q: int | None = None, layout: str = "kronecker",
                 seed: int = 0, k: int = 1):
        super().__init__(p=p, q=q, layout=layout, seed=seed, k=k)
        self.r = check_positive_int(r, name="r", owner=f"{self.name} reconciliation")

    def hparams(self, n, D):
        return {"r": self.r, **super().hparams(n, D)}

    def term_pieces(self, n, D):
        p, q, s, t = self.dims(n, D)
        return [("A", (p, q)), ("S", (s, self.r)), ("T", (self.r, t) if self.reference else (t, self.r))]

    def term_std(self, n, D, variance):
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
    """dual_lphm: ψ(w) = Σᵢ₌₁ᵏ (Pᵢ Qᵢᵀ) ⊗ (Sᵢ Tᵢᵀ), Pᵢ (p×r), Qᵢ (q×r), Sᵢ (n/p × r), Tᵢ (D/q × r);
    l = k r(p + q + n/p + D/q). Init σ = (variance / (k r²))^{1/8}.
    """

    name = "dual_lphm"
    degree = 4

    def term_pieces(self, n, D):
        p, q, s, t = self.dims(n, D)
        r = self.r
        if self.reference:  # Q′ (r×q) and T′ (r × D/q): their slices of w reshaped row-major
            return [("P", (p, r)), ("Q", (r, q)), ("S", (s, r)), ("T", (r, t))]
        return [("P", (p, r)), ("Q", (q, r)), ("S", (s, r)), ("T", (t, r))]

    def term_std(self, n, D, variance):
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
