"""``linear``: x Wᵀ with W's gradient in W's own layout, alone and under ``vmap``."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import vmap

from rpn_exp.functions.linear import linear


def _grads(fn, x, W):
    x, W = x.clone().requires_grad_(), W.clone().requires_grad_()
    out = fn(x, W)
    out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
    return out, x.grad, W.grad


@pytest.mark.parametrize("shape", [(5, 7), (2, 5, 7)])
def test_linear_matches_torch_linear_in_value_and_gradients(shape):
    torch.manual_seed(0)
    x, W = torch.randn(*shape, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64)
    for ours, theirs in zip(_grads(linear, x, W), _grads(F.linear, x, W)):
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("batched", ["vmap", "leading dimension"])
def test_with_members_the_gradient_of_W_comes_out_contiguous_and_right(batched):
    torch.manual_seed(0)
    x, W = torch.randn(4, 6, 9, dtype=torch.float64), torch.randn(4, 5, 9, dtype=torch.float64)
    out, grad_x, grad_W = _grads(vmap(linear) if batched == "vmap" else linear, x, W)
    expected = _grads(lambda x, W: torch.einsum("kbd,knd->kbn", x, W), x, W)
    for ours, theirs in zip((out, grad_x, grad_W), expected):
        torch.testing.assert_close(ours, theirs)
    assert grad_W.is_contiguous()
