"""A ψ family, a κ and a ξ written outside rpn_exp, as a user would: the examples of "Add your own family" (docs/guide/extending.md).

kron_adapter: W = A ⊗ (diag(λ) R), with A (p×q) and λ (n/p) learned and R (n/p × D/q) a frozen random matrix;
l = pq + n/p. It declares a Kronecker structure, so with the Taylor expansion (q = m) a layer takes the product
path: neither κ nor W is built.

tanh_pair: κ(x) = x ⊗ [1, tanh(x)], D = m(m + 1). It declares that product layout, so with a Kronecker ψ (q = m)
a layer takes the product path too, and with a low-rank one the bilinear path.

attribute_gate: ξ(x) = x ⊙ 2σ(g), each of the m attributes scaled by a learned gate; l = m, g = 0 at the start
(ξ is then the identity).
"""

import torch

from rpn_exp.functions.expansion import Expansion, ProductLayout
from rpn_exp.functions.factors import Kronecker
from rpn_exp.functions.interdependence import Interdependence
from rpn_exp.functions.reconciliation import KRONECKER, Reconciliation, Structure, normalized_normal
from rpn_exp.functions.shapes import resolve_factor


class KronAdapter(Reconciliation):
    """W = A ⊗ (diag(λ) R); l = pq + n/p. Init: A and λ with σ = variance^{1/4} (R has unit variance)."""

    name = "kron_adapter"
    degree = 2  # W(αw) = α² W(w): A and λ both scale

    def __init__(self, p: int | None = None, q: int | None = None, seed: int = 0):
        super().__init__(seed)
        self.p, self.q = p, q

    def dims(self, n, D):
        p = resolve_factor(self.p, n, factor="p", dim="n", owner=self.name)
        q = resolve_factor(self.q, D, factor="q", dim="D", owner=self.name)
        return p, q, n // p, D // q

    def pieces(self, n, D):
        p, q, s, _ = self.dims(n, D)
        return [("A", (p, q)), ("lam", (s,))]

    def hparams(self, n, D):
        p, q, _, _ = self.dims(n, D)
        return {"p": p, "q": q}

    def structure(self, n, D):
        p, q, _, _ = self.dims(n, D)
        return Structure(KRONECKER, blocks=(p, q))

    def create_state(self, n, D, generator=None, variance=None):
        _, _, s, t = self.dims(n, D)
        return {"R": normalized_normal((s, t), 1.0, generator)}

    def factors(self, w, n, D, state=None):
        parts, state = self.split(w, n, D), self.state_or_default(n, D, state)
        return Kronecker(parts["A"], parts["lam"][:, None] * state["R"])

    def factor_std(self, n, D, variance):
        return variance ** 0.25

    def rank_bound(self, n, D):
        p, q, s, t = self.dims(n, D)
        return min(min(p, q) * min(s, t), n, D)


class TanhPair(Expansion):
    """κ(x) = x ⊗ [1, tanh(x)]: the features of x, and every product x_i tanh(x_j); D = m(m + 1)."""

    name = "tanh_pair"

    def calculate_D(self, m):
        return m * (m + 1)

    def product_layout(self, m):
        return ProductLayout(u_width=m, leading_dims=True)  # tanh keeps any leading dimensions of x

    def product_factors(self, x):
        return x, torch.tanh(x)


class AttributeGate(Interdependence):
    """ξ(x) = x ⊙ 2σ(g): x (b, m) -> (b, m), attribute i scaled by 2σ(g_i); g (1, m) learned, 0 at the start."""

    name = "attribute_gate"

    def calculate_l(self, m):
        return m

    def init_w(self, m, generator=None):
        return torch.zeros(1, m)

    def __call__(self, x, w=None, state=None):
        return x * 2 * torch.sigmoid(w)
