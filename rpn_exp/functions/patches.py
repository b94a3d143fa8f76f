"""Reading a grid by patches: geometric interdependence ξ (padding and aggregation modes), the centre cells a 1×1
remainder reads, and pooling (grid compression). Views and ``unfold``, never a dense selection matrix.

Every function takes x of shape (b, grid.size), flattened channel first (:mod:`rpn_exp.functions.geometry`), and
centres on the lattice of centre distance ``cd``; P = the packed grid's cells (len(range(0, h, cd_h)) · …).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rpn_exp.functions.geometry import Grid, Patch

#: ξ's modes: ``padding`` stacks a patch's cells over every channel (c · |patch| features per centre, zeros outside
#: the grid); ``aggregation`` sums each channel over the patch's cells inside the grid (c features per centre).
MODES = ("padding", "aggregation")
#: Grid compression: the maximum, mean or minimum of each channel over the patch's cells inside the grid.
POOLINGS = ("max", "mean", "min")


def windows(x: torch.Tensor, grid: Grid, patch: Patch, cd: tuple[int, int, int], fill: float = 0.0) -> torch.Tensor:
    """Each centre's patch cells: (b, grid.size) -> (b, c, h′, w′, d′, |patch|), cells outside the grid read
    ``fill``.

    The grid is padded by the patch's half-extents (before, after) on each axis and unfolded with step cd, so the
    window of the centre (i·cd_h, j·cd_w, k·cd_d) starts p_h cells above it, and there are len(range(0, h, cd_h))
    windows along h.
    """
    x = x.reshape(x.shape[0], grid.channels, *grid.cells)
    (bh, ah), (bw, aw), (bd, ad) = patch.extents
    x = F.pad(x, (bd, ad, bw, aw, bh, ah), value=fill)
    kh, kw, kd = patch.box
    x = x.unfold(2, kh, cd[0]).unfold(3, kw, cd[1]).unfold(4, kd, cd[2]).flatten(-3)
    index = patch.cell_index()
    return x if index is None else x.index_select(-1, index.to(x.device))


def interdependence(x: torch.Tensor, grid: Grid, patch: Patch, cd: tuple[int, int, int],
                    mode: str = "padding") -> torch.Tensor:
    """ξ(x) per centre: (b, grid.size) -> (b, P, c · |patch|) in ``padding`` mode (channel first, then the patch's
    cells in :meth:`Patch.offsets` order: a convolution's im2col layout), (b, P, c) in ``aggregation`` mode."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is invalid; valid choices: {', '.join(MODES)}")
    cells = windows(x, grid, patch, cd)  # (b, c, h', w', d', k)
    b, c = cells.shape[:2]
    if mode == "aggregation":
        return cells.sum(-1).reshape(b, c, -1).transpose(1, 2)
    return cells.permute(0, 2, 3, 4, 1, 5).reshape(b, -1, c * cells.shape[-1])


def convolve(x: torch.Tensor, grid: Grid, patch: Patch, cd: tuple[int, int, int], W: torch.Tensor) -> torch.Tensor:
    """W applied to every patch, x (b, grid.size), W (n, c · |patch|) -> (b, n, P): equal to
    ``interdependence(x, ...) @ Wᵀ`` (padding mode), computed by ``conv2d`` (``conv3d`` on a 3-D grid) with W laid on
    the patch's bounding box (zeros at the box's cells outside the patch)."""
    n, c = W.shape[0], grid.channels
    kernel = W.reshape(n, c, patch.size)
    index = patch.cell_index()
    if index is not None:
        box = kernel.new_zeros(n, c, math.prod(patch.box))
        kernel = box.index_copy(2, index.to(W.device), kernel)
    kernel = kernel.reshape(n, c, *patch.box)
    (bh, ah), (bw, aw), (bd, ad) = patch.extents
    image = F.pad(x.reshape(x.shape[0], c, *grid.cells), (bd, ad, bw, aw, bh, ah))
    if grid.d == 1 and patch.box[2] == 1:
        y = F.conv2d(image[..., 0], kernel[..., 0], stride=cd[:2])
    else:
        y = F.conv3d(image, kernel, stride=cd)
    return y.reshape(x.shape[0], n, -1)


def features(grid: Grid, patch: Patch, mode: str = "padding") -> int:
    """The width of ξ(x) per centre: c · |patch| (``padding``) or c (``aggregation``)."""
    return grid.channels * (patch.size if mode == "padding" else 1)


def centres(x: torch.Tensor, grid: Grid, cd: tuple[int, int, int]) -> torch.Tensor:
    """The centre cells themselves: (b, grid.size) -> (b, P, c), what a 1×1 projection (the remainder) reads."""
    x = x.reshape(x.shape[0], grid.channels, *grid.cells)[:, :, :: cd[0], :: cd[1], :: cd[2]]
    return x.reshape(x.shape[0], grid.channels, -1).transpose(1, 2)


def to_grid(rows: torch.Tensor, batch: int) -> torch.Tensor:
    """Per-centre outputs back to a flattened grid: (b · P, n) -> (b, n · P), channel first."""
    return rows.reshape(batch, -1, rows.shape[-1]).transpose(1, 2).reshape(batch, -1)


def pool(x: torch.Tensor, grid: Grid, patch: Patch, cd: tuple[int, int, int], mode: str = "max") -> torch.Tensor:
    """Grid compression: each channel's max, mean or min over the patch's cells inside the grid,
    (b, grid.size) -> (b, c · P), channel first (the packed grid with the same channels).

    A cuboid patch 0 … k−1 along h and w at cd = k is ``max_pool2d(k)`` / ``avg_pool2d(k)`` (with ``ceil_mode`` when
    k does not divide the grid: the last window holds what is left).
    """
    if mode not in POOLINGS:
        raise ValueError(f"mode={mode!r} is invalid; valid choices: {', '.join(POOLINGS)}")
    b = x.shape[0]
    if mode == "mean":
        total = windows(x, grid, patch, cd).sum(-1)
        inside = windows(torch.ones_like(x[:1]), grid, patch, cd).sum(-1)
        return (total / inside).reshape(b, -1)
    if mode == "max":
        return windows(x, grid, patch, cd, fill=-torch.inf).amax(-1).reshape(b, -1)
    return windows(x, grid, patch, cd, fill=torch.inf).amin(-1).reshape(b, -1)
