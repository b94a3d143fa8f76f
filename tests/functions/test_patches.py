"""Reading a grid by patches (ξ's padding and aggregation modes, centres) and pooling, against direct loops and
torch's own pooling."""

import pytest
import torch
import torch.nn.functional as F

from rpn_exp.functions import patches
from rpn_exp.functions.geometry import PACKINGS, Grid, Patch


def loop_patches(x, grid, patch, cd):
    """ξ(x) by a direct loop: for each centre on the lattice, each channel, each cell of the patch (0 outside)."""
    b = x.shape[0]
    cube = x.reshape(b, grid.channels, grid.h, grid.w, grid.d)
    rows = []
    for i in range(0, grid.h, cd[0]):
        for j in range(0, grid.w, cd[1]):
            for k in range(0, grid.d, cd[2]):
                cells = []
                for c in range(grid.channels):
                    for di, dj, dk in patch.offsets():
                        h, w, d = i + di, j + dj, k + dk
                        inside = 0 <= h < grid.h and 0 <= w < grid.w and 0 <= d < grid.d
                        cells.append(cube[:, c, h, w, d] if inside else torch.zeros(b))
                rows.append(torch.stack(cells, 1))
    return torch.stack(rows, 1)  # (b, P, c·|patch|)


PATCHES = {
    "cuboid": Patch.cuboid(1, 1),
    "asymmetric cuboid": Patch.cuboid(0, 2, 0, p_h_prime=2, p_w_prime=1),
    "cylinder": Patch.cylinder(2),
    "cuboid 3-D": Patch.cuboid(1, 1, 1, p_d_prime=0),
    "cylinder 3-D": Patch.cylinder(1, 1, 0),
    "sphere": Patch.sphere(1),
}


@pytest.mark.parametrize("name", list(PATCHES))
@pytest.mark.parametrize("cd", [(1, 1, 1), (2, 3, 1), (3, 2, 2)])
def test_padding_mode_equals_a_loop_over_patches_and_aggregation_sums_them(name, cd):
    patch = PATCHES[name]
    grid = Grid(7, 6, 3 if "3-D" in name or name == "sphere" else 1, channels=2)
    x = torch.randn(3, grid.size)
    expected = loop_patches(x, grid, patch, cd)
    got = patches.interdependence(x, grid, patch, cd, "padding")
    assert got.shape == (3, grid.packed(cd).h * grid.packed(cd).w * grid.packed(cd).d, 2 * patch.size)
    torch.testing.assert_close(got, expected)
    summed = expected.reshape(3, -1, 2, patch.size).sum(-1)
    torch.testing.assert_close(patches.interdependence(x, grid, patch, cd, "aggregation"), summed)
    assert patches.features(grid, patch, "padding") == 2 * patch.size and patches.features(grid, patch, "aggregation") == 2


@pytest.mark.parametrize("shape", list(PACKINGS))
def test_every_packing_strategy_reads_the_patches_of_its_lattice(shape):
    patch = {"cuboid": Patch.cuboid(1, 2), "cylinder": Patch.cylinder(2), "sphere": Patch.sphere(1)}[shape]
    grid = Grid(9, 8, 3 if shape == "sphere" else 1)
    x = torch.randn(2, grid.size)
    for packing in PACKINGS[shape]:
        cd = patch.centre_distance(packing)
        torch.testing.assert_close(patches.interdependence(x, grid, patch, cd), loop_patches(x, grid, patch, cd))


def test_centres_are_the_lattice_cells_and_to_grid_lays_outputs_channel_first():
    grid = Grid(5, 4, 1, channels=3)
    x = torch.arange(2 * grid.size, dtype=torch.float32).reshape(2, grid.size)
    got = patches.centres(x, grid, (2, 2, 1))
    expected = x.reshape(2, 3, 5, 4)[:, :, ::2, ::2].reshape(2, 3, -1).transpose(1, 2)
    torch.testing.assert_close(got, expected)
    rows = torch.randn(2 * 6, 4)  # (b·P, n) with P = 3 × 2
    assert torch.equal(patches.to_grid(rows, 2).reshape(2, 4, 6), rows.reshape(2, 6, 4).transpose(1, 2))


@pytest.mark.parametrize("h,w,k", [(8, 8, 2), (7, 9, 2), (9, 9, 3)])
def test_pooling_equals_torch_pooling_with_ceil_mode(h, w, k):
    grid, patch = Grid(h, w, 1, channels=3), Patch.cuboid(0, 0, 0, p_h_prime=k - 1, p_w_prime=k - 1)
    x = torch.randn(4, grid.size)
    image = x.reshape(4, 3, h, w)
    for mode, reference in [("max", F.max_pool2d(image, k, ceil_mode=True)),
                            ("mean", F.avg_pool2d(image, k, ceil_mode=True)),
                            ("min", -F.max_pool2d(-image, k, ceil_mode=True))]:
        got = patches.pool(x, grid, patch, (k, k, 1), mode)
        torch.testing.assert_close(got, reference.reshape(4, -1), msg=mode)


def test_pooling_a_centred_patch_ignores_cells_outside_the_grid():
    grid, patch = Grid(5, 5), Patch.cuboid(1, 1)
    x = torch.randn(2, grid.size)
    image = x.reshape(2, 1, 5, 5)
    torch.testing.assert_close(patches.pool(x, grid, patch, (1, 1, 1)), F.max_pool2d(image, 3, 1, 1).reshape(2, -1))
    mean = F.avg_pool2d(image, 3, 1, 1, count_include_pad=False)
    torch.testing.assert_close(patches.pool(x, grid, patch, (1, 1, 1), "mean"), mean.reshape(2, -1))


def test_unknown_modes_list_the_valid_ones():
    grid, patch = Grid(4, 4), Patch.cuboid(1, 1)
    with pytest.raises(ValueError, match="valid choices: padding, aggregation"):
        patches.interdependence(torch.zeros(1, 16), grid, patch, (1, 1, 1), "stack")
    with pytest.raises(ValueError, match="valid choices: max, mean, min"):
        patches.pool(torch.zeros(1, 16), grid, patch, (1, 1, 1), "sum")


@pytest.mark.parametrize("name", list(PATCHES))
@pytest.mark.parametrize("cd", [(1, 1, 1), (2, 3, 2)])
def test_convolving_equals_applying_W_to_every_unfolded_patch(name, cd):
    patch = PATCHES[name]
    grid = Grid(7, 6, 3 if "3-D" in name or name == "sphere" else 1, channels=2)
    x, W = torch.randn(3, grid.size), torch.randn(4, 2 * patch.size)
    expected = patches.interdependence(x, grid, patch, cd) @ W.T  # (b, P, n)
    torch.testing.assert_close(patches.convolve(x, grid, patch, cd, W), expected.transpose(1, 2))
