"""RPN heads, layers and networks: parameter counts, compute paths, state and errors."""

import pytest
import torch

from rpn_exp.functions import expansion as E
from rpn_exp.functions import interdependence as I
from rpn_exp.functions import reconciliation as R
from rpn_exp.functions import remainder as P
from rpn_exp.functions.shapes import auto_factor
from rpn_exp.nn import RPNLayer, RPNNetwork, count_frozen, count_learnable

PAPER_WIDTHS = [784, 64, 64, 10]


def paper_network(psi, **kwargs):
    return RPNNetwork(
        PAPER_WIDTHS,
        expansion=E.TaylorExpansion(d=2, postprocess=["layer_norm"]),
        reconciliation=psi,
        remainder=P.ZeroRemainder(),
        bias=False,
        **kwargs,
    )


def formula_l(name, n, D, r=5):
    """Per-layer l from the formulas in the reconciliation functions' docstrings with automatic p and q."""
    p, q = auto_factor(n), auto_factor(D)
    return {
        "identity": n * D,
        "lorr": r * (n + D),
        "hm": p * q + (n // p) * (D // q),
        "lphm": p * q + r * (n // p + D // q),
        "dual_lphm": r * (p + q + n // p + D // q),
    }[name]


@pytest.mark.parametrize(
    "name,psi",
    [
        ("identity", R.IdentityReconciliation()),
        ("lorr", R.LowRankReconciliation(r=5)),
        ("hm", R.HMReconciliation()),
        ("lphm", R.LPHMReconciliation(r=5)),
        ("dual_lphm", R.DualLPHMReconciliation(r=5)),
    ],
)
def test_paper_model_learnable_count_is_the_sum_of_layer_formulas(name, psi):
    with torch.device("meta"):  # identity has 39.7M parameters: count them without allocating
        net = paper_network(psi)
    expected = sum(formula_l(name, n, m * (m + 1)) for m, n in zip(PAPER_WIDTHS[:-1], PAPER_WIDTHS[1:]))
    assert count_learnable(net) == expected
    assert [row["l"] for row in net.describe()] == [
        formula_l(name, n, m * (m + 1)) for m, n in zip(PAPER_WIDTHS[:-1], PAPER_WIDTHS[1:])
    ]


def test_paper_numbers_of_reference():
    with torch.device("meta"):
        assert count_learnable(paper_network(R.DualLPHMReconciliation(r=5))) == 9_330
        assert count_learnable(paper_network(R.IdentityReconciliation())) == 39_696_000


def test_network_describes_each_layer():
    net = RPNNetwork([6, 4, 3], expansion=E.TaylorExpansion(d=2), reconciliation=R.HMReconciliation())
    rows = net.describe()
    assert [(r["m"], r["n"], r["D"]) for r in rows] == [(6, 4, 42), (4, 3, 20)]
    assert rows[0]["l"] == R.HMReconciliation().calculate_l(4, 42)
    assert "m=6, n=4, D=42" in repr(net)


def stateful_network():
    return RPNNetwork(
        [8, 6, 4, 3],
        expansion=E.ChebyshevExpansion(d=2),
        reconciliation=R.HypernetReconciliation(l=6, hidden_dim=8),
        remainder=P.LinearRemainder(),
        layer_overrides={
            1: {"reconciliation": R.RandomMatrixAdaptionReconciliation(r=2), "heads": 2},
            2: {"reconciliation": R.MaskingReconciliation(p=0.5), "channels": 2, "bias": True},
        },
    )


def test_state_dict_round_trip_restores_identical_outputs():
    torch.manual_seed(0)
    source = stateful_network().eval()
    torch.manual_seed(1)
    target = stateful_network().eval()
    x = torch.randn(5, 8)
    assert not torch.allclose(source(x), target(x))
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(source(x), target(x))
    keys = source.state_dict().keys()
    assert any("psi_net_1_weight" in k for k in keys)  # frozen hypernet
    assert any(k.endswith("psi_A") for k in keys) and any(k.endswith("psi_mask") for k in keys)


def test_frozen_state_is_buffers_and_counted_apart():
    net = stateful_network()
    buffers = sum(b.numel() for b in net.buffers())
    assert count_frozen(net) == buffers > 0
    assert all(p.requires_grad for p in net.parameters())
    moved = net.to(torch.float64)
    assert all(b.dtype == torch.float64 for b in moved.buffers() if b.is_floating_point())


def test_one_reconciliation_object_serves_layers_of_different_shapes():
    psi = R.DualLPHMReconciliation(r=2)
    net = RPNNetwork([12, 6, 4], expansion=E.TaylorExpansion(d=2), reconciliation=psi)
    assert [(r["p"], r["q"]) for r in net.describe()] == [(2, 12), (2, 6)]
    assert net(torch.randn(3, 12)).shape == (3, 4)


def test_a_p_applies_where_it_divides_and_the_largest_divisor_below_it_elsewhere():
    net = RPNNetwork([8, 6, 4], expansion=E.TaylorExpansion(d=2), reconciliation=R.HMReconciliation(p=3))
    assert [row["p"] for row in net.describe()] == [3, 2]  # 3 divides n=6; n=4 gets 2


def test_a_p_that_is_not_an_integer_names_the_layer():
    with pytest.raises(ValueError, match=r"layer 0 \(m=8 -> n=6, D=72\): .*p=1.5 is invalid"):
        psi = R.HMReconciliation()
        psi.p = 1.5
        RPNNetwork([8, 6, 4], expansion=E.TaylorExpansion(d=2), reconciliation=psi)


def test_identity_remainder_needs_equal_widths():
    with pytest.raises(ValueError, match=r"layer \(m=5 -> n=3, D=5\): identity remainder"):
        RPNLayer(5, 3, expansion=E.IdentityExpansion(), reconciliation=R.IdentityReconciliation(), remainder=P.IdentityRemainder())


@pytest.mark.parametrize("psi", [R.HMReconciliation(), R.LPHMReconciliation(r=3), R.DualLPHMReconciliation(r=2),
                                 R.DuplicatedPaddingReconciliation(), R.HMReconciliation(k=2),
                                 R.LPHMReconciliation(r=2, k=3), R.DualLPHMReconciliation(r=2, k=2)],
                         ids=["hm", "lphm", "dual_lphm", "duplicated_padding", "hm_k2", "lphm_k3", "dual_lphm_k2"])
@pytest.mark.parametrize("norm", [None, ["layer_norm"]])
@pytest.mark.parametrize("m,n,batch", [(6, 4, 1), (10, 6, 7), (784, 64, 3)])
def test_product_path_equals_materialized_in_outputs_and_gradients(psi, norm, m, n, batch):
    torch.manual_seed(0)
    kwargs = dict(expansion=E.TaylorExpansion(d=2, postprocess=norm), reconciliation=psi, channels=2)
    fast, slow = RPNLayer(m, n, **kwargs), RPNLayer(m, n, materialize=True, **kwargs)
    assert fast.path == "product" and slow.path == "materialized"
    assert_same_function(fast, slow, batch)


def assert_same_function(fast: RPNLayer, slow: RPNLayer, batch: int):
    """Equal outputs and gradients (input and every parameter) in float64 for a random batch."""
    slow.load_state_dict(fast.state_dict())
    fast, slow = fast.double(), slow.double()
    x1 = torch.randn(batch, fast.m, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = fast(x1), slow(x2)
    torch.testing.assert_close(y1, y2)
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    for (name, p1), (_, p2) in zip(fast.named_parameters(), slow.named_parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, msg=name)


@pytest.mark.parametrize("psi", [R.IdentityReconciliation(), R.MaskingReconciliation(p=0.7), R.HypernetReconciliation(l=8, hidden_dim=4, static=False),
                                 R.LowRankReconciliation(r=3), R.RandomMatrixAdaptionReconciliation(r=2)])
@pytest.mark.parametrize("norm", [None, ["layer_norm"]])
@pytest.mark.parametrize("d,m,n,batch", [(2, 6, 4, 1), (2, 10, 6, 7), (3, 5, 3, 4)])
def test_bilinear_path_equals_materialized_in_outputs_and_gradients(psi, norm, d, m, n, batch, monkeypatch):
    monkeypatch.setattr("rpn_exp.nn.head.BILINEAR_MIN_D", 1)  # dense W takes the path at any width here
    torch.manual_seed(0)
    kwargs = dict(expansion=E.TaylorExpansion(d=d, postprocess=norm), reconciliation=psi, channels=2)
    fast, slow = RPNLayer(m, n, **kwargs), RPNLayer(m, n, materialize=True, **kwargs)
    assert fast.path == "bilinear" and slow.path == "materialized"
    assert_same_function(fast, slow, batch)


@pytest.mark.parametrize("psi,path", [(R.DualLPHMReconciliation(r=2), "product"), (R.HMReconciliation(k=2), "product"),
                                      (R.LowRankReconciliation(r=3), "bilinear"), (R.LPHMReconciliation(r=2, layout="reference"), "bilinear")])
@pytest.mark.parametrize("norm", [None, ["layer_norm"]])
def test_a_users_expansion_that_declares_a_product_layout_takes_the_fused_paths(psi, path, norm):
    """tests/user_family/my_families.py: κ(x) = x ⊗ [1, tanh(x)], declared, never built on these paths."""
    from tests.user_family.my_families import TanhPair

    torch.manual_seed(0)
    kwargs = dict(expansion=TanhPair(postprocess=norm), reconciliation=psi, channels=2)
    fast, slow = RPNLayer(6, 4, **kwargs), RPNLayer(6, 4, materialize=True, **kwargs)
    assert fast.path == path and slow.path == "materialized" and fast.D == 42
    assert_same_function(fast, slow, batch=5)


@pytest.mark.parametrize("psi", [R.IdentityReconciliation(), R.LowRankReconciliation(r=2)])
def test_bilinear_path_at_the_paper_first_layer(psi):
    torch.manual_seed(0)
    kwargs = dict(expansion=E.TaylorExpansion(d=2, postprocess=["layer_norm"]), reconciliation=psi)
    fast, slow = RPNLayer(784, 64, **kwargs), RPNLayer(784, 64, materialize=True, **kwargs)
    assert fast.path == "bilinear" and fast.D == 615_440
    assert_same_function(fast, slow, batch=2)


def count_checkpoints(monkeypatch) -> list:
    import rpn_exp.nn.head

    calls = []
    real = rpn_exp.nn.head.checkpoint

    def counting(fn, *args, **kwargs):
        calls.append(args[0].shape[0])
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(rpn_exp.nn.head, "checkpoint", counting)
    return calls


@pytest.mark.parametrize(
    "expansion,psi,materialize,path",
    [
        (E.ChebyshevExpansion(d=3), R.LowRankReconciliation(r=2), False, "structured"),
        (E.ChebyshevExpansion(d=3, postprocess=["layer_norm"]), R.IdentityReconciliation(), False, "materialized"),
        (E.TaylorExpansion(d=2, postprocess=["layer_norm"]), R.DualLPHMReconciliation(r=2), True, "materialized"),
        (E.TaylorExpansion(d=2), R.IdentityReconciliation(), False, "bilinear"),
    ],
)
def test_chunked_dense_paths_equal_the_whole_batch(expansion, psi, materialize, path, monkeypatch):
    monkeypatch.setattr("rpn_exp.nn.head.BILINEAR_MIN_D", 1)
    torch.manual_seed(0)
    kwargs = dict(expansion=expansion, reconciliation=psi, materialize=materialize)
    whole = RPNLayer(7, 5, **kwargs)
    per_row = whole.D if path != "bilinear" else 5 * 7
    chunked = RPNLayer(7, 5, chunk_elements=3 * per_row, **kwargs)  # 3 rows per chunk
    assert chunked.path == whole.path == path
    calls = count_checkpoints(monkeypatch)
    assert_same_function(chunked, whole, batch=8)
    assert calls == [3, 3, 2]  # three recomputed chunks in the chunked layer, none in the whole one


def test_batch_norm_over_kappa_is_never_chunked(monkeypatch):
    torch.manual_seed(0)
    kwargs = dict(expansion=E.ChebyshevExpansion(d=2, postprocess=["batch_norm"]), reconciliation=R.LowRankReconciliation(r=2))
    calls = count_checkpoints(monkeypatch)
    assert_same_function(RPNLayer(7, 5, chunk_elements=1, **kwargs), RPNLayer(7, 5, **kwargs), batch=8)
    assert calls == []


@pytest.mark.parametrize(
    "expansion,psi,path",
    [
        (E.TaylorExpansion(d=2, postprocess=["layer_norm"]), R.DualLPHMReconciliation(r=5), "product"),
        (E.TaylorExpansion(d=2, postprocess=["layer_norm"]), R.LPHMReconciliation(r=2, k=3), "product"),  # a sum
        (E.ChebyshevExpansion(d=2), R.HMReconciliation(k=2), "structured"),
        (E.TaylorExpansion(d=2, postprocess=["layer_norm"]), R.HMReconciliation(q=2), "structured"),  # q != m
        (E.TaylorExpansion(d=2, postprocess=["layer_norm"]), R.IdentityReconciliation(), "materialized"),  # κ narrow
        (E.TaylorExpansion(d=2, postprocess=["batch_norm"]), R.IdentityReconciliation(), "materialized"),
        (E.TaylorExpansion(d=2), R.LowRankReconciliation(r=2), "bilinear"),  # W = U Vᵀ with V thin
        (E.TaylorExpansion(d=2, postprocess=["layer_norm"]), R.RandomMatrixAdaptionReconciliation(), "bilinear"),
        (E.FourierExpansion(), R.LPHMReconciliation(r=2), "structured"),
        (E.FourierExpansion(), R.HypernetReconciliation(l=8, hidden_dim=4), "materialized"),
    ],
)
def test_the_fastest_exact_path_is_chosen(expansion, psi, path):
    assert RPNLayer(6, 4, expansion=expansion, reconciliation=psi).path == path


def test_layer_with_interdependence_heads_and_output_processing():
    layer = RPNLayer(
        6, 4,
        expansion=E.IdentityExpansion(),
        reconciliation=R.LowRankReconciliation(r=2),
        interdependence=I.AttributeInterdependence(R.HMReconciliation(), m_prime=9),
        heads=3,
        output_processing=["batch_norm", "relu"],
    )
    assert layer.D == 9
    y = layer(torch.randn(5, 6))
    assert y.shape == (5, 4) and (y >= 0).all()
    assert count_learnable(layer) == 3 * (2 * (4 + 9) + R.HMReconciliation().calculate_l(6, 9))


@pytest.mark.parametrize("psi,m,n", [(R.DualLPHMReconciliation(r=2), 30, 12), (R.LowRankReconciliation(r=2), 30, 12),
                                     (R.HMReconciliation(), 30, 12), (R.IdentityReconciliation(), 30, 12),
                                     (R.DualLPHMReconciliation(r=2, k=3), 30, 12),
                                     (R.DualLPHMReconciliation(r=5), 784, 64)])
def test_the_weight_window_is_the_leading_block_of_W(psi, m, n):
    head = RPNLayer(m, n, expansion=E.TaylorExpansion(d=2), reconciliation=psi).heads[0]  # D = 930 or 615,440
    W = head.weight()[0]
    torch.testing.assert_close(head.weight_window(rows=7, cols=100), W[:7, :100])
    torch.testing.assert_close(head.weight_window(rows=1000, cols=700), W[:, :700])  # rows beyond n: all of them


@pytest.mark.slow
@pytest.mark.parametrize("model", [["model.hidden=[16]"], ["model=grid", "model.grid.out_channels=[4,8]"]])
def test_a_compiled_network_computes_what_the_eager_one_does(tmp_path, model):
    """The perceptron and the grid model (convolution path, batch norm, pooling)."""
    from rpn_exp import build_model
    from tests.conftest import compose_config

    torch.manual_seed(0)
    eager = build_model(compose_config(model))
    compiled = build_model(compose_config([*model, "model.compile=default"]))
    compiled.load_state_dict(eager.state_dict())
    assert set(compiled.state_dict()) == set(eager.state_dict())  # checkpoints do not depend on compile
    x = torch.randn(32, 64)
    y1, y2 = eager(x), compiled(x)
    torch.testing.assert_close(y1, y2, rtol=1e-4, atol=1e-5)
    y1.square().sum().backward()
    y2.square().sum().backward()
    for (name, p1), (_, p2) in zip(eager.named_parameters(), compiled.named_parameters()):
        scale = p1.grad.abs().max().item()  # float32 sums in another order: errors relative to the largest entry
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-4, atol=1e-6 * scale, msg=name)


def test_an_unknown_compile_mode_lists_the_valid_ones():
    from rpn_exp import build_model
    from rpn_exp.config.build import ConfigError
    from tests.conftest import compose_config

    with pytest.raises(ConfigError, match=r"model.compile='fast' is invalid; valid choices: null \(eager\), default, reduce-overhead"):
        build_model(compose_config(["model.compile=fast"]))


#: One layer per compute path (m=6, n=4): the same function computed the fast way and the materialized way.
PATH_LAYERS = {
    "product": dict(expansion=E.TaylorExpansion(d=2, postprocess=["layer_norm"]), reconciliation=R.DualLPHMReconciliation(r=2)),
    "bilinear": dict(expansion=E.TaylorExpansion(d=2, postprocess=["layer_norm"]), reconciliation=R.LowRankReconciliation(r=2)),
    "structured": dict(expansion=E.ChebyshevExpansion(d=2), reconciliation=R.HMReconciliation()),
    "materialized": dict(expansion=E.TaylorExpansion(d=2, postprocess=["layer_norm"]), reconciliation=R.IdentityReconciliation()),
}


@pytest.mark.parametrize("path", list(PATH_LAYERS))
def test_second_derivatives_of_every_path_equal_the_materialized_ones(path):
    torch.manual_seed(3)
    fast = RPNLayer(6, 4, **PATH_LAYERS[path]).double()
    dense = RPNLayer(6, 4, materialize=True, **PATH_LAYERS[path]).double()
    dense.load_state_dict(fast.state_dict())
    assert fast.path == path and dense.path == "materialized"
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)

    def penalty_gradients(layer):
        (gx,) = torch.autograd.grad(layer(x).square().sum(), x, create_graph=True)  # a gradient penalty
        return torch.autograd.grad(gx.square().sum(), [x, *layer.parameters()])

    for a, b in zip(penalty_gradients(fast), penalty_gradients(dense)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("path", list(PATH_LAYERS))
def test_every_path_runs_under_autocast_close_to_float32(path, dtype):
    torch.manual_seed(4)
    layer, x = RPNLayer(6, 4, **PATH_LAYERS[path]), torch.randn(16, 6)
    with torch.autocast("cpu", dtype=dtype):
        y = layer(x)
    y.float().square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    torch.testing.assert_close(y.float(), layer(x), rtol=0.1, atol=0.05)


def test_frozen_matrices_come_from_the_reconciliation_seed():
    def frozen(seed, layer_index=0):
        torch.manual_seed(123 + seed)  # the global RNG must not matter
        layer = RPNLayer(6, 4, index=layer_index, expansion=E.TaylorExpansion(d=2),
                         reconciliation=R.RandomMatrixAdaptionReconciliation(r=2, seed=seed))
        return torch.cat([b.flatten() for b in layer.buffers()])

    assert torch.equal(frozen(1), frozen(1))
    assert not torch.equal(frozen(1), frozen(2)) and not torch.equal(frozen(1), frozen(1, layer_index=1))


def test_a_mask_drawn_per_step_evaluates_with_the_expected_mask():
    torch.manual_seed(5)
    layer = RPNLayer(6, 4, expansion=E.TaylorExpansion(d=2), reconciliation=R.MaskingReconciliation(p=0.5, fixed_mask=False))
    x = torch.randn(3, 6)
    layer.eval()
    first, second = layer(x), layer(x)
    torch.testing.assert_close(first, second)  # deterministic in evaluation
    W = layer.heads[0].w[0].reshape(4, -1) * 0.5  # the expected mask: p everywhere
    kappa = layer.heads[0].expansion(x)
    torch.testing.assert_close(first, kappa @ W.T)
    layer.train()
    assert not torch.equal(layer(x), layer(x))  # a new mask per training step


def test_a_layer_states_the_rank_bound_of_its_map():
    kwargs = dict(expansion=E.TaylorExpansion(d=2), reconciliation=R.LowRankReconciliation(r=1))
    assert RPNLayer(6, 4, **kwargs).rank_bound == 1
    assert RPNLayer(6, 4, heads=2, channels=1, **kwargs).rank_bound == 2  # an average of two rank-1 maps
    assert RPNLayer(6, 4, channels=3, heads=2, **kwargs).rank_bound == 4  # capped by n
    linear = RPNLayer(6, 4, remainder=P.LinearRemainder(), **kwargs)
    assert linear.rank_bound == 4 and linear.describe()["rank_bound"] == 4  # 1 + min(m, n), capped by n


def test_an_output_layer_below_classes_minus_1_is_warned_about(caplog):
    from rpn_exp import build_model
    from tests.conftest import compose_config

    with caplog.at_level("WARNING", logger="rpn_exp"):
        net = build_model(compose_config(["reconciliation.r=1"]))
    assert [row["rank_bound"] for row in net.describe()] == [1, 1]
    (warning,) = [r.getMessage() for r in caplog.records if "caps W" in r.getMessage()]
    assert "layer 1: reconciliation=dual_lphm r=1 k=1 p=2 q=128 caps W at rank 1, below classes - 1 = 9" in warning
    assert "+reconciliation@model.layer_overrides.1.reconciliation=identity" in warning
    caplog.clear()
    with caplog.at_level("WARNING", logger="rpn_exp"):  # a dense baseline: its hidden width is what limits it
        build_model(compose_config(["model=mlp", "model.hidden=[4]"]))
    (warning,) = [r.getMessage() for r in caplog.records if "caps W" in r.getMessage()]
    assert "layer 1: its input width 4 caps W at rank 4" in warning and "reconciliation" not in warning
    assert warning.endswith("give the last hidden layer at least 9 units")
    caplog.clear()
    with caplog.at_level("WARNING", logger="rpn_exp"):
        build_model(compose_config(["reconciliation.r=5"]))
    assert not [r for r in caplog.records if "caps W" in r.getMessage()]


@pytest.mark.parametrize("order", ["kronecker", "reference"])
@pytest.mark.parametrize("psi", [R.HMReconciliation(layout="reference"), R.LPHMReconciliation(r=2, layout="reference"),
                                 R.DualLPHMReconciliation(r=2, layout="reference"),
                                 R.DuplicatedPaddingReconciliation(layout="reference")], ids=lambda p: p.name)
@pytest.mark.parametrize("norm", [None, ["layer_norm"]], ids=["plain", "layer_norm"])
def test_the_reference_layout_acts_on_kappa_without_building_it(psi, order, norm):
    kwargs = dict(expansion=E.TaylorExpansion(d=2, postprocess=norm, order=order), reconciliation=psi, channels=2)
    fast, slow = RPNLayer(6, 4, **kwargs).double(), RPNLayer(6, 4, materialize=True, **kwargs).double()
    slow.load_state_dict(fast.state_dict())
    assert fast.path == "bilinear" and slow.path == "materialized"
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    y_fast, y_slow = fast(x), slow(x)
    torch.testing.assert_close(y_fast, y_slow)
    grads = [torch.autograd.grad(y.square().sum(), [x, layer.heads[0].w]) for y, layer in ((y_fast, fast),
                                                                                             (y_slow, slow))]
    for fast_grad, slow_grad in zip(*grads):
        torch.testing.assert_close(fast_grad, slow_grad)


def test_the_reference_taylor_order_is_degree_by_degree():
    x = torch.tensor([[2.0, 3.0]])
    assert E.TaylorExpansion(d=2, order="reference")(x).tolist() == [[2.0, 3.0, 4.0, 6.0, 6.0, 9.0]]
    assert E.TaylorExpansion(d=2)(x).tolist() == [[2.0, 4.0, 6.0, 3.0, 6.0, 9.0]]  # x ⊗ [1, x]
    with pytest.raises(ValueError, match="order='degree' is invalid; valid choices: kronecker, reference"):
        E.TaylorExpansion(order="degree")


def test_the_reference_layout_allocates_nothing_the_size_of_W():
    """The paper's 784 -> 64 layer at a smaller m: no operation allocates as much as W (n·D floats); the
    materialized path, for contrast, does."""
    from torch.profiler import ProfilerActivity, profile

    m, n = 96, 32
    kwargs = dict(expansion=E.TaylorExpansion(postprocess=["layer_norm"], order="reference"),
                  reconciliation=R.DualLPHMReconciliation(r=3, layout="reference"))
    W_bytes = n * (m + m * m) * 4

    def largest_allocation(layer):
        x = torch.randn(8, m, requires_grad=True)
        layer(x).sum().backward()  # the index plan is cached: built once per shape
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            layer(x).sum().backward()
        return max(event.cpu_memory_usage for event in prof.key_averages())  # per operator, summed over calls

    assert largest_allocation(RPNLayer(m, n, **kwargs)) < W_bytes / 2
    assert largest_allocation(RPNLayer(m, n, materialize=True, **kwargs)) >= W_bytes


def test_the_weight_window_of_the_reference_layout_is_the_corner_of_its_W():
    head = RPNLayer(6, 4, expansion=E.TaylorExpansion(d=2, order="reference"),
                    reconciliation=R.DualLPHMReconciliation(r=2, layout="reference")).heads[0]
    torch.testing.assert_close(head.weight_window(3, 20), head.weight()[0][:3, :20])
