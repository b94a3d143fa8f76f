"""``x Wᵀ`` for a dense W, computed as (W xᵀ)ᵀ so that W's gradient comes out in W's own layout.

W's gradient from ``F.linear`` under ``torch.func.vmap`` (a stacked group's members) is (xᵀ g)ᵀ, a transposed
tensor that becomes a contiguous copy on its way back to w (W = reshape(w)): for the 15 members of an MLP of width 64
on 784 inputs a 3 MB copy each step, about as long as the product that made it. Computed as W xᵀ, W's gradient is
∂L/∂(W xᵀ) · x, contiguous, with or without leading dimensions (``benchmarks/stacked_step.py``, BENCHMARKS.md).
"""

from __future__ import annotations

import torch


def linear(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """y = x Wᵀ = (W xᵀ)ᵀ: x (..., b, D), W (..., n, D) -> (..., b, n) (a transposed view of W xᵀ).

    ∂L/∂W = (∂L/∂y)ᵀ x, (n, D) in W's layout (summed over x's extra leading dimensions when W has none).
    """
    return (W @ x.mT).mT
