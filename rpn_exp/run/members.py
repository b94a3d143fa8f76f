"""The members of a stacked group as one: their batches, each from its own split in its own seed's order, and
their optimizers, one shared step for members with equal settings.

:class:`MemberBatches` gives each member the batches its solo run sees: its own split of the data and the
permutation drawn from its own seed and the epoch (``TensorBatches``' order). :class:`MemberOptimizers` steps each
member's parameters as its own optimizer would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from rpn_exp.data.base import TensorBatches


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
        rows, mean, std = index.unsqueeze(1) * self.size, self.mean[index], self.std[index]
        flat_x, flat_y = self.x.flatten(0, 1), self.y.flatten()
        for start in range(0, self.size, self.batch_size):
            part = slice(start, start + self.batch_size)
            columns = torch.arange(start, min(start + self.batch_size, self.size)) if order is None else order[:, part]
            flat = (rows + columns).flatten()  # row of (member, sample) in the flattened (K·N, features) tensor
            xb = flat_x.index_select(0, flat).view(len(index), -1, self.x.shape[-1])
            yield torch.sub(xb.to(torch.float32), mean).div_(std), flat_y.index_select(0, flat).view(len(index), -1)


#: Optimizers that update each parameter from its own gradient and state alone: one of them over several members'
#: parameters computes what one per member computes (same hyper-parameters), in one call.
PER_PARAMETER_OPTIMIZERS = ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam")


class MemberOptimizers:
    """The members' optimizers and LR schedulers: one pair per set of members whose settings are equal.

    Members ``k`` with equal ``keys[k]`` (e.g. their optimizer and scheduler configs) share one optimizer over all
    their parameters, built by ``make_optimizer(k, params)``, and one scheduler, ``make_scheduler(k, optimizer)``
    (or None); give every member its own key to keep one optimizer each. A shared optimizer must be one of
    :data:`PER_PARAMETER_OPTIMIZERS`, so that it computes for each member what the member's own would. A member
    without gradients (one that left the stack) is skipped by its optimizer, as torch's optimizers skip a
    parameter whose ``.grad`` is None.
    """

    def __init__(self, nets: Sequence[nn.Module], keys: Sequence, make_optimizer, make_scheduler):
        self.params = [list(net.parameters()) for net in nets]
        self.shares: list[tuple[list[int], torch.optim.Optimizer, object]] = []
        self.share_of: dict[int, int] = {}
        for key in dict.fromkeys(keys):
            members = [k for k, other in enumerate(keys) if other == key]
            optimizer = make_optimizer(members[0], [p for k in members for p in self.params[k]])
            if len(members) > 1 and type(optimizer).__name__ not in PER_PARAMETER_OPTIMIZERS:
                raise ValueError(f"{type(optimizer).__name__} may couple parameters; it cannot be shared by members")
            for k in members:
                self.share_of[k] = len(self.shares)
            self.shares.append((members, optimizer, make_scheduler(members[0], optimizer)))

    def lr(self, k: int) -> float:
        return self.shares[self.share_of[k]][1].param_groups[0]["lr"]

    def step(self, members: Sequence[int]) -> None:
        """One optimizer step of each share that holds one of ``members``."""
        for index in sorted({self.share_of[k] for k in members}):
            self.shares[index][1].step()

    def scheduler_step(self, members: Sequence[int]) -> None:
        """The end of an epoch: one step of each scheduler that holds one of ``members``."""
        for index in sorted({self.share_of[k] for k in members}):
            scheduler = self.shares[index][2]
            if scheduler is not None:
                scheduler.step()

    def state_dict(self, k: int) -> dict:
        """Member k's optimizer state as its own optimizer's ``state_dict()`` would hold it (one parameter group)."""
        members, optimizer, _ = self.shares[self.share_of[k]]
        shared = optimizer.state_dict()
        offset = sum(len(self.params[j]) for j in members[:members.index(k)])
        group = {key: value for key, value in shared["param_groups"][0].items() if key != "params"}
        count = len(self.params[k])
        return {"state": {i: shared["state"][offset + i] for i in range(count) if offset + i in shared["state"]},
                "param_groups": [{**group, "params": list(range(count))}]}

    def load_state_dict(self, k: int, optimizer_state: dict, scheduler_state: dict | None = None) -> None:
        """Member k continues from its saved optimizer (and scheduler) state, as :meth:`state_dict` gives them."""
        members, optimizer, scheduler = self.shares[self.share_of[k]]
        for i, parameter in enumerate(self.params[k]):
            saved = optimizer_state["state"].get(i, optimizer_state["state"].get(str(i)))
            if saved is not None:
                optimizer.state[parameter] = {key: v.clone() if torch.is_tensor(v) else v for key, v in saved.items()}
        saved_group = optimizer_state["param_groups"][0]
        for key in ("lr", "initial_lr"):
            if key in saved_group:
                optimizer.param_groups[0][key] = saved_group[key]
        if scheduler is not None and scheduler_state is not None:
            scheduler.load_state_dict(scheduler_state)

    def scheduler_state_dict(self, k: int) -> dict | None:
        scheduler = self.shares[self.share_of[k]][2]
        return scheduler.state_dict() if scheduler is not None else None
