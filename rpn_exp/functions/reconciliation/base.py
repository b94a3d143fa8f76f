"""The ψ protocol: what every reconciliation function declares and computes.

A reconciliation ψ: R^l → R^{n×D} fabricates the weight matrix ``W`` (n×D) of an RPN head from a short parameter
vector ``w`` (shape (1, l) or (l,)). A ψ object holds hyper-parameters only (r, p, q, ...), never shapes: one
object serves layers of any (n, D), and automatic p and q are resolved on every call.

Every family implements the same methods with the same signatures (``state`` is always the mapping of ψ's
per-layer tensors from :meth:`Reconciliation.create_state`, ``{}`` or None when it has none):

=========================================  ======================================================================
``pieces(n, D)``                            how ``w`` splits: [(name, shape), ...], row-major; l is their total
``hparams(n, D)``                           the hyper-parameters in force (automatic p and q resolved)
``structure(n, D)``                         the declared form of W (:class:`Structure`): dense, low rank,
                                            Kronecker or outer; the layer chooses its compute path from it alone
``factors(w, n, D, state)``                 W in its declared form: a (n, D) tensor, ``LowRank(U, V)``,
                                            ``Kronecker(A, B)`` (or a ``KroneckerSum`` of them) or ``Outer(a, b)``
                                            (``rpn_exp.functions.factors``)
``factor_std(n, D, variance)``              the std of every piece of w for Var(W_ij) = variance
``create_state(n, D, generator, variance)``  frozen tensors besides w (random matrices, masks); ``{}`` by default
``rank_bound(n, D)``, ``max_rank(n, D)``    rank(W) ≤ rank_bound whatever w is; the largest useful r (or None)
=========================================  ======================================================================

Derived from those (a family may override ``linear``, ``init_w`` or ``calibrate`` with the same signature):
``calculate_l``, ``split``, ``__call__`` (the dense W), ``linear`` (x Wᵀ through the declared structure, never
building W unless it is dense), ``init_w``, ``calibrate``, ``rank_positions`` (rank padding, for ``rank_pads``
families).

Initialization (``init_w``): the pieces are drawn so that W has a target variance per entry, by default that of
PyTorch's ``nn.Linear(D, n)`` weight, ``Var(W_ij) = 1/(3D)`` (uniform on ±1/√D); a layer that averages C channels
and H heads asks for C·H times that, so the average has the dense variance again. For a product of ``k`` zero-mean
factors containing ``s`` inner sums over the rank ``r``, ``Var(W_ij) = r^s σ^{2k}``, so every factor is drawn with
``σ = (variance / r^s)^{1/(2k)}`` (:meth:`Reconciliation.factor_std`, stated on each family).

Each factor is drawn *normalized* (:func:`normalized_normal`): a Gaussian matrix made semi-orthogonal and scaled
to the Frobenius norm its entries' variance implies, so ‖A ⊗ B‖ = ‖A‖‖B‖ and ‖U Vᵀ‖ = c‖V‖ are the same for every
seed and the initial output variance is as steady across seeds as a dense layer's (``rpn_exp.nn.diagnostics``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch

from rpn_exp.functions.base import Function
from rpn_exp.functions.factors import as_form

Pieces = list[tuple[str, tuple[int, ...]]]
State = Mapping[str, torch.Tensor]

#: The forms of W a ψ can declare (:class:`Structure`), and what its ``factors`` then return.
DENSE, LOW_RANK, KRONECKER, OUTER = "dense", "low_rank", "kronecker", "outer"
KINDS = (DENSE, LOW_RANK, KRONECKER, OUTER)


@dataclass(frozen=True)
class Structure:
    """What a ψ declares about W for an n×D weight, before any weight exists.

    * ``dense``: ``factors`` returns W itself (n, D);
    * ``low_rank``: ``LowRank(U, V)``, W = U Vᵀ with U (n, k), V (D, k);
    * ``kronecker``: ``Kronecker(A, B)``, W = A ⊗ B with A of shape ``blocks`` = (p, q) and B (n/p, D/q), each
      dense or ``LowRank``; or ``KroneckerSum(terms)``, W = Σᵢ Aᵢ ⊗ Bᵢ of such terms;
    * ``outer``: ``Outer(a, b)``, W = reshape_{n×D}(a bᵀ) (the reference implementation's layout).

    ``cheap_linear`` says that :meth:`Reconciliation.linear` computes x Wᵀ without building W even for a dense W
    (a constant W: x Wᵀ is a sum over x).
    """

    kind: str = DENSE
    blocks: tuple[int, int] | None = None
    cheap_linear: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"structure kind {self.kind!r} is invalid; valid kinds: {', '.join(KINDS)}")
        if (self.kind == KRONECKER) != (self.blocks is not None):
            raise ValueError("a Kronecker structure gives the shape (p, q) of A as blocks; no other kind does")

    @property
    def structured(self) -> bool:
        """Whether ``linear`` avoids building W (any kind but dense, or a dense W with a cheap linear)."""
        return self.kind != DENSE or self.cheap_linear


def rank_positions(pieces: Pieces, larger: Pieces) -> torch.Tensor:
    """The positions of a flat w laid out as ``pieces`` in a flat w laid out as ``larger``, each piece being the
    leading corner of the larger one: a (l,) index into (l′,).

    Example: lorr pieces A (n×r), B (D×r) at r = 2 in r = 3: A[i, j] = A′[i, j] and B[i, j] = B′[i, j] for j < 2;
    the entries of A′, B′ not named by the index are the zero padding.
    """
    names, larger_names = [name for name, _ in pieces], [name for name, _ in larger]
    if names != larger_names:
        raise ValueError(f"pieces {names} cannot sit in pieces {larger_names}")
    positions, start = [], 0
    for (name, shape), (_, outer) in zip(pieces, larger):
        if len(shape) != len(outer) or any(a > b for a, b in zip(shape, outer)):
            raise ValueError(f"piece {name} of shape {shape} is not a corner of shape {outer}")
        grid = torch.arange(start, start + math.prod(outer)).view(outer)
        positions.append(grid[tuple(slice(0, a) for a in shape)].reshape(-1))
        start += math.prod(outer)
    return torch.cat(positions) if positions else torch.zeros(0, dtype=torch.long)


def dense_variance(D: int) -> float:
    """Variance of PyTorch's default ``nn.Linear(D, n)`` weight: U(±1/√D) has variance 1/(3D)."""
    return 1.0 / (3.0 * D)


def normalized_normal(shape: tuple[int, ...], std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random factor with entries of variance ``std²`` on average and Frobenius norm exactly √(numel)·std.

    A matrix with both sides > 1 is made semi-orthogonal first (orthonormal columns if it is tall, rows if it is
    wide; QR of a Gaussian matrix, signs fixed by R's diagonal, so it is uniformly distributed), then scaled; a
    vector is scaled to that norm.
    """
    M = torch.randn(shape, generator=generator)
    if M.is_meta or M.numel() == 0:
        return M * std
    if M.dim() == 2 and min(M.shape) > 1:
        tall = M.shape[0] >= M.shape[1]
        Q, R = torch.linalg.qr(M if tall else M.T)
        Q = Q * torch.sign(torch.diagonal(R)).where(torch.diagonal(R) != 0, torch.ones(()))
        M = Q if tall else Q.T
    return M * (math.sqrt(M.numel()) * std / M.norm().clamp_min(1e-12))


def materialize(form, n: int, D: int) -> torch.Tensor:
    """The dense (n, D) W of a declared form (a tensor, ``LowRank``, ``Kronecker``, ``KroneckerSum`` or ``Outer``)."""
    return as_form(form).materialize(n, D)


class Reconciliation(Function):
    """ψ(w) = W ∈ R^{n×D} from w ∈ R^{1×l}: the protocol every family implements (module docstring)."""

    name = "reconciliation"
    #: True for a ψ that draws a new W on every call while training (masking without a fixed mask): in
    #: evaluation the layer passes :meth:`expected_state` instead, so predictions are deterministic.
    stochastic: bool = False
    #: W is homogeneous of this degree in w (W(αw) = α^degree W(w)); None when it is not. :meth:`calibrate` uses it.
    degree: ClassVar[int | None] = None
    #: True for a family with a rank r whose pieces at r are the leading corners of its pieces at any larger r and
    #: whose W is unchanged when the rest is zero (each extra rank component is a product with zero factors), so a
    #: w of rank r sits in one of rank r′ > r (:meth:`rank_positions`): lorr, lphm, dual_lphm.
    rank_pads: ClassVar[bool] = False
    #: True for W = reshape(w) (identity): the w of an n × D layer is the leading corner of that of an n′ × D′ one,
    #: so an MLP sits in a wider one of the same depth (:meth:`rank_positions` with ``larger_shape``).
    width_pads: ClassVar[bool] = False
    #: True when :meth:`factors` also takes w with leading dimensions (more than l entries), (..., l) -> W (..., n, D):
    #: a stacked group's members at once (``RPNHead.carries_members``). Identity.
    leading_dims: ClassVar[bool] = False
    #: True when every row of W is constant whatever w is (c·1): against a κ whose entries sum to 0 (a layer norm)
    #: such a W gives 0 for every input, which the config layer refuses when nothing else is added.
    constant_rows: ClassVar[bool] = False

    #: The rank r the family is asked for (lorr, lphm, dual_lphm, ...); None for a family without one.
    r: int | None = None

    def __init__(self, seed: int = 0):
        self.seed = seed

    # ------------------------------------------------------------ declaration
    def pieces(self, n: int, D: int) -> Pieces:
        """The split of ``w``, in order: (name, shape) with row-major reshapes."""
        raise NotImplementedError(f"{type(self).__name__} must say how w splits: pieces(n, D)")

    def hparams(self, n: int, D: int) -> dict[str, int | float | str]:
        """The hyper-parameters in force for an n×D weight (automatic p and q resolved)."""
        return {}

    def structure(self, n: int, D: int) -> Structure:
        """The declared form of W for an n×D weight (dense unless a family says otherwise)."""
        return Structure()

    def rank_bound(self, n: int, D: int) -> int:
        """An upper bound on rank(W) for an n×D weight, from the structure alone (whatever w is).

        min(n, D) for a dense W; a structured family states its own (lorr: r; hm: min(p,q)·min(n/p, D/q); ...).
        """
        return min(n, D)

    def requested(self) -> dict[str, int]:
        """The factor sizes asked for before they are fitted to a layer (p, q: each rounded down to a divisor of the
        width it divides, :meth:`factor_dims`); {} for a family without any, or with them all automatic."""
        return {}

    def factor_dims(self, n: int, D: int) -> dict[str, int]:
        """For each factor size of :meth:`requested`, the width of an n×D weight it must divide."""
        return {}

    def max_rank(self, n: int, D: int) -> int | None:
        """For families with a rank r: the largest r that can still change W for an n×D weight (beyond it the
        extra parameters do not raise any factor's rank); None for families without r."""
        return None

    def factor_std(self, n: int, D: int, variance: float) -> float:
        """Standard deviation of every piece of ``w`` for a W with Var(W_ij) = ``variance`` (module docstring)."""
        raise NotImplementedError(f"{type(self).__name__} must give factor_std(n, D, variance) or its own init_w")

    def create_state(self, n: int, D: int, generator: torch.Generator | None = None,
                     variance: float | None = None) -> dict[str, torch.Tensor]:
        """Per-layer tensors besides ``w`` (frozen unless an ``nn.Parameter``); none by default. ``variance`` is the
        target Var(W_ij) at initialization for a ψ whose state sets the scale of W (default: the dense 1/(3D))."""
        return {}

    def expected_state(self, n: int, D: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """For a ``stochastic`` ψ: the state that gives the expected W (used in evaluation)."""
        return {}

    # ---------------------------------------------------------------- compute
    def factors(self, w: torch.Tensor, n: int, D: int, state: State | None = None):
        """W in its declared form (:meth:`structure`) from ``w``: the one method that computes."""
        raise NotImplementedError(f"{type(self).__name__} must build W in its declared form: factors(w, n, D, state)")

    def calculate_l(self, n: int, D: int) -> int:
        """Number of learnable parameters l of one parameter vector for an n×D weight."""
        return sum(math.prod(s) for _, s in self.pieces(n, D))

    def split(self, w: torch.Tensor, n: int, D: int) -> dict[str, torch.Tensor]:
        """Cut ``w`` (shape (1, l) or (l,)) into its named pieces."""
        pieces = self.pieces(n, D)
        l = sum(math.prod(s) for _, s in pieces)
        if w.numel() != l:
            raise ValueError(f"{self.name}: w has {w.numel()} entries but an n={n}, D={D} weight needs l={l}")
        flat, out, start = w.reshape(-1), {}, 0
        for key, s in pieces:
            size = math.prod(s)
            out[key] = flat[start : start + size].reshape(s)
            start += size
        return out

    def state_or_default(self, n: int, D: int, state: State | None) -> State:
        """``state``, or for a ψ with state called without it, the state drawn from its own ``seed`` (so standalone
        calls are deterministic)."""
        if state or type(self).create_state is Reconciliation.create_state:
            return state or {}
        generator = torch.Generator().manual_seed(self.seed)
        return {k: v.detach() for k, v in self.create_state(n, D, generator).items()}

    def __call__(self, w: torch.Tensor, n: int, D: int, state: State | None = None) -> torch.Tensor:
        """W = ψ(w), shape (n, D)."""
        return materialize(self.factors(w, n, D, self.state_or_default(n, D, state)), n, D)

    def linear(self, x: torch.Tensor, w: torch.Tensor, n: int, D: int, state: State | None = None) -> torch.Tensor:
        """``x Wᵀ`` for x of shape (batch, D) -> (batch, n), through the declared structure."""
        return as_form(self.factors(w, n, D, self.state_or_default(n, D, state))).linear(x, n, D)

    # ------------------------------------------------------------------- init
    def init_w(self, n: int, D: int, channels: int = 1, generator: torch.Generator | None = None,
               variance: float | None = None) -> torch.Tensor:
        """Initial parameter vectors, shape (channels, l), drawn piece by piece (:func:`normalized_normal`) so that
        W has Var(W_ij) = ``variance`` (default: the dense 1/(3D))."""
        variance = dense_variance(D) if variance is None else variance
        pieces = self.pieces(n, D)
        if not pieces:
            return torch.zeros(channels, 0)
        std = self.factor_std(n, D, variance)
        return torch.stack([
            torch.cat([normalized_normal(shape, std, generator).reshape(-1) for _, shape in pieces])
            for _ in range(channels)
        ])

    def calibrate(self, w: torch.Tensor, n: int, D: int, variance: float,
                  state: State | None = None) -> tuple[torch.Tensor, State]:
        """(w, state) rescaled so that the channel average of the initial W, mean_c ψ(w_c), has Var = ``variance``
        exactly.

        One channel's normalized pieces (``init_w``) already fix the scale of W; the average of C > 1 independent
        channels has a random scale again, which this removes by scaling w by gain^(1/degree). Families whose scale
        is set by frozen random matrices (the hypernets, random_matrix_adaption) override it.
        """
        state = state or {}
        if w.shape[0] < 2 or self.degree is None:
            return w, state
        gain = self.average_gain(w, n, D, variance, state)
        return w * gain ** (1.0 / self.degree), state

    def average_gain(self, w: torch.Tensor, n: int, D: int, variance: float, state: State) -> float:
        """√(variance / mean((mean_c ψ(w_c))²)): the factor that brings the initial channel average to ``variance``."""
        with torch.no_grad():
            W = torch.stack([self(row, n, D, state) for row in w]).mean(0)
            return math.sqrt(variance / W.square().mean().clamp_min(1e-30).item())

    # ------------------------------------------------------------ rank padding
    def rank_positions(self, n: int, D: int, larger: Reconciliation,
                       larger_shape: tuple[int, int] | None = None) -> torch.Tensor:
        """Where each entry of this ψ's w sits in the w of ``larger``: the same family with a larger rank, or (a
        ``width_pads`` ψ) of a larger W, ``larger_shape`` = (n′, D′): a (l,) index into (l′,)
        (:func:`rank_positions`). Raises ValueError for families that pad neither."""
        wide_n, wide_D = larger_shape or (n, D)
        if (wide_n, wide_D) != (n, D):
            if not (self.width_pads and type(larger) is type(self)):
                raise ValueError(f"{self.name} of W {n}×{D} cannot sit in {larger.name} of W {wide_n}×{wide_D}: only "
                                 f"W = reshape(w) (identity, the MLP's) pads its width")
            return rank_positions(self.pieces(n, D), larger.pieces(wide_n, wide_D))
        ours, theirs = self.hparams(n, D), larger.hparams(n, D)
        without_r = lambda hparams: {k: v for k, v in hparams.items() if k != "r"}  # noqa: E731
        if not (self.rank_pads and type(larger) is type(self)) or without_r(ours) != without_r(theirs):
            raise ValueError(f"{self.name} with {ours} cannot sit in {larger.name} with {theirs}: only the rank r "
                             f"of one family pads (lorr, lphm, dual_lphm)")
        return rank_positions(self.pieces(n, D), larger.pieces(n, D))
