"""Grids and patches (RPN 2's geometric interdependence): the cells a patch holds, where patch centres lie and the
grid they leave.

A grid holds ``channels`` × h × w × d cells, flattened channel first (index = ((c·h + i)·w + j)·d + k: an image
(c, h, w) flattened as torch does, with d = 1). A patch is a set of cell offsets (i, j, k) around its centre:

* cuboid with half-extents p_h before and p_h′ after the centre along h (p_w, p_w′ along w; p_d, p_d′ along d):
  (p_h + p_h′ + 1)(p_w + p_w′ + 1)(p_d + p_d′ + 1) cells;
* cylinder of radius p_r: the offsets with i² + j² ≤ p_r², at depths −p_d … p_d′ (a disk on a 2-D grid);
* sphere of radius p_r: the offsets with i² + j² + k² ≤ p_r².

Patch centres lie on the lattice (0, cd_h, 2cd_h, …) × (0, cd_w, …) × (0, cd_d, …): the centre distance cd per axis
is given, or derived from the patch by a packing strategy (:data:`PACKINGS`); the packed grid has
len(range(0, h, cd_h)) × len(range(0, w, cd_w)) × len(range(0, d, cd_d)) cells.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from rpn_exp.functions.shapes import check_positive_int

PATCH_SHAPES = ("cuboid", "cylinder", "sphere")

_R2, _R3, _R6 = math.sqrt(2), math.sqrt(3), math.sqrt(6)
#: Packing strategies per patch shape: the centre distance per axis (h, w, d) as multiples of the patch's size along
#: it (cuboid: its half-extents p_h, p_w, p_d; cylinder: p_r, p_r, p_d; sphere: p_r three times), rounded down and
#: never below 1; ``densest_packing`` puts a centre on every cell. The multiples are RPN 2's (tinybig 0.2.x
#: ``packing_strategy_parameters``).
PACKINGS: dict[str, dict[str, tuple[float, float, float] | None]] = {
    "cuboid": {
        "densest_packing": None,
        "dense_square": (1, 1, 1),
        "complete_square": (2, 2, 2),
        "sparse_square": (3, 3, 3),
    },
    "cylinder": {
        "densest_packing": None,
        "denser_hexagonal": (_R3 / 2, 1, 1),
        "dense_hexagonal": (_R6 / 2, _R2, 1),
        "complete_hexagonal": (1.5, _R3, 2),
        "sparse_hexagonal": (_R3, 2, 2),
        "complete_square": (_R2, _R2, 2),
        "sparse_square": (2, 2, 2),
    },
    "sphere": {
        "densest_packing": None,
        "dense_simple_cubic": (1, 1, 1),
        "complete_simple_cubic": (0.6667 * _R3,) * 3,
        "sparse_simple_cubic": (2, 2, 2),
        "dense_face_centered_cubic": (1, 1, 1),
        "complete_face_centered_cubic": (_R2, 0.6667 * _R6, 1.3333),
        "sparse_face_centered_cubic": (2, _R3, 0.6667 * _R6),
        "dense_hexagonal": (1, 1, 1),
        "complete_hexagonal": (0.6667 * _R3, 0.6667 * _R3, 1),
        "sparse_hexagonal": (2, 2, _R6),
    },
}


class PatchTooLarge(ValueError):
    """A patch (``pooling``: a pooling's) larger than the grid it reads along some axis."""

    def __init__(self, message: str, pooling: bool = False):
        super().__init__(message)
        self.pooling = pooling


def _non_negative(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r} is invalid; it must be an integer >= 0")
    return value


@dataclass(frozen=True)
class Grid:
    """A grid of ``channels`` × h × w × d cells, flattened channel first."""

    h: int
    w: int
    d: int = 1
    channels: int = 1

    def __post_init__(self):
        for name in ("h", "w", "d", "channels"):
            check_positive_int(getattr(self, name), name=f"grid {name}")

    @property
    def cells(self) -> tuple[int, int, int]:
        return self.h, self.w, self.d

    @property
    def size(self) -> int:
        """The flattened width: channels · h · w · d."""
        return self.channels * self.h * self.w * self.d

    def packed(self, cd: tuple[int, int, int], channels: int | None = None) -> Grid:
        """The grid of patch centres at centre distance ``cd``: len(range(0, h, cd_h)) × … cells, with ``channels``
        (default: this grid's)."""
        h, w, d = (len(range(0, size, step)) for size, step in zip(self.cells, cd))
        return Grid(h, w, d, self.channels if channels is None else channels)

    def __str__(self) -> str:
        return "×".join(map(str, (self.channels, self.h, self.w) + ((self.d,) if self.d > 1 else ())))


@dataclass(frozen=True)
class Patch:
    """A set of cell offsets around a centre; build one with :meth:`cuboid`, :meth:`cylinder` or :meth:`sphere`.

    ``extents`` are the (before, after) half-extents of its bounding box along h, w and d; ``radius`` is p_r for a
    cylinder or sphere (None for a cuboid).
    """

    shape: str
    extents: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    radius: int | None = None

    @classmethod
    def cuboid(cls, p_h: int, p_w: int, p_d: int = 0, p_h_prime: int | None = None, p_w_prime: int | None = None,
               p_d_prime: int | None = None) -> Patch:
        """The cuboid −p_h … p_h′ × −p_w … p_w′ × −p_d … p_d′ (a primed half-extent defaults to the unprimed one)."""
        pairs = ((p_h, p_h_prime, "p_h"), (p_w, p_w_prime, "p_w"), (p_d, p_d_prime, "p_d"))
        return cls("cuboid", tuple((_non_negative(before, name),
                                    _non_negative(before if after is None else after, f"{name}_prime"))
                                   for before, after, name in pairs))

    @classmethod
    def cylinder(cls, p_r: int, p_d: int = 0, p_d_prime: int | None = None) -> Patch:
        """The offsets with i² + j² ≤ p_r² at depths −p_d … p_d′."""
        r = _non_negative(p_r, "p_r")
        depth = (_non_negative(p_d, "p_d"), _non_negative(p_d if p_d_prime is None else p_d_prime, "p_d_prime"))
        return cls("cylinder", ((r, r), (r, r), depth), r)

    @classmethod
    def sphere(cls, p_r: int) -> Patch:
        """The offsets with i² + j² + k² ≤ p_r²."""
        r = _non_negative(p_r, "p_r")
        return cls("sphere", ((r, r),) * 3, r)

    @property
    def box(self) -> tuple[int, int, int]:
        """The bounding box's size along h, w and d."""
        return tuple(before + after + 1 for before, after in self.extents)

    def contains(self, i: int, j: int, k: int) -> bool:
        """Whether the offset (i, j, k) is a cell of the patch (the geometric definition)."""
        (bh, ah), (bw, aw), (bd, ad) = self.extents
        if not (-bh <= i <= ah and -bw <= j <= aw and -bd <= k <= ad):
            return False
        if self.shape == "cylinder":
            return i * i + j * j <= self.radius**2
        if self.shape == "sphere":
            return i * i + j * j + k * k <= self.radius**2
        return True

    def offsets(self) -> list[tuple[int, int, int]]:
        """The patch's cells, ordered along h, then w, then d (the order of its features)."""
        (bh, ah), (bw, aw), (bd, ad) = self.extents
        return [(i, j, k) for i in range(-bh, ah + 1) for j in range(-bw, aw + 1) for k in range(-bd, ad + 1)
                if self.contains(i, j, k)]

    @property
    def size(self) -> int:
        """|patch|: the number of cells."""
        return len(self.offsets())

    @functools.cache  # noqa: B019 (a frozen dataclass: hashable, few of them)
    def cell_index(self) -> torch.Tensor | None:
        """The patch's cells as positions in its flattened bounding box (None when it fills the box)."""
        if self.size == math.prod(self.box):
            return None
        (bh, _), (bw, _), (bd, _) = self.extents
        _, kw, kd = self.box
        return torch.tensor([((i + bh) * kw + j + bw) * kd + k + bd for i, j, k in self.offsets()], device="cpu")

    def centre_distance(self, packing: str) -> tuple[int, int, int]:
        """(cd_h, cd_w, cd_d) for a packing strategy of this shape (:data:`PACKINGS`)."""
        strategies = PACKINGS[self.shape]
        if packing not in strategies:
            raise ValueError(f"packing={packing!r} is invalid for a {self.shape} patch; valid choices: "
                             f"{', '.join(strategies)}")
        factors = strategies[packing]
        if factors is None:
            return 1, 1, 1
        sizes = {"cuboid": tuple(before for before, _ in self.extents),
                 "cylinder": (self.radius, self.radius, self.extents[2][0]),
                 "sphere": (self.radius,) * 3}[self.shape]
        return tuple(max(int(f * s), 1) for f, s in zip(factors, sizes))

    def describe(self) -> str:
        """``cuboid 3×3×1 (9 cells)``, ``cylinder r=2 (13 cells)``."""
        what = "×".join(map(str, self.box)) if self.shape == "cuboid" else f"r={self.radius}"
        return f"{self.shape} {what} ({self.size} cells)"

    def check_fits(self, grid: Grid, what: str = "patch", pooling: bool = False) -> None:
        """Refuse a patch whose bounding box is larger than the grid along an axis (most of it would read the zeros
        outside; on a 2-D grid use a cuboid with p_d = 0 or a cylinder, whose depth is 1)."""
        for axis, size, box in zip("hwd", grid.cells, self.box):
            if box > size:
                flat = " (a 2-D grid has depth 1: its disk is a cylinder)" if axis == "d" and size == 1 else ""
                raise PatchTooLarge(f"the {what} ({self.describe()}) spans {box} cells along {axis}, more than the "
                                    f"grid's {size} (grid {grid}); make it smaller{flat}", pooling)


def centre_distance(patch: Patch, packing: str | None = None, cd=None) -> tuple[int, int, int]:
    """The centre distance per axis: ``cd`` (one integer for every axis, or [cd_h, cd_w] / [cd_h, cd_w, cd_d]) when
    given, else ``packing``'s."""
    if cd is None:
        return patch.centre_distance(packing or "densest_packing")
    values = list(cd) if isinstance(cd, (list, tuple)) else [cd]
    if not 1 <= len(values) <= 3:
        raise ValueError(f"cd={cd!r} is invalid; give one integer or [cd_h, cd_w] or [cd_h, cd_w, cd_d]")
    values = values * 3 if len(values) == 1 else values + [1] * (3 - len(values))
    for value in values:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"cd={cd!r} is invalid; each centre distance must be an integer >= 1")
    return tuple(values)
