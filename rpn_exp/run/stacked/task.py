"""The train task of a group of jobs that stack (``launcher=stacked``): K runs trained as one model by Lightning.

Each member is set up as its solo run sets itself up (record, seed, data split, network, optimizer, scheduler,
callbacks, loggers) and ends as a solo run ends: its own ``result.json`` (plus ``stacked_group``), TensorBoard run,
``best-epochNNN.ckpt`` and ``last.ckpt``. In between, one Trainer, built as a solo run's is, fits a
:class:`~rpn_exp.run.stacked.module.StackedClassifier`: the members' batches (each from its own split, in its own
seed's order) go through their stacked networks together and one optimizer steps every member's parameters with its
own hyper-parameters. Members resuming from checkpoints of different epochs train in turn, one Trainer per start.
"""

from __future__ import annotations

import logging
from itertools import groupby
from pathlib import Path

from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from rpn_exp.config.build import ConfigError, instantiate_node
from rpn_exp.config.settings import run_settings
from rpn_exp.run.checkpointing import (
    PREVIOUS,
    AtomicCheckpointIO,
    as_solo_checkpoint,
    carry_best_checkpoints,
    load_checkpoint,
    relocate_best,
)
from rpn_exp.run.console import configure_console
from rpn_exp.run.lifecycle import SIGTERM_EXIT, Run
from rpn_exp.run.ownership import release_folder
from rpn_exp.run.record import Status, note_refused
from rpn_exp.run.rungs import logged_pruning
from rpn_exp.run.stacked.callbacks import MemberCallbacks, MemberCheckpoints, MemberLoggers
from rpn_exp.run.stacked.data import MemberBatches, MemberLoader
from rpn_exp.run.stacked.member import Member, stack_nets
from rpn_exp.run.stacked.module import StackedClassifier
from rpn_exp.run.stacked.optimizer import group_optimizer_state
from rpn_exp.run.task import new_trainer, quiet_trainer, run_callbacks

log = logging.getLogger("rpn_exp")


def train_group(jobs: list[tuple[DictConfig, dict]], group: str, max_members: int | None = None) -> list:
    """Train the jobs ``(resolved config, hydra context)`` of one group together, ``max_members`` at a time (the
    others queued: each takes the slot of a member that ends); return each one's objective.

    Every member always leaves its ``result.json``, whatever happens to the others.
    """
    configure_console(quiet=True)
    started = [start_member(cfg, context, group, len(jobs), k) for k, (cfg, context) in enumerate(jobs)]
    members = [m for m in started if m is not None]
    interrupted = False
    try:
        align_starts(members)
        for member in members:
            end_if_pruned(member)
        stack_nets(members)
        for chunk in cohorts(members, max_members):
            interrupted = fit_and_test(chunk, max_members)
            if interrupted:
                break
    except Exception as error:  # a failure of the shared loop fails every member that was still training
        for member in members:
            if member.run.running:
                member.run.fail(error)
        log.error("Stacked group %s failed: %s", group, error)
    finally:
        for member in members:
            member.finish(interrupted)
    if interrupted:  # as a solo run: SIGTERM ends the sweep, once every member's record is written
        raise SystemExit(SIGTERM_EXIT)
    return [m.run.objective() if m is not None else None for m in started]


def cohorts(members: list[Member], max_members: int | None) -> list[list[Member]]:
    """The members still to train, by the epoch they start at (members resuming from checkpoints of different epochs
    train in turn, one Trainer each): those starting afresh in one cohort, queued beyond ``max_members``; those
    resuming in cohorts of at most ``max_members``."""
    chunks = []
    for start, starting in groupby(sorted((m for m in members if m.running), key=lambda m: m.start),
                                   key=lambda m: m.start):
        cohort = list(starting)
        size = (max_members or len(cohort)) if start != (0, 0) else len(cohort)
        chunks += [cohort[i:i + size] for i in range(0, len(cohort), size)]
    return chunks


def start_member(cfg: DictConfig, context: dict, group: str, size: int, index: int) -> Member | None:
    """A member starts as its solo run starts (:class:`~rpn_exp.run.lifecycle.Run`: record, checks, data, network,
    the checkpoint it resumes from), then gets its optimizer and scheduler factories, callbacks and loggers; a
    member whose settings are refused is recorded ``failed`` and takes no part, and one whose resume is refused before
    it starts (None) writes nothing: its folder's earlier record stays as it is."""
    try:
        run = Run.start(cfg, context, stacked_group={"name": group, "members": size, "member": index})
    except ConfigError as error:
        out = run_settings(cfg).output_dir
        release_folder(out)
        log.error("rpn_exp [refused] %s: %s", out.name, error)
        note_refused(context.get("sweep_dir"), out.name, str(error))
        return None
    member = Member(run=run)
    try:
        member.datamodule, member.net = run.prepare(verbose=False)
        settings = run.settings
        member.optimizer_factory = instantiate_node(settings.optimizer, "optimizer")
        if settings.scheduler:
            member.scheduler_factory = instantiate_node(settings.scheduler, "scheduler")
        member.callbacks = ordered(run_callbacks(settings, progress_bars=False))
        run.open_dashboards(instantiate_node(c, f"logger.{k}") for k, c in settings.loggers.items())
        if run.resume_from is not None:
            member.resume = load_checkpoint(run.resume_from)
            relocate_best(member.resume, run.resume_from)
            member.val_acc_best = member.resume.get("val_acc_best", 0.0)
    except ConfigError as error:
        run.fail(error)
    return member


def align_starts(members: list[Member]) -> None:
    """Members that resume one epoch ahead of the others (the group was killed while their ``last.ckpt`` were being
    written) resume from their ``previous.ckpt`` of the others' epoch, or from the start, so the group trains as
    one again, as it would have without the kill (what it compares at a pruner's rung included)."""
    running = [m for m in members if m.running]
    earliest = min((m.start[0] for m in running), default=0)
    for member in running:
        if member.start[0] != earliest + 1 or member.run.resume_from is None:
            continue
        previous = Path(member.run.resume_from).with_name(PREVIOUS)
        if earliest == 0:
            member.resume, member.val_acc_best = None, 0.0
        elif previous.is_file() and load_checkpoint(previous)["epoch"] + 1 == earliest:
            member.resume = load_checkpoint(previous)
            relocate_best(member.resume, previous)
            member.val_acc_best = member.resume.get("val_acc_best", 0.0)
        else:
            continue
        member.run.resume_from = str(previous) if member.resume else None
        member.run.record["resumed_from"] = member.run.resume_from
        log.info("%s: one epoch ahead of its group (killed while the group wrote its checkpoints); %s", member.out.name,
                 f"resumes from {PREVIOUS}, epoch {earliest}" if earliest else "starts again with the others")


def end_if_pruned(member: Member) -> None:
    """A member resuming past a rung at which the sweep's ``pruning.jsonl`` pruned it (killed after the decision,
    before its record said so) is recorded pruned by that decision, as it would have been, and does not train.
    (After :func:`align_starts`: a member behind the rung decides it again with the others.)"""
    if not (member.running and member.resume and member.settings.pruner):
        return
    epochs, step = member.start
    pruned = logged_pruning(member.out.parent, member.out.name, epochs)
    if pruned is not None:
        member.metrics = {"val/acc": pruned["val_acc"], "val/acc_best": member.val_acc_best}
        member.epochs, member.global_step = epochs, step
        member.run.end(Status.PRUNED, pruned=pruned)
        member.finish()


def ordered(callbacks: list) -> list:
    """Callbacks in the order Lightning calls them: checkpoint callbacks last (``Trainer``'s own reordering)."""
    from lightning.pytorch.callbacks import Checkpoint

    return [c for c in callbacks if not isinstance(c, Checkpoint)] + [c for c in callbacks if isinstance(c, Checkpoint)]


def fit_and_test(members: list[Member], max_members: int | None = None) -> bool:
    """Fit the members (all starting at the same epoch; at most ``max_members`` at once, the others queued) with one
    Trainer, then test each on its best weights; returns whether SIGTERM stopped them (each one is then recorded
    ``interrupted`` at its last checkpoint)."""
    module = StackedClassifier(members, max_members)
    settings = members[0].settings
    quiet = quiet_trainer(settings, members[0].run.context)
    trainer = new_trainer(settings, [MemberCallbacks(module), MemberCheckpoints(module)], MemberLoggers(members),
                          quiet, plugins=[GroupCheckpointIO(module)], enable_model_summary=False,
                          max_epochs=max(m.max_epochs for m in members), min_epochs=0)
    for member in members:
        member.run.record["precision"] = str(trainer.precision)
    data = {split: group_data(members, split) for split in ("train", "val", "test")}
    resumed = members[0].run.resume_from if members[0].resume else None
    try:
        trainer.fit(module, train_dataloaders=MemberLoader(data["train"], lambda: module.training_members,
                                                           module.member_epochs),
                    val_dataloaders=MemberLoader(data["val"], module.evaluated), ckpt_path=resumed, weights_only=False)
    except SIGTERMException as error:  # Lightning stops at the next batch boundary after a SIGTERM
        for k, member in enumerate(members):
            if member.run.running:
                member.epochs, member.global_step = own_progress(module, k)
                member.run.fail(error)
        return True
    for k, member in enumerate(members):
        if member.running and member.joined:  # the Trainer itself stopped (max_steps, max_time): training is over
            member.fitted = True
            member.epochs, member.global_step = own_progress(module, k)
    test(module, trainer, [k for k, m in enumerate(members) if m.fitted and m.run.running and m.settings.test],
         MemberLoader(data["test"], module.evaluated))
    for member in members:
        if member.fitted and member.run.running:  # test=false: completed without testing, as a solo run
            member.run.end(Status.COMPLETED)
    return False


def own_progress(module: StackedClassifier, k: int) -> tuple[int, int]:
    """(epochs, steps) member k trained so far: its own count, none if it never left the queue."""
    view = module.view(k)
    return (view.current_epoch, view.global_step) if module.members[k].joined else (0, 0)


def group_data(members: list[Member], split: str) -> MemberBatches:
    """The members' ``split`` as one: the training split shuffled by each member's seed, the others in order."""
    first = members[0].datamodule
    return MemberBatches([m.datamodule.splits[split] for m in members],
                         mean=[m.datamodule.mean for m in members], std=[m.datamodule.std for m in members],
                         seeds=[m.datamodule.seed if split == "train" else 0 for m in members],
                         batch_size=first.batch_size if split == "train" else first.eval_batch_size)


def test(module: StackedClassifier, trainer, tested: list[int], loader: MemberLoader) -> None:
    """Each of the ``tested`` members' test metrics, from its best weights (its last ones without a
    ``ModelCheckpoint``), as a solo run tests its best checkpoint."""
    if not tested:
        return
    best = {}
    for k in tested:
        member = module.members[k]
        callback = module.view(k).checkpoint_callback
        best[k] = getattr(callback, "best_model_path", "") if callback is not None else ""
        if best[k]:
            member.load_weights(solo_weights(load_checkpoint(best[k])))
    module.training_members = tested
    trainer.test(module, dataloaders=loader, verbose=False, weights_only=True)
    for k in tested:
        module.keep_metrics(k)
        module.members[k].run.end(Status.COMPLETED, best_checkpoint=best[k] or None)


def solo_weights(checkpoint: dict) -> dict:
    """The network's weights in a solo run's checkpoint (its ``net.`` entries, without the prefix)."""
    return {name[len("net."):]: v for name, v in checkpoint["state_dict"].items() if name.startswith("net.")}


class GroupCheckpointIO(AtomicCheckpointIO):
    """Resuming a group: the checkpoint Lightning restores is made of the members' own (their weights, optimizer and
    scheduler states, callback states and best accuracy), so Lightning's restore brings back every member as its
    solo run would be brought back; the loops and RNG states are the first member's (all end the same epoch)."""

    def __init__(self, module: StackedClassifier):
        super().__init__()
        self.module = module

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        from lightning.pytorch.callbacks import ModelCheckpoint

        members = self.module.members
        for k, member in enumerate(members):
            view = self.module.view(k)
            as_solo_checkpoint(member.resume, view)
            if carry_best_checkpoints(member.resume, [c for c in member.callbacks if isinstance(c, ModelCheckpoint)]):
                member.val_acc_best = 0.0  # its best epoch's weights are gone: the best is chosen again from here on
        first = members[0].resume
        checkpoint = {key: first[key] for key in ("epoch", "global_step", "pytorch-lightning_version", "loops",
                                                  "rng_states") if key in first}
        checkpoint["state_dict"] = {f"nets.{k}.{name}": value for k, m in enumerate(members)
                                    for name, value in m.padding.pad(solo_weights(m.resume)).items()}
        checkpoint["optimizer_states"] = [group_optimizer_state(
            [m.padding.pad_optimizer(m.resume["optimizer_states"][0]) for m in members])]
        if any(m.scheduler_factory for m in members):
            checkpoint["lr_schedulers"] = [{"members": [(m.resume.get("lr_schedulers") or [None])[0]
                                                        for m in members]}]
        checkpoint["callbacks"] = {wrapper: {"members": [m.resume.get("callbacks") or {} for m in members]}
                                   for wrapper in (MemberCallbacks.__name__, MemberCheckpoints.__name__)}
        return checkpoint
