"""The RPN component functions in pure PyTorch: expansion κ, reconciliation ψ, interdependence ξ and
remainder π. Nothing here knows about Hydra, Lightning or files."""

from . import expansion, interdependence, processing, reconciliation, remainder
from .expansion import Expansion
from .interdependence import Interdependence
from .reconciliation import Reconciliation
from .remainder import Remainder

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
