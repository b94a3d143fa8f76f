"""A group's optimizer: one parameter group per member steps each member as its own optimizer would."""

import copy

import pytest
import torch
import torch.nn.functional as F

from rpn_exp.config.build import build_network
from rpn_exp.nn.stack import MemberStack, member_losses
from rpn_exp.run.stacked.optimizer import (
    MemberSchedulers,
    group_optimizer,
    group_optimizer_state,
    member_share,
    one_group_per_setting,
)
from tests.conftest import compose_config

K = 3


def networks():
    nets = []
    for k in range(K):
        torch.manual_seed(k)
        nets.append(build_network(compose_config(["reconciliation=dual_lphm", "reconciliation.r=2",
                                                  "model.hidden=[16]", f"seed={k}"]), 64, 10))
    return nets


@pytest.mark.parametrize("optimizer", [
    lambda params, k: torch.optim.AdamW(params, lr=0.01 * (k + 1), weight_decay=0.1),
    lambda params, k: torch.optim.SGD(params, lr=0.05, momentum=0.3 * k),
])
def test_one_parameter_group_per_member_computes_what_each_members_own_optimizer_does(optimizer):
    nets = networks()
    solo = [copy.deepcopy(net) for net in nets]
    own = [optimizer(net.parameters(), k) for k, net in enumerate(solo)]
    own_schedulers = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.5) for o in own]
    params = [list(net.parameters()) for net in nets]
    group = group_optimizer([lambda p, k=k: optimizer(p, k) for k in range(K)], params)
    shares = [member_share(group, k, params[k]) for k in range(K)]
    schedulers = MemberSchedulers(group, [torch.optim.lr_scheduler.ExponentialLR(s, gamma=0.5) for s in shares])
    stack = MemberStack(nets)
    for step in range(3):
        x, y = torch.randn(K, 8, 64), torch.randint(0, 10, (K, 8))
        stack.zero_grad()
        member_losses(stack(x), y).sum().backward()
        stack.member_grads(skip=[2] if step == 2 else ())  # member 2 diverged before the last step
        group.step()
        schedulers.step(range(K if step < 2 else 2))
        for k in range(K if step < 2 else 2):
            own[k].zero_grad()
            F.cross_entropy(solo[k](x[k]), y[k]).backward()
            own[k].step()
            own_schedulers[k].step()
    assert type(shares[0]).__name__ == type(own[0]).__name__  # LearningRateMonitor's series: lr-AdamW, lr-SGD
    for k in range(K):
        for p, q in zip(nets[k].parameters(), solo[k].parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
        ours, theirs = shares[k].state_dict(), own[k].state_dict()
        assert ours["param_groups"] == theirs["param_groups"]
        assert ours["state"].keys() == theirs["state"].keys()
        for index, state in theirs["state"].items():
            for key, value in state.items():
                torch.testing.assert_close(ours["state"][index][key], value, rtol=1e-4, atol=1e-6)
        assert shares[k].param_groups[0]["lr"] == pytest.approx(own[k].param_groups[0]["lr"])


@pytest.mark.parametrize("fused", [False, True])
def test_members_of_equal_settings_are_stepped_as_one_group_to_the_same_weights(fused):
    runs = []
    for joined in (False, True):
        nets = networks()
        params = [list(net.parameters()) for net in nets]
        optimizer = group_optimizer([lambda p, k=k: torch.optim.AdamW(p, lr=0.01 if k < 2 else 0.02, fused=fused)
                                     for k in range(K)], params)
        groups = list(optimizer.param_groups)
        stack = MemberStack(nets)
        torch.manual_seed(0)
        for step in range(3):
            stack.zero_grad()
            member_losses(stack(torch.randn(K, 8, 64)), torch.randint(0, 10, (K, 8))).sum().backward()
            stack.member_grads(skip=[0] if step == 2 else ())  # member 0 diverged: still skipped when joined
            if joined:
                with one_group_per_setting(optimizer):
                    assert [len(g["params"]) for g in optimizer.param_groups] == [2 * len(params[0]), len(params[2])]
                    optimizer.step()
            else:
                optimizer.step()
        assert all(a is b for a, b in zip(optimizer.param_groups, groups))  # the shares' and schedulers' groups
        runs.append([p.detach().clone() for net in nets for p in net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs))  # bit for bit


def test_the_members_saved_states_load_into_the_group_optimizer_and_its_shares_follow():
    nets = networks()
    params = [list(net.parameters()) for net in nets]
    make = lambda p: torch.optim.AdamW(p, lr=0.01)  # noqa: E731
    first = group_optimizer([make] * K, params)
    stack = MemberStack(nets)
    member_losses(stack(torch.randn(K, 8, 64)), torch.randint(0, 10, (K, 8))).sum().backward()
    stack.member_grads()
    first.step()
    saved = [member_share(first, k, params[k]).state_dict() for k in range(K)]
    saved[1]["param_groups"][0]["lr"] = 0.5
    again = group_optimizer([make] * K, params)
    share = member_share(again, 1, params[1])
    again.load_state_dict(group_optimizer_state(saved))  # replaces the group dicts: the share must see the new ones
    assert share.param_groups[0]["lr"] == 0.5 and again.param_groups[1]["lr"] == 0.5
    for index, state in saved[1]["state"].items():
        torch.testing.assert_close(share.state_dict()["state"][index]["exp_avg"], state["exp_avg"])


def test_members_whose_optimizers_differ_or_couple_parameters_cannot_share_one():
    params = [list(net.parameters()) for net in networks()[:2]]
    with pytest.raises(ValueError, match="optimizers differ"):
        group_optimizer([lambda p: torch.optim.AdamW(p), lambda p: torch.optim.SGD(p, lr=0.1)], params)
    with pytest.raises(ValueError, match="LBFGS may couple parameters"):
        group_optimizer([lambda p: torch.optim.LBFGS(p)] * 2, params)
