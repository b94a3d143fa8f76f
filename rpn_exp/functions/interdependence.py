"""Data interdependence functions ξ.

Attribute type: x' = x A with A ∈ R^{m×m'} (mixes the m attributes of each instance).
Instance type: x' = Aᵀ x with A ∈ R^{b×b} (mixes the b instances of a batch; a shorter last batch uses
the leading block of A). Parameterized ξ fabricate A with a reconciliation function ψ (n→m, D→m');
kernel ξ compute A from the batch itself and have no parameters.

Interface::

    m_prime = xi.output_dim(m)
    l = xi.calculate_l(m)
    x_prime = xi(x, w, state)   # x (b, m) -> (b, m'); state from xi.create_state(m)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rpn_exp.functions.base import Function
from rpn_exp.functions.reconciliation import Reconciliation
from rpn_exp.functions.shapes import check_positive_int

__all__ = [
    "Interdependence",
    "NoInterdependence",
    "AttributeInterdependence",
    "InstanceInterdependence",
    "CosineSimilarityInterdependence",
    "GaussianRBFInterdependence",
]


class Interdependence(Function):
    """Base class. Without parameters l = 0 and ``w`` is ignored."""

    name = "interdependence"
    #: Whether ξ(x) = x (declared: a grid layer then convolves x itself).
    identity = False

    def output_dim(self, m: int) -> int:
        return m

    def calculate_l(self, m: int) -> int:
        return 0


    def init_w(self, m: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros(1, 0)

    def create_state(self, m: int, generator: torch.Generator | None = None) -> dict:
        return {}

    def __call__(self, x: torch.Tensor, w: torch.Tensor | None = None, state: dict | None = None) -> torch.Tensor:
        raise NotImplementedError



class NoInterdependence(Interdependence):
    """ξ(x) = x; m' = m."""

    name = "none"
    identity = True

    def __call__(self, x, w=None, state=None):
        return x


class AttributeInterdependence(Interdependence):
    """x' = x A, A = ψ(w) ∈ R^{m×m'} fabricated by ``reconciliation`` with (n, D) = (m, m').

    l = ψ.calculate_l(m, m'); ``m_prime`` defaults to m.
    """

    name = "attribute"

    def __init__(self, reconciliation: Reconciliation, m_prime: int | None = None):
        self.reconciliation = reconciliation
        self.m_prime = None if m_prime is None else check_positive_int(m_prime, name="m_prime", owner="interdependence")

    def output_dim(self, m):
        return self.m_prime or m

    def calculate_l(self, m):
        return self.reconciliation.calculate_l(m, self.output_dim(m))


    def init_w(self, m, generator=None):
        """A = ψ(w) with Var(A_ij) = 1/m: x' = x A sums m products (its fan-in is m, whatever m'), so x' keeps the
        scale of x, as the identity it generalizes does."""
        return self.reconciliation.init_w(m, self.output_dim(m), generator=generator, variance=1.0 / m)

    def create_state(self, m, generator=None):
        return self.reconciliation.create_state(m, self.output_dim(m), generator, variance=1.0 / m)

    def matrix(self, w: torch.Tensor, m: int, state: dict | None = None) -> torch.Tensor:
        """A = ψ(w) of shape (m, m')."""
        return self.reconciliation(w, m, self.output_dim(m), state)

    def __call__(self, x, w=None, state=None):
        return x @ self.matrix(w, x.shape[1], state)


class InstanceInterdependence(Interdependence):
    """x' = Aᵀ x, A = ψ(w) ∈ R^{b×b} fabricated by ``reconciliation`` with (n, D) = (b, b).

    ``b`` is the batch size the layer is built for; a batch of b₀ < b rows uses A[:b₀, :b₀]. A batch of more
    than b rows (evaluation batches are larger than training ones) is mixed in consecutive blocks of b rows, the
    last block as a short batch: every row is mixed with b − 1 others, as in training.
    """

    name = "instance"

    def __init__(self, reconciliation: Reconciliation, b: int = 64):
        self.reconciliation = reconciliation
        self.b = check_positive_int(b, name="b", owner="instance interdependence")

    def calculate_l(self, m):
        return self.reconciliation.calculate_l(self.b, self.b)


    def init_w(self, m, generator=None):
        """Var(A_ij) = 1/b: each mixed row sums b rows of the batch (its fan-in)."""
        return self.reconciliation.init_w(self.b, self.b, generator=generator, variance=1.0 / self.b)

    def create_state(self, m, generator=None):
        return self.reconciliation.create_state(self.b, self.b, generator, variance=1.0 / self.b)

    def __call__(self, x, w=None, state=None):
        A = self.reconciliation(w, self.b, self.b, state)
        blocks = [A[: len(block), : len(block)].T @ block for block in x.split(self.b)]
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks)


class CosineSimilarityInterdependence(Interdependence):
    """x' = x A / m with A_ij = cos(X_{:,i}, X_{:,j}), the cosine similarity of attributes i and j over
    the batch; no parameters, m' = m."""

    name = "cosine_similarity"

    def __call__(self, x, w=None, state=None):
        columns = F.normalize(x, dim=0)
        return x @ (columns.T @ columns) / x.shape[1]


class GaussianRBFInterdependence(Interdependence):
    """x' = x A / m with A_ij = exp(−‖X_{:,i} − X_{:,j}‖² / (2σ²)) over the batch; no parameters, m' = m."""

    name = "gaussian_rbf"

    def __init__(self, sigma: float = 1.0):
        if sigma <= 0:
            raise ValueError(f"gaussian_rbf interdependence: sigma={sigma!r} is invalid; it must be > 0")
        self.sigma = sigma

    def __call__(self, x, w=None, state=None):
        A = torch.exp(-torch.cdist(x.T, x.T).pow(2) / (2 * self.sigma**2))
        return x @ A / x.shape[1]
