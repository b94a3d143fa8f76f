"""Successive halving that keeps the accuracy-against-parameters front: which configurations stop at a rung.

Rungs are the epochs b, b·η, b·η², … (``pruner.first_rung`` = b, ``pruner.eta`` = η). At a rung each configuration
(the runs that differ only in seed, pooled) has a mean validation accuracy over its seeds and a learnable parameter
count. A configuration c is **dominated** when another configuration c′ with no more parameters is ahead by more
than the margin m:

    P(c′) ≤ P(c)  and  acc(c′) > acc(c) + m

and only a dominated configuration is stopped. A small model behind a larger one is never stopped for being small
(the larger one has more parameters), ties and leads within the margin are kept, so every configuration that could
still be on the final front goes on. The margin is ``pruner.margin`` when given; otherwise twice the seeds' pooled
standard deviation at that rung (the spread of one seed around its configuration's mean, from every configuration
with two or more seeds). Without two seeds of any configuration there is no spread to measure, and nothing is
stopped unless ``pruner.margin`` is given.

Pure functions of numbers: stacked groups and solo jobs apply them at their rungs (``rpn_exp.run.rungs``) and write
each decision to ``pruning.jsonl`` beside the sweep's summary, from which :func:`decide` gives them again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SuccessiveHalving:
    """The pruner's settings (``conf/pruner/halving.yaml``).

    Args:
        first_rung: b, the first epoch at whose end configurations are compared (>= 1).
        eta: η, the factor between rungs (> 1).
        margin: m, the lead in validation accuracy that stops a configuration; None: twice the seeds' spread.
        storage: where a sweep's jobs meet at their rungs: None, a file in the sweep folder (one machine, or a
            filesystem whose ``flock`` holds across nodes); an absolute folder path that several sweeps share, so
            that the jobs of all of them are judged together (a study of several sweeps); or a PostgreSQL URL every
            node reaches.
    """

    first_rung: int = 2
    eta: float = 2
    margin: float | None = None
    storage: str | None = None

    def __post_init__(self):
        if isinstance(self.first_rung, bool) or not isinstance(self.first_rung, int) or self.first_rung < 1:
            raise ValueError(f"pruner.first_rung={self.first_rung!r} is invalid; it must be an integer >= 1")
        if isinstance(self.eta, bool) or not isinstance(self.eta, int | float) or not self.eta > 1:
            raise ValueError(f"pruner.eta={self.eta!r} is invalid; it must be a number > 1, e.g. 2")
        if self.margin is not None and (isinstance(self.margin, bool) or not self.margin >= 0):
            raise ValueError(f"pruner.margin={self.margin!r} is invalid; it must be a number >= 0, or null for "
                             "twice the seeds' spread")
        if self.storage is not None and not (self.database or str(self.storage).startswith("/")):
            raise ValueError(f"pruner.storage={self.storage!r} is invalid; give null (a file in the sweep folder), "
                             "an absolute folder path several sweeps share (their jobs judged together), or a "
                             "PostgreSQL URL every node reaches, e.g. postgresql+psycopg2://user@host/database")

    @property
    def database(self) -> bool:
        """Whether ``storage`` is a PostgreSQL URL (else a folder, or None)."""
        return str(self.storage).startswith(("postgresql://", "postgresql+"))

    def rungs(self, max_epochs: int) -> list[int]:
        """The rung epochs before ``max_epochs`` (a rung at the last epoch would save nothing):
        round(b·ηⁱ) for i = 0, 1, …, without repeats."""
        rungs: list[int] = []
        epoch = float(self.first_rung)
        while round(epoch) < max_epochs:
            if not rungs or round(epoch) > rungs[-1]:
                rungs.append(round(epoch))
            epoch *= self.eta
        return rungs


@dataclass(frozen=True)
class Standing:
    """A configuration at a rung: its learnable parameters and each seed's validation accuracy."""

    params: int
    accuracies: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)


def seed_spread(standings: dict[str, Standing]) -> float | None:
    """The pooled standard deviation of one seed around its configuration's mean:
    sqrt(Σ_c Σ_s (a_cs − ā_c)² / Σ_c (n_c − 1)) over configurations with n_c ≥ 2; None when there are none."""
    squares, freedom = 0.0, 0
    for standing in standings.values():
        if len(standing.accuracies) >= 2:
            squares += sum((a - standing.mean) ** 2 for a in standing.accuracies)
            freedom += len(standing.accuracies) - 1
    return math.sqrt(squares / freedom) if freedom else None


def margin_of(standings: dict[str, Standing], margin: float | None) -> float | None:
    """``margin`` when given, else twice :func:`seed_spread` (None: no spread to measure, nothing is stopped)."""
    if margin is not None:
        return float(margin)
    spread = seed_spread(standings)
    return None if spread is None else 2 * spread


def decide(standings: dict[str, Standing], margin: float | None) -> dict[str, str | None]:
    """For each configuration, the configuration that dominates it (module docstring; the one furthest ahead among
    those that do), or None: it goes on. With ``margin`` None nothing is stopped."""
    decisions: dict[str, str | None] = {name: None for name in standings}
    if margin is None:
        return decisions
    for name, standing in standings.items():
        ahead = [(other.mean, other_name) for other_name, other in standings.items()
                 if other_name != name and other.params <= standing.params
                 and other.mean > standing.mean + margin]
        if ahead:
            decisions[name] = max(ahead)[1]
    return decisions


def pruned_text(pruned: dict, long: bool = False) -> str:
    """What a pruned run's record (its ``pruned``, a decision of ``rpn_exp.run.rungs``) says in a line:
    ``epoch 2 (rung 0), behind `reconciliation.r=4``` (the leader's overrides that differ from the run's own) and,
    ``long``, by how much: ``…: 0.8123 against 0.5012 (margin 0.0210)``."""
    text = f"epoch {pruned.get('epoch')} (rung {pruned.get('rung')})"
    by = pruned.get("dominated_by") or {}
    if by:
        own = set(str(pruned.get("overrides", "")).split())
        differ = " ".join(o for o in str(by.get("overrides", "")).split() if o not in own)
        text += f", behind `{differ}`" if differ else f", behind configuration {by.get('configuration')}"
        if long and by.get("val_acc_mean") is not None and pruned.get("val_acc_mean") is not None:
            margin = pruned.get("margin")
            text += (f": {by['val_acc_mean']:.4f} against {pruned['val_acc_mean']:.4f}"
                     + (f" (margin {margin:.4f})" if margin is not None else ""))
    return text
