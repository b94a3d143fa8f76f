"""K networks of one shape trained as one: every tensor gets a leading member dimension.

A stacked run (``launcher=stacked``) trains the members of a group (jobs that differ in seed, optimizer,
scheduler, initialization or epochs, not in any shape) in one process. Each member is an ordinary network, built
as its solo run builds it; :class:`MemberStack` keeps all their parameters in stacked tensors of shape (K, ...),
the members' own parameters being views of them, and computes

    y[k] = net_k(x[k]),   x (K, b, m) -> y (K, b, n)

with ``torch.func.vmap`` over a ``functional_call`` of one member's module, so every compute path (the fused
Kronecker × Taylor node through its own vmap rule) runs once for all members. Gradients land in the stacked
tensors; :meth:`MemberStack.member_grads` hands each member its slice, so each member's own optimizer (its own
hyper-parameters and state) steps it exactly as in a solo run.

:class:`MemberBatches` gives each member the batches its solo run sees: its own split of the data and the
permutation drawn from its own seed and the epoch (``TensorBatches``' order).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from .data.base import TensorBatches


class MemberStack(nn.Module):
    """The networks ``members`` (same class and shapes) as one batched model.

    ``forward(x)``: x (K, b, m) -> logits (K, b, n), member k's rows through member k's parameters and buffers.
    After ``loss.backward()``, :meth:`member_grads` sets each member parameter's ``.grad`` (a view of the stacked
    gradient). Updating a member's parameter in place (its optimizer) updates the stacked tensor: they share memory.
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("a member stack needs at least one network")
        shapes = [[(name, tuple(p.shape)) for name, p in m.named_parameters()] for m in members]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError("the members of a stack must have the same parameter names and shapes")
        self.members = list(members)
        self.template = members[0]
        self.stacked: dict[str, torch.Tensor] = {}
        for name, _ in members[0].named_parameters():
            views = [dict(m.named_parameters())[name] for m in members]
            stacked = torch.stack([v.detach() for v in views]).requires_grad_(views[0].requires_grad)
            for k, parameter in enumerate(views):
                parameter.data = stacked.data[k]  # the member's parameter is a view: its optimizer updates the stack
            self.stacked[name] = stacked
        self.buffers_ = {name: torch.stack([dict(m.named_buffers())[name] for m in members])
                         for name, _ in members[0].named_buffers()}

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def one(params, buffers, rows):
            return functional_call(self.template, (params, buffers), (rows,))

        return vmap(one)(self.stacked, self.buffers_, x)

    def train(self, mode: bool = True):
        for member in self.members:
            member.train(mode)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for stacked in self.stacked.values():
            stacked.grad = None
        for member in self.members:
            member.zero_grad(set_to_none=set_to_none)

    def member_grads(self) -> None:
        """Each member parameter's ``.grad``: its slice of the stacked gradient (None where there is none)."""
        for name, stacked in self.stacked.items():
            if stacked.grad is None:
                continue
            for k, member in enumerate(self.members):
                member.get_parameter(name).grad = stacked.grad[k]


def member_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean cross entropy over its batch: logits (K, b, classes), y (K, b) -> (K,)."""
    K, b = y.shape
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(K, b).mean(1)


class MemberBatches:
    """Each member's split as one (K, N, features) tensor; batches gathered for all members at once.

    ``splits[k]`` is member k's (x, y) (x as stored: uint8 pixels or float32), ``mean``/``std`` its
    standardization and ``seeds[k]`` the seed of its data order: pass e of member k is the permutation of
    :class:`~rpn_exp.data.base.TensorBatches` for ``seeds[k] + e``, so its batches are its solo run's.
    """

    def __init__(self, splits: Sequence[tuple[torch.Tensor, torch.Tensor]], mean: Sequence[float],
                 std: Sequence[float], seeds: Sequence[int], batch_size: int):
        sizes = {int(x.shape[0]) for x, _ in splits}
        if len(sizes) != 1:
            raise ValueError(f"the members' splits differ in size ({sorted(sizes)}); they cannot share batches")
        self.x = torch.stack([x for x, _ in splits])
        self.y = torch.stack([y for _, y in splits])
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.seeds, self.batch_size = list(seeds), batch_size

    @property
    def size(self) -> int:
        return int(self.x.shape[1])

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def orders(self, epochs: Sequence[int], members: Sequence[int]) -> torch.Tensor:
        """The permutation of each of ``members`` for its pass ``epochs[i]``: (len(members), N)."""
        return torch.stack([TensorBatches.permutation(self.size, self.seeds[k] + e) for k, e in zip(members, epochs)])

    def batches(self, members: Sequence[int], order: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, ...]]:
        """(x (K', b, features) standardized, y (K', b)) for ``members``, in ``order`` (None: stored order)."""
        index = torch.as_tensor(list(members))
        rows, mean, std = index.unsqueeze(1), self.mean[index], self.std[index]
        for start in range(0, self.size, self.batch_size):
            part = slice(start, start + self.batch_size)
            columns = torch.arange(start, min(start + self.batch_size, self.size)) if order is None else order[:, part]
            xb, yb = self.x[rows, columns], self.y[rows, columns]
            yield torch.sub(xb.to(torch.float32), mean).div_(std), yb
