"""The group's LightningModule: which members its stack holds, and what their optimizer is left to step."""

from types import SimpleNamespace

import torch

from rpn_exp.config.build import build_network
from rpn_exp.nn.padding import RankPadding
from rpn_exp.nn.stack import member_losses
from rpn_exp.run.stacked.member import Member
from rpn_exp.run.stacked.module import StackedClassifier
from rpn_exp.run.stacked.optimizer import group_optimizer
from tests.conftest import compose_config

K = 3


def group() -> StackedClassifier:
    members = []
    for k in range(K):
        torch.manual_seed(k)
        net = build_network(compose_config(["reconciliation=lorr", "reconciliation.r=2", "model.hidden=[8]"]), 16, 4)
        run = SimpleNamespace(settings=SimpleNamespace(pruner=None), running=True)
        members.append(Member(run=run, net=net, stack_net=net, padding=RankPadding(net, net)))
    return StackedClassifier(members)


def backward(module: StackedClassifier, members: list[int]) -> None:
    stack = module.stack(members)
    member_losses(stack(torch.randn(len(members), 8, 16)), torch.randint(0, 4, (len(members), 8))).sum().backward()
    stack.member_grads()


def test_a_member_that_leaves_the_stack_is_no_longer_stepped_by_the_group_optimizer():
    module = group()
    optimizer = group_optimizer([lambda p: torch.optim.AdamW(p, lr=0.1)] * K, [list(n.parameters()) for n in module.nets])
    backward(module, [0, 1, 2])
    optimizer.step()
    module.optimizer_zero_grad(0, 0, optimizer)
    assert all(p.grad is None for net in module.nets for p in net.parameters())
    backward(module, [0, 1, 2])
    left = [p.detach().clone() for p in module.nets[1].parameters()]
    backward(module, [0, 2])  # member 1 left at the end of an epoch: the stack is rebuilt over the others
    assert all(p.grad is None for p in module.nets[1].parameters())
    optimizer.step()
    assert all(torch.equal(p, q) for p, q in zip(module.nets[1].parameters(), left))
    assert all(p.grad is not None for k in (0, 2) for p in module.nets[k].parameters())
