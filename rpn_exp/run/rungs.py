"""A sweep's rungs: the standings of its jobs at a rung epoch, the pruner's decisions on them, and their log.

A stacked group (``rpn_exp.run.stacked.module``) makes its members' entries at the end of each epoch; solo jobs of a
sweep report theirs to a shared store (``rpn_exp.run.rung_store``). Either way :func:`rung_decisions` applies the rule
of :mod:`rpn_exp.run.pruning` and every decision is one JSON line of the sweep's :data:`DECISIONS_FILE`, beside its
summary, with the standings it was made from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rpn_exp.config.configuration import is_bookkeeping
from rpn_exp.run.atomic import atomic_write
from rpn_exp.run.pruning import Standing, SuccessiveHalving, decide, margin_of

#: The sweep's log of pruning decisions, beside its summary.
DECISIONS_FILE = "pruning.jsonl"


@dataclass(frozen=True)
class Entry:
    """One job at a rung epoch: its folder name, configuration (``result.json``'s key of what it trains, less the
    seed), overrides (without bookkeeping), learnable parameters, ``max_epochs`` and validation accuracy there."""

    job: str
    configuration: str
    overrides: str
    params: int
    max_epochs: int
    val_acc: float

    @classmethod
    def of(cls, record: dict, job: str, max_epochs: int, val_acc: float) -> Entry:
        """A job's entry from its record (``rpn_exp.run.record``)."""
        overrides = " ".join(o for o in record.get("overrides", []) if not is_bookkeeping(o))
        return cls(job, record["configuration"], overrides, int(record["learnable_params"]), int(max_epochs),
                   float(val_acc))

    def as_dict(self) -> dict:
        return asdict(self)


def rung_decisions(pruner: SuccessiveHalving, epoch: int, entries: list[Entry], decided: set[str] | None = None):
    """At the end of ``epoch``: ([one decision per configuration], {job: why it is pruned, its record's
    ``pruned``}); ([], {}) when ``epoch`` is no rung of any entry's ``max_epochs``. A configuration is pruned only at
    a rung before its own ``max_epochs``; ``decided``: the configurations to decide (None: all; the others still
    count in the standings)."""
    if not any(epoch in pruner.rungs(e.max_epochs) for e in entries):
        return [], {}
    by_configuration: dict[str, list[Entry]] = {}
    for entry in entries:
        by_configuration.setdefault(entry.configuration, []).append(entry)
    standings = {c: Standing(es[0].params, tuple(e.val_acc for e in es)) for c, es in by_configuration.items()}
    margin = margin_of(standings, pruner.margin)
    dominated = decide(standings, margin)
    decisions, pruned = [], {}
    for c, es in by_configuration.items():
        if decided is not None and c not in decided:
            continue
        rungs = pruner.rungs(es[0].max_epochs)
        by = dominated[c] if epoch in rungs else None
        decision = {"epoch": epoch, "rung": rungs.index(epoch) if epoch in rungs else None, "configuration": c,
                    "overrides": es[0].overrides, "jobs": [e.job for e in es], "learnable_params": standings[c].params,
                    "val_acc": list(standings[c].accuracies), "val_acc_mean": standings[c].mean, "margin": margin,
                    "decision": "pruned" if by else "kept"}
        if by:
            decision["dominated_by"] = {"configuration": by, "overrides": by_configuration[by][0].overrides,
                                        "learnable_params": standings[by].params, "val_acc_mean": standings[by].mean}
            pruned.update({e.job: {**decision, "val_acc": e.val_acc} for e in es})
        decisions.append(decision)
    return decisions, pruned


def write_decisions(folder: Path, decisions: list[dict]) -> None:
    """Add decisions to ``folder``'s :data:`DECISIONS_FILE`, each (epoch, configuration, jobs) once (a rung decided
    again after a resume, alike, is not written twice); the file is replaced whole
    (:func:`~rpn_exp.run.atomic.atomic_write`): a kill leaves the old one or the new one, never half a line."""
    logged = read_decisions(folder)
    seen = {_key(d) for d in logged}
    new = [d for d in decisions if _key(d) not in seen]
    if new:
        lines = "".join(json.dumps(d, sort_keys=True) + "\n" for d in logged + new)
        atomic_write(Path(folder) / DECISIONS_FILE, lambda handle: handle.write(lines.encode()))


def judged_again(pruner: SuccessiveHalving, epoch: int, decisions: list[dict], pruned: dict,
                 earlier: dict[int, list[Entry]]) -> tuple[list[dict], dict]:
    """The configurations ``decisions`` keep at ``epoch`` judged again at their earlier rungs (the latest first), on
    every report of that rung now known: those made after theirs too. Asynchronous halving judges a job that reaches
    a rung first against fewer; judged again, a configuration that a later arrival dominates at a rung both reached
    stops at its next rung, so no order of arrival keeps one the rule would have stopped. Its decision is the one at
    ``epoch`` (its jobs and accuracies now), ``pruned``, with the rung it was dominated at (``judged_on``: that
    epoch, its accuracies there) and that rung's leader and margin. Returns (decisions, pruned) as
    :func:`rung_decisions` does."""
    pruned, again = dict(pruned), []
    for decision in decisions:
        if decision["decision"] == "kept":
            for rung in sorted((e for e in earlier if e < epoch), reverse=True):
                late = rung_decisions(pruner, rung, earlier[rung], decided={decision["configuration"]})[0]
                if late and late[0]["decision"] == "pruned":
                    there = late[0]
                    decision = {**decision, "decision": "pruned", "dominated_by": there["dominated_by"],
                                "margin": there["margin"], "judged_on": {
                                    "epoch": rung, "val_acc": there["val_acc"], "val_acc_mean": there["val_acc_mean"]}}
                    pruned.update({job: {**decision, "val_acc": acc}
                                   for job, acc in zip(decision["jobs"], decision["val_acc"], strict=True)})
                    break
        again.append(decision)
    return again, pruned


def _key(decision: dict) -> tuple:
    return decision["epoch"], decision["configuration"], tuple(decision["jobs"]), decision.get("judged")


def read_decisions(folder: Path) -> list[dict]:
    """The decisions in ``folder``'s :data:`DECISIONS_FILE` ([] without one)."""
    path = Path(folder) / DECISIONS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def logged_pruning(folder: Path, job: str, epochs: int) -> dict | None:
    """The decision logged in ``folder`` that pruned ``job`` at one of its first ``epochs`` epochs (a stacked group's
    names it among its ``jobs``; a solo job's, made on its report, as ``judged``), as its record's
    ``pruned`` (with the job's own validation accuracy there); None if none did. A job resuming from a checkpoint
    written after its rung's decision (a kill between the two) is pruned by it again instead of training on."""
    for decision in read_decisions(folder):
        concerned = decision["judged"] == job if "judged" in decision else job in decision["jobs"]
        if decision["decision"] == "pruned" and concerned and decision["epoch"] <= epochs:
            return {**decision, "val_acc": decision["val_acc"][decision["jobs"].index(job)]}
    return None
