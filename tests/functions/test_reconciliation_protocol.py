"""The ψ protocol (``rpn_exp.functions.reconciliation.base``): every family declares the form of W and builds W in
that form through the same methods with the same signatures; the layer chooses its path from the declaration."""

import inspect

import pytest
import torch
from hydra.utils import instantiate

from rpn_exp.functions import reconciliation as R
from rpn_exp.functions.expansion import TaylorExpansion
from rpn_exp.functions.factors import Kronecker, LowRank, Outer, shape
from rpn_exp.nn import RPNHead
from tests.conftest import compose_config, options

FORM = {R.DENSE: torch.Tensor, R.LOW_RANK: LowRank, R.KRONECKER: Kronecker, R.OUTER: Outer}
#: The methods a family may define, each with the base class's parameters.
PROTOCOL = ("pieces", "hparams", "structure", "rank_bound", "max_rank", "factor_std", "create_state",
            "expected_state", "factors", "linear", "init_w", "calibrate")


def families():
    """Every configured family, plus the reference layout of each Kronecker family."""
    found = [(name, instantiate(compose_config([f"reconciliation={name}"]).reconciliation))
             for name in options("reconciliation")]
    found += [(f"{name} reference", getattr(R, cls)(layout="reference"))
              for name, cls in (("hm", "HMReconciliation"), ("dual_lphm", "DualLPHMReconciliation"))]
    return found


@pytest.mark.parametrize("name,psi", families(), ids=[name for name, _ in families()])
def test_factors_return_the_declared_form_and_it_is_W(name, psi):
    n, D = 6, 12
    structure = psi.structure(n, D)
    state = psi.create_state(n, D)
    w = psi.init_w(n, D)[0]
    form = psi.factors(w, n, D, state)
    assert isinstance(form, FORM[structure.kind]), (name, structure, type(form))
    assert torch.equal(R.base.materialize(form, n, D), psi(w, n, D, state))
    if structure.kind == R.KRONECKER:
        assert shape(form.A) == structure.blocks


@pytest.mark.parametrize("family", R.FAMILIES, ids=lambda f: f.name)
def test_every_family_keeps_the_protocols_signatures(family):
    for method in PROTOCOL:
        ours, base = getattr(family, method), getattr(R.Reconciliation, method)
        if ours is not base:
            assert list(inspect.signature(ours).parameters) == list(inspect.signature(base).parameters), \
                f"{family.__name__}.{method}"


def test_a_structure_is_checked_when_declared():
    with pytest.raises(ValueError, match="valid kinds: dense, low_rank, kronecker, outer"):
        R.Structure("sparse")
    with pytest.raises(ValueError, match="blocks"):
        R.Structure(R.KRONECKER)


class _NeverBuilt(R.LowRankReconciliation):
    """lorr whose W must not be built while a head is constructed."""

    def factors(self, w, n, D, state=None):
        raise AssertionError("the head called factors() to choose its path")


def test_the_head_chooses_its_path_from_the_declaration_without_building_W():
    head = RPNHead(4, 3, expansion=TaylorExpansion(d=2, postprocess=["layer_norm"]), reconciliation=_NeverBuilt(r=2))
    assert head.path == "bilinear" and head.structure == R.Structure(R.LOW_RANK)


def test_a_family_that_leaves_out_a_required_method_says_which():
    class Half(R.Reconciliation):
        def pieces(self, n, D):
            return [("W", (n, D))]

    with pytest.raises(NotImplementedError, match="factors"):
        Half()(torch.zeros(6), 2, 3)
