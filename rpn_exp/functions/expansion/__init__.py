"""Data expansion functions κ: R^m → R^D.

Every expansion offers ``calculate_D(m)`` (its true output width) and ``__call__(x)`` mapping
x of shape (batch, m) to κ(x) of shape (batch, D). Basis expansions lay features out order-major:
``[φ_1(x), φ_2(x), ...]``, each block m wide. ``postprocess`` names per-layer modules applied to κ
(see :mod:`rpn_exp.functions.processing`), e.g. ``["layer_norm"]`` for the paper's non-affine layer norm.
"""

from rpn_exp.functions.expansion.base import (
    Expansion,
    ExpansionStructure,
    IdentityExpansion,
    LinearExpansion,
    ProductLayout,
    ReciprocalExpansion,
)
from rpn_exp.functions.expansion.basis import (
    BSplineExpansion,
    ChebyshevExpansion,
    FourierExpansion,
    GaussianRBFExpansion,
    HermiteExpansion,
    InverseQuadraticRBFExpansion,
    JacobiExpansion,
    LaguerreExpansion,
    LegendreExpansion,
    NaiveCauchyExpansion,
    NaiveLaplaceExpansion,
    NaiveNormalExpansion,
)
from rpn_exp.functions.expansion.composite import ExtendedExpansion, NestedExpansion
from rpn_exp.functions.expansion.taylor import TAYLOR_ORDERS, TaylorExpansion

__all__ = [
    "Expansion",
    "ExpansionStructure",
    "ProductLayout",
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
    "TAYLOR_ORDERS",
]
