"""Preloaded tensor data: batches are slices of one tensor, no per-sample work, no worker processes."""

from __future__ import annotations

import math

import lightning as L
import torch


class TensorBatches:
    """Iterable of (x, y) batches sliced from preloaded tensors.

    With ``shuffle`` the order is a fresh permutation each pass, drawn from ``seed`` and the pass number,
    so runs are reproducible. ``rank``/``world_size`` give each DDP process its own contiguous shard.
    """

    def __init__(self, x, y, batch_size, *, shuffle=False, seed=0, rank=0, world_size=1, drop_last=False):
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.passes = 0

    def _indices(self) -> torch.Tensor | None:
        total = self.x.shape[0]
        order = None
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.passes)
            order = torch.randperm(total, generator=generator)
        if self.world_size > 1:
            per_rank = total // self.world_size
            positions = torch.arange(self.rank * per_rank, (self.rank + 1) * per_rank)
            order = positions if order is None else order[positions]
        return order

    def __len__(self) -> int:
        total = self.x.shape[0] // self.world_size if self.world_size > 1 else self.x.shape[0]
        return total // self.batch_size if self.drop_last else math.ceil(total / self.batch_size)

    def __iter__(self):
        order = self._indices()
        self.passes += 1
        x, y = (self.x, self.y) if order is None else (self.x[order], self.y[order])
        for i in range(len(self)):
            yield x[i * self.batch_size : (i + 1) * self.batch_size], y[i * self.batch_size : (i + 1) * self.batch_size]


class TensorDataModule(L.LightningDataModule):
    """Base for data modules that load everything into memory as float features and int64 labels.

    Subclasses implement ``load()`` returning ``{"train": (x, y), "val": (x, y), "test": (x, y)}`` with x
    flattened to (N, num_features) in float32; features are then standardized with the training split's
    mean and standard deviation (one scalar each, the per-dataset statistics).
    """

    num_features: int
    num_classes: int
    name = "tensor"

    def __init__(self, batch_size: int = 64, eval_batch_size: int = 1024, seed: int = 0):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"dataset.batch_size={batch_size} is invalid; it must be >= 1")
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.mean = self.std = None

    def load(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        splits = self.load()
        train_x = splits["train"][0]
        self.mean, self.std = train_x.mean().item(), train_x.std().item()
        self.splits = {k: ((x - self.mean) / self.std, y) for k, (x, y) in splits.items()}

    def _batches(self, split: str, train: bool) -> TensorBatches:
        if self.splits is None:
            self.setup()
        x, y = self.splits[split]
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        size = self.batch_size if train else self.eval_batch_size
        return TensorBatches(x, y, size, shuffle=train, seed=self.seed, rank=rank, world_size=world)

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
