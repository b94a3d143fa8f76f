"""The reference layout W = reshape_{n×D}(vec(a) vec(b)ᵀ) (``factors.Outer``), applied without building W."""

from __future__ import annotations

import functools
import math

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


@functools.lru_cache(maxsize=64)
def outer_bilinear_plan(n: int, D: int, La: int, Lb: int, L: int, device: str = "cpu"):
    """Index tensors for :func:`outer_bilinear` with κ = left ⊗ right, left of width L (cached per shapes/device).

    A piece is (row class ρ, left index i, segment s): the entries of κ that are left_i · right_j for j in a run
    that stays in one segment. Returns (b_index (P, R) into [b, 0], left index of each piece (P,), a_index (n, P)
    into [a, 0]).
    """
    beta, offsets, segments = outer_segments(n, D, La, Lb)
    R = D // L
    f = torch.arange(D)
    keys, b_pos = [], []
    for rho, o in enumerate(offsets):
        seg = (o + f) // Lb
        keys.append((rho * L + f // R) * segments + seg)  # ordered by (ρ, i, s)
        b_pos.append((o + f) % Lb)
    keys, b_pos = torch.cat(keys), torch.cat(b_pos)
    unique, piece = torch.unique(keys, return_inverse=True)
    column = torch.cat([f % R] * beta)
    b_index = torch.full((len(unique), R), Lb, dtype=torch.long)
    b_index[piece, column] = b_pos
    left = (unique // segments) % L
    columns = (unique // segments // L) * segments + unique % segments  # ρ·segments + s
    a_index = _outer_rows(n, D, La, Lb, segments, beta, columns)
    return b_index.to(device), left.to(device), a_index.to(device)


def outer_bilinear(left: torch.Tensor, right: torch.Tensor, a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """``W (left ⊗ right)`` row by row for W = reshape_{n×D}(vec(a) vec(b)ᵀ), left (batch, L), right (batch, R),
    D = L·R -> (batch, n), building neither κ = left ⊗ right nor W.

    With the pieces of :func:`outer_bilinear_plan`: H = right · B̃ᵀ (B̃ (P × R): b laid out per piece, zeros
    elsewhere), then y = (left[:, i_P] ⊙ H) Ãᵀ. The largest tensors are B̃ (P·R, about β·(D/Lb + 2L)·R entries)
    and the (batch, P) products; for the paper's 784 → 64 layer P·R is 2 % of W.
    """
    L, R = left.shape[1], right.shape[1]
    b_index, left_index, a_index = outer_bilinear_plan(n, L * R, a.numel(), b.numel(), L, str(left.device))
    B = torch.cat([b.reshape(-1), b.new_zeros(1)])[b_index]  # (P, R)
    A = torch.cat([a.reshape(-1), a.new_zeros(1)])[a_index]  # (n, P)
    return (left[:, left_index] * (right @ B.T)) @ A.T


def outer_dense(a: torch.Tensor, b: torch.Tensor, n: int, D: int) -> torch.Tensor:
    """W = reshape_{n×D}(vec(a) vec(b)ᵀ), row-major (built: for tests, plots and the materialized path)."""
    return torch.outer(a.reshape(-1), b.reshape(-1)).reshape(n, D)
