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


def test_under_vmap_the_gradient_of_W_comes_out_contiguous_and_right():
    torch.manual_seed(0)
    x, W = torch.randn(4, 6, 9, dtype=torch.float64), torch.randn(4, 5, 9, dtype=torch.float64)
    out, grad_x, grad_W = _grads(vmap(linear), x, W)
    expected = _grads(lambda x, W: torch.einsum("kbd,knd->kbn", x, W), x, W)
    for ours, theirs in zip((out, grad_x, grad_W), expected):
        torch.testing.assert_close(ours, theirs)
    assert grad_W.is_contiguous()


def test_under_autocast_gradients_take_each_inputs_dtype():
    torch.manual_seed(0)
    x, W = torch.randn(8, 16), torch.randn(4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, grad_x, grad_W = _grads(linear, x, W)
        ref_out, ref_x, ref_W = _grads(F.linear, x, W)
    assert out.dtype == ref_out.dtype == torch.bfloat16
    assert grad_x.dtype == torch.float32 and grad_W.dtype == torch.float32
    torch.testing.assert_close(grad_W, ref_W, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(grad_x, ref_x, rtol=2e-2, atol=2e-2)
