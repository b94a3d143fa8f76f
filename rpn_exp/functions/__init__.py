"""The RPN component functions in pure PyTorch: expansion κ, reconciliation ψ, interdependence ξ and
remainder π. Nothing here knows about Hydra, Lightning or files."""

from rpn_exp.functions import expansion, interdependence, processing, reconciliation, remainder
from rpn_exp.functions.expansion import Expansion
from rpn_exp.functions.interdependence import Interdependence
from rpn_exp.functions.reconciliation import Reconciliation
from rpn_exp.functions.remainder import Remainder

__all__ = [
    "expansion",
    "interdependence",
    "processing",
    "reconciliation",
    "remainder",
    "Expansion",
    "Interdependence",
    "Reconciliation",
    "Remainder",
]
