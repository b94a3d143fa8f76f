"""Data expansion functions κ: R^m → R^D.

Every expansion offers ``calculate_D(m)`` (its true output width) and ``__call__(x)`` mapping
x of shape (batch, m) to κ(x) of shape (batch, D). Basis expansions lay features out order-major:
``[φ_1(x), φ_2(x), ...]``, each block m wide. ``postprocess`` names per-layer modules applied to κ
(see :mod:`rpn_exp.functions.processing`), e.g. ``["layer_norm"]`` for the paper's non-affine layer norm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from rpn_exp.functions.base import Function
from rpn_exp.functions.processing import build_processing
from rpn_exp.functions.shapes import check_positive_int

__all__ = [
    "Expansion",
    "IdentityExpansion",
    "ReciprocalExpansion",
    "LinearExpansion",
    "TaylorExpansion",
    "FourierExpansion",
    "BSplineExpansion",
    "ChebyshevExpansion",
    "LegendreExpansion",
    "HermiteExpansion",
    "LaguerreExpansion",
    "JacobiExpansion",
    "GaussianRBFExpansion",
    "InverseQuadraticRBFExpansion",
    "NaiveNormalExpansion",
    "NaiveCauchyExpansion",
    "NaiveLaplaceExpansion",
    "ExtendedExpansion",
    "NestedExpansion",
]


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
TAYLOR_ORDERS = ("kronecker", "reference")


class TaylorExpansion(Expansion):
    """Taylor expansion of order d: all monomials of degree 1..d, D = m + m² + … + m^d.

    ``order="kronecker"`` (default) lays them out recursively as κ_1(x) = x and κ_d(x) = x ⊗ [1, κ_{d−1}(x)] (a
    permutation of [x, x⊗x, …, x^{⊗d}]). This layout lets a Kronecker-structured W act on κ without building it:
    for d = 2, (A ⊗ B) κ(x) = (A x) ⊗ (B [1, x]).

    ``order="reference"`` is the reference implementation's order, degree by degree: κ = [x, vec(x xᵀ), …], i.e.
    κ_d(x) = [1, κ_{d−1}(x)] ⊗ x. Same features, same D; it matters only to a W that is not permutation-blind
    (the reference reconciliation layout).
    """

    name = "taylor"

    def __init__(self, d: int = 2, postprocess=None, order: str = "kronecker"):
        super().__init__(postprocess)
        self.d = check_positive_int(d, name="d", owner="taylor expansion")
        if order not in TAYLOR_ORDERS:
            raise ValueError(f"taylor expansion: order={order!r} is invalid; valid choices: {', '.join(TAYLOR_ORDERS)}")
        self.order = order

    def calculate_D(self, m):
        return sum(m**k for k in range(1, self.d + 1))

    def product_factors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, t) with κ(x) = u ⊗ [1, t] (or [1, t] ⊗ u in the reference order) row by row: u = x (b, m),
        t = κ_{d−1}(x) (b, D/m − 1).

        For d = 2, ``t`` is ``x`` itself (the same tensor); for d = 1 it is empty.
        """
        if self.d == 1:
            return x, x.new_empty(x.shape[0], 0)
        return x, (x if self.d == 2 else TaylorExpansion(self.d - 1, order=self.order)(x))

    def kron_layout(self, u: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(left, right) with κ = left ⊗ right, from :meth:`product_factors`: (u, [1, t]), or ([1, t], u) in the
        reference order."""
        v = torch.cat([t.new_ones(t.shape[0], 1), t], dim=1)
        return (v, u) if self.order == "reference" else (u, v)

    def forward(self, x):
        if self.d == 1:
            return x
        left, right = self.kron_layout(*self.product_factors(x))
        return (left.unsqueeze(2) * right.unsqueeze(1)).reshape(x.shape[0], -1)


class FourierExpansion(_ElementwiseExpansion):
    """κ(x) = [cos(2πkx/P), sin(2πkx/P)] for k = 1..N; D = 2mN."""

    name = "fourier"

    def __init__(self, P: float = 2.0, N: int = 5, postprocess=None):
        super().__init__(postprocess)
        if P <= 0:
            raise ValueError(f"fourier expansion: P={P!r} is invalid; the period must be > 0")
        self.P, self.N = P, check_positive_int(N, name="N", owner="fourier expansion")

    def orders(self):
        return 2 * self.N

    def basis(self, x):
        out = []
        for k in range(1, self.N + 1):
            angle = 2 * math.pi * k * x / self.P
            out += [torch.cos(angle), torch.sin(angle)]
        return out


class BSplineExpansion(_ElementwiseExpansion):
    """B-spline basis of degree d on t uniform intervals of ``grid_range`` (grid extended by d knots on
    each side, Cox–de Boor recursion); D = m(t + d)."""

    name = "bspline"

    def __init__(self, grid_range: Sequence[float] = (-3.0, 3.0), t: int = 5, d: int = 3, postprocess=None):
        super().__init__(postprocess)
        lo, hi = grid_range
        if not lo < hi:
            raise ValueError(f"bspline expansion: grid_range={list(grid_range)} is invalid; need low < high")
        self.grid_range = [float(lo), float(hi)]
        self.t = check_positive_int(t, name="t", owner="bspline expansion")
        self.d = check_positive_int(d, name="d", owner="bspline expansion") if d else 0

    def orders(self):
        return self.t + self.d

    def basis(self, x):
        lo, hi = self.grid_range
        h = (hi - lo) / self.t
        knots = lo + h * torch.arange(-self.d, self.t + self.d + 1, dtype=x.dtype, device=x.device)
        xe = x.unsqueeze(-1)
        B = ((xe >= knots[:-1]) & (xe < knots[1:])).to(x.dtype)
        for k in range(1, self.d + 1):
            left = (xe - knots[: -(k + 1)]) / (knots[k:-1] - knots[: -(k + 1)]) * B[..., :-1]
            right = (knots[k + 1 :] - xe) / (knots[k + 1 :] - knots[1:-k]) * B[..., 1:]
            B = left + right
        return list(B.unbind(-1))


class _RecurrencePolynomial(_ElementwiseExpansion):
    """Orthogonal polynomials φ_1..φ_d from a three-term recurrence; D = md (φ_0 = 1 is left out)."""

    def __init__(self, d: int = 2, postprocess=None):
        super().__init__(postprocess)
        self.d = check_positive_int(d, name="d", owner=f"{self.name} expansion")

    def orders(self):
        return self.d

    def first(self, x):
        raise NotImplementedError

    def step(self, k, x, current, previous):
        """φ_{k+1} from φ_k (current) and φ_{k−1} (previous)."""
        raise NotImplementedError

    def basis(self, x):
        previous, current = torch.ones_like(x), self.first(x)
        out = [current]
        for k in range(1, self.d):
            previous, current = current, self.step(k, x, current, previous)
            out.append(current)
        return out


class ChebyshevExpansion(_RecurrencePolynomial):
    """Chebyshev polynomials of the first kind T_1..T_d: T_{k+1} = 2x T_k − T_{k−1}; D = md."""

    name = "chebyshev"

    def first(self, x):
        return x

    def step(self, k, x, current, previous):
        return 2 * x * current - previous


class LegendreExpansion(_RecurrencePolynomial):
    """Legendre polynomials P_1..P_d: (k+1) P_{k+1} = (2k+1) x P_k − k P_{k−1}; D = md."""

    name = "legendre"

    def first(self, x):
        return x

    def step(self, k, x, current, previous):
        return ((2 * k + 1) * x * current - k * previous) / (k + 1)


class HermiteExpansion(_RecurrencePolynomial):
    """Probabilists' Hermite polynomials He_1..He_d: He_{k+1} = x He_k − k He_{k−1}; D = md."""

    name = "hermite"

    def first(self, x):
        return x

    def step(self, k, x, current, previous):
        return x * current - k * previous


class LaguerreExpansion(_RecurrencePolynomial):
    """Laguerre polynomials L_1..L_d: (k+1) L_{k+1} = (2k+1−x) L_k − k L_{k−1}, L_1 = 1 − x; D = md."""

    name = "laguerre"

    def first(self, x):
        return 1 - x

    def step(self, k, x, current, previous):
        return ((2 * k + 1 - x) * current - k * previous) / (k + 1)


class JacobiExpansion(_RecurrencePolynomial):
    """Jacobi polynomials P_1^{(α,β)}..P_d^{(α,β)} by the standard three-term recurrence; D = md."""

    name = "jacobi"

    def __init__(self, d: int = 2, alpha: float = 1.0, beta: float = 1.0, postprocess=None):
        if alpha <= -1 or beta <= -1:
            raise ValueError(f"jacobi expansion: alpha={alpha!r}, beta={beta!r} are invalid; both must be > -1")
        self.alpha, self.beta = alpha, beta
        super().__init__(d=d, postprocess=postprocess)

    def first(self, x):
        a, b = self.alpha, self.beta
        return (a - b) / 2 + (a + b + 2) * x / 2

    def step(self, k, x, current, previous):
        a, b, n = self.alpha, self.beta, k + 1  # computes P_n from P_{n-1}, P_{n-2}
        c = 2 * n + a + b
        c1 = 2 * n * (n + a + b) * (c - 2)
        c2 = (c - 1) * (c * (c - 2) * x + a * a - b * b)
        c3 = 2 * (n + a - 1) * (n + b - 1) * c
        return (c2 * current - c3 * previous) / c1


class _RBFExpansion(_ElementwiseExpansion):
    """Radial basis functions at ``num_interval`` centres spread evenly over ``base_range``; D = m·num_interval."""

    def __init__(
        self, base_range: Sequence[float] = (-3.0, 3.0), num_interval: int = 10, epsilon: float = 1.0, postprocess=None
    ):
        super().__init__(postprocess)
        self.base_range = [float(v) for v in base_range]
        self.num_interval = check_positive_int(num_interval, name="num_interval", owner=f"{self.name} expansion")
        self.epsilon = epsilon

    def orders(self):
        return self.num_interval

    def radial(self, r2: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def basis(self, x):
        centres = torch.linspace(*self.base_range, self.num_interval, dtype=x.dtype, device=x.device)
        r2 = (self.epsilon * (x.unsqueeze(-1) - centres)) ** 2
        return list(self.radial(r2).unbind(-1))


class GaussianRBFExpansion(_RBFExpansion):
    """κ(x) = exp(−(ε(x − c_k))²) for each centre c_k; D = m·num_interval."""

    name = "gaussian_rbf"

    def radial(self, r2):
        return torch.exp(-r2)


class InverseQuadraticRBFExpansion(_RBFExpansion):
    """κ(x) = 1 / (1 + (ε(x − c_k))²) for each centre c_k; D = m·num_interval."""

    name = "inverse_quadratic_rbf"

    def radial(self, r2):
        return 1.0 / (1.0 + r2)


class _NaiveProbabilisticExpansion(_ElementwiseExpansion):
    """κ(x) = log p(x) under a fixed univariate distribution, entry by entry; D = m."""

    def __init__(self, loc: float = 0.0, scale: float = 1.0, postprocess=None):
        super().__init__(postprocess)
        if scale <= 0:
            raise ValueError(f"{self.name} expansion: scale={scale!r} is invalid; it must be > 0")
        self.loc, self.scale = loc, scale

    def orders(self):
        return 1

    def distribution(self, x):
        raise NotImplementedError

    def basis(self, x):
        return [self.distribution(x).log_prob(x)]

    def _params(self, x):
        return torch.tensor(self.loc, dtype=x.dtype, device=x.device), torch.tensor(
            self.scale, dtype=x.dtype, device=x.device
        )


class NaiveNormalExpansion(_NaiveProbabilisticExpansion):
    """κ(x) = log N(x; loc, scale²); D = m."""

    name = "naive_normal"

    def distribution(self, x):
        return torch.distributions.Normal(*self._params(x))


class NaiveCauchyExpansion(_NaiveProbabilisticExpansion):
    """κ(x) = log Cauchy(x; loc, scale); D = m."""

    name = "naive_cauchy"

    def distribution(self, x):
        return torch.distributions.Cauchy(*self._params(x))


class NaiveLaplaceExpansion(_NaiveProbabilisticExpansion):
    """κ(x) = log Laplace(x; loc, scale); D = m."""

    name = "naive_laplace"

    def distribution(self, x):
        return torch.distributions.Laplace(*self._params(x))


class _CompositeExpansion(Expansion):
    def __init__(self, expansions: Sequence[Expansion], postprocess=None):
        super().__init__(postprocess)
        if not expansions:
            raise ValueError(f"{self.name} expansion: needs at least one expansion in 'expansions'")
        self.expansions = list(expansions)


class ExtendedExpansion(_CompositeExpansion):
    """κ(x) = [κ_1(x), κ_2(x), …] (concatenation); D = Σ D_i."""

    name = "extended"

    def calculate_D(self, m):
        return sum(e.calculate_D(m) for e in self.expansions)

    def forward(self, x):
        return torch.cat([e(x) for e in self.expansions], dim=-1)


class NestedExpansion(_CompositeExpansion):
    """κ(x) = κ_k(…κ_2(κ_1(x))) (composition, first listed applied first); D from chaining calculate_D."""

    name = "nested"

    def calculate_D(self, m):
        for e in self.expansions:
            m = e.calculate_D(m)
        return m

    def forward(self, x):
        for e in self.expansions:
            x = e(x)
        return x
