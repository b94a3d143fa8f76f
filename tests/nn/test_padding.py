"""Zero-padding the rank: a network of rank r inside one of rank r′ computes, trains and saves as the small one."""

import copy

import pytest
import torch
import torch.nn.functional as F

from rpn_exp.config.build import build_network
from rpn_exp.nn.padding import RankPadding
from rpn_exp.nn.stack import MemberStack, member_losses
from rpn_exp.run.stacked.optimizer import group_optimizer, member_share
from tests.conftest import compose_config

#: Networks of a family with a rank, one per compute path it takes.
NETWORKS = {
    "product": ["reconciliation=dual_lphm"],
    "product_kronecker_sum": ["reconciliation=lphm", "reconciliation.k=3"],
    "product_heads_channels_bias": ["reconciliation=lphm", "model.heads=2", "model.channels=2", "model.bias=true",
                                    "remainder=linear"],
    "bilinear_low_rank": ["reconciliation=lorr"],
    "bilinear_reference_layout": ["experiment=paper_reference", "dataset=digits"],
    "structured": ["expansion=chebyshev", "reconciliation=lphm"],
    "materialized": ["model.materialize=true", "reconciliation=dual_lphm"],
}


def network(overrides, r, seed=0):
    torch.manual_seed(seed)
    return build_network(compose_config([*overrides, f"reconciliation.r={r}", "model.hidden=[16]"]), 64, 10)


def padded(small, large):
    """A copy of ``large`` holding ``small``'s weights zero-padded, and the padding."""
    padding = RankPadding(small, large)
    net = copy.deepcopy(large)
    net.load_state_dict(padding.pad(small.state_dict()))
    return net, padding


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_a_padded_network_computes_what_the_small_one_computes_with_zero_gradient_on_the_padding(name):
    small, large = network(NETWORKS[name], 2), network(NETWORKS[name], 4, seed=1)
    net, padding = padded(small, large)
    assert padding and set(padding.positions) == {n for n, p in small.named_parameters() if n.endswith(".w")}
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
    F.cross_entropy(small(x), y).backward()
    F.cross_entropy(net(x), y).backward()
    torch.testing.assert_close(net(x), small(x), rtol=1e-5, atol=1e-6)
    grads = {n: p.grad for n, p in net.named_parameters()}
    masks = padding.masks()
    for n, p in small.named_parameters():
        torch.testing.assert_close(padding.unpad({n: grads[n]})[n], p.grad, rtol=1e-4, atol=1e-6, msg=n)
        if n in masks:
            assert masks[n].sum() == p.numel() and not grads[n][masks[n] == 0].any(), n  # zero on the padding


def test_weights_and_optimizer_states_convert_both_ways_exactly():
    small, large = network(NETWORKS["product"], 1), network(NETWORKS["product"], 3)
    net, padding = padded(small, large)
    for n, value in padding.unpad(net.state_dict()).items():
        torch.testing.assert_close(value, small.state_dict()[n], rtol=0, atol=0)
    assert [tuple(v.shape) for v in padding.pad(small.state_dict()).values()] == \
        [tuple(v.shape) for v in large.state_dict().values()]
    optimizer = torch.optim.AdamW(small.parameters())
    F.cross_entropy(small(torch.randn(8, 64)), torch.randint(0, 10, (8,))).backward()
    optimizer.step()
    state = optimizer.state_dict()
    back = padding.unpad_optimizer(padding.pad_optimizer(state))
    for index, values in state["state"].items():
        for key, value in values.items():
            torch.testing.assert_close(back["state"][index][key], value, rtol=0, atol=0)


def train_stacked_and_alone(solo: list, largest, steps: int = 5):
    """Copies of the ``solo`` networks zero-padded into ``largest``'s shape, trained a few steps in one stack with one
    shared AdamW while each of ``solo`` trains alone on the same batches: ([(padded net, padding)], the group
    optimizer, the solo optimizers)."""
    members = [padded(net, largest) for net in copy.deepcopy(solo)]
    nets, paddings = [net for net, _ in members], [p for _, p in members]
    stack = MemberStack(nets, masks=[p.masks() for p in paddings])
    optimizer = group_optimizer([lambda p: torch.optim.AdamW(p, lr=1e-2)] * len(solo),
                                [list(net.parameters()) for net in nets])
    own = [torch.optim.AdamW(net.parameters(), lr=1e-2) for net in solo]
    for _ in range(steps):
        x, y = torch.randn(len(solo), 16, 64), torch.randint(0, 10, (len(solo), 16))
        stack.zero_grad()
        member_losses(stack(x), y).sum().backward()
        stack.member_grads()
        optimizer.step()
        for k, net in enumerate(solo):
            own[k].zero_grad()
            F.cross_entropy(net(x[k]), y[k]).backward()
            own[k].step()
    return members, optimizer, own


def assert_trained_as_alone(members, solo) -> None:
    """Each padded member holds its solo network's weights, and zeros on its padding."""
    for k, (net, padding) in enumerate(members):
        for n, value in padding.unpad(net.state_dict()).items():
            torch.testing.assert_close(value, solo[k].state_dict()[n], rtol=1e-4, atol=1e-5, msg=f"member {k}: {n}")
        for n, mask in padding.masks().items():
            assert not net.get_parameter(n).detach()[mask == 0].any(), n


def test_members_of_different_ranks_train_in_one_stack_as_each_trains_alone():
    """Ranks 1, 2 and 4 of dual_lphm in one stack with one shared AdamW: after a few steps every member's weights
    equal its solo run's, and its padding is still exactly zero."""
    solo = [network(NETWORKS["product"], r, seed=r) for r in (1, 2, 4)]
    members, optimizer, own = train_stacked_and_alone(solo, solo[-1])
    assert_trained_as_alone(members, solo)
    for k, (net, padding) in enumerate(members):
        state = padding.unpad_optimizer(member_share(optimizer, k, list(net.parameters())).state_dict())
        for index, values in own[k].state_dict()["state"].items():
            torch.testing.assert_close(state["state"][index]["exp_avg"], values["exp_avg"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_an_mlp_sits_in_a_wider_one_and_trains_as_it_does_alone(activation):
    """Widths 4 and 8 in a stack of width 16 with one shared AdamW: after a few steps each member's weights equal its
    solo run's (whatever the activation makes of the padded units), its padding still zero."""
    def mlp(width, seed):
        torch.manual_seed(seed)
        overrides = ["model=mlp", f"model.hidden=[{width}]", f"model.activation={activation}"]
        return build_network(compose_config(overrides), 64, 10)

    solo = [mlp(4, 1), mlp(8, 2)]
    members, _, _ = train_stacked_and_alone(solo, mlp(16, 3))
    assert set(members[0][1].positions) == {"layers.0.heads.0.w", "layers.0.bias", "layers.1.heads.0.w"}
    assert_trained_as_alone(members, solo)


def test_networks_that_differ_in_more_than_a_rank_do_not_pad():
    with pytest.raises(ValueError, match="differ in their parameters"):
        RankPadding(network(NETWORKS["product"], 2), network(["reconciliation=dual_lphm", "model.bias=true"], 2))
    hm = [build_network(compose_config(["reconciliation=hm", f"reconciliation.p={p}", "model.hidden=[16]"]), 64, 10)
          for p in (1, 2)]
    with pytest.raises(ValueError, match="cannot sit in"):
        RankPadding(*hm)
