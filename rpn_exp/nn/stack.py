"""K networks of one shape trained as one: every tensor gets a leading member dimension.

A stacked run (``launcher=stacked``) trains the members of a group (jobs that differ in seed, optimizer,
scheduler, initialization or epochs, not in any shape) in one process. Each member is an ordinary network, built
as its solo run builds it; :class:`MemberStack` keeps all their parameters in stacked tensors of shape (K, ...),
the members' own parameters being views of them, and computes

    y[k] = net_k(x[k]),   x (K, b, m) -> y (K, b, n)

with ``torch.func.vmap`` over a ``functional_call`` of one member's module, so every compute path (the fused
Kronecker × Taylor node through its own vmap rule) runs once for all members. A network that carries the member
dimension itself (``carries_members``: the product path end to end, as the paper's model) is called once with the
stacked parameters instead, without ``vmap``: the same operations on the same tensors, so the same numbers to the
bit, without the cost of torch's custom-function ``vmap`` route to the fused node (``benchmarks/vmap_node.py``).
Gradients land in the stacked tensors; :meth:`MemberStack.member_grads` hands each member its slice, so the group's
optimizer, one parameter group per member (its own hyper-parameters and state), steps it exactly as its solo run's
optimizer does.

The group's LightningModule, batches and optimizer are in :mod:`rpn_exp.run.stacked`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap


class MemberStack(nn.Module):
    """The networks ``members`` (same class and shapes) as one batched model.

    ``forward(x)``: x (K, b, m) -> logits (K, b, n), member k's rows through member k's parameters and buffers.
    ``masks[k]`` (optional) maps parameter names to member k's gradient mask of the parameter's shape.
    ``native`` (None: whether the network ``carries_members``) calls the network on the stacked parameters directly,
    False under ``vmap``; a stack of one member calls it on views of them without the member dimension (a solo run's
    computation: ``vmap`` costs a reference-layout step 1.5 times its own work, ``benchmarks/stacked_step.py``).
    After ``loss.backward()``, :meth:`member_grads` sets each member parameter's ``.grad`` (a view of the stacked
    gradient). Updating a member's parameter in place (its optimizer) updates the stacked tensor: they share memory;
    so do its buffers (a batch norm's running statistics, updated by the stacked forward), so its checkpoints and
    state dict hold what the stack computes with.
    """

    def __init__(self, members: Sequence[nn.Module], masks: Sequence[dict[str, torch.Tensor]] | None = None,
                 native: bool | None = None):
        super().__init__()
        if not members:
            raise ValueError("a member stack needs at least one network")
        shapes = [[(name, tuple(p.shape)) for name, p in m.named_parameters()] for m in members]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError("the members of a stack must have the same parameter names and shapes")
        self.members = list(members)
        self.template = members[0]
        self.stacked: dict[str, torch.Tensor] = {}
        self.views: dict[str, list[nn.Parameter]] = {}  # each member's parameter of that name
        for name, _ in members[0].named_parameters():
            views = [m.get_parameter(name) for m in members]
            stacked = torch.stack([v.detach() for v in views]).requires_grad_(views[0].requires_grad)
            for k, parameter in enumerate(views):
                parameter.data = stacked.data[k]  # the member's parameter is a view: its optimizer updates the stack
            self.stacked[name], self.views[name] = stacked, views
        self.buffers_: dict[str, torch.Tensor] = {}
        for name, _ in members[0].named_buffers():  # running statistics: what the stack updates, the members see
            views = [m.get_buffer(name) for m in members]
            stacked = torch.stack([v.detach() for v in views])
            for k, buffer in enumerate(views):
                buffer.data = stacked[k]
            self.buffers_[name] = stacked
        masks = masks or [{} for _ in members]
        self.masks = {name: torch.stack([mask.get(name, torch.ones_like(self.stacked[name][0])).to(self.stacked[name])
                                         for mask in masks])
                      for name in dict.fromkeys(name for mask in masks for name in mask)}
        #: whether the network takes the member dimension itself (``carries_members``) rather than under ``vmap``
        self.native = bool(getattr(self.template, "carries_members", False)) if native is None else native

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native:  # parameters (K, ...) and x (K, b, m) through the network as they are
            return functional_call(self.template, (self.stacked, self.buffers_), (x,))
        if len(self.members) == 1:  # one member: its solo computation on views of the stack, no vmap to pay
            alone = {name: t.squeeze(0) for name, t in self.stacked.items()}
            buffers = {name: t.squeeze(0) for name, t in self.buffers_.items()}
            return functional_call(self.template, (alone, buffers), (x.squeeze(0),)).unsqueeze(0)

        def one(params, buffers, rows):
            return functional_call(self.template, (params, buffers), (rows,))

        return vmap(one)(self.stacked, self.buffers_, x)

    def train(self, mode: bool = True):
        for member in self.members:
            member.train(mode)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """No gradient in the stack or in any member (``set_to_none`` only: the members' are views)."""
        for name, stacked in self.stacked.items():
            stacked.grad = None
            for parameter in self.views[name]:
                parameter.grad = None

    def member_grads(self, skip: Sequence[int] = ()) -> None:
        """Each member parameter's ``.grad``: its slice of the stacked gradient, times its mask where it has one
        (zero at a padded rank, ``rpn_exp.nn.padding``); None where there is none, and for the members at the positions
        ``skip``, which their optimizers then leave alone."""
        for name, stacked in self.stacked.items():
            if name in self.masks and stacked.grad is not None:
                stacked.grad.mul_(self.masks[name])
            grads = stacked.grad.unbind() if stacked.grad is not None else [None] * len(self.members)
            for k, parameter in enumerate(self.views[name]):
                parameter.grad = None if k in skip else grads[k]


def member_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean cross entropy over its batch: logits (K, b, classes), y (K, b) -> (K,)."""
    K, b = y.shape
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(K, b).mean(1)
