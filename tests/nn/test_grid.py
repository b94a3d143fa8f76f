"""Grid layers, pooling and the grid network: a convolution whose W = ψ(w) comes from the reconciliation."""

import pytest
import torch
import torch.nn.functional as F

from rpn_exp.functions import expansion as E
from rpn_exp.functions import reconciliation as R
from rpn_exp.functions import remainder as P
from rpn_exp.functions.geometry import Grid, Patch
from rpn_exp.nn import count_learnable
from rpn_exp.nn.grid import GridLayer, GridNetwork, GridPooling

IDENTITY = dict(expansion=E.IdentityExpansion(), reconciliation=R.IdentityReconciliation())


def assert_same_function(fast: GridLayer, slow: GridLayer, batch: int):
    """Equal outputs and gradients (input and every parameter) in float64 for a random batch of grids."""
    slow.load_state_dict(fast.state_dict())
    fast, slow = fast.double(), slow.double()
    x1 = torch.randn(batch, fast.grid_in.size, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = fast(x1), slow(x2)
    torch.testing.assert_close(y1, y2)
    (y1.square().sum()).backward()
    (y2.square().sum()).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    for (name, p1), (_, p2) in zip(fast.named_parameters(), slow.named_parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, msg=name)


def conv_reference(x, grid, weight, patch, cd):
    """conv2d with the patch's zero padding (before, after per axis) and stride cd."""
    (bh, ah), (bw, aw), _ = patch.extents
    image = F.pad(x.reshape(x.shape[0], grid.channels, grid.h, grid.w), (bw, aw, bh, ah))
    return F.conv2d(image, weight, stride=cd[:2]).reshape(x.shape[0], -1)


@pytest.mark.parametrize("patch", [Patch.cuboid(1, 1), Patch.cuboid(0, 2, 0, p_h_prime=2, p_w_prime=1),
                                   Patch.cuboid(0, 0)], ids=["3x3", "asymmetric", "1x1"])
@pytest.mark.parametrize("cd", [(1, 1, 1), (2, 2, 1), (3, 1, 1)])
@pytest.mark.parametrize("channels_in,channels_out", [(1, 4), (3, 2)])
@pytest.mark.parametrize("materialize", [False, True], ids=["convolution", "unfolded"])
def test_identity_kappa_and_psi_is_conv2d_in_values_and_gradients(patch, cd, channels_in, channels_out, materialize):
    torch.manual_seed(0)
    grid = Grid(7, 6, 1, channels_in)
    layer = GridLayer(grid, channels_out, patch=patch, cd=cd, materialize=materialize, **IDENTITY).double()
    assert layer.path == ("materialized" if materialize else "convolution")
    kh, kw, _ = patch.box
    weight = layer.heads[0].weight()[0].reshape(channels_out, channels_in, kh, kw).detach().requires_grad_(True)
    x1 = torch.randn(5, grid.size, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = layer(x1), conv_reference(x2, grid, weight, patch, cd)
    assert y1.shape == (5, layer.grid_out.size) and layer.grid_out.channels == channels_out
    torch.testing.assert_close(y1, y2)
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(layer.heads[0].w.grad.reshape(weight.shape), weight.grad)


@pytest.mark.parametrize("psi", [R.DualLPHMReconciliation(r=2), R.HMReconciliation(k=2), R.LPHMReconciliation(r=1)],
                         ids=["dual_lphm", "hm_k2", "lphm"])
@pytest.mark.parametrize("norm", [None, ["layer_norm"]])
def test_a_quadratic_kronecker_convolution_takes_the_product_path_exactly(psi, norm):
    torch.manual_seed(0)
    grid, patch = Grid(6, 5, 1, 2), Patch.cylinder(1)
    options = dict(patch=patch, cd=(1, 2, 1), expansion=E.TaylorExpansion(d=2, postprocess=norm), reconciliation=psi)
    fast, slow = GridLayer(grid, 4, **options), GridLayer(grid, 4, materialize=True, **options)
    assert fast.path == "product" and slow.path == "materialized"
    assert_same_function(fast, slow, batch=3)


@pytest.mark.parametrize("psi,l", [
    (R.IdentityReconciliation(), lambda n, D: n * D),
    (R.LowRankReconciliation(r=2), lambda n, D: 2 * (n + D)),
    (R.DualLPHMReconciliation(r=1, p=2, q=9), lambda n, D: 1 * (2 + 9 + n // 2 + D // 9)),
], ids=["identity", "lorr", "dual_lphm"])
def test_a_grid_layer_has_the_parameters_of_one_layer_R_m_to_R_n_whatever_the_grid(psi, l):
    patch = Patch.cuboid(1, 1)  # m = c · 9 = 18 per patch
    kwargs = dict(patch=patch, expansion=E.TaylorExpansion(d=2), reconciliation=psi, remainder=P.LinearRemainder(),
                  bias=True)
    small, large = (GridLayer(Grid(s, s, 1, 2), 6, cd=(1, 1, 1), **kwargs) for s in (5, 28))
    D = 18 + 18 * 18
    assert small.m == 18 and small.D == D
    expected = l(6, D) + 2 * 6 + 6  # ψ's l, a 1×1 projection of the centre's 2 channels, the bias
    assert count_learnable(small) == count_learnable(large) == expected
    row = large.describe()
    assert row["learnable"] == expected and row["grid"] == "2×28×28->6×28×28" and row["patch"] == "cuboid 3×3×1 (9 cells)"


def test_the_linear_remainder_is_a_1x1_convolution_of_the_centre_cells():
    torch.manual_seed(0)
    grid = Grid(6, 6, 1, 3)
    layer = GridLayer(grid, 2, patch=Patch.cuboid(1, 1), cd=(2, 2, 1), remainder=P.LinearRemainder(),
                      expansion=E.IdentityExpansion(), reconciliation=R.ZeroReconciliation())
    projection = next(p for name, p in layer.named_parameters() if name.startswith("pi_"))
    x = torch.randn(2, grid.size)
    expected = F.conv2d(x.reshape(2, 3, 6, 6), projection.reshape(2, 3, 1, 1), stride=2).reshape(2, -1)
    torch.testing.assert_close(layer(x), expected)


def test_batch_norm_output_processing_normalizes_each_channel_over_batch_and_positions():
    torch.manual_seed(0)
    grid = Grid(5, 5, 1, 1)
    layer = GridLayer(grid, 3, patch=Patch.cuboid(1, 1), cd=(1, 1, 1), output_processing=["batch_norm"], **IDENTITY)
    plain = GridLayer(grid, 3, patch=Patch.cuboid(1, 1), cd=(1, 1, 1), **IDENTITY)
    plain.load_state_dict(layer.state_dict(), strict=False)
    x = torch.randn(8, grid.size)
    expected = F.batch_norm(plain(x).reshape(8, 3, 5, 5), None, None, training=True).reshape(8, -1)
    torch.testing.assert_close(layer(x), expected)


def test_the_grid_network_stacks_layers_pools_and_a_perceptron_head():
    net = GridNetwork(Grid(8, 8), [4, 6], [10], patch=Patch.cuboid(1, 1), cd=(1, 1, 1),
                      pooling={"patch": Patch.cuboid(0, 0, 0, 1, 1), "cd": (2, 2, 1), "mode": "max"},
                      grid_processing=["batch_norm", "relu"], **IDENTITY)
    assert net.widths == [64, 4 * 16, 6 * 4, 10]
    assert [layer.m for layer in net.layers] == [9, 36, 24] and net(torch.randn(3, 64)).shape == (3, 10)
    rows = net.describe()
    assert [row.get("pool") for row in rows] == ["max 2×2->4×4×4", "max 2×2->6×2×2", None]
    pools = [m for m in net.modules() if isinstance(m, GridPooling)]
    assert [p.grid_out.size for p in pools] == [64, 24]


def test_pooling_every_second_layer():
    net = GridNetwork(Grid(8, 8), [2, 2, 2], [10], patch=Patch.cuboid(1, 1), cd=(1, 1, 1), pool_every=2,
                      pooling={"patch": Patch.cuboid(0, 0, 0, 1, 1), "cd": (2, 2, 1)}, **IDENTITY)
    assert net.widths == [64, 128, 32, 32, 10]


def test_a_pooling_that_leaves_no_grid_to_pool_is_refused_with_the_layer():
    with pytest.raises(ValueError, match=r"patch of the pooling after layer 3 \(cuboid 2×2×1 \(4 cells\)\) spans 2 "
                                         r"cells along h, more than the grid's 1"):
        GridNetwork(Grid(8, 8), [2, 2, 2, 2], [10], patch=Patch.cuboid(0, 0), cd=(1, 1, 1),
                    pooling={"patch": Patch.cuboid(0, 0, 0, 1, 1), "cd": (2, 2, 1)}, **IDENTITY)
    with pytest.raises(ValueError, match=r"the patch of layer 2 \(cuboid 3×3×1 \(9 cells\)\) spans 3 cells along h, "
                                         r"more than the grid's 2 \(grid 2×2×2\)"):
        GridNetwork(Grid(8, 8), [2, 2, 2], [10], patch=Patch.cuboid(1, 1), cd=(1, 1, 1),
                    pooling={"patch": Patch.cuboid(0, 0, 0, 1, 1), "cd": (2, 2, 1)}, **IDENTITY)


@pytest.mark.parametrize("psi", [R.IdentityReconciliation(), R.LowRankReconciliation(r=2), R.DualLPHMReconciliation(r=1),
                                 R.MaskingReconciliation(p=0.5)], ids=["identity", "lorr", "dual_lphm", "masking"])
@pytest.mark.parametrize("patch,grid", [(Patch.cylinder(1), Grid(6, 5, 1, 2)), (Patch.sphere(1), Grid(4, 4, 3, 2)),
                                        (Patch.cuboid(1, 0, 1, p_d_prime=0), Grid(4, 5, 3, 1))],
                         ids=["disk", "sphere 3-D", "cuboid 3-D"])
def test_the_convolution_path_equals_the_unfolded_one_with_heads_channels_remainder_and_processing(psi, patch, grid):
    torch.manual_seed(0)
    options = dict(patch=patch, cd=(2, 1, 2), expansion=E.IdentityExpansion(), reconciliation=psi, heads=2, channels=2,
                   remainder=P.LinearRemainder(), bias=True, output_processing=["batch_norm", "relu"])
    fast, slow = GridLayer(grid, 3, **options), GridLayer(grid, 3, materialize=True, **options)
    assert fast.path == "convolution" and slow.path == "materialized" and fast.describe()["path"] == "convolution"
    assert_same_function(fast.eval(), slow.eval(), batch=4)  # eval: masking's expected W, batch norm's statistics


def test_a_kappa_or_xi_that_is_not_the_identity_unfolds_the_patches():
    grid, patch = Grid(5, 5), Patch.cuboid(1, 1)
    quadratic = GridLayer(grid, 2, patch=patch, cd=(1, 1, 1), expansion=E.TaylorExpansion(d=2),
                          reconciliation=R.DualLPHMReconciliation(r=1))
    normalized = GridLayer(grid, 2, patch=patch, cd=(1, 1, 1), expansion=E.IdentityExpansion(postprocess=["layer_norm"]),
                           reconciliation=R.IdentityReconciliation())
    aggregated = GridLayer(grid, 2, patch=patch, cd=(1, 1, 1), mode="aggregation", **IDENTITY)
    assert (quadratic.path, normalized.path, aggregated.path) == ("product", "materialized", "materialized")


def test_batch_norm_running_statistics_are_not_counted_as_frozen_parameters():
    from rpn_exp.nn import count_frozen

    layer = GridLayer(Grid(8, 8, 1, 1), 8, patch=Patch.cuboid(1, 1), cd=(1, 1, 1), output_processing=["batch_norm", "relu"],
                      **IDENTITY)
    assert any("running_mean" in name for name, _ in layer.named_buffers()) and count_frozen(layer) == 0
