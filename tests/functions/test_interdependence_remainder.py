"""Interdependence functions ξ and remainder functions π."""

import pytest
import torch
from hydra.utils import instantiate

from rpn_exp.functions import interdependence as I
from rpn_exp.functions import reconciliation as R
from rpn_exp.functions import remainder as P
from tests.conftest import compose_config, options


@pytest.mark.parametrize("name", options("interdependence"))
def test_every_interdependence_maps_a_batch(name):
    xi = instantiate(compose_config([f"interdependence={name}", "dataset.batch_size=8"]).interdependence)
    m = 12
    w = xi.init_w(m)
    state = xi.create_state(m)
    for rows in (8, 5):  # a full batch and a shorter last one
        x_prime = xi(torch.randn(rows, m), w, state)
        assert x_prime.shape == (rows, xi.output_dim(m))


def test_attribute_interdependence_is_x_times_A():
    xi = I.AttributeInterdependence(R.LowRankReconciliation(r=2), m_prime=4)
    w, x = xi.init_w(6), torch.randn(3, 6)
    A = xi.matrix(w, 6)
    assert A.shape == (6, 4) and xi.calculate_l(6) == 2 * (6 + 4)
    torch.testing.assert_close(xi(x, w), x @ A)


def test_dual_lphm_interdependence_count_and_q_defaults_to_p():
    cfg = compose_config(["interdependence=dual_lphm", "interdependence.reconciliation.p=4", "interdependence.reconciliation.r=1"])
    xi = instantiate(cfg.interdependence)
    # l = r (p + q + m/p + m'/q) with q = p = 4, m = m' = 16
    assert xi.reconciliation.q == 4
    assert xi.calculate_l(16) == 1 * (4 + 4 + 4 + 4)


def test_instance_interdependence_mixes_rows():
    xi = I.InstanceInterdependence(R.IdentityReconciliation(), b=4)
    w = torch.eye(4).reshape(1, -1)
    x = torch.randn(4, 3)
    torch.testing.assert_close(xi(x, w), x)
    A = torch.randn(4, 4)
    x = torch.randn(10, 3)  # an evaluation batch larger than b: blocks of 4, 4 and 2 rows
    mixed = xi(x, A.reshape(1, -1))
    torch.testing.assert_close(mixed, torch.cat([A.T @ x[:4], A.T @ x[4:8], A[:2, :2].T @ x[8:]]))


def test_kernel_interdependences_follow_their_formulas():
    x = torch.randn(10, 4)
    cols = x / x.norm(dim=0)
    torch.testing.assert_close(I.CosineSimilarityInterdependence()(x), x @ (cols.T @ cols) / 4)
    A = torch.exp(-((x.T[:, None, :] - x.T[None, :, :]) ** 2).sum(-1) / 2)
    torch.testing.assert_close(I.GaussianRBFInterdependence(sigma=1.0)(x), x @ A / 4, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", options("remainder"))
def test_every_remainder_instantiates(name):
    pi = instantiate(compose_config([f"remainder={name}"]).remainder)
    pi.check(5, 5)
    out = pi(torch.randn(3, 5), 5, pi.create_state(5, 5))
    assert out is None if name == "zero" else out.shape == (3, 5)


def test_remainder_formulas_and_errors():
    x = torch.randn(3, 5)
    torch.testing.assert_close(P.IdentityRemainder()(x, 5), x)
    torch.testing.assert_close(P.ConstantRemainder(c=2.0)(x, 4), torch.full((3, 4), 2.0))
    state = P.LinearRemainder(bias=True).create_state(5, 2)
    torch.testing.assert_close(P.LinearRemainder(bias=True)(x, 2, state), x @ state["weight"].T + state["bias"])
    with pytest.raises(ValueError, match="m=5, n=2.*a linear or a zero remainder"):
        P.IdentityRemainder().check(5, 2)
