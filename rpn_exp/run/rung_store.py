"""Pruning across the solo jobs of a sweep: a store of rung standings beside the summary, read and written under a
lock by every job at its rungs.

With ``pruner=halving``, a job that trains solo in a sweep (``launcher=joblib``, ``submitit_local``,
``submitit_slurm`` on a shared filesystem, the basic launcher, or a job ``launcher=stacked`` runs solo) reports its
validation accuracy at the end of each of its rung epochs to ``rungs.jsonl`` in the sweep folder and, in the same
locked step, is judged by the rule of :mod:`rpn_exp.run.pruning` against every report of that rung so far (its
configuration's seeds pooled). Dominated, it stops there: recorded ``pruned``, untested, as a stacked member is.
The decision is written to ``pruning.jsonl`` with the standings it was made from (:mod:`rpn_exp.run.rungs`).

With ``pruner.storage`` an absolute folder path, the file and its lock are in that folder, so that several sweeps
given the same folder (a study's sweeps, launched one after another or at once) prune as one: each job is judged
on the reports of every sweep, and each sweep logs the decisions about its own jobs. With ``pruner.storage`` a
PostgreSQL URL the reports go to a database every node reaches instead (:mod:`rpn_exp.run.rung_database`), for
sweeps whose jobs run on machines that share no ``flock``. A stacked group
reports its members to the same store at each rung, all at once, and is judged the same way
(:func:`report_group_and_judge`): a sweep whose jobs run both ways, or in several groups, prunes as one.

This is asynchronous successive halving: a job is compared with the jobs that reached the rung before it, never
waits for the others, and so a job that reaches a rung first is judged against fewer; which jobs those are depends
on the order the launcher runs them (``pruning.jsonl`` says, for each decision, on what it was made). So that the
order cannot keep what the rule would stop, a configuration kept at a rung is judged again at its next rung on
every report of the earlier ones (:func:`~rpn_exp.run.rungs.judged_again`): dominated there by a later arrival, it
stops one rung late. A job that reports a rung twice (resumed after a kill) is counted once.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L

from rpn_exp.files import FILE_MODE
from rpn_exp.run.atomic import atomic_write
from rpn_exp.run.pruning import SuccessiveHalving
from rpn_exp.run.rungs import Entry, judged_again, logged_pruning, rung_decisions, write_decisions

#: Every solo job's report at each of its rungs: one JSON line per (job, epoch).
RUNGS_FILE = "rungs.jsonl"
#: Taken (``flock``) while a job reports and is judged, so two jobs at a rung see each other's reports.
LOCK_FILE = "pruning.lock"


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s :data:`LOCK_FILE` exclusively (waiting for it)."""
    fd = os.open(Path(folder) / LOCK_FILE, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_reports(folder: Path) -> list[Entry]:
    """The reports in ``folder``'s :data:`RUNGS_FILE`, with their epochs: [(epoch, Entry)]."""
    path = Path(folder) / RUNGS_FILE
    lines = path.read_text().splitlines() if path.is_file() else []
    return [(d.pop("epoch"), Entry(**d)) for d in map(json.loads, filter(str.strip, lines))]


class FileReports:
    """The reports in a sweep folder's :data:`RUNGS_FILE`, read and added while its lock is held."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def read(self) -> list[tuple[int, Entry]]:
        return read_reports(self.folder)

    def add(self, reports: list[tuple[int, Entry]], new: list[tuple[int, Entry]]) -> None:
        lines = "".join(json.dumps({"epoch": e, **r.as_dict()}, sort_keys=True) + "\n" for e, r in reports + new)
        atomic_write(self.folder / RUNGS_FILE, lambda handle: handle.write(lines.encode()))


@contextmanager
def store_session(folder: Path, pruner: SuccessiveHalving) -> Iterator[FileReports]:
    """The sweep's reports with the store's lock held: the file of the sweep ``folder`` under ``flock``
    (``pruner.storage`` None), the file of the folder ``pruner.storage`` names (shared by several sweeps), or the
    PostgreSQL database at ``pruner.storage`` (:mod:`rpn_exp.run.rung_database`)."""
    if pruner.database:
        from rpn_exp.run.rung_database import database_session

        with database_session(pruner.storage, str(Path(folder).resolve())) as reports:
            yield reports
    else:
        store = Path(pruner.storage or folder)
        store.mkdir(parents=True, exist_ok=True)
        with locked(store):
            yield FileReports(store)


def _judge(store: FileReports, pruner: SuccessiveHalving, epoch: int, entries: list[Entry]):
    """Add ``entries`` at ``epoch`` to the store (each job once per epoch; inside a :func:`store_session`) and decide
    their configurations on every report of that epoch, those kept judged again at their earlier rungs
    (:func:`~rpn_exp.run.rungs.judged_again`): (decisions, {job: why it is pruned})."""
    reports = store.read()  # a job is known by its folder's name and configuration: sweeps sharing a store may
    known = {(e, r.job, r.configuration) for e, r in reports}  # name jobs alike
    new = [(epoch, entry) for entry in entries if (epoch, entry.job, entry.configuration) not in known]
    if new:
        store.add(reports, new)
    by_epoch: dict[int, list[Entry]] = {}
    for e, report in reports + new:
        by_epoch.setdefault(e, []).append(report)
    decisions, pruned = rung_decisions(pruner, epoch, by_epoch[epoch], decided={e.configuration for e in entries})
    return judged_again(pruner, epoch, decisions, pruned, by_epoch)


def report_and_judge(folder: Path, pruner: SuccessiveHalving, epoch: int, entry: Entry) -> dict | None:
    """Add ``entry`` at ``epoch`` to the store (once per job and epoch), decide its configuration on every report of
    that epoch and log the decision; returns why it is pruned (its record's ``pruned``), or None: it goes on."""
    with store_session(folder, pruner) as store:
        decisions, pruned = _judge(store, pruner, epoch, [entry])
        write_decisions(folder, [{**d, "judged": entry.job} for d in decisions])  # for this job only
    return {**pruned[entry.job], "judged": entry.job} if entry.job in pruned else None


def report_group_and_judge(folder: Path, pruner: SuccessiveHalving, epoch: int,
                           entries: list[Entry]) -> dict[str, dict]:
    """A stacked group's members at ``epoch``: reported to the store together, their configurations decided on every
    report of that epoch (the group's own, and those of solo jobs and of groups that reached it before), the
    decisions logged; {job: why it is pruned} for the group's members that stop."""
    if not any(epoch in pruner.rungs(e.max_epochs) for e in entries):
        return {}
    with store_session(folder, pruner) as store:
        decisions, pruned = _judge(store, pruner, epoch, entries)
        write_decisions(folder, decisions)
    own = {e.job for e in entries}
    return {job: why for job, why in pruned.items() if job in own}


class RungPruning(L.Callback):
    """A solo job's part in its sweep's pruning: at the end of each rung epoch (after validation, before
    ``last.ckpt``), report and be judged (:func:`report_and_judge`); pruned, the Trainer stops and :attr:`pruned`
    says why.

    Args:
        pruner: the sweep's pruner (``conf/pruner``).
        folder: the sweep folder (the store's).
        record: the job's record (its configuration, overrides and learnable parameters).
    """

    def __init__(self, pruner: SuccessiveHalving, folder: Path, record: dict):
        self.pruner, self.folder, self.record = pruner, Path(folder), record
        self.pruned: dict | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        """Resumed past a rung that pruned it (killed after the decision, before its record said so): pruned by the
        logged decision, without training on."""
        self.pruned = logged_pruning(self.folder, Path(self.record["output_dir"]).name, trainer.current_epoch)
        if self.pruned:
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        if trainer.sanity_checking or epoch not in self.pruner.rungs(trainer.max_epochs) or \
                "val/acc" not in trainer.callback_metrics:
            return
        entry = Entry.of(self.record, Path(self.record["output_dir"]).name, trainer.max_epochs,
                         trainer.callback_metrics["val/acc"])
        self.pruned = report_and_judge(self.folder, self.pruner, epoch, entry)
        if self.pruned:
            trainer.should_stop = True
