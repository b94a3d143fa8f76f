"""Expansion functions κ: true output widths, the Taylor layout, and known polynomial values."""

import math

import pytest
import torch
from hydra.utils import instantiate

from rpn_exp.functions import expansion as E
from tests.conftest import compose_config, options


def from_config(name):
    return instantiate(compose_config([f"expansion={name}"]).expansion)


@pytest.mark.parametrize("name", options("expansion"))
@pytest.mark.parametrize("m", [1, 3, 7])
def test_calculate_D_is_the_output_width(name, m):
    kappa = from_config(name)
    out = kappa(torch.rand(4, m) * 1.8 - 0.9)
    assert out.shape == (4, kappa.calculate_D(m))
    assert torch.isfinite(out).all()


def test_taylor_widths_are_sums_of_powers():
    assert E.TaylorExpansion(d=2).calculate_D(784) == 784 + 784**2 == 615_440
    assert E.TaylorExpansion(d=3).calculate_D(5) == 5 + 25 + 125


def test_taylor_order_2_holds_the_features_of_x_and_x_xT():
    x = torch.randn(3, 5)
    kappa = E.TaylorExpansion(d=2)(x)
    reference = torch.cat([x, (x[:, :, None] * x[:, None, :]).reshape(3, -1)], dim=1)
    torch.testing.assert_close(kappa.sort(dim=1).values, reference.sort(dim=1).values)


def test_taylor_layout_is_x_kron_one_and_previous_order():
    x = torch.randn(2, 4)
    k1 = E.TaylorExpansion(d=1)(x)
    k3 = E.TaylorExpansion(d=3)(x)
    k2 = E.TaylorExpansion(d=2)(x)
    expected = torch.stack([torch.kron(x[i], torch.cat([torch.ones(1), k2[i]])) for i in range(2)])
    torch.testing.assert_close(k3, expected)
    torch.testing.assert_close(k1, x)


def test_chebyshev_matches_the_cosine_definition():
    x = torch.linspace(-0.99, 0.99, 11, dtype=torch.float64)[None, :]
    out = E.ChebyshevExpansion(d=4)(x).reshape(4, -1)
    expected = torch.stack([torch.cos(k * torch.arccos(x[0])) for k in range(1, 5)])
    torch.testing.assert_close(out, expected)


def test_jacobi_with_alpha_beta_zero_is_legendre():
    x = torch.rand(3, 4, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(E.JacobiExpansion(d=5, alpha=0.0, beta=0.0)(x), E.LegendreExpansion(d=5)(x))


def test_hermite_and_laguerre_low_orders():
    x = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    he = E.HermiteExpansion(d=3)(x).reshape(3, -1)
    torch.testing.assert_close(he, torch.stack([x[0], x[0] ** 2 - 1, x[0] ** 3 - 3 * x[0]]))
    la = E.LaguerreExpansion(d=2)(x).reshape(2, -1)
    torch.testing.assert_close(la, torch.stack([1 - x[0], (x[0] ** 2 - 4 * x[0] + 2) / 2]))


def test_bspline_basis_is_a_partition_of_unity_inside_the_grid():
    x = torch.rand(6, 3) * 1.98 - 0.99
    basis = E.BSplineExpansion(grid_range=[-1, 1], t=5, d=3)(x).reshape(6, 8, 3)
    torch.testing.assert_close(basis.sum(1), torch.ones(6, 3))


def test_fourier_rbf_and_probabilistic_values():
    x = torch.tensor([[0.25]])
    torch.testing.assert_close(E.FourierExpansion(P=1.0, N=1)(x), torch.tensor([[0.0, 1.0]]), atol=1e-6, rtol=0)
    g = E.GaussianRBFExpansion(base_range=[0, 1], num_interval=2, epsilon=2.0)(x)
    torch.testing.assert_close(g, torch.exp(-torch.tensor([[0.25, 2.25]])))
    torch.testing.assert_close(E.NaiveNormalExpansion()(x), torch.tensor([[-0.5 * math.log(2 * math.pi) - 0.03125]]))


def test_extended_concatenates_and_nested_composes():
    x = torch.randn(2, 3)
    ext = E.ExtendedExpansion([E.IdentityExpansion(), E.TaylorExpansion(d=2)])
    torch.testing.assert_close(ext(x), torch.cat([x, E.TaylorExpansion(d=2)(x)], dim=1))
    nest = E.NestedExpansion([E.LinearExpansion(c=2.0), E.TaylorExpansion(d=2)])
    torch.testing.assert_close(nest(x), E.TaylorExpansion(d=2)(2 * x))
    assert nest.calculate_D(3) == 12 and ext.calculate_D(3) == 15


def test_postprocess_builds_a_non_affine_layer_norm():
    post = E.TaylorExpansion(d=2, postprocess=["layer_norm"]).build_postprocess(12)
    assert isinstance(post[0], torch.nn.LayerNorm) and not post[0].elementwise_affine
    with pytest.raises(ValueError, match="unknown processing 'nope'.*valid choices"):
        E.IdentityExpansion(postprocess=["nope"]).build_postprocess(3)


def test_taylor_declares_its_product_layout_and_the_layer_norm_over_it():
    """d = 2 (u = t = x) also takes x with leading dimensions (a stacked group's members); d = 3 builds t."""
    kappa = E.TaylorExpansion(d=2, postprocess=["layer_norm"]).structure(5)
    assert kappa.product == E.ProductLayout(u_width=5, leading_dims=True) and kappa.norm_eps == 1e-5 and kappa.fused
    reference = E.TaylorExpansion(d=3, order="reference").structure(4)
    assert reference.product == E.ProductLayout(u_width=4, ones_first=True)
    assert not reference.processed and reference.norm_eps is None and reference.fused


@pytest.mark.parametrize("order", ["kronecker", "reference"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_a_declared_product_layout_rebuilds_kappa_from_its_factors(order, d):
    taylor, x = E.TaylorExpansion(d=d, order=order), torch.randn(3, 4)
    layout = taylor.product_layout(4)
    u, t = taylor.product_factors(x)
    left, right = layout.factors(u, t)
    assert left.shape[1] == layout.left_width(taylor.calculate_D(4)) and left.shape[1] * right.shape[1] == taylor.calculate_D(4)
    torch.testing.assert_close(layout.kappa(u, t), taylor(x))


def test_an_expansion_without_a_product_layout_declares_none():
    kappa = E.ChebyshevExpansion(d=3, postprocess=["layer_norm"]).structure(4)
    assert kappa.product is None and kappa.norm_eps == 1e-5 and not kappa.fused
    with pytest.raises(NotImplementedError, match="ChebyshevExpansion declares no product layout"):
        E.ChebyshevExpansion(d=3).product_factors(torch.randn(2, 4))


@pytest.mark.parametrize("postprocess", [["batch_norm"], [{"name": "layer_norm", "elementwise_affine": True}],
                                         ["layer_norm", "relu"]])
def test_post_processing_other_than_a_plain_layer_norm_is_declared_and_not_folded(postprocess):
    kappa = E.TaylorExpansion(d=2, postprocess=postprocess).structure(4)
    assert kappa.processed and kappa.norm_eps is None and not kappa.fused
