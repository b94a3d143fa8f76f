"""Parameter reconciliation functions ψ: R^l → R^{n×D}, one module per kind of structure.

The protocol every family implements is in :mod:`rpn_exp.functions.reconciliation.base`; a family of your own
subclasses :class:`Reconciliation` there (the guide's "Add your own family", docs/guide/extending.md). Common use::

    l = psi.calculate_l(n, D)
    W = psi(w, n, D)                   # (n, D)
    y = psi.linear(x, w, n, D)         # x @ W.T for x of shape (batch, D), through the declared structure
    psi.structure(n, D)                # what the layer chooses its compute path from
"""

from rpn_exp.functions.reconciliation.base import (
    DENSE,
    KINDS,
    KRONECKER,
    LOW_RANK,
    OUTER,
    Reconciliation,
    Structure,
    dense_variance,
    normalized_normal,
    rank_positions,
)
from rpn_exp.functions.reconciliation.dense import (
    ConstantEyeReconciliation,
    ConstantReconciliation,
    IdentityReconciliation,
    MaskingReconciliation,
    OneReconciliation,
    ZeroReconciliation,
)
from rpn_exp.functions.reconciliation.hypernet import (
    MAX_STATE_ELEMENTS,
    HypernetReconciliation,
    RandomMatrixHypernetReconciliation,
)
from rpn_exp.functions.reconciliation.kronecker import (
    LAYOUTS,
    DualLPHMReconciliation,
    DuplicatedDiagonalPaddingReconciliation,
    DuplicatedPaddingReconciliation,
    HMReconciliation,
    KroneckerReconciliation,
    LPHMReconciliation,
)
from rpn_exp.functions.reconciliation.low_rank import LowRankReconciliation, RandomMatrixAdaptionReconciliation

#: The families in a fixed order (the low-parameter families first): plots give families colours in this order.
FAMILIES = (
    IdentityReconciliation,
    LowRankReconciliation,
    HMReconciliation,
    LPHMReconciliation,
    DualLPHMReconciliation,
    DuplicatedPaddingReconciliation,
    DuplicatedDiagonalPaddingReconciliation,
    MaskingReconciliation,
    RandomMatrixAdaptionReconciliation,
    HypernetReconciliation,
    RandomMatrixHypernetReconciliation,
    ConstantReconciliation,
    ZeroReconciliation,
    OneReconciliation,
    ConstantEyeReconciliation,
)

__all__ = [
    "Reconciliation", "Structure", "KINDS", "DENSE", "LOW_RANK", "KRONECKER", "OUTER", "KroneckerReconciliation",
    "FAMILIES", "LAYOUTS", "MAX_STATE_ELEMENTS", "dense_variance", "normalized_normal", "rank_positions",
    *(family.__name__ for family in FAMILIES),
]
