"""Reconciliation functions ψ: documented parameter counts, formulas, fast linear paths, errors, init."""

import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from rpn_exp.functions import reconciliation as R
from tests.conftest import compose_config, options


def from_config(name, **overrides):
    """The function object exactly as Hydra instantiates conf/reconciliation/<name>.yaml."""
    cfg = compose_config([f"reconciliation={name}", *(f"reconciliation.{k}={v}" for k, v in overrides.items())])
    return instantiate(cfg.reconciliation)


# The n=6, D=12 examples of the seed tutorial: (option, overrides, l).
DOCUMENTED = [
    ("identity", {}, 72),
    ("duplicated_padding", {"p": 2, "q": 2}, 18),
    ("lorr", {"r": 1}, 18),
    ("hm", {"p": 2, "q": 2}, 22),
    ("hm", {}, 18),
    ("lphm", {"r": 1}, 13),
    ("dual_lphm", {"r": 1}, 12),
]


@pytest.mark.parametrize("name,overrides,l", DOCUMENTED)
def test_documented_parameter_counts(name, overrides, l):
    psi = from_config(name, **overrides)
    assert psi.calculate_l(n=6, D=12) == l
    w = torch.nn.Parameter(torch.randn(1, l))
    assert psi(w=w, n=6, D=12).shape == (6, 12)


def test_automatic_p_and_q_follow_the_divisor_rule():
    # 6 -> 2 (largest divisor <= isqrt 2), 12 -> 3, 784*785 -> 784, primes -> 1
    assert R.HMReconciliation().hparams(6, 12) == {"k": 1, "p": 2, "q": 3}
    assert R.DualLPHMReconciliation(r=5).hparams(64, 784 * 785) == {"r": 5, "k": 1, "p": 8, "q": 784}
    assert R.HMReconciliation().hparams(7, 13) == {"k": 1, "p": 1, "q": 1}


def split(w, *shapes):
    out, start = [], 0
    for s in shapes:
        size = math.prod(s)
        out.append(w[0, start : start + size].reshape(s))
        start += size
    assert start == w.shape[1]
    return out


def test_lorr_is_A_Bt():
    w = torch.randn(1, 18)
    A, B = split(w, (6, 1), (12, 1))
    torch.testing.assert_close(R.LowRankReconciliation(r=1)(w, 6, 12), A @ B.T)


def test_hm_is_the_true_kronecker_product():
    w = torch.randn(1, 22)
    A, B = split(w, (2, 2), (3, 6))
    W = R.HMReconciliation(p=2, q=2)(w, 6, 12)
    torch.testing.assert_close(W, torch.kron(A, B))
    assert torch.linalg.matrix_rank(W) > 1  # an outer product of vec(A), vec(B) would have rank 1


def test_lphm_is_A_kron_S_Tt():
    w = torch.randn(1, 13)
    A, S, T = split(w, (2, 3), (3, 1), (4, 1))
    torch.testing.assert_close(R.LPHMReconciliation(r=1)(w, 6, 12), torch.kron(A, S @ T.T))


def test_dual_lphm_is_P_Qt_kron_S_Tt():
    w = torch.randn(1, 2 * (2 + 3 + 3 + 4))
    P, Q, S, T = split(w, (2, 2), (3, 2), (3, 2), (4, 2))
    torch.testing.assert_close(R.DualLPHMReconciliation(r=2)(w, 6, 12), torch.kron(P @ Q.T, S @ T.T))


def test_duplicated_padding_tiles_B():
    w = torch.randn(1, 18)
    (B,) = split(w, (3, 6))
    torch.testing.assert_close(R.DuplicatedPaddingReconciliation(p=2)(w, 6, 12), torch.kron(torch.ones(2, 2), B))


def test_duplicated_diagonal_padding_is_block_diagonal():
    w = torch.randn(1, 18)
    (B,) = split(w, (3, 6))
    torch.testing.assert_close(R.DuplicatedDiagonalPaddingReconciliation(p=2)(w, 6, 12), torch.block_diag(B, B))


def test_random_matrix_adaption_formula():
    psi = R.RandomMatrixAdaptionReconciliation(r=3)
    state = psi.create_state(6, 12)
    w = torch.randn(1, psi.calculate_l(6, 12))
    lam1, lam2 = split(w, (6,), (3,))
    expected = torch.diag(lam1) @ state["A"] @ torch.diag(lam2) @ state["B"].T
    torch.testing.assert_close(psi(w, 6, 12, state), expected)


def test_constant_families():
    w = torch.zeros(1, 0)
    assert torch.equal(R.ZeroReconciliation()(w, 2, 3), torch.zeros(2, 3))
    assert torch.equal(R.OneReconciliation()(w, 2, 3), torch.ones(2, 3))
    assert torch.equal(R.ConstantReconciliation(c=0.5)(w, 2, 3), torch.full((2, 3), 0.5))
    assert torch.equal(R.ConstantEyeReconciliation()(w, 2, 3), torch.eye(2, 3))


@pytest.mark.parametrize("name", options("reconciliation"))
@pytest.mark.parametrize("n,D", [(6, 12), (8, 30), (10, 4)])
def test_linear_equals_dense_product_with_the_same_gradient(name, n, D):
    psi = from_config(name)
    state = psi.create_state(n, D)
    w = psi.init_w(n, D).requires_grad_(True)
    x = torch.randn(5, D, dtype=torch.float32)
    fast = psi.linear(x, w, n, D, state)
    dense = F.linear(x, psi(w, n, D, state))
    torch.testing.assert_close(fast, dense, rtol=1e-5, atol=1e-5)
    if w.numel():
        (g_fast,) = torch.autograd.grad(fast.square().sum(), w)
        (g_dense,) = torch.autograd.grad(dense.square().sum(), w)
        torch.testing.assert_close(g_fast, g_dense, rtol=1e-4, atol=1e-5)


def test_one_object_serves_two_shapes():
    psi = R.DualLPHMReconciliation(r=2)
    assert psi.hparams(6, 12) == {"r": 2, "k": 1, "p": 2, "q": 3}
    assert psi.hparams(64, 4160) == {"r": 2, "k": 1, "p": 8, "q": 64}
    assert psi.calculate_l(6, 12) == 2 * (2 + 3 + 3 + 4)  # nothing was cached from the larger call
    assert psi.calculate_l(64, 4160) == 2 * (8 + 64 + 8 + 65)
    assert psi.p is None and psi.q is None


@pytest.mark.parametrize("psi,expected", [
    (R.HMReconciliation(p=3, q=4), {"p": 3, "q": 4}),  # both divide: as asked
    (R.HMReconciliation(p=4), {"p": 3, "q": 3}),  # 4 does not divide n=6: the largest divisor below it, 3
    (R.LPHMReconciliation(r=1, q=5), {"p": 2, "q": 4}),  # 5 does not divide D=12: 4
    (R.DuplicatedPaddingReconciliation(p=4), {"p": 3, "q": 4}),  # q follows the requested p, then fits D
    (R.DuplicatedDiagonalPaddingReconciliation(p=5), {"p": 3}),  # against gcd(n, D) = 6
    (R.HMReconciliation(p=100), {"p": 6, "q": 3}),  # above n: n itself
])
def test_the_p_q_rule_fits_a_requested_value_to_each_layer(psi, expected):
    hparams = psi.hparams(6, 12)
    assert {key: hparams[key] for key in expected} == expected
    assert psi.calculate_l(6, 12) > 0


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: R.LowRankReconciliation(r=0), r"r=0 is invalid"),
        (lambda: R.DualLPHMReconciliation(r=-1), r"r=-1 is invalid"),
        (lambda: R.HypernetReconciliation(l=0), r"l=0 is invalid"),
        (lambda: R.MaskingReconciliation(p=1.5), r"p=1.5 is invalid"),
        (lambda: R.HMReconciliation(p=0), r"p=0 is invalid"),
        (lambda: R.LPHMReconciliation(k=0), r"k=0 is invalid"),
        (lambda: R.DualLPHMReconciliation(k=2, layout="reference"), r"k=2 needs layout=kronecker"),
    ],
)
def test_invalid_hyper_parameters_raise_value_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_w_of_the_wrong_length_is_rejected():
    with pytest.raises(ValueError, match=r"w has 5 entries but .* needs l=18"):
        R.LowRankReconciliation(r=1)(torch.randn(1, 5), 6, 12)


@pytest.mark.parametrize("name", [o for o in options("reconciliation") if o not in {"zero", "one", "constant", "constant_eye"}])
def test_initial_W_has_the_variance_of_a_default_dense_layer(name):
    torch.manual_seed(0)
    psi, n, D = from_config(name), 64, 256
    W = torch.stack([psi(psi.init_w(n, D), n, D, psi.create_state(n, D)) for _ in range(8)])
    ratio = W.var().item() / (1 / (3 * D))
    assert 0.6 < ratio < 1.6, f"{name}: Var(W) is {ratio:.2f} x the dense 1/(3D)"


def test_standalone_calls_are_deterministic_for_stateful_functions():
    for psi in (R.HypernetReconciliation(l=8, hidden_dim=16), R.MaskingReconciliation(), R.RandomMatrixHypernetReconciliation(l=8)):
        w = torch.randn(1, psi.calculate_l(6, 12))
        torch.testing.assert_close(psi(w, 6, 12), psi(w, 6, 12))


def test_trainable_hypernet_exposes_learnable_state():
    frozen = R.HypernetReconciliation(l=8, hidden_dim=16, static=True).create_state(6, 12)
    learnable = R.HypernetReconciliation(l=8, hidden_dim=16, static=False).create_state(6, 12)
    assert not any(isinstance(v, torch.nn.Parameter) for v in frozen.values())
    assert all(isinstance(v, torch.nn.Parameter) for v in learnable.values())


def test_a_frozen_matrix_beyond_the_limit_is_refused_before_it_is_allocated():
    with pytest.raises(ValueError, match=r"n·D × hidden_dim = 64·615440 × 128 = 5,041,684,480 values .* lower hidden_dim"):
        R.HypernetReconciliation().create_state(64, 615_440)
    assert R.RandomMatrixHypernetReconciliation(r=2).create_state(64, 4_160)["T"].shape == (64 * 4_160, 2)


def test_the_paper_first_layer_with_a_hypernet_is_a_config_error_naming_the_layer():
    from rpn_exp import build_model
    from rpn_exp.config.build import ConfigError

    with pytest.raises(ConfigError, match=r"layer 0 \(m=784 -> n=64, D=615440\): hypernet reconciliation"):
        build_model(compose_config(["experiment=paper_mnist", "reconciliation=hypernet"]))


# ------------------------------------------------------------------------------------------- reference layout
def written_reference_W(name, w, n, D, p, q, r=None):
    """W as the reference implementation writes it: the row-major reshape to (n, D) of vec(A) vec(B)ᵀ, with
    A = P·Q′ and B = S·T′ for the low-rank factors (Q′, T′ the slices of w reshaped row-major to r × q, r × D/q)."""
    s, t = n // p, D // q
    w = w.reshape(-1)
    sizes = {"hm": lambda: [p * q, s * t], "lphm": lambda: [p * q, s * r, r * t],
             "dual_lphm": lambda: [p * r, q * r, s * r, r * t], "duplicated_padding": lambda: [s * t]}[name]()
    take = iter(torch.split(w, sizes))
    if name == "hm":
        A, B = next(take).reshape(p, q), next(take).reshape(s, t)
    elif name == "lphm":
        A = next(take).reshape(p, q)
        B = next(take).reshape(s, r) @ next(take).reshape(r, t)
    elif name == "dual_lphm":
        A = next(take).reshape(p, r) @ next(take).reshape(r, q)
        B = next(take).reshape(s, r) @ next(take).reshape(r, t)
    else:
        A, B = torch.ones(p, q, dtype=w.dtype), next(take).reshape(s, t)
    return torch.outer(A.reshape(-1), B.reshape(-1)).reshape(n, D)


@pytest.mark.parametrize("name,r", [("hm", None), ("lphm", 2), ("dual_lphm", 2), ("duplicated_padding", None)])
@pytest.mark.parametrize("n,D,p,q", [(6, 12, 2, 3), (10, 4160, 2, 64), (4, 20, 2, 5), (6, 12, 3, 2)])
def test_reference_layout_builds_the_written_construction(name, r, n, D, p, q):
    overrides = {"layout": "reference", "p": p, "q": q, **({"r": r} if r else {})}
    psi = from_config(name, **overrides)
    torch.manual_seed(0)
    w = torch.randn(1, psi.calculate_l(n, D), dtype=torch.float64)
    expected = written_reference_W(name, w, n, D, p, p if name == "duplicated_padding" and q is None else q, r)
    torch.testing.assert_close(psi(w, n, D), expected)
    x = torch.randn(5, D, dtype=torch.float64)
    torch.testing.assert_close(psi.linear(x, w, n, D), x @ expected.T)  # never builds W
    assert psi.calculate_l(n, D) == from_config(name, **{**overrides, "layout": "kronecker"}).calculate_l(n, D)


def test_reference_layout_is_not_the_kronecker_product():
    psi, ref = R.HMReconciliation(p=2, q=3), R.HMReconciliation(p=2, q=3, layout="reference")
    w = torch.randn(1, psi.calculate_l(6, 12))
    assert not torch.allclose(psi(w, 6, 12), ref(w, 6, 12))
    assert torch.linalg.matrix_rank(ref(w, 6, 12)) <= ref.rank_bound(6, 12) < psi.rank_bound(6, 12)


def test_unknown_layout_names_the_choices():
    with pytest.raises(ValueError, match="layout='kron' is invalid; valid choices: kronecker, reference"):
        R.DualLPHMReconciliation(layout="kron")


@pytest.mark.parametrize("name,psi,n,D,bound", [
    ("identity", R.IdentityReconciliation(), 6, 12, 6),
    ("lorr r=2", R.LowRankReconciliation(r=2), 6, 12, 2),
    ("hm", R.HMReconciliation(p=2, q=3), 6, 12, 2 * 3),
    ("lphm r=1", R.LPHMReconciliation(r=1, p=2, q=3), 6, 12, 2 * 1),
    ("dual_lphm r=1", R.DualLPHMReconciliation(r=1), 10, 16512, 1),
    ("dual_lphm r=5", R.DualLPHMReconciliation(r=5), 10, 4160, 2 * 5),
    ("duplicated_padding", R.DuplicatedPaddingReconciliation(p=2), 6, 12, 1 * 3),
    ("duplicated_diagonal_padding", R.DuplicatedDiagonalPaddingReconciliation(p=2), 6, 12, 2 * 3),
    ("random_matrix_adaption r=2", R.RandomMatrixAdaptionReconciliation(r=2), 6, 12, 2),
    ("zero", R.ZeroReconciliation(), 6, 12, 0),
    ("one", R.OneReconciliation(), 6, 12, 1),
    ("constant_eye", R.ConstantEyeReconciliation(), 6, 12, 6),
])
def test_rank_bound_is_what_the_structure_allows_and_random_W_reach_it(name, psi, n, D, bound):
    assert psi.rank_bound(n, D) == bound
    torch.manual_seed(0)
    w = torch.randn(1, psi.calculate_l(n, D), dtype=torch.float64)
    W = psi(w, n, D, {k: v.double() for k, v in psi.create_state(n, D).items()})
    assert torch.linalg.matrix_rank(W) == bound  # a bound a random W attains: not a loose one


@pytest.mark.parametrize("psi", [
    lambda r: R.LowRankReconciliation(r=r),
    lambda r: R.LPHMReconciliation(r=r),
    lambda r: R.DualLPHMReconciliation(r=r),
    lambda r: R.LPHMReconciliation(r=r, layout="reference"),
    lambda r: R.DualLPHMReconciliation(r=r, layout="reference"),
], ids=["lorr", "lphm", "dual_lphm", "lphm_reference", "dual_lphm_reference"])
def test_a_smaller_rank_sits_in_a_larger_one_with_the_same_W(psi):
    small, large, n, D = psi(2), psi(5), 12, 30
    w = torch.randn(small.calculate_l(n, D))
    positions = small.rank_positions(n, D, large)
    padded = torch.zeros(large.calculate_l(n, D))
    padded[positions] = w
    assert small.rank_pads and positions.unique().numel() == w.numel()
    torch.testing.assert_close(large(padded, n, D), small(w, n, D), rtol=0, atol=1e-6)


def test_rank_positions_are_the_leading_corners_of_each_piece():
    small, large = R.LowRankReconciliation(r=1), R.LowRankReconciliation(r=2)  # A (n×r), B (D×r), n = 2, D = 3
    assert small.rank_positions(2, 3, large).tolist() == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("small, large, match", [
    (R.LPHMReconciliation(r=2, p=2), R.LPHMReconciliation(r=4, p=3), "cannot sit in"),
    (R.RandomMatrixAdaptionReconciliation(r=2), R.RandomMatrixAdaptionReconciliation(r=4), "only the rank r"),
    (R.LowRankReconciliation(r=2), R.DualLPHMReconciliation(r=4), "only the rank r"),
])
def test_only_the_rank_of_a_padding_family_pads(small, large, match):
    with pytest.raises(ValueError, match=match):
        small.rank_positions(12, 30, large)


def test_pieces_that_are_not_corners_are_refused():
    with pytest.raises(ValueError, match="not a corner"):
        R.rank_positions([("A", (3, 2))], [("A", (2, 4))])


# ------------------------------------------------------------------------------------------- Kronecker sums
#: The families with k Kronecker terms, at k = 2 and 3, and what one term is built from (pieces of one term).
SUMS = [
    ("hm", lambda k: R.HMReconciliation(k=k, p=2, q=3), ("A", "B")),
    ("lphm", lambda k: R.LPHMReconciliation(r=2, k=k, p=2, q=3), ("A", "S", "T")),
    ("dual_lphm", lambda k: R.DualLPHMReconciliation(r=2, k=k, p=2, q=3), ("P", "Q", "S", "T")),
]


def one_term(name, parts):
    """A ⊗ B of one term from its pieces, written out from the family's formula."""
    if name == "hm":
        return torch.kron(parts["A"], parts["B"])
    if name == "lphm":
        return torch.kron(parts["A"], parts["S"] @ parts["T"].T)
    return torch.kron(parts["P"] @ parts["Q"].T, parts["S"] @ parts["T"].T)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("name,make,names", SUMS, ids=[s[0] for s in SUMS])
def test_a_sum_of_k_terms_is_the_sum_of_the_family_terms(name, make, names, k):
    psi, n, D = make(k), 6, 12
    assert psi.calculate_l(n, D) == k * make(1).calculate_l(n, D)  # l(k) = k l(1)
    assert [piece for piece, _ in psi.pieces(n, D)] == [f"{piece}{i}" for i in range(1, k + 1) for piece in names]
    w = torch.randn(psi.calculate_l(n, D), dtype=torch.float64)
    parts = psi.split(w, n, D)
    expected = sum(one_term(name, {piece: parts[f"{piece}{i}"] for piece in names}) for i in range(1, k + 1))
    torch.testing.assert_close(psi(w, n, D), expected)


@pytest.mark.parametrize("name,make,names", SUMS, ids=[s[0] for s in SUMS])
def test_one_term_is_the_family_as_it_was(name, make, names):
    psi = make(1)
    assert [piece for piece, _ in psi.pieces(6, 12)] == list(names)
    w = torch.randn(psi.calculate_l(6, 12), dtype=torch.float64)
    torch.testing.assert_close(psi(w, 6, 12), one_term(name, psi.split(w, 6, 12)), rtol=0, atol=0)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("name,make,names", SUMS, ids=[s[0] for s in SUMS])
@pytest.mark.parametrize("n,D", [(6, 12), (8, 30), (12, 42)])
def test_a_sum_applies_like_its_materialized_W_with_the_same_gradient(name, make, names, k, n, D):
    psi = make(k)
    w = psi.init_w(n, D).double().requires_grad_(True)
    x = torch.randn(5, D, dtype=torch.float64)
    fast, dense = psi.linear(x, w, n, D), F.linear(x, psi(w, n, D))
    torch.testing.assert_close(fast, dense)
    (g_fast,) = torch.autograd.grad(fast.square().sum(), w)
    (g_dense,) = torch.autograd.grad(dense.square().sum(), w)
    torch.testing.assert_close(g_fast, g_dense)


@pytest.mark.parametrize("psi,n,D,bound", [
    (R.HMReconciliation(k=2, p=2, q=2), 8, 8, 8),  # 2·(2·4) = 16, capped by n
    (R.LPHMReconciliation(r=1, k=2, p=2, q=3), 6, 12, 2 * 2 * 1),  # k·rank A·rank(S Tᵀ) = 2·2·1
    (R.LPHMReconciliation(r=1, k=3, p=2, q=2), 12, 12, 3 * 2 * 1),
    (R.DualLPHMReconciliation(r=1, k=3, p=4, q=4), 16, 16, 3),  # three rank-1 terms
    (R.DualLPHMReconciliation(r=2, k=2, p=4, q=4), 16, 16, 2 * 2 * 2),
    (R.DualLPHMReconciliation(r=1, k=5, p=2, q=2), 8, 8, 5),  # five rank-1 terms
    (R.LPHMReconciliation(r=2, k=2, p=4, q=3), 12, 12, 10),  # 2·3·2 = 12, but the two 3-dim col(Aᵢ) in R⁴ share a
    (R.DualLPHMReconciliation(r=3, k=2, p=4, q=4), 16, 16, 14),  # plane and the 2-dim col(Bᵢ) in R³ a line: 12 − 2
    (R.DualLPHMReconciliation(r=5, k=4), 64, 4160, 64),  # the paper's hidden layer: 4·25 capped at n
], ids=["hm", "lphm_k2", "lphm_k3", "dual_k3_r1", "dual_k2_r2", "dual_k5_r1", "lphm_meet", "dual_meet", "dual_paper"])
def test_the_rank_bound_of_a_sum_is_reached_by_a_random_draw(psi, n, D, bound):
    assert psi.rank_bound(n, D) == bound
    torch.manual_seed(0)
    W = psi(torch.randn(psi.calculate_l(n, D), dtype=torch.float64), n, D)
    assert torch.linalg.matrix_rank(W) == bound


def test_the_rank_bound_of_a_huge_sum_draws_no_more_terms_than_the_layer_has_rows():
    """k = 10⁶ terms on the paper's first layer (64 × 615,440): the bound is n, found from at most n terms."""
    assert R.DualLPHMReconciliation(r=5, k=10**6, p=8).rank_bound(64, 784 * 785) == 64
    assert R.LPHMReconciliation(r=2, k=10**6, p=4, q=3).rank_bound(12, 12) == 12  # the meeting planes fill up


@pytest.mark.parametrize("name,make,names", SUMS, ids=[s[0] for s in SUMS])
def test_each_term_is_drawn_for_its_share_of_the_variance(name, make, names):
    n, D, k = 24, 60, 4
    variances = [make(k)(make(k).init_w(n, D, generator=torch.Generator().manual_seed(s))[0], n, D).var().item()
                 for s in range(20)]
    assert statistics.mean(variances) * 3 * D == pytest.approx(1.0, rel=0.25)


def test_a_smaller_rank_of_a_sum_sits_in_a_larger_one():
    small, large, n, D = R.DualLPHMReconciliation(r=2, k=3), R.DualLPHMReconciliation(r=4, k=3), 12, 30
    w = torch.randn(small.calculate_l(n, D))
    padded = torch.zeros(large.calculate_l(n, D))
    padded[small.rank_positions(n, D, large)] = w
    torch.testing.assert_close(large(padded, n, D), small(w, n, D), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="cannot sit in"):
        small.rank_positions(n, D, R.DualLPHMReconciliation(r=4, k=2))
