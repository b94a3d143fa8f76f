"""A member of a stacked group: its solo run's lifecycle, network, callbacks and state, and the group's Trainer as
its callbacks see it.

:class:`MemberTrainer` is that view: the group's Trainer with the member's metrics (``callback_metrics`` without
the member's key prefix), loggers, optimizer, scheduler, epochs and stop flag, and a ``save_checkpoint`` that writes
the member's checkpoint in its solo run's format. Lightning's own callbacks (``ModelCheckpoint``,
``EarlyStopping``, ``LearningRateMonitor``) and rpn_exp's (``LastCheckpoint``, ``SaveOnInterrupt``,
``WeightSnapshots``) then run for each member unchanged, as they run for a solo run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rpn_exp.config.settings import RunSettings, resolved_config
from rpn_exp.nn.padding import RankPadding
from rpn_exp.run.checkpointing import LAST, PREVIOUS, LastCheckpoint, atomic_torch_save, keep_previous, rng_states
from rpn_exp.run.lifecycle import Run
from rpn_exp.run.loggers import TensorBoardLogger
from rpn_exp.run.record import DONE, Status

#: Separates the member index from a metric's name in what the group logs (``3:val/acc``).
SEPARATOR = ":"


def member_key(k: int, name: str) -> str:
    """The name member k's metric ``name`` is logged under by the group."""
    return f"{k}{SEPARATOR}{name}"


def split_key(key: str) -> tuple[int | None, str]:
    """(member, name) of a key the group logged; (None, key) for one of the group's own (Lightning's ``epoch``)."""
    head, separator, name = key.partition(SEPARATOR)
    return (int(head), name) if separator and head.isdigit() else (None, key)


@dataclass
class Member:
    """One job of a stacked group and everything its solo run would keep."""

    run: Run  # its record, config and dashboards: the lifecycle of a solo run (rpn_exp.run.lifecycle)
    net: torch.nn.Module | None = None  # the network of its solo run (its shapes, its checkpoints)
    stack_net: torch.nn.Module | None = None  # the network it trains as in the stack: ``net``, or net zero-padded
    padding: RankPadding | None = None  # how ``net`` sits in ``stack_net``
    datamodule: object = None
    optimizer_factory: object = None
    scheduler_factory: object = None
    callbacks: list = field(default_factory=list)  # its solo run's callbacks, in the order Lightning calls them
    share: object = None  # its OptimizerShare, once the group's optimizer exists
    scheduler: object = None
    resume: dict | None = None  # the checkpoint it continues from (ckpt_path, or its own last.ckpt)
    val_acc_best: float = 0.0
    stop_requested: bool = False  # a callback (EarlyStopping) set its trainer's should_stop
    fitted: bool = False  # training ended (its max_epochs, or stopped early): tested next
    metrics: dict = field(default_factory=dict)
    epochs: int = 0
    global_step: int = 0
    finished: bool = False  # its final record is written
    joined: bool = True  # in the stack since the group's start, or since it took a freed slot (False: queued)
    epoch_offset: int = 0  # the group's epoch and step when it joined: its own are the group's less these
    step_offset: int = 0
    loops_offset: dict | None = None  # the group's loop counters when it joined (``own_loops``)

    @property
    def settings(self) -> RunSettings:
        return self.run.settings

    @property
    def out(self) -> Path:
        return self.run.out

    @property
    def running(self) -> bool:
        """Still training: no outcome recorded and training not ended."""
        return self.run.running and not self.fitted

    @property
    def max_epochs(self) -> int:
        return self.settings.max_epochs

    @property
    def start(self) -> tuple[int, int]:
        """(epoch, step) where its training starts: 0, or the end of the checkpoint it resumes from."""
        return (self.resume["epoch"] + 1, self.resume["global_step"]) if self.resume else (0, 0)

    def finish(self, interrupted: bool = False) -> None:
        """Write its final record and close its dashboards, as a solo run ends (once); its ``previous.ckpt`` goes."""
        run = self.run
        if self.finished:
            return
        if run.running:
            run.end(Status.INTERRUPTED if interrupted else Status.FAILED,
                    error=run.record.get("error") or "the stacked group stopped before this member finished")
        for logger in run.loggers:
            if not isinstance(logger, TensorBoardLogger):
                logger.finalize("success" if run.status in DONE else "failed")  # pruned: stopped on purpose
        run.finish(self.metrics, epochs=self.epochs, global_step=self.global_step)
        for callback in self.callbacks:  # its previous.ckpt served a resume of the group only: the run is over
            if isinstance(callback, LastCheckpoint):
                (callback.dirpath / PREVIOUS).unlink(missing_ok=True)
        self.finished = True

    def weights(self) -> dict[str, torch.Tensor]:
        """A copy of its current weights in its solo network's shapes."""
        return {k: v.detach().clone() for k, v in self.padding.unpad(self.stack_net.state_dict()).items()}

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Weights in its solo network's shapes into the network it trains as."""
        self.stack_net.load_state_dict(self.padding.pad(state))

    def solo_net(self) -> torch.nn.Module:
        """Its solo network, holding its current weights."""
        if self.padding:
            self.net.load_state_dict(self.weights())
        return self.net


def stack_nets(members: list[Member]) -> None:
    """The network each member trains as: its own, or, for a smaller rank r than the group's largest, a copy of the
    largest one holding its weights zero-padded (``rpn_exp.nn.padding``)."""
    built = [m for m in members if m.net is not None]
    if not built:
        return
    largest = max(built, key=lambda m: sum(p.numel() for p in m.net.parameters())).net
    for member in built:
        member.padding = RankPadding(member.net, largest)
        member.stack_net = member.net
        if member.padding:
            member.stack_net = copy.deepcopy(largest)
            member.load_weights(member.net.state_dict())


class MemberModule:
    """The LightningModule as member k's callbacks see it: its solo network (``WeightSnapshots`` draws it), its
    view of the Trainer; anything else is the group's."""

    def __init__(self, member: Member, trainer: MemberTrainer):
        self.member, self.trainer = member, trainer

    def __getattr__(self, name):
        return getattr(self.trainer._trainer.lightning_module, name)

    @property
    def net(self) -> torch.nn.Module:
        return self.member.solo_net()


class MemberTrainer:
    """The group's Trainer as member ``index``'s callbacks see it (module docstring); anything else is the
    group's."""

    def __init__(self, trainer, member: Member, index: int):
        self.__dict__.update(_trainer=trainer, member=member, index=index)
        self.lightning_module = MemberModule(member, self)

    def __getattr__(self, name):
        return getattr(self._trainer, name)

    @property
    def callback_metrics(self) -> dict:
        """The member's metrics by their own names; what a callback adds (``LearningRateMonitor``'s rate) is added
        to the group's as the member's."""
        metrics = _MemberMetrics(self._trainer.callback_metrics, self.index)
        for key, value in self._trainer.callback_metrics.items():
            k, name = split_key(key)
            if k == self.index:
                dict.__setitem__(metrics, name, value)
        return metrics

    @property
    def loggers(self) -> list:
        return self.member.run.loggers

    @property
    def logger(self):
        return self.loggers[0] if self.loggers else None

    @property
    def current_epoch(self) -> int:
        return self._trainer.current_epoch - self.member.epoch_offset

    @property
    def global_step(self) -> int:
        return self._trainer.global_step - self.member.step_offset

    @property
    def fit_loop(self):
        """The group's fit loop, counting the member's own optimizer steps (``LearningRateMonitor`` logs at them)."""
        loop = self._trainer.fit_loop
        return _OwnSteps(loop, self.member.step_offset) if self.member.step_offset else loop

    @property
    def should_stop(self) -> bool:
        return self.member.stop_requested

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self.member.stop_requested = bool(value)

    @property
    def max_epochs(self) -> int:
        return self.member.max_epochs

    @property
    def min_epochs(self) -> int:
        return self.member.settings.trainer.get("min_epochs") or 0

    @property
    def ckpt_path(self) -> str | None:
        return self.member.run.resume_from

    @property
    def callbacks(self) -> list:
        return self.member.callbacks

    @property
    def checkpoint_callbacks(self) -> list:
        from lightning.pytorch.callbacks import Checkpoint

        return [c for c in self.callbacks if isinstance(c, Checkpoint)]

    @property
    def checkpoint_callback(self):
        from lightning.pytorch.callbacks import ModelCheckpoint

        return next((c for c in self.callbacks if isinstance(c, ModelCheckpoint)), None)

    @property
    def optimizers(self) -> list:
        return [self.member.share]

    @property
    def lr_scheduler_configs(self) -> list:
        from lightning.pytorch.utilities.types import LRSchedulerConfig

        scheduler = self.member.scheduler
        return [LRSchedulerConfig(scheduler, interval="epoch", name="train/lr")] if scheduler is not None else []

    def save_checkpoint(self, filepath, weights_only: bool = False, storage_options=None) -> None:
        """The member's checkpoint at ``filepath``, in its solo run's format (:func:`member_checkpoint`); the
        ``last.ckpt`` it replaces is kept as ``previous.ckpt`` (``rpn_exp.run.stacked.task.align_starts``)."""
        if Path(filepath).name == LAST:
            keep_previous(filepath)
        atomic_torch_save(member_checkpoint(self, weights_only), filepath)


class _OwnSteps:
    """A fit loop whose epoch loop counts ``offset`` fewer optimizer steps (``_batches_that_stepped``)."""

    def __init__(self, loop, offset: int):
        self._loop, self._offset = loop, offset

    def __getattr__(self, name):
        return getattr(self._loop, name)

    @property
    def epoch_loop(self):
        return _OwnSteps.Epoch(self._loop.epoch_loop, self._offset)

    class Epoch:
        def __init__(self, loop, offset: int):
            self._loop, self._offset = loop, offset

        def __getattr__(self, name):
            return getattr(self._loop, name)

        @property
        def _batches_that_stepped(self) -> int:
            return self._loop._batches_that_stepped - self._offset


def own_loops(loops, offset, path: str = ""):
    """A member's loop counters from the group's ``loops`` (a fit loop's ``state_dict``, nested): the counters that
    run over the whole fit (training's ``total``, the fit loop's epochs, ``_batches_that_stepped``) less the group's
    at the member's join, ``offset``; the others as they are (the member joined at an epoch's start)."""
    if isinstance(loops, dict):
        return {key: own_loops(value, offset.get(key) if isinstance(offset, dict) else None, f"{path}.{key}")
                for key, value in loops.items()}
    whole_fit = (".total." in path and ".val_loop." not in path or path.endswith("._batches_that_stepped")
                 or ".epoch_progress.current." in path)  # validation counts each of its runs afresh
    if whole_fit and isinstance(loops, int) and not isinstance(loops, bool) and isinstance(offset, int):
        return loops - offset
    return loops


class _MemberMetrics(dict):
    """Member k's copy of the group's metrics; an entry set here is set in the group's too, as the member's."""

    def __init__(self, group: dict, index: int):
        super().__init__()
        self.group, self.index = group, index

    def __setitem__(self, name, value) -> None:
        super().__setitem__(name, value)
        self.group[member_key(self.index, name)] = value

    def update(self, *args, **kwargs) -> None:
        for name, value in dict(*args, **kwargs).items():
            self[name] = value


def member_checkpoint(view: MemberTrainer, weights_only: bool = False) -> dict:
    """What a solo run's Lightning checkpoint would hold at this point: Lightning's own keys (epoch, step, loops,
    version) from the group's, and the member's weights (its own shapes, under ``net.``), optimizer and scheduler
    states, callback states, config, best validation accuracy and RNG states; ``stacked_group`` besides."""
    member, trainer = view.member, view._trainer
    checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=True)  # Lightning's keys and loops
    if member.loops_offset is not None:  # it joined the group late: its own epoch, step and loop counters
        checkpoint["loops"] = {**checkpoint["loops"],
                               "fit_loop": own_loops(checkpoint["loops"]["fit_loop"], member.loops_offset)}
        checkpoint["epoch"], checkpoint["global_step"] = view.current_epoch, view.global_step
    checkpoint.update(
        state_dict={f"net.{k}": v for k, v in member.weights().items()},
        hyper_parameters={"config": resolved_config(member.run.cfg)}, hparams_name="kwargs",
        val_acc_best=member.val_acc_best, rng_states=rng_states(), stacked_group=member.run.record["stacked_group"],
    )
    if not weights_only:
        checkpoint["callbacks"] = {c.state_key: c.state_dict() for c in member.callbacks if c.state_dict()}
        checkpoint["optimizer_states"] = [member.padding.unpad_optimizer(member.share.state_dict())]
        checkpoint["lr_schedulers"] = [member.scheduler.state_dict()] if member.scheduler is not None else []
    return checkpoint
