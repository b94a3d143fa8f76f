"""The train task for a group of jobs that stack (``launcher=stacked``): K runs trained as one model.

Each member is set up as its solo run sets itself up (record, seed, data split, network, optimizer, scheduler,
loggers) and ends as a solo run ends: its own ``result.json`` (plus ``stacked_group``), TensorBoard run,
``best-epochNNN.ckpt`` and ``last.ckpt``. In between, the members' steps are one: their batches (each from its own
split, in its own seed's order) go through a :class:`~rpn_exp.nn.members.MemberStack` together, the sum of their
losses is differentiated once, and each member's optimizer steps its own parameters. What Lightning does for a
solo run is reproduced here for each member: the logged series and their steps, validation after every epoch,
the best checkpoint on the monitored metric (strictly better only), test on the best weights.

A member whose loss becomes NaN or infinite is recorded ``diverged`` and leaves the stack; so does a member that
reached its ``max_epochs``; the others go on. Members that differ only in the rank r of their ψ train in the shape of
the largest r, the smaller ones zero-padded (``rpn_exp.nn.padding``); each one's checkpoints keep its own shapes.
"""

from __future__ import annotations

import logging
import signal

from omegaconf import DictConfig

from rpn_exp.config.build import ConfigError, instantiate_node
from rpn_exp.config.settings import run_settings
from rpn_exp.nn.members import MemberStack
from rpn_exp.run.checkpointing import load_checkpoint, relocate_best
from rpn_exp.run.lifecycle import SIGTERM_EXIT, Run
from rpn_exp.run.loggers import TensorBoardLogger
from rpn_exp.run.member import Member, restore_member, stack_nets
from rpn_exp.run.members import MemberBatches
from rpn_exp.run.ownership import release_folder
from rpn_exp.run.record import Status, note_refused
from rpn_exp.run.stacked_loop import evaluate, fit_members

log = logging.getLogger("rpn_exp")


def train_group(jobs: list[tuple[DictConfig, dict]], group: str) -> list:
    """Train the jobs ``(resolved config, hydra context)`` of one group together; return each one's objective.

    Every member always leaves its ``result.json``, whatever happens to the others.
    """
    started = [start_member(cfg, context, group, len(jobs), k) for k, (cfg, context) in enumerate(jobs)]
    members = [m for m in started if m is not None]
    stop = _StopOnSigterm()
    try:
        stack_nets(members)
        fit_members([m for m in members if m.running], stop)
        fitted = [m for m in members if m.fitted and m.run.running]
        test_members([m for m in fitted if m.settings.test])
        for member in fitted:
            if member.run.running:  # test=false: completed without testing, as a solo run
                member.run.end(Status.COMPLETED)
    except Exception as error:  # a failure of the shared loop fails every member that was still training
        for member in members:
            if member.run.running:
                member.run.fail(error)
        log.error("Stacked group %s failed: %s", group, error)
    finally:
        stop.restore()
        for member in members:
            finish_member(member, stop.received)
    if stop.received:  # as a solo run: SIGTERM ends the sweep, once every member's record is written
        raise SystemExit(SIGTERM_EXIT)
    return [m.run.objective() if m is not None else None for m in started]


def start_member(cfg: DictConfig, context: dict, group: str, size: int, index: int) -> Member | None:
    """A member starts as its solo run starts (:class:`~rpn_exp.run.lifecycle.Run`: record, checks, data, network,
    the checkpoint it resumes from), then gets its optimizer and scheduler factories and loggers; a member whose
    settings are refused is recorded ``failed`` and takes no part, and one whose resume is refused before it
    starts (None) writes nothing: its folder's earlier record stays as it is."""
    try:
        run = Run.start(cfg, context, stacked_group={"name": group, "members": size, "member": index})
    except ConfigError as error:
        out = run_settings(cfg).output_dir
        release_folder(out)
        log.error("rpn_exp [refused] %s: %s", out.name, error)
        note_refused(context.get("sweep_dir"), out.name, str(error))
        return None
    run.record["precision"] = "32-true"  # the stacked loop trains in float32 (a job asking otherwise runs solo)
    member = Member(run=run)
    try:
        member.datamodule, member.net = run.prepare(verbose=False)
        settings = run.settings
        member.optimizer_factory = instantiate_node(settings.optimizer, "optimizer")
        if settings.scheduler:
            member.scheduler_factory = instantiate_node(settings.scheduler, "scheduler")
        run.open_dashboards(instantiate_node(c, f"logger.{k}") for k, c in settings.loggers.items())
        if run.resume_from is not None:
            member.resume = load_checkpoint(run.resume_from)
            relocate_best(member.resume, run.resume_from)
            restore_member(member, member.resume)
    except ConfigError as error:
        run.fail(error)
    return member


def test_members(members: list[Member]) -> None:
    """Each member's test metrics, from its best weights (its last ones without a checkpoint callback)."""
    if not members:
        return
    for member in members:
        if member.best_state is not None:
            member.load_weights(member.best_state)
    stats = {"mean": [m.datamodule.mean for m in members], "std": [m.datamodule.std for m in members]}
    data = MemberBatches([m.datamodule.splits["test"] for m in members], seeds=[0] * len(members),
                         batch_size=members[0].datamodule.eval_batch_size, **stats)
    results = evaluate(MemberStack([m.stack_net for m in members]), data, list(range(len(members))))
    for (loss, acc), member in zip(results.tolist(), members):
        member.log({"test/loss": loss, "test/acc": acc}, member.global_step)
        member.run.end(Status.COMPLETED, best_checkpoint=str(member.best_path) if member.best_path else None)


def finish_member(member: Member, interrupted: bool) -> None:
    """Write the member's final record and close its dashboards, as a solo run ends."""
    run = member.run
    if run.running:
        run.end(Status.INTERRUPTED if interrupted else Status.FAILED,
                error=run.record.get("error") or "the stacked group stopped before this member finished")
    for logger in run.loggers:
        if not isinstance(logger, TensorBoardLogger):
            logger.finalize("success" if run.status == Status.COMPLETED else "failed")
    run.finish(member.metrics, epochs=member.epoch, global_step=member.global_step)


class _StopOnSigterm:
    """SIGTERM (a cluster's time limit, ``kill``) stops the group at the next batch: every member is recorded
    ``interrupted`` with its ``last.ckpt``, the end of its last completed epoch."""

    def __init__(self):
        self.received = False
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave signals to the caller
            self._previous = None

    def _handle(self, signum, frame):
        self.received = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
