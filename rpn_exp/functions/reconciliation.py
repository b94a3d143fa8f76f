"""Parameter reconciliation functions ψ: R^l → R^{n×D}.

Each function fabricates the weight matrix ``W`` (n×D) of an RPN head from a short parameter vector
``w`` (shape (1, l)). A function object holds hyper-parameters only (r, p, q, ...), never shapes: the
same object serves layers of any (n, D), and automatic p/q are resolved on every call.

Common interface::

    l = psi.calculate_l(n, D)
    W = psi(w=w, n=n, D=D)             # (n, D)
    y = psi.linear(x, w, n, D)         # x @ W.T for x of shape (batch, D), structured where possible

Initialization (``init_w``): the factors are drawn so that the fabricated ``W`` has a target variance per
entry, by default that of PyTorch's ``nn.Linear(D, n)`` weight, ``Var(W_ij) = 1/(3D)`` (uniform on ±1/√D); a
layer that averages C channels and H heads asks for C·H times that (``variance``), so that the average has the
dense variance again. For a product of ``k`` zero-mean factors containing ``s`` inner sums over the rank ``r``,
``Var(W_ij) = r^s σ^{2k}``, so every factor is drawn with ``σ = (variance / r^s)^{1/(2k)}``. The rule of each
family is stated on its class.

Each factor is drawn *normalized* (:func:`normalized_normal`): a Gaussian matrix made semi-orthogonal and scaled
to the Frobenius norm its entries' variance implies. A product of a few small random factors otherwise has a
heavy-tailed scale (the norm of each factor varies from seed to seed and the variations multiply), so one seed's
layer would start several times hotter than another's; with normalized factors ‖A ⊗ B‖ = ‖A‖‖B‖ and
‖U Vᵀ‖ = c‖V‖ (U with orthogonal columns) are the same for every seed, and the initial output variance is as
steady across seeds as a dense layer's (tests/test_init.py measures it for every family).

Frozen random matrices, masks and frozen hypernets are returned by ``create_state(n, D)``; the layer
registers them as buffers (an ``nn.Parameter`` in that dict is learnable) and passes them back as
keyword arguments. Called without them, a function builds them from its ``seed``, so standalone calls
are deterministic.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rpn_exp.functions.base import Function
from rpn_exp.functions.factors import Factor, LowRank, dense, kron_linear, outer_dense, outer_linear
from rpn_exp.functions.shapes import check_positive_int, resolve_factor

#: Exported in a fixed order (the low-parameter families first): plots give families colours in this order.
__all__ = [
    "Reconciliation",
    "IdentityReconciliation",
    "LowRankReconciliation",
    "HMReconciliation",
    "LPHMReconciliation",
    "DualLPHMReconciliation",
    "DuplicatedPaddingReconciliation",
    "DuplicatedDiagonalPaddingReconciliation",
    "MaskingReconciliation",
    "RandomMatrixAdaptionReconciliation",
    "HypernetReconciliation",
    "RandomMatrixHypernetReconciliation",
    "ConstantReconciliation",
    "ZeroReconciliation",
    "OneReconciliation",
    "ConstantEyeReconciliation",
]


Pieces = list[tuple[str, tuple[int, ...]]]


def rank_positions(pieces: Pieces, larger: Pieces) -> torch.Tensor:
    """The positions of a flat w laid out as ``pieces`` (``Reconciliation.pieces``) in a flat w laid out as
    ``larger``, each piece being the leading corner of the larger one: a (l,) index into (l′,).

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


def _without_r(hparams: dict) -> dict:
    return {key: value for key, value in hparams.items() if key != "r"}


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
            f"{width_name}, use a narrower expansion, or give this layer a structured reconciliation, e.g. "
            "+reconciliation@model.layer_overrides.0.reconciliation=dual_lphm"
        )


class Reconciliation(Function):
    """Base class: ψ(w) = W ∈ R^{n×D} from w ∈ R^{1×l}.

    Subclasses describe how ``w`` splits into named pieces (``pieces``) and how the pieces make ``W``
    (``fabricate``); they override ``linear`` where the structure gives a cheaper ``x Wᵀ`` and then set
    ``factored = True`` (their ``linear`` never builds W).
    """

    name = "reconciliation"
    factored = False
    #: True for a ψ that draws a new W on every call while training (masking without a fixed mask): in
    #: evaluation the layer passes :meth:`expected_state` instead, so predictions are deterministic.
    stochastic = False
    #: W is homogeneous of this degree in w (W(αw) = α^degree W(w)); None when it is not. :meth:`calibrate` uses it.
    degree: int | None = None
    #: True for a family with a rank r whose pieces at r are the leading corners of its pieces at any larger r and
    #: whose W is unchanged when the rest is zero (each extra rank component is a product with zero factors), so a
    #: w of rank r sits in one of rank r′ > r (:func:`rank_positions`): lorr, lphm, dual_lphm.
    rank_pads = False

    def __init__(self, seed: int = 0):
        self.seed = seed

    # ----------------------------------------------------------------- shapes
    def pieces(self, n: int, D: int) -> list[tuple[str, tuple[int, ...]]]:
        """The split of ``w``, in order: (name, shape) with row-major reshapes."""
        raise NotImplementedError

    def calculate_l(self, n: int, D: int) -> int:
        """Number of learnable parameters l of one parameter vector for an n×D weight."""
        return sum(math.prod(s) for _, s in self.pieces(n, D))

    def hparams(self, n: int, D: int) -> dict[str, int | float]:
        """The hyper-parameters in force for an n×D weight (automatic p and q resolved)."""
        return {}

    def split(self, w: torch.Tensor, n: int, D: int) -> dict[str, torch.Tensor]:
        """Cut ``w`` (shape (1, l) or (l,)) into its named pieces."""
        pieces = self.pieces(n, D)
        l = sum(math.prod(s) for _, s in pieces)
        if w.numel() != l:
            raise ValueError(
                f"{self.name}: w has {w.numel()} entries but an n={n}, D={D} weight needs l={l}"
            )
        flat, out, start = w.reshape(-1), {}, 0
        for key, s in pieces:
            size = math.prod(s)
            out[key] = flat[start : start + size].reshape(s)
            start += size
        return out

    def rank_positions(self, n: int, D: int, larger: Reconciliation) -> torch.Tensor:
        """Where each entry of this ψ's w sits in the w of ``larger``, the same family with a larger rank: a
        (l,) index into (l′,) (:func:`rank_positions`). Raises ValueError for families that do not pad their rank."""
        ours, theirs = self.hparams(n, D), larger.hparams(n, D)
        if not (self.rank_pads and type(larger) is type(self)) or _without_r(ours) != _without_r(theirs):
            raise ValueError(f"{self.name} with {ours} cannot sit in {larger.name} with {theirs}: only the rank r "
                             f"of one family pads (lorr, lphm, dual_lphm)")
        return rank_positions(self.pieces(n, D), larger.pieces(n, D))

    # ------------------------------------------------------------ state / init
    def create_state(self, n: int, D: int, generator: torch.Generator | None = None,
                     variance: float | None = None) -> dict[str, torch.Tensor]:
        """Per-layer tensors besides ``w`` (frozen unless an ``nn.Parameter``). None by default. ``variance`` is the
        target Var(W_ij) at initialization for a ψ whose state sets the scale of W (default: the dense 1/(3D))."""
        return {}

    def _state(self, n: int, D: int, state: dict) -> dict:
        if state or not self._has_state:
            return state
        generator = torch.Generator().manual_seed(self.seed)
        return {k: v.detach() for k, v in self.create_state(n, D, generator).items()}

    @property
    def _has_state(self) -> bool:
        return type(self).create_state is not Reconciliation.create_state

    def expected_state(self, n: int, D: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """For a ``stochastic`` ψ: the state that gives the expected W (used in evaluation)."""
        return {}

    def factor_std(self, n: int, D: int, variance: float) -> float:
        """Standard deviation of every piece of ``w`` for a W with Var(W_ij) = ``variance`` (module docstring)."""
        raise NotImplementedError

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

    def calibrate(self, w: torch.Tensor, n: int, D: int, variance: float, **state) -> tuple[torch.Tensor, dict]:
        """(w, state) rescaled so that the channel average of the initial W, mean_c ψ(w_c), has Var = ``variance``
        exactly.

        One channel's normalized pieces (``init_w``) already fix the scale of W; the average of C > 1 independent
        channels has a random scale again, which this removes by scaling w by gain^(1/degree). Families whose scale
        is set by frozen random matrices (the hypernets, random_matrix_adaption) override it.
        """
        if w.shape[0] < 2 or self.degree is None:
            return w, state
        gain = self._average_gain(w, n, D, variance, state)
        return w * gain ** (1.0 / self.degree), state

    def _average_gain(self, w: torch.Tensor, n: int, D: int, variance: float, state: dict) -> float:
        """√(variance / mean((mean_c ψ(w_c))²)): the factor that brings the initial channel average to ``variance``."""
        with torch.no_grad():
            W = torch.stack([self(row, n, D, **state) for row in w]).mean(0)
            return math.sqrt(variance / W.square().mean().clamp_min(1e-30).item())

    # ----------------------------------------------------------------- compute
    def fabricate(self, parts: dict[str, torch.Tensor], n: int, D: int, **state) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, w: torch.Tensor, n: int, D: int, **state) -> torch.Tensor:
        """W = ψ(w), shape (n, D)."""
        return self.fabricate(self.split(w, n, D), n, D, **self._state(n, D, state))

    def linear(self, x: torch.Tensor, w: torch.Tensor, n: int, D: int, **state) -> torch.Tensor:
        """``x Wᵀ`` for x of shape (batch, D) -> (batch, n); subclasses avoid building W."""
        return self.materialized_linear(x, w, n, D, **state)

    def materialized_linear(self, x: torch.Tensor, w: torch.Tensor, n: int, D: int, **state) -> torch.Tensor:
        """``x Wᵀ`` through the dense W: the reference every fast path must equal."""
        return F.linear(x, self(w, n, D, **state))

    def kron(self, w: torch.Tensor, n: int, D: int, **state) -> tuple[Factor, Factor] | None:
        """Factors (A, B) with W = A ⊗ B, for families with a Kronecker form; None otherwise."""
        return None

    def low_rank(self, w: torch.Tensor, n: int, D: int, **state) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Factors (U, V) with W = U Vᵀ, U (n×k), V (D×k), for families with a thin factorization; None otherwise."""
        return None

    def outer(self, w: torch.Tensor, n: int, D: int, **state) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Vectors (a, b) with W = reshape_{n×D}(vec(a) vec(b)ᵀ) (the reference layout); None otherwise."""
        return None

    def max_rank(self, n: int, D: int) -> int | None:
        """For families with a rank r: the largest r that can still change W for an n×D weight (beyond it the
        extra parameters do not raise any factor's rank); None for families without r."""
        return None

    def rank_bound(self, n: int, D: int) -> int:
        """An upper bound on rank(W) for an n×D weight, from the structure alone (whatever w is).

        min(n, D) for a dense W; a structured family states its own (lorr: r; hm: min(p,q)·min(n/p, D/q); ...).
        """
        return min(n, D)



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
    """ψ(w) = reshape(w) ∈ R^{n×D}; l = nD."""

    name = "identity"

    def fabricate(self, parts, n, D):
        return parts["W"]

    def linear(self, x, w, n, D):
        return F.linear(x, w.reshape(n, D))


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

    def fabricate(self, parts, n, D, mask=None):
        if mask is None:
            mask = self._mask(n, D).to(parts["W"].device)
        return parts["W"] * mask


class ConstantReconciliation(Reconciliation):
    """ψ(w) = c·1_{n×D}; l = 0."""

    factored = True

    name = "constant"

    def __init__(self, c: float = 1.0, seed: int = 0):
        super().__init__(seed)
        self.c = float(c)

    def pieces(self, n, D):
        return []

    def hparams(self, n, D):
        return {"c": self.c}

    def factor_std(self, n, D, variance):
        return 0.0

    def __call__(self, w, n, D, **state):
        self.split(w, n, D)  # checks that w is empty
        return self.constant(n, D, dtype=w.dtype, device=w.device)

    def constant(self, n, D, dtype=None, device=None):
        return torch.full((n, D), self.c, dtype=dtype, device=device)

    def linear(self, x, w, n, D):
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

    def __init__(self, seed: int = 0):
        super().__init__(c=1.0, seed=seed)

    def hparams(self, n, D):
        return {}

    def constant(self, n, D, dtype=None, device=None):
        return torch.eye(n, D, dtype=dtype, device=device)

    def linear(self, x, w, n, D):
        k = min(n, D)
        return F.pad(x[:, :k], (0, n - k))

    def rank_bound(self, n, D):
        return min(n, D)


class LowRankReconciliation(Reconciliation):
    """lorr: ψ(w) = A Bᵀ, A (n×r), B (D×r); l = r(n + D). Init σ = (variance / r)^{1/4}."""

    factored = True

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

    def factor_std(self, n, D, variance):
        return (variance / self.r) ** 0.25

    def fabricate(self, parts, n, D):
        return parts["A"] @ parts["B"].T

    def linear(self, x, w, n, D):
        parts = self.split(w, n, D)
        return (x @ parts["B"]) @ parts["A"].T

    def low_rank(self, w, n, D):
        parts = self.split(w, n, D)
        return parts["A"], parts["B"]

    def max_rank(self, n, D):
        return min(n, D)

    def rank_bound(self, n, D):
        return min(self.r, n, D)


#: How a Kronecker family lays its two factors out in W (``layout``).
LAYOUTS = ("kronecker", "reference")


class _KroneckerReconciliation(Reconciliation):
    """W = A ⊗ B with A (p×q) and B (n/p × D/q), each possibly low rank.

    ``x Wᵀ`` is computed as ``vec(A K Bᵀ)`` on each row reshaped to K (q × D/q), never building W.

    ``layout="reference"`` builds instead the W of the reference implementation (tinybig 0.2.1), from the same
    parameter count: W = reshape_{n×D}(vec(A) vec(B)ᵀ), the outer product of the row-major flattened factors
    reshaped row-major, with its low-rank factors read as P (p×r)·Q′ (r×q) and S (n/p × r)·T′ (r × D/q) (the
    slices of w reshaped row-major). Its W is not A ⊗ B (rank 1 in its blocks rather than rank(A)·rank(B)); it
    reproduces published numbers. It is applied without building W (``rpn_exp.functions.factors.outer_linear``,
    ``outer_bilinear``).
    """

    factored = True

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

    def factors(self, parts: dict, n: int, D: int) -> tuple[Factor, Factor]:
        raise NotImplementedError

    def factor_ranks(self, n: int, D: int) -> tuple[int, int]:
        """Upper bounds on rank(A) and rank(B) (A p×q, B n/p × D/q)."""
        p, q, s, t = self.dims(n, D)
        return min(p, q), min(s, t)

    def rank_bound(self, n, D):
        """rank(A ⊗ B) = rank(A)·rank(B) (at most min(n, D)). In the reference layout each row of W is a
        combination of the β·(segments) vectors of b read per row class and segment
        (:func:`~rpn_exp.functions.factors.outer_linear`)."""
        if self.reference:
            from rpn_exp.functions.factors import outer_segments

            p, q, s, t = self.dims(n, D)
            beta, _, segments = outer_segments(n, D, p * q, s * t)
            return min(n, D, beta * segments)
        rank_a, rank_b = self.factor_ranks(n, D)
        return min(rank_a * rank_b, n, D)

    def fabricate(self, parts, n, D):
        A, B = self.factors(parts, n, D)
        if self.reference:
            return outer_dense(dense(A), dense(B), n, D)
        return torch.kron(dense(A), dense(B))

    def kron(self, w, n, D):
        return None if self.reference else self.factors(self.split(w, n, D), n, D)

    def outer(self, w, n, D):
        if not self.reference:
            return None
        A, B = self.factors(self.split(w, n, D), n, D)
        return dense(A).reshape(-1), dense(B).reshape(-1)

    def linear(self, x, w, n, D):
        if self.reference:
            return outer_linear(x, *self.outer(w, n, D), n)
        A, B = self.kron(w, n, D)
        return kron_linear(x, A, B)


class DuplicatedPaddingReconciliation(_KroneckerReconciliation):
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

    def factors(self, parts, n, D):
        p, q, _, _ = self.dims(n, D)
        B = parts["B"]
        return B.new_ones(p, q), B

    def factor_ranks(self, n, D):
        _, _, s, t = self.dims(n, D)
        return 1, min(s, t)  # A = 1_{p×q}

    def linear(self, x, w, n, D):
        if self.reference:
            return super().linear(x, w, n, D)
        p, q, s, t = self.dims(n, D)
        B = self.split(w, n, D)["B"]
        return (x.reshape(-1, q, t).sum(dim=1) @ B.T).repeat(1, p)


class DuplicatedDiagonalPaddingReconciliation(_KroneckerReconciliation):
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

    def factors(self, parts, n, D):
        p = self.dims(n, D)[0]
        B = parts["B"]
        return torch.eye(p, dtype=B.dtype, device=B.device), B

    def factor_ranks(self, n, D):
        p, _, s, t = self.dims(n, D)
        return p, min(s, t)  # A = I_p

    def linear(self, x, w, n, D):
        p, _, s, t = self.dims(n, D)
        B = self.split(w, n, D)["B"]
        return (x.reshape(-1, p, t) @ B.T).reshape(-1, n)


class HMReconciliation(_KroneckerReconciliation):
    """hm: ψ(w) = A ⊗ B, A (p×q), B (n/p × D/q); l = pq + (n/p)(D/q). Init σ = variance^{1/4}."""

    name = "hm"
    degree = 2

    def pieces(self, n, D):
        p, q, s, t = self.dims(n, D)
        return [("A", (p, q)), ("B", (s, t))]

    def factor_std(self, n, D, variance):
        return variance ** 0.25

    def factors(self, parts, n, D):
        return parts["A"], parts["B"]


class LPHMReconciliation(_KroneckerReconciliation):
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

    def factors(self, parts, n, D):
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

    def factors(self, parts, n, D):
        return _low_rank(parts["P"], parts["Q"], self.reference), _low_rank(parts["S"], parts["T"], self.reference)


def _low_rank(U: torch.Tensor, V: torch.Tensor, reference: bool) -> LowRank:
    """U Vᵀ from the pieces: V is stored (cols × r), or (r × cols) in the reference layout (U V′ with V′ = V)."""
    return LowRank(U, V.T if reference else V)


class HypernetReconciliation(Reconciliation):
    """ψ(w) = reshape(MLP(w)), MLP: l → hidden_dim (ReLU) → nD; l is given, not derived from n, D.

    With ``static`` (default) the MLP is frozen (buffers); otherwise its weights are learnable too.
    Init: w ~ N(0, 1); the output layer is N(0, σ²) with σ² = variance / E‖h‖², h the hidden code of w,
    so W has the target variance at init (E‖h‖² measured over 256 draws of w).
    """

    name = "hypernet"

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

    def calibrate(self, w, n, D, variance, **state):
        """W is linear in the output matrix: it is scaled (the channels share it, so their codes correlate)."""
        gain = self._average_gain(w, n, D, variance, state)
        with torch.no_grad():
            state["net_1_weight"].mul_(gain)
        return w, state

    def fabricate(self, parts, n, D, net_0_weight, net_0_bias, net_1_weight):
        hidden = torch.relu(F.linear(parts["w"], net_0_weight, net_0_bias))
        return F.linear(hidden, net_1_weight).reshape(n, D)


class RandomMatrixAdaptionReconciliation(Reconciliation):
    """ψ(w) = diag(λ₁) A diag(λ₂) Bᵀ with A (n×r), B (D×r) fixed N(0, 1) buffers; w = [λ₁ (n), λ₂ (r)];
    l = n + r. Init: λ₂ = 1, λ₁ ~ N(0, variance / r) (normalized), so W has the target variance.
    """

    factored = True

    name = "random_matrix_adaption"

    def __init__(self, r: int = 2, seed: int = 0):
        super().__init__(seed)
        self.r = check_positive_int(r, name="r", owner="random_matrix_adaption reconciliation")

    def pieces(self, n, D):
        return [("lambda1", (n,)), ("lambda2", (self.r,))]

    def hparams(self, n, D):
        return {"r": self.r}

    def init_w(self, n, D, channels=1, generator=None, variance=None):
        std = math.sqrt((dense_variance(D) if variance is None else variance) / self.r)
        lambda1 = torch.stack([normalized_normal((n,), std, generator) for _ in range(channels)])
        return torch.cat([lambda1, torch.ones(channels, self.r)], dim=1)

    def create_state(self, n, D, generator=None, variance=None):
        return {"A": torch.randn(n, self.r, generator=generator), "B": torch.randn(D, self.r, generator=generator)}

    def calibrate(self, w, n, D, variance, **state):
        """W is linear in λ₁: every channel's λ₁ is scaled (the random A and B set W's scale otherwise)."""
        gain = self._average_gain(w, n, D, variance, state)
        with torch.no_grad():
            w[:, :n] *= gain
        return w, state

    def fabricate(self, parts, n, D, A, B):
        return (parts["lambda1"][:, None] * A * parts["lambda2"]) @ B.T

    def linear(self, x, w, n, D, **state):
        parts, state = self.split(w, n, D), self._state(n, D, state)
        return (((x @ state["B"]) * parts["lambda2"]) @ state["A"].T) * parts["lambda1"]

    def low_rank(self, w, n, D, **state):
        parts, state = self.split(w, n, D), self._state(n, D, state)
        return parts["lambda1"][:, None] * state["A"] * parts["lambda2"], state["B"]

    def max_rank(self, n, D):
        return min(n, D)

    def rank_bound(self, n, D):
        return min(self.r, n, D)


class RandomMatrixHypernetReconciliation(Reconciliation):
    """ψ(w) = reshape(((σ((w P) Qᵀ)) S) Tᵀ) ∈ R^{n×D}, σ the sigmoid, with fixed random
    P (l×r), Q (hidden_dim×r), S (hidden_dim×r), T (nD×r); l is given.

    Init: w ~ N(0, 1); P ~ N(0, 1/l), Q ~ N(0, 1/r) keep the pre-activation at unit variance,
    S ~ N(0, 1/hidden_dim) and T ~ N(0, variance / E‖z‖²) for the code z = σ(w P Qᵀ) S, so W has the
    target variance.
    """

    name = "random_matrix_hypernet"

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

    def calibrate(self, w, n, D, variance, **state):
        """W is linear in T: it is scaled (the channels share it)."""
        gain = self._average_gain(w, n, D, variance, state)
        with torch.no_grad():
            state["T"].mul_(gain)
        return w, state

    def fabricate(self, parts, n, D, P, Q, S, T):
        return (T @ self._code(parts["w"], P, Q, S)).reshape(n, D)
