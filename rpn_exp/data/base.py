"""Preloaded tensor data: batches are gathered from one tensor and standardized, no per-sample work, no workers."""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import torch


class TensorBatches:
    """Iterable of standardized (x, y) batches gathered from preloaded tensors.

    ``x`` stays in its stored dtype (uint8 images take a quarter of the memory of float32); each batch is
    gathered by index (or sliced) and standardized on the fly: ``(x_batch - mean) / std`` in float32. With
    ``shuffle`` the order of pass e is the permutation drawn from ``seed + e``, so runs are reproducible.
    ``epoch`` (a callable, e.g. the trainer's current epoch) gives e; without it e counts this object's passes.
    Taking e from the trainer makes a run resumed from an end-of-epoch checkpoint see the same order as one that
    was never interrupted. ``rank``/``world_size`` give each DDP process its own contiguous shard.
    """

    def __init__(self, x, y, batch_size, *, mean=0.0, std=1.0, shuffle=False, seed=0, rank=0, world_size=1,
                 drop_last=False, epoch: Callable[[], int] | None = None):
        self.x, self.y = x, y
        self.mean, self.std = float(mean), float(std)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = epoch
        self.passes = 0

    def _indices(self) -> torch.Tensor | None:
        total = self.x.shape[0]
        order = None
        if self.shuffle:
            number = self.epoch() if self.epoch is not None else self.passes
            order = self.permutation(total, self.seed + number)
        if self.world_size > 1:
            per_rank = total // self.world_size
            positions = torch.arange(self.rank * per_rank, (self.rank + 1) * per_rank)
            order = positions if order is None else order[positions]
        return order

    @staticmethod
    def permutation(total: int, seed: int) -> torch.Tensor:
        """The order of a shuffled pass: ``randperm(total)`` drawn from its own generator seeded with ``seed``."""
        return torch.randperm(total, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        total = self.x.shape[0] // self.world_size if self.world_size > 1 else self.x.shape[0]
        return total // self.batch_size if self.drop_last else math.ceil(total / self.batch_size)

    def __iter__(self):
        order = self._indices()
        self.passes += 1
        for i in range(len(self)):
            part = slice(i * self.batch_size, (i + 1) * self.batch_size)
            index = part if order is None else order[part]
            yield standardize(self.x[index], self.mean, self.std), self.y[index]


def standardize(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """``(x - mean) / std`` as a new float32 tensor (``x`` is never modified)."""
    return torch.sub(x.to(torch.float32), mean).div_(std)


def moments(x: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of all entries of ``x``, without a float copy of a uint8 ``x``."""
    if x.dtype == torch.uint8:
        counts = torch.bincount(x.flatten(), minlength=256).double()
        values = torch.arange(256, dtype=torch.float64)
        total = counts.sum()
        mean = (counts * values).sum() / total
        var = (counts * (values - mean).square()).sum() / (total - 1)
        return mean.item(), var.sqrt().item()
    x = x.double()
    return x.mean().item(), x.std().item()


class TensorDataModule(L.LightningDataModule):
    """Base for data modules that keep every split in memory as a (N, num_features) tensor and int64 labels.

    Subclasses implement ``load()`` returning ``{"train": (x, y), "val": (x, y), "test": (x, y)}`` with x
    flattened to (N, num_features), as uint8 pixels or float32. Batches are standardized with the training
    split's mean and standard deviation (one scalar each, the per-dataset statistics) as they are drawn.
    """

    num_features: int
    num_classes: int
    name = "tensor"
    #: The grid each sample is, flattened channel first: (channels, h, w, d); None when the features have no
    #: layout (grid models, ``model=grid``, need one).
    grid: tuple[int, int, int, int] | None = None

    def __init__(self, batch_size: int = 64, eval_batch_size: int = 1024, seed: int = 0):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} is invalid; it must be >= 1")
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.mean = self.std = None

    def load(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def missing(self) -> str | None:
        """Why the data cannot be found, without loading or staging anything (a sweep asks once before its jobs
        start); None when it can (always, for data that ships with a package)."""
        return None

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        self.splits = self.load()
        self.mean, self.std = moments(self.splits["train"][0])

    def standardized(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole split as the model sees it: standardized float32 features and labels."""
        if self.splits is None:
            self.setup()
        x, y = self.splits[split]
        return standardize(x, self.mean, self.std), y

    def _batches(self, split: str, train: bool) -> TensorBatches:
        if self.splits is None:
            self.setup()
        x, y = self.splits[split]
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        size = self.batch_size if train else self.eval_batch_size
        epoch = (lambda: trainer.current_epoch) if trainer is not None else None
        return TensorBatches(x, y, size, mean=self.mean, std=self.std, shuffle=train, seed=self.seed,
                             rank=rank, world_size=world, epoch=epoch)

    def train_dataloader(self):
        return self._batches("train", train=True)

    def val_dataloader(self):
        return self._batches("val", train=False)

    def test_dataloader(self):
        return self._batches("test", train=False)

    def sizes(self) -> dict[str, int]:
        """Number of samples per split (after setup)."""
        return {k: int(v[1].shape[0]) for k, v in (self.splits or {}).items()}


def split_off(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int, stratify: bool = True):
    """Split (x, y) into (rest, held-out) with ``fraction`` held out, seeded and stratified by label."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"a split fraction must be in (0, 1), got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    held = []
    groups = [torch.nonzero(y == c).flatten() for c in torch.unique(y)] if stratify else [torch.arange(len(y))]
    for index in groups:
        index = index[torch.randperm(len(index), generator=generator)]
        held.append(index[: max(1, round(fraction * len(index)))])
    held = torch.cat(held)
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[held] = False
    rest = torch.nonzero(mask).flatten()
    # mix the classes: a split cut short (limit_val_batches) must still see every class
    held = held[torch.randperm(len(held), generator=generator)]
    rest = rest[torch.randperm(len(rest), generator=generator)]
    return (x[rest], y[rest]), (x[held], y[held])
