"""Basis expansions laid out order-major, ``[φ_1(x), φ_2(x), ...]`` each block m wide: Fourier, B-spline, the
orthogonal polynomials, radial basis functions and the naive probabilistic ones."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from rpn_exp.functions.expansion.base import _ElementwiseExpansion
from rpn_exp.functions.shapes import check_positive_int


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
        if not epsilon > 0:
            raise ValueError(f"{self.name} expansion: epsilon={epsilon!r} is invalid; it must be a number > 0 (the "
                             f"inverse width of each basis function: 0 makes every feature constant)")
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
