"""Products with structured matrices, applied without building them.

A factor is either a dense matrix ``M`` or a :class:`LowRank` pair ``(U, V)`` standing for ``U Vᵀ``.
``kron_linear`` applies ``x ↦ x (A ⊗ B)ᵀ`` for such factors through the identity
``(A ⊗ B) vec(K) = vec(A K Bᵀ)`` (row-major ``vec``), so neither ``A ⊗ B`` nor ``A``/``B`` themselves
need to exist when they are low rank.
"""

from __future__ import annotations

from typing import NamedTuple, Union

import torch


class LowRank(NamedTuple):
    """The matrix ``U Vᵀ`` with ``U`` of shape (rows, r) and ``V`` of shape (cols, r)."""

    U: torch.Tensor
    V: torch.Tensor


Factor = Union[torch.Tensor, LowRank]


def dense(M: Factor) -> torch.Tensor:
    """The factor as a dense matrix."""
    return M.U @ M.V.T if isinstance(M, LowRank) else M


def shape(M: Factor) -> tuple[int, int]:
    """(rows, cols) of a factor."""
    return (M.U.shape[0], M.V.shape[0]) if isinstance(M, LowRank) else tuple(M.shape)


def apply(M: Factor, X: torch.Tensor) -> torch.Tensor:
    """``X Mᵀ`` over the last dimension of ``X``: (..., cols) -> (..., rows)."""
    if isinstance(M, LowRank):
        return (X @ M.V) @ M.U.T
    return X @ M.T


def kron_linear(x: torch.Tensor, A: Factor, B: Factor) -> torch.Tensor:
    """``x (A ⊗ B)ᵀ`` for ``x`` of shape (b, q·t), ``A`` (p×q), ``B`` (s×t); returns (b, p·s).

    Each row of ``x`` is reshaped to ``K`` (q×t); the result row is ``vec(A K Bᵀ)``. The factor whose
    product leaves the smaller intermediate is applied first.
    """
    (p, q), (s, t) = shape(A), shape(B)
    K = x.reshape(-1, q, t)
    if p * t <= q * s:  # A first: (b, p, t), then B
        Y = apply(B, apply(A, K.transpose(1, 2)).transpose(1, 2))
    else:  # B first: (b, q, s), then A
        Y = apply(A, apply(B, K).transpose(1, 2)).transpose(1, 2)
    return Y.reshape(x.shape[0], p * s)


def kron_outer(u: torch.Tensor, v: torch.Tensor, A: Factor, B: Factor) -> torch.Tensor:
    """``(A ⊗ B)(u ⊗ v) = (A u) ⊗ (B v)`` row by row: u (b, q), v (b, t) -> (b, p·s)."""
    Au, Bv = apply(A, u), apply(B, v)
    return (Au.unsqueeze(2) * Bv.unsqueeze(1)).reshape(u.shape[0], -1)
