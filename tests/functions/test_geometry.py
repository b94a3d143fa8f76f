"""Grids and patches: which cells a patch holds, where centres lie, the grid they leave."""

import itertools
import math

import pytest

from rpn_exp.functions.geometry import PACKINGS, Grid, Patch, centre_distance


def test_a_cuboid_holds_its_box_with_primed_half_extents_after_the_centre():
    patch = Patch.cuboid(1, 2, 0, p_h_prime=2, p_w_prime=0)
    assert patch.box == (4, 3, 1) and patch.size == 12
    assert patch.offsets()[0] == (-1, -2, 0) and patch.offsets()[-1] == (2, 0, 0)
    assert patch.cell_index() is None  # it fills its box


@pytest.mark.parametrize("r,p_d,p_d_prime", [(1, 0, 0), (2, 0, 0), (3, 1, 2)])
def test_a_cylinder_holds_the_disk_of_its_radius_at_each_depth(r, p_d, p_d_prime):
    patch = Patch.cylinder(r, p_d, p_d_prime)
    expected = {(i, j, k) for i, j in itertools.product(range(-r - 1, r + 2), repeat=2) if i * i + j * j <= r * r
                for k in range(-p_d, p_d_prime + 1)}
    assert set(patch.offsets()) == expected
    assert patch.size == len(expected) == {1: 5, 2: 13, 3: 29}[r] * (p_d + p_d_prime + 1)


@pytest.mark.parametrize("r,cells", [(1, 7), (2, 33)])
def test_a_sphere_holds_the_ball_of_its_radius(r, cells):
    patch = Patch.sphere(r)
    expected = {o for o in itertools.product(range(-r - 1, r + 2), repeat=3) if sum(c * c for c in o) <= r * r}
    assert set(patch.offsets()) == expected and patch.size == cells
    index = patch.cell_index()  # positions in the flattened (2r+1)^3 box
    box = list(itertools.product(range(-r, r + 1), repeat=3))
    assert [box[i] for i in index.tolist()] == patch.offsets()


def test_the_packed_grid_has_len_range_cells_per_axis():
    grid = Grid(28, 27, 1, 3)
    assert grid.size == 3 * 28 * 27
    packed = grid.packed((3, 2, 1), channels=5)
    assert (packed.h, packed.w, packed.d, packed.channels) == (len(range(0, 28, 3)), 14, 1, 5)
    assert str(packed) == "5×10×14"


@pytest.mark.parametrize("shape", list(PACKINGS))
def test_every_packing_strategy_gives_a_centre_distance_of_at_least_1(shape):
    patch = {"cuboid": Patch.cuboid(2, 3, 1), "cylinder": Patch.cylinder(3, 1), "sphere": Patch.sphere(3)}[shape]
    for packing, factors in PACKINGS[shape].items():
        cd = patch.centre_distance(packing)
        assert all(isinstance(c, int) and c >= 1 for c in cd)
        if factors is None:
            assert cd == (1, 1, 1)


def test_cuboid_packings_are_multiples_of_the_half_extents():
    patch = Patch.cuboid(2, 1, 0)
    assert patch.centre_distance("dense_square") == (2, 1, 1)  # p_d = 0: never below 1
    assert patch.centre_distance("complete_square") == (4, 2, 1)
    assert patch.centre_distance("sparse_square") == (6, 3, 1)
    assert Patch.cylinder(2).centre_distance("complete_square") == (int(math.sqrt(2) * 2),) * 2 + (1,)


def test_an_unknown_packing_lists_the_valid_ones_for_its_shape():
    with pytest.raises(ValueError, match="packing='hexagonal' is invalid for a cuboid patch; valid choices: "
                                         "densest_packing, dense_square"):
        Patch.cuboid(1, 1).centre_distance("hexagonal")


def test_an_explicit_centre_distance_takes_one_two_or_three_values_of_at_least_1():
    patch = Patch.cuboid(1, 1)
    assert centre_distance(patch, cd=2) == (2, 2, 2)
    assert centre_distance(patch, cd=[2, 3]) == (2, 3, 1)
    assert centre_distance(patch, "complete_square") == (2, 2, 1)
    for bad in (0, [1, 0], [1, 2, 3, 4], 1.5):
        with pytest.raises(ValueError, match="cd="):
            centre_distance(patch, cd=bad)


def test_negative_half_extents_are_refused_with_their_name():
    with pytest.raises(ValueError, match="p_w_prime=-1 is invalid"):
        Patch.cuboid(1, 1, p_w_prime=-1)
    with pytest.raises(ValueError, match="p_r=-2 is invalid"):
        Patch.sphere(-2)


def test_a_patch_larger_than_the_grid_is_refused():
    Patch.cuboid(3, 3).check_fits(Grid(7, 7))
    with pytest.raises(ValueError, match=r"spans 9 cells along h, more than the grid's 8 \(grid 1×8×8\)"):
        Patch.cuboid(4, 0).check_fits(Grid(8, 8))
    with pytest.raises(ValueError, match="along d"):  # a sphere on a 2-D grid: a cylinder is its disk
        Patch.sphere(1).check_fits(Grid(8, 8))
