"""The fused Kronecker × Taylor node: stable layer-norm moments, exact second derivatives, autocast."""

import pytest
import torch

from rpn_exp.functions.factors import kron_moments, kron_taylor, kron_taylor_reference


def kappa(u, t):
    v = torch.cat([torch.ones(t.shape[0], 1, dtype=t.dtype), t], dim=1)
    return (u.unsqueeze(2) * v.unsqueeze(1)).reshape(u.shape[0], -1)


def test_the_moments_are_those_of_kappa_and_never_negative():
    torch.manual_seed(0)
    u, t = torch.randn(50, 6, dtype=torch.float64), torch.randn(50, 42, dtype=torch.float64)
    mean, var = kron_moments(u, t)
    k = kappa(u, t)
    torch.testing.assert_close(mean.squeeze(1), k.mean(1))
    torch.testing.assert_close(var.squeeze(1), k.var(1, unbiased=False))
    near = 1 + 1e-4 * torch.randn(2000, 64)  # rows near all-ones: the one-pass formula went negative here
    _, var = kron_moments(near, near)
    assert (var >= 0).all()
    torch.testing.assert_close(var.squeeze(1).double(), kappa(near.double(), near.double()).var(1, unbiased=False),
                               rtol=1e-3, atol=1e-10)


@pytest.mark.parametrize("eps", [None, 1e-5])
@pytest.mark.parametrize("same", [True, False])
def test_first_and_second_derivatives_equal_the_reference(eps, same):
    torch.manual_seed(1)
    m, T, p, s = 6, 6 if same else 9, 3, 2
    u = torch.randn(5, m, dtype=torch.float64, requires_grad=True)
    t = u if same else torch.randn(5, T, dtype=torch.float64, requires_grad=True)
    A = torch.randn(p, m, dtype=torch.float64, requires_grad=True)
    B = torch.randn(s, T + 1, dtype=torch.float64, requires_grad=True)
    inputs = (u, A, B) if same else (u, t, A, B)

    def gradient_penalty(fn):
        y = fn(u, t, A, B, eps)
        grads = torch.autograd.grad(y.square().sum(), inputs, create_graph=True)
        return sum(g.square().sum() for g in grads), grads

    fused, fused_grads = gradient_penalty(kron_taylor)
    reference, reference_grads = gradient_penalty(kron_taylor_reference)
    for a, b in zip(fused_grads, reference_grads):
        torch.testing.assert_close(a, b)
    second_fused = torch.autograd.grad(fused, inputs)
    second_reference = torch.autograd.grad(reference, inputs)
    for a, b in zip(second_fused, second_reference):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_under_autocast_the_node_computes_in_float32(dtype):
    torch.manual_seed(2)
    u, A, B = torch.randn(8, 6), torch.randn(3, 6), torch.randn(2, 7)
    with torch.autocast("cpu", dtype=dtype):
        y = kron_taylor(u, u, A.to(dtype), B.to(dtype), 1e-5)
    assert y.dtype == torch.float32
    expected = kron_taylor(u, u, A.to(dtype).float(), B.to(dtype).float(), 1e-5)
    torch.testing.assert_close(y, expected)
