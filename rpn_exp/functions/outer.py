"""The reference layout W = reshape_{n×D}(vec(a) vec(b)ᵀ) (``factors.Outer``), applied without building W."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch

# Row k of W starts at the flat position k·D of the outer product, whose entry F is a[F // Lb] · b[F % Lb]
# (Lb = len(b)). So W[k, f] = a[⌊(kD + f) / Lb⌋] · b[(kD + f) mod Lb]: along a row, b is read cyclically from the
# offset kD mod Lb and a changes every Lb columns. With g = gcd(D, Lb) the offset takes β = Lb / g values (rows k
# and k + β share it), and between two changes of a every run of columns is a whole number of g-wide chunks.
# Hence, for the row class ρ = k mod β,
#
#     (W κ)_k = Σ_s a[⌊kD / Lb⌋ + s] · Z_ρ,s(κ),      Z_ρ,s = Σ_{f in segment s of class ρ} b[(o_ρ + f) mod Lb] κ_f
#
# a dot product of κ with b per segment, then a small (n × segments) matrix made of entries of a.


def outer_segments(n: int, D: int, La: int, Lb: int):
    """(β, offsets o_ρ, number of segments S) of the reference layout for an n×D W from vectors of La and Lb."""
    if La * Lb != n * D:
        raise ValueError(f"vec(a) vec(b)ᵀ has {La}·{Lb} = {La * Lb} entries; an n×D = {n}×{D} W needs {n * D}")
    beta = Lb // math.gcd(D, Lb)
    offsets = [(rho * D) % Lb for rho in range(beta)]
    segments = (max(offsets) + D - 1) // Lb + 1
    return beta, offsets, segments


def _outer_rows(n: int, D: int, La: int, Lb: int, segments: int, beta: int, columns: torch.Tensor) -> torch.Tensor:
    """Index into [a, 0] of the (n × len(columns)) matrix Ã with Ã[k, j] = a[⌊kD / Lb⌋ + s_j] when column j belongs to
    row class k mod β (its segment s_j), else the padding 0. ``columns`` holds ρ·segments + s per column."""
    k = torch.arange(n).unsqueeze(1)
    rho, seg = columns // segments, columns % segments
    index = (k * D) // Lb + seg.unsqueeze(0)
    valid = (rho.unsqueeze(0) == k % beta) & (index < La)
    return torch.where(valid, index, torch.full_like(index, La))


@functools.lru_cache(maxsize=64)
def outer_chunk_plan(n: int, D: int, La: int, Lb: int):
    """Index tensors for :func:`outer_linear` (cached: they depend on the shapes only).

    κ is cut into D/g chunks of g = gcd(D, Lb) entries; every chunk lies in one segment of each row class. Returns
    (g, b_index (β, D) into b, a_index (n, β·D/g) into [a, 0], column of each (ρ, chunk) (β, D/g)).
    """
    beta, offsets, segments = outer_segments(n, D, La, Lb)
    g = math.gcd(D, Lb)
    f = torch.arange(D)
    b_index = torch.stack([(o + f) % Lb for o in offsets])
    chunks = torch.arange(0, D, g)
    columns = torch.stack([rho * segments + (o + chunks) // Lb for rho, o in enumerate(offsets)])  # (β, D/g)
    a_index = _outer_rows(n, D, La, Lb, segments, beta, columns.reshape(-1))
    return g, b_index, a_index


def outer_linear(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """``x Wᵀ`` for W = reshape_{n×D}(vec(a) vec(b)ᵀ) (row-major) and x of shape (batch, D) -> (batch, n).

    Per row class ρ: Z_ρ = (x viewed as (batch, D/g, g)) · (b read from offset o_ρ, same view), summed over g, then
    y = [Z_0, …, Z_{β−1}] Ãᵀ with Ã (n × β·D/g) made of entries of a. Memory O(batch · β · D); W is never built.
    """
    D = x.shape[1]
    g, b_index, a_index = (t.to(x.device) if torch.is_tensor(t) else t for t in outer_chunk_plan(n, D, a.numel(),
                                                                                                   b.numel()))
    chunks = x.reshape(x.shape[0], 1, D // g, g)
    Z = (chunks * b.reshape(-1)[b_index].view(1, -1, D // g, g)).sum(-1)  # (batch, β, D/g)
    A = torch.cat([a.reshape(-1), a.new_zeros(1)])[a_index]  # (n, β·D/g)
    return Z.reshape(x.shape[0], -1) @ A.T


def take(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values[index] for a 1-D ``values``, through ``index_select`` (its gradient adds rows, it does not put them)."""
    return values.index_select(0, index.reshape(-1)).view(index.shape)


class BilinearPlan(NamedTuple):
    """Index tensors of :func:`outer_bilinear` (:func:`outer_bilinear_plan`): rows + Q pieces, Q of them cut short."""

    classes: int  # β: the row classes of W (β divides n, since L_b divides n·D)
    cut_rows: torch.Tensor  # (Q,) the row of the tiling each cut piece lies in
    cut_left: torch.Tensor  # (Q,) its entry of left: cut_rows mod L
    cut_b: torch.Tensor  # (Q, R) its entries of b as indices into [b, 0] (0 outside its columns: index L_b)
    a_index: torch.Tensor  # (n, rows + Q) into [a, 0]: the rows' last pieces, then the cut pieces


@functools.lru_cache(maxsize=64)
def outer_bilinear_plan(n: int, D: int, La: int, Lb: int, L: int, device: str = "cpu") -> BilinearPlan:
    """The pieces of :func:`outer_bilinear` with κ = left ⊗ right, left of width L (cached per shapes and device).

    Row k of W reads b cyclically from the flat position k·D, so rows k ≡ ρ (mod β) read it alike: the β classes,
    side by side, read b tiled to length β·D. Viewed as (β·L, R), row ρL + i of that tiling holds
    the entries of b that multiply left_i · right_j in class ρ. A piece (ρ, i, s) is the part of such a row in one
    segment s (a changes at the multiples of L_b): a row crossing a multiple of L_b is cut there into pieces; all
    but its last are the cut pieces.
    """
    beta, _, segments = outer_segments(n, D, La, Lb)
    R, rows = D // L, beta * L
    cut_rows, cut_first, cut_end, last_first = [], [], [], []  # per cut piece: row, columns; per row: its last piece
    for r in range(rows):
        first = 0
        for j in range((r * R // Lb + 1) * Lb - r * R, R, Lb):  # the columns where row r crosses a multiple of L_b
            cut_rows.append(r), cut_first.append(first), cut_end.append(j)
            first = j
        last_first.append(first)
    cut_rows, cut_first, cut_end = (torch.tensor(v, dtype=torch.long) for v in (cut_rows, cut_first, cut_end))
    column = torch.arange(R)
    inside = (column >= cut_first[:, None]) & (column < cut_end[:, None])
    cut_b = torch.where(inside, (cut_rows[:, None] * R + column) % Lb, Lb)
    piece_rows = torch.cat([torch.arange(rows), cut_rows])
    first = torch.cat([torch.tensor(last_first, dtype=torch.long), cut_first])
    rho, i = piece_rows // L, piece_rows % L
    segment = (rho * D % Lb + i * R + first) // Lb
    a_index = _outer_rows(n, D, La, Lb, segments, beta, rho * segments + segment)
    return BilinearPlan(beta, cut_rows.to(device), (cut_rows % L).to(device), cut_b.to(device), a_index.to(device))


def outer_bilinear(left: torch.Tensor, right: torch.Tensor, a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """``W (left ⊗ right)`` row by row for W = reshape_{n×D}(vec(a) vec(b)ᵀ), left (batch, L), right (batch, R),
    D = L·R -> (batch, n), building neither κ = left ⊗ right nor W.

    With B = b tiled to β·D and viewed as (β·L, R) (:func:`outer_bilinear_plan`), H = right Bᵀ sums each row;
    a row cut at multiples of L_b gives its cut pieces from their own entries of b, H_c = right B_cᵀ, and its last
    piece as the rest. Then y = ([left, …, left, left[:, i_c]] ⊙ [H − H_c, H_c]) Ãᵀ with Ã made of entries of a.
    B is b copied, its gradient a sum over the copies; only the cut pieces are gathered entry by entry (the paper's
    784 -> 64 layer: B has 615,440 entries, W 64 times more; 97 of its 785 rows are cut once, 76,048 entries).
    """
    L, R = left.shape[1], right.shape[1]
    plan = outer_bilinear_plan(n, L * R, a.numel(), b.numel(), L, str(left.device))
    rows, b = plan.classes * L, b.reshape(-1)
    tiled = b.expand(-(-rows * R // b.numel()), -1).reshape(-1)
    B = (tiled if tiled.numel() == rows * R else tiled[: rows * R]).view(rows, R)  # a full slice would copy back
    H_cut = right @ take(torch.cat([b, b.new_zeros(1)]), plan.cut_b).T
    rows_sums = (B @ right.mT).mT  # right Bᵀ, so that B's gradient comes out in B's own layout (no transposed copy)
    H = torch.cat([rows_sums.index_add(1, plan.cut_rows, H_cut, alpha=-1), H_cut], dim=1)
    A = take(torch.cat([a.reshape(-1), a.new_zeros(1)]), plan.a_index)  # (n, rows + Q)
    return (torch.cat([left.repeat(1, plan.classes), left.index_select(1, plan.cut_left)], dim=1) * H) @ A.T


def outer_dense(a: torch.Tensor, b: torch.Tensor, n: int, D: int) -> torch.Tensor:
    """W = reshape_{n×D}(vec(a) vec(b)ᵀ), row-major (built: for tests, plots and the materialized path)."""
    return torch.outer(a.reshape(-1), b.reshape(-1)).reshape(n, D)
