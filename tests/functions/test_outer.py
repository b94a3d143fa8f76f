"""The reference layout W = reshape_{n×D}(vec(a) vec(b)ᵀ) applied without building W: the same numbers as W itself."""

import pytest
import torch

from rpn_exp.functions.outer import outer_bilinear, outer_bilinear_plan, outer_dense, outer_linear, outer_segments

#: (n, D, L_a, L_b, L): one row class with cut rows; β > 1; β = n (a class per row); rows longer than b
#: (R > L_b: several cuts in a row); no cut at all; a left factor of width 1 (κ = right).
SHAPES = {
    "one_class_cut_rows": (64, 4160, 512, 520, 65),
    "five_classes": (10, 4160, 128, 325, 65),
    "a_class_per_row": (3, 20, 4, 15, 4),
    "rows_longer_than_b": (7, 30, 3, 70, 3),
    "several_cuts_in_a_row": (9, 8, 12, 6, 1),
    "no_cut": (4, 6, 2, 12, 2),
}


def reference(left, right, a, b, n):
    """W (left ⊗ right) with W and κ both built."""
    kappa = (left[:, :, None] * right[:, None, :]).flatten(1)
    return kappa @ outer_dense(a, b, n, kappa.shape[1]).T


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_bilinear_form_equals_w_times_kappa_forward_and_backward(name):
    n, D, La, Lb, L = SHAPES[name]
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, generator=g, dtype=torch.float64, requires_grad=True) for size in (La, Lb))
    left = torch.randn(5, L, generator=g, dtype=torch.float64, requires_grad=True)
    right = torch.randn(5, D // L, generator=g, dtype=torch.float64, requires_grad=True)
    ours, theirs = outer_bilinear(left, right, a, b, n), reference(left, right, a, b, n)
    torch.testing.assert_close(ours, theirs)
    for got, want in zip(*(torch.autograd.grad(y.sin().sum(), [left, right, a, b]) for y in (ours, theirs))):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_row_classes_divide_the_rows(name):
    """Rows k ≡ ρ (mod β) of W read b from the same offset; β divides n because L_b divides n·D."""
    n, D, La, Lb, L = SHAPES[name]
    beta, offsets, _ = outer_segments(n, D, La, Lb)
    assert n % beta == 0 and outer_bilinear_plan(n, D, La, Lb, L).classes == beta
    assert offsets == [k * D % Lb for k in range(beta)] and len(set(offsets)) == beta


def test_the_papers_first_layer_cuts_one_row_in_eight():
    """784 -> 64 with dual_lphm r = 5 in the reference layout: b (6,280 entries) tiled over 785 rows of 784; a row is
    cut where it crosses a multiple of 6,280, 97 times, and only those 97 pieces are gathered from b."""
    plan = outer_bilinear_plan(64, 785 * 784, 6272, 6280, 785)
    assert plan.classes == 1 and plan.cut_rows.tolist() == [8 * k + 8 for k in range(97)]
    assert plan.cut_b.shape == (97, 784) and plan.a_index.shape == (64, 785 + 97)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_linear_form_equals_x_times_w_transposed(name):
    n, D, La, Lb, _ = SHAPES[name]
    g = torch.Generator().manual_seed(1)
    a, b, x = (torch.randn(*size, generator=g, dtype=torch.float64) for size in ((La,), (Lb,), (4, D)))
    torch.testing.assert_close(outer_linear(x, a, b, n), x @ outer_dense(a, b, n, D).T)
