"""The data of a stacked group: each member's batches, from its own split in its own seed's order, stacked.

:class:`MemberBatches` gives each member the batches its solo run sees (its own split of the data and the permutation
drawn from its own seed and the epoch, ``TensorBatches``' order); :class:`MemberLoader` is what Lightning iterates:
the batches of the members still training, each in the order of its own epoch (a member that joined a group late
counts its epochs from its start).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch

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


class MemberLoader:
    """One split of a group as Lightning iterates it: (x (K', b, features), y (K', b)) for the members that
    ``members()`` names when a pass starts (at its first batch), each shuffled in the order of its own pass,
    ``epochs(members)`` (None: in stored order)."""

    def __init__(self, data: MemberBatches, members: Callable[[], Sequence[int]],
                 epochs: Callable[[Sequence[int]], Sequence[int]] | None = None):
        self.data, self.members, self.epochs = data, members, epochs

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # a generator: the members and the epoch are read at the first batch, not when Lightning calls iter() (a
        # resumed run's epoch is counted only once its restored epoch has ended)
        members = list(self.members())
        order = None if self.epochs is None else self.data.orders(self.epochs(members), members)
        yield from self.data.batches(members, order)
