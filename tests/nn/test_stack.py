"""The member dimension: K networks stacked into one equal K separate networks, on every compute path."""

import copy

import pytest
import torch
import torch.nn.functional as F

from rpn_exp.config.build import build_network
from rpn_exp.functions.factors import kron_taylor
from rpn_exp.nn.stack import MemberStack, member_losses
from tests.conftest import compose_config

#: One network per compute path (and the pieces around it: heads, channels, ξ, π, bias, chunked rows).
NETWORKS = {
    "product": ["reconciliation=dual_lphm", "reconciliation.r=2"],
    "product_kronecker_sum": ["reconciliation=dual_lphm", "reconciliation.r=2", "reconciliation.k=2"],
    "product_heads_channels": ["reconciliation=lphm", "model.heads=2", "model.channels=2"],
    "product_heads_channels_bias": ["reconciliation=lphm", "model.heads=2", "model.channels=2", "model.bias=true",
                                    "remainder=linear"],
    "bilinear_low_rank": ["reconciliation=lorr", "reconciliation.r=2"],
    "bilinear_reference_layout": ["experiment=paper_reference", "dataset=digits"],
    "structured": ["expansion=chebyshev", "reconciliation=lphm", "interdependence=lphm"],
    "structured_chunked": ["expansion=chebyshev", "reconciliation=lphm", "model.chunk_elements=1024"],
    "materialized": ["reconciliation=hypernet", "expansion=chebyshev"],
    "materialized_forced": ["model.materialize=true", "reconciliation=dual_lphm"],
    "mlp": ["model=mlp"],
    "mlp_two_hidden": ["model=mlp", "model.hidden=[16,8]"],
    "linear": ["model=mlp", "model.hidden=[]"],
    "product_bias": ["reconciliation=dual_lphm", "reconciliation.r=2", "model.bias=true"],
}
K = 3


def networks(overrides):
    """K networks of the same config, each built from its own seed as its solo run builds it."""
    nets = []
    for k in range(K):
        torch.manual_seed(k)
        nets.append(build_network(compose_config([*overrides, "model.hidden=[16]", f"seed={k}"]), 64, 10))
    return nets


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_a_stack_computes_what_each_member_computes_forward_and_backward(name):
    nets = networks(NETWORKS[name])
    solo = [copy.deepcopy(net) for net in nets]
    x, y = torch.randn(K, 32, 64), torch.randint(0, 10, (K, 32))
    stack = MemberStack(nets)
    member_losses(stack(x), y).sum().backward()
    stack.member_grads()
    for k, net in enumerate(solo):
        F.cross_entropy(net(x[k]), y[k]).backward()
        stacked_out = stack(x)[k].detach()
        torch.testing.assert_close(stacked_out, net(x[k]).detach(), rtol=1e-4, atol=1e-5)
        for (pname, p), q in zip(net.named_parameters(), nets[k].parameters()):
            if p.grad is None:
                assert q.grad is None, pname
                continue
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5, msg=f"{name}: {pname} of member {k}")


def test_the_networks_cover_every_compute_path_and_row_chunks():
    from rpn_exp.nn.head import PATHS

    built = {name: networks(overrides)[0] for name, overrides in NETWORKS.items()}
    assert {layer.path for net in built.values() for layer in net.layers} == set(PATHS)
    head = built["structured_chunked"].layers[0].heads[0]
    assert head.chunk_elements // head.D < 32  # a batch of 32 rows is computed in chunks


def test_a_member_updated_by_its_own_optimizer_updates_the_stack():
    nets = networks(NETWORKS["product"])
    stack = MemberStack(nets)
    optimizer = torch.optim.SGD(nets[1].parameters(), lr=0.1)
    before = {name: t.detach().clone() for name, t in stack.stacked.items()}
    member_losses(stack(torch.randn(K, 8, 64)), torch.randint(0, 10, (K, 8))).sum().backward()
    stack.member_grads()
    optimizer.step()
    for name, t in stack.stacked.items():
        torch.testing.assert_close(t[0], before[name][0], rtol=0, atol=0)  # member 0 was not stepped
        assert not torch.equal(t[1], before[name][1]), name  # member 1 was, in the stack's own memory


@pytest.mark.parametrize("same", [True, False])
@pytest.mark.parametrize("eps", [None, 1e-5])
def test_the_fused_kronecker_taylor_node_under_vmap_equals_one_call_per_member(same, eps):
    g = torch.Generator().manual_seed(0)
    u = torch.randn(K, 5, 4, generator=g, requires_grad=True)
    t = u if same else torch.randn(K, 5, 3, generator=g, requires_grad=True)
    A = torch.randn(K, 2, 4, generator=g, requires_grad=True)
    B = torch.randn(K, 3, t.shape[-1] + 1, generator=g, requires_grad=True)
    y = torch.vmap(lambda u_, t_, A_, B_: kron_taylor(u_, u_ if same else t_, A_, B_, eps))(u, t, A, B)
    inputs = (u, A, B) if same else (u, t, A, B)
    stacked = torch.autograd.grad(y, inputs, torch.ones_like(y))
    each = [kron_taylor(u[k], u[k] if same else t[k], A[k], B[k], eps) for k in range(K)]
    torch.testing.assert_close(y, torch.stack(each))
    for got, want in zip(stacked, torch.autograd.grad(torch.stack(each), inputs, torch.ones_like(y))):
        torch.testing.assert_close(got, want)


def test_members_of_other_shapes_are_refused():
    with pytest.raises(ValueError, match="same parameter names and shapes"):
        MemberStack([*networks(NETWORKS["product"])[:1], *networks(["reconciliation=lorr"])[:1]])


def test_members_running_statistics_are_the_stacks_so_their_state_dicts_hold_what_it_computes_with():
    nets = networks(["model.output_processing=[batch_norm]"])
    solo = [copy.deepcopy(net) for net in nets]
    stack = MemberStack(nets)
    x = torch.randn(K, 32, 64)
    for _ in range(2):
        stack(x)  # training mode: each member's batch norm updates its running statistics
    for k, net in enumerate(solo):
        for _ in range(2):
            net(x[k])
        ours, theirs = nets[k].state_dict(), net.state_dict()
        for key in (key for key in theirs if "running" in key or "num_batches" in key):
            torch.testing.assert_close(ours[key], theirs[key], msg=f"{key} of member {k}")
        assert not torch.equal(ours["layers.0.output_processing.0.running_mean"], torch.zeros(16))


#: Networks whose every layer takes the product path, or is dense (W = reshape(w) on x: the MLPs), with nothing
#: around it that needs ``vmap`` (a linear π does).
NATIVE = {"product": True, "product_kronecker_sum": True, "product_heads_channels": True, "product_bias": True,
          "product_heads_channels_bias": False, "bilinear_low_rank": False, "mlp": True, "mlp_two_hidden": True,
          "linear": True}


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_a_network_that_carries_the_member_dimension_itself_computes_what_vmap_computes(name):
    nets = networks(NETWORKS[name])
    native, mapped = MemberStack(copy.deepcopy(nets)), MemberStack(copy.deepcopy(nets), native=False)
    assert native.native is NATIVE[name] and not mapped.native
    x, y = torch.randn(K, 32, 64), torch.randint(0, 10, (K, 32))
    outputs = [stack(x) for stack in (native, mapped)]
    for out in outputs:
        member_losses(out, y).sum().backward()
    assert torch.equal(*outputs)  # the same operations on the same tensors: equal to the bit
    for parameter in native.stacked:
        assert torch.equal(native.stacked[parameter].grad, mapped.stacked[parameter].grad), parameter


@pytest.mark.parametrize("activation,native", [("relu", True), ("tanh", True), ("dropout", False),
                                               ("layer_norm", False)])
def test_an_activation_between_layers_is_carried_only_when_it_acts_entry_by_entry(activation, native):
    """A dropout draws each member's mask (under ``vmap``, as its solo run), a layer norm has its own parameters."""
    nets = networks([*NETWORKS["product"], f"model.activation={activation}"])
    assert MemberStack(nets).native is native


def test_a_users_expansion_that_declares_leading_dims_is_carried_too():
    from tests.user_family.my_families import TanhPair

    nets = []
    for k in range(K):
        torch.manual_seed(k)
        cfg = compose_config([*NETWORKS["product"], "model.hidden=[16]", f"seed={k}"])
        cfg.expansion = {"_target_": "tests.user_family.my_families.TanhPair"}
        nets.append(build_network(cfg, 64, 10))
    assert all(isinstance(layer.heads[0].expansion, TanhPair) for layer in nets[0].layers)
    native, mapped = MemberStack(copy.deepcopy(nets)), MemberStack(copy.deepcopy(nets), native=False)
    assert native.native
    x = torch.randn(K, 32, 64)
    assert torch.equal(native(x), mapped(x))


@pytest.mark.parametrize("name", ["bilinear_reference_layout", "structured", "mlp", "batch_norm"])
def test_a_stack_of_one_member_computes_its_solo_run_to_the_bit(name):
    overrides = ["model.output_processing=[batch_norm]"] if name == "batch_norm" else NETWORKS[name]
    net = networks(overrides)[0]
    solo = copy.deepcopy(net)
    stack = MemberStack([net], native=False)
    x, y = torch.randn(1, 32, 64), torch.randint(0, 10, (1, 32))
    out = stack(x)
    member_losses(out, y).sum().backward()
    stack.member_grads()
    alone = solo(x[0])
    F.cross_entropy(alone, y[0]).backward()
    assert out.shape == (1, 32, 10) and torch.equal(out[0], alone)
    for (pname, p), q in zip(solo.named_parameters(), net.parameters()):
        assert torch.equal(q.grad, p.grad), pname
    assert all(torch.equal(a, b) for a, b in zip(net.buffers(), solo.buffers()))  # running statistics, in the stack
