"""What the pruner would have decided on a finished sweep: its rule replayed on the recorded validation curves.

A sweep run without ``pruner=halving`` keeps every job's validation accuracy at the end of each epoch (the ``val/acc``
series of its TensorBoard event file). Replaying :mod:`rpn_exp.run.pruning` on those curves answers, without training
anything again, what pruning would have stopped and whether it would have kept the front: at each rung epoch the
configurations still running (their completed seeds pooled) are judged by :func:`rpn_exp.run.rungs.rung_decisions`,
and a pruned configuration drops out of the later rungs, as a pruned member leaves a stacked group. The final front
is the summary's (chosen on mean best validation accuracy, ``rpn_exp.sweep.grouping``); a replay that would have
stopped a configuration on it says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rpn_exp.run.pruning import SuccessiveHalving
from rpn_exp.run.record import Status, read_record
from rpn_exp.run.rungs import Entry, rung_decisions

#: The series a replay reads: the validation accuracy logged once at the end of every epoch.
VAL_SERIES = "val/acc"


def val_curve(folder: str | Path) -> list[float]:
    """The validation accuracy at the end of epochs 1, 2, … of the run in ``folder``, from its TensorBoard event
    files (a run resumed into its folder has several: a step logged again keeps its last value); [] without any."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    by_step: dict[int, float] = {}
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        events = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 1, "tensors": 1,
                                                            "histograms": 1}).Reload()
        if VAL_SERIES in events.Tags()["scalars"]:
            by_step.update({event.step: float(event.value) for event in events.Scalars(VAL_SERIES)})
    return [by_step[step] for step in sorted(by_step)]


@dataclass
class Replay:
    """A replay's outcome: every decision in the order made, the configurations that would have stopped
    ({configuration: its pruning decision}), the epochs they would not have trained, and all epochs trained."""

    decisions: list[dict] = field(default_factory=list)
    pruned: dict[str, dict] = field(default_factory=dict)
    epochs_saved: int = 0
    epochs_total: int = 0


def replay(jobs: Sequence[tuple[dict, list[float]]], pruner: SuccessiveHalving) -> Replay:
    """The pruner's decisions on ``jobs``, (completed record, its validation curve) pairs whose curves reach the
    record's ``max_epochs``: at the end of each epoch, :func:`rung_decisions` on the jobs of the configurations
    still running; a pruned configuration's jobs stop there (the epochs after it are counted as saved)."""
    outcome = Replay()
    entries = [(record, curve, int(record["max_epochs"])) for record, curve in jobs]
    outcome.epochs_total = sum(epochs for _, _, epochs in entries)
    for epoch in range(1, max((epochs for _, _, epochs in entries), default=0) + 1):
        running = [Entry.of(record, Path(record["output_dir"]).name, epochs, curve[epoch - 1])
                   for record, curve, epochs in entries
                   if record["configuration"] not in outcome.pruned and epoch <= epochs]
        decisions, _ = rung_decisions(pruner, epoch, running)
        outcome.decisions += decisions
        for decision in decisions:
            if decision["decision"] == "pruned":
                outcome.pruned[decision["configuration"]] = decision
    for record, _, epochs in entries:
        decision = outcome.pruned.get(record["configuration"])
        if decision is not None:
            outcome.epochs_saved += epochs - decision["epoch"]
    return outcome


def recorded_jobs(job_folders: Sequence[Path]) -> tuple[list[tuple[dict, list[float]]], list[str]]:
    """(record, validation curve) of each completed job in ``job_folders`` whose curve covers its epochs, and one
    line for each completed job left out (no curve, or a shorter one: the run's events are incomplete)."""
    jobs, left_out = [], []
    for folder in job_folders:
        try:
            record = read_record(folder)
        except (OSError, ValueError):
            continue
        if record.get("status") != Status.COMPLETED or not record.get("configuration"):
            continue
        curve = val_curve(folder)
        if len(curve) < int(record["max_epochs"]):
            left_out.append(f"{folder.name}: {len(curve)} epochs of {VAL_SERIES} for max_epochs={record['max_epochs']}")
            continue
        jobs.append((record, curve))
    return jobs, left_out
