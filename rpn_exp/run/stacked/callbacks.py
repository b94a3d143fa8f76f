"""What the group's Trainer calls for its members: each member's callbacks and loggers.

:class:`MemberCallbacks` calls every hook of each training member's callbacks with the member's view of the Trainer
(:class:`~rpn_exp.run.stacked.member.MemberTrainer`); :class:`MemberCheckpoints` does so for the callbacks Lightning
calls last and after the LightningModule at an epoch's end (checkpoints and early stopping, which read what the
module logged), then ends the members whose training is over. :class:`MemberLoggers` is the group's logger: what the
module logs as member k's (``3:val/acc``) goes to member k's loggers under its own name, at the step Lightning chose.
"""

from __future__ import annotations

from collections import defaultdict

import lightning as L
from lightning.pytorch.callbacks import Checkpoint, EarlyStopping
from lightning.pytorch.loggers import Logger

from rpn_exp.run.stacked.member import split_key

#: The Callback hooks passed on to the members' callbacks (checkpoint saving and loading is the members' own).
HOOKS = tuple(name for name in vars(L.Callback) if (name.startswith("on_") or name in ("setup", "teardown"))
              and name not in ("on_save_checkpoint", "on_load_checkpoint"))


def monitors(callback) -> bool:
    """Whether Lightning calls ``callback`` among the monitoring ones, after the LightningModule's epoch end."""
    return isinstance(callback, EarlyStopping | Checkpoint)


class MemberCallbacks(L.Callback):
    """The members' callbacks that do not monitor (progress, LR monitor, snapshots, ...), each called with its
    member's view of the Trainer; ``group`` (the StackedClassifier) says which members are training."""

    monitoring = False

    def __init__(self, group):
        self.group = group
        self._targets: dict[str, list[list]] = {}

    @property
    def state_key(self) -> str:
        return type(self).__name__

    def own(self, k: int) -> list:
        return [c for c in self.group.members[k].callbacks if monitors(c) == self.monitoring]

    def state_dict(self) -> dict:
        return {"members": [{c.state_key: c.state_dict() for c in self.own(k)} for k in range(len(self.group.members))]}

    def load_state_dict(self, state: dict) -> None:
        for k, saved in enumerate(state["members"]):
            for callback in self.own(k):
                if saved.get(callback.state_key):
                    callback.load_state_dict(saved[callback.state_key])

    def _call(self, hook: str, *args) -> None:
        targets = self._targets.get(hook)
        if targets is None:  # member k's callbacks that implement ``hook`` (Lightning's own is a no-op), found once
            targets = self._targets[hook] = [
                [getattr(c, hook) for c in self.own(k) if getattr(type(c), hook) is not getattr(L.Callback, hook)]
                for k in range(len(self.group.members))]
        if not any(targets):
            return
        for k in self.group.hooked():
            if targets[k]:
                view = self.group.view(k)
                for method in targets[k]:
                    method(view, view.lightning_module, *args)


def _passed_on(hook: str):
    def call(self, trainer, pl_module, *args, **kwargs):
        self._call(hook, *args, *kwargs.values())

    call.__name__ = hook
    return call


for _hook in HOOKS:
    setattr(MemberCallbacks, _hook, _passed_on(_hook))


class MemberCheckpoints(MemberCallbacks, Checkpoint):
    """The members' monitoring callbacks (``ModelCheckpoint``, ``LastCheckpoint``, ``EarlyStopping``, ...); at an
    epoch's end the pruner decides first (at a rung), then the callbacks run, then the members whose training is over
    end it (``StackedClassifier.prune`` and ``end_members``)."""

    monitoring = True

    def on_train_epoch_end(self, trainer, pl_module):
        pruned = self.group.prune()  # decided and logged before any member's last.ckpt of this epoch is written
        self._call("on_train_epoch_end")
        self.group.end_members(pruned)


class MemberLoggers(Logger):
    """The group's logger: each metric the group logs for member k (``member_key``) goes to member k's loggers under
    its own name, with the group's own metrics of the same call (Lightning's ``epoch``), at its own step and epoch (a
    member that joined late counts from its start); hyper-parameters and the outcome are each member's own
    (``rpn_exp.run.lifecycle.Run``)."""

    def __init__(self, members):
        super().__init__()
        self.members = members

    @property
    def name(self) -> str:
        return "members"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        own, shared = defaultdict(dict), {}
        for key, value in metrics.items():
            k, name = split_key(key)
            (shared if k is None else own[k])[name] = value
        for k, values in own.items():
            member = self.members[k]
            mine = {**shared, "epoch": shared["epoch"] - member.epoch_offset} if "epoch" in shared else shared
            own_step = None if step is None else step - member.step_offset
            if own_step is not None and member.fitted:  # its test, after others trained on: at its own last step
                own_step = min(own_step, member.global_step)
            for logger in member.run.loggers:
                logger.log_metrics({**values, **mine}, own_step)

    def save(self) -> None:
        for member in self.members:
            for logger in member.run.loggers:
                logger.save()

    def finalize(self, status: str) -> None:
        pass
