"""The Taylor expansion κ(x) = [x, x ⊗ x, ...] of order d, laid out so that the layer can use
(A ⊗ B)(u ⊗ v) = (A u) ⊗ (B v)."""

from __future__ import annotations

import torch

from rpn_exp.functions.expansion.base import Expansion, ProductLayout
from rpn_exp.functions.shapes import check_positive_int

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

    def product_layout(self, m: int) -> ProductLayout:
        """κ(x) = x ⊗ [1, κ_{d−1}(x)], or [1, κ_{d−1}(x)] ⊗ x in the reference order; for d = 2 (u = t = x, nothing
        computed) x may carry leading dimensions."""
        return ProductLayout(u_width=m, ones_first=self.order == "reference", leading_dims=self.d == 2)

    def forward(self, x):
        return x if self.d == 1 else super().forward(x)
