"""The pruner at a stacked group's rungs: the members' standings, the decisions (:mod:`rpn_exp.run.pruning`) and the
sweep's log of them, ``pruning.jsonl`` (one JSON line per configuration and rung)."""

from __future__ import annotations

import json
from pathlib import Path

from rpn_exp.config.configuration import is_bookkeeping
from rpn_exp.run.atomic import atomic_write
from rpn_exp.run.pruning import Standing, SuccessiveHalving, decide, margin_of

#: The sweep's log of pruning decisions, beside its summary.
DECISIONS_FILE = "pruning.jsonl"


def _overrides(record: dict) -> str:
    """A configuration as its overrides say it, without the seed and the other bookkeeping (``skip_completed``)."""
    return " ".join(o for o in record.get("overrides", []) if not is_bookkeeping(o))


def rung_decisions(pruner: SuccessiveHalving, epoch: int, members: dict, accuracies: dict[int, float]):
    """At the end of ``epoch``: ([one decision per configuration], {member: why it is pruned}); ([], {}) when
    ``epoch`` is no rung of any member's configuration. ``members`` maps an index to a training member,
    ``accuracies`` each one to its validation accuracy this epoch. A configuration is pruned only at a rung before
    its own ``max_epochs``."""
    if not any(epoch in pruner.rungs(m.max_epochs) for m in members.values()):
        return [], {}
    by_configuration: dict[str, list[int]] = {}
    for k, member in members.items():
        if k in accuracies:
            by_configuration.setdefault(member.run.record["configuration"], []).append(k)
    standings = {c: Standing(members[ks[0]].run.record["learnable_params"], tuple(accuracies[k] for k in ks))
                 for c, ks in by_configuration.items()}
    margin = margin_of(standings, pruner.margin)
    dominated = decide(standings, margin)
    decisions, pruned = [], {}
    for c, ks in by_configuration.items():
        rungs = pruner.rungs(members[ks[0]].max_epochs)
        by = dominated[c] if epoch in rungs else None
        decision = {"epoch": epoch, "rung": rungs.index(epoch) if epoch in rungs else None, "configuration": c,
                    "overrides": _overrides(members[ks[0]].run.record), "jobs": [members[k].out.name for k in ks],
                    "learnable_params": standings[c].params, "val_acc": list(standings[c].accuracies),
                    "val_acc_mean": standings[c].mean, "margin": margin, "decision": "pruned" if by else "kept"}
        if by:
            decision["dominated_by"] = {"configuration": by, "overrides": _overrides(members[by_configuration[by][0]]
                                                                                     .run.record),
                                        "learnable_params": standings[by].params, "val_acc_mean": standings[by].mean}
            pruned.update({k: {**decision, "val_acc": accuracies[k]} for k in ks})
        decisions.append(decision)
    return decisions, pruned


def write_decisions(folder: Path, decisions: list[dict]) -> None:
    """Add the decisions of a rung to ``folder``'s :data:`DECISIONS_FILE`, each (epoch, configuration, jobs) once
    (a group resumed from before a rung decides it again, alike); the file is replaced whole
    (:func:`~rpn_exp.run.atomic.atomic_write`): a kill leaves the old one or the new one, never half a line."""
    logged = read_decisions(folder)
    seen = {_key(d) for d in logged}
    new = [d for d in decisions if _key(d) not in seen]
    if new:
        lines = "".join(json.dumps(d, sort_keys=True) + "\n" for d in logged + new)
        atomic_write(Path(folder) / DECISIONS_FILE, lambda handle: handle.write(lines.encode()))


def _key(decision: dict) -> tuple:
    return decision["epoch"], decision["configuration"], tuple(decision["jobs"])


def read_decisions(folder: Path) -> list[dict]:
    """The decisions in ``folder``'s :data:`DECISIONS_FILE` ([] without one)."""
    path = Path(folder) / DECISIONS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def logged_pruning(folder: Path, job: str, epochs: int) -> dict | None:
    """The decision logged in ``folder`` that pruned ``job`` at one of its first ``epochs`` epochs, as its record's
    ``pruned`` (with the job's own validation accuracy there); None if none did. A member resuming from a checkpoint
    written after its rung's decision (a kill between the two) is pruned by it again instead of training on."""
    for decision in read_decisions(folder):
        if decision["decision"] == "pruned" and job in decision["jobs"] and decision["epoch"] <= epochs:
            return {**decision, "val_acc": decision["val_acc"][decision["jobs"].index(job)]}
    return None
