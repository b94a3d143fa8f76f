"""``x Wᵀ`` for a dense W, with W's gradient computed in W's own layout (also under ``torch.func.vmap``).

``F.linear`` under ``vmap`` (a stacked group's members) computes W's gradient as (xᵀ g)ᵀ, a transposed tensor that
becomes a contiguous copy on its way back to w (W = reshape(w)): for the 15 members of an MLP of width 64 on
784 inputs, a 3 MB copy each step, longer than the product that made it (``benchmarks/stacked_step.py``).
:func:`linear` computes gᵀ x directly.
"""

from __future__ import annotations

import torch


class _Linear(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        return x @ W.mT

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, W = ctx.saved_tensors  # under autocast the product ran in g's dtype: so do its gradients, then each input's
        grad_x = (g @ W.to(g.dtype)).to(x.dtype) if ctx.needs_input_grad[0] else None
        grad_W = (g.flatten(0, -2).mT @ x.to(g.dtype).flatten(0, -2)).to(W.dtype) if ctx.needs_input_grad[1] else None
        return grad_x, grad_W


def linear(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """y = x Wᵀ: x (..., D), W (n, D) -> (..., n); ∂L/∂W = gᵀ x (n, D) for g = ∂L/∂y with its rows flattened."""
    return _Linear.apply(x, W)
