"""The LightningModule of a stacked group: K classifiers of one shape trained as one by Lightning's Trainer.

Member k's metrics are logged as ``member_key(k, name)`` (``MemberLoggers`` hands them to its loggers, its view of
the Trainer to its callbacks), with what a solo :class:`~rpn_exp.run.module.RPNClassifier` logs: ``train/loss_step``
every ``log_every_n_steps``, ``train/loss_epoch`` and ``train/acc`` at an epoch's end, ``val/loss``, ``val/acc``,
``val/acc_best`` and ``test/loss``, ``test/acc`` (batch means weighted by batch size, as Lightning averages them).

A member whose loss stops being finite is recorded ``diverged``: its step is not taken from then on (the others' is)
and it leaves the stack at the epoch's end, as do members whose training ended (their ``max_epochs``, or a stop
asked by a callback such as ``EarlyStopping`` after their ``min_epochs``): the stack is rebuilt over the members
still training, so a member that stopped costs no compute. A group of more than ``max_members`` trains that many at
once; the others wait in a queue and take the slots members leave, from the next epoch on, each at its own epoch 0
(its epochs, steps, checkpoints and logged steps are its own: the group's less those it joined at). With a pruner
(``pruner=halving``), at each of its rungs (a member's own epochs) the members are reported to the sweep's store
of rung standings and their configurations compared with every report of that rung, the solo jobs' and other
groups' too (:mod:`rpn_exp.run.rung_store`, :mod:`rpn_exp.run.rungs`); the members of a dominated one are
recorded ``pruned`` and leave the same way, untested; every decision is appended to ``pruning.jsonl`` beside the
sweep's summary. Gradient clipping applies to each member's own gradients, as its solo run's clipping does.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from rpn_exp.config.build import instantiate_node
from rpn_exp.nn.stack import MemberStack, member_losses
from rpn_exp.run.module import DivergenceError, divergence_message
from rpn_exp.run.record import Status
from rpn_exp.run.rung_store import report_group_and_judge
from rpn_exp.run.rungs import Entry
from rpn_exp.run.stacked.member import Member, MemberTrainer, member_key
from rpn_exp.run.stacked.optimizer import MemberSchedulers, group_optimizer, member_share, one_group_per_setting


def before_epoch(loops: dict) -> dict:
    """A fit loop's counters (its ``state_dict``) at an epoch's start as they were before it: Lightning counts the
    epoch ``ready`` before calling ``on_train_epoch_start``."""
    progress = loops["epoch_progress"]
    return {**loops, "epoch_progress": {part: {**progress[part], "ready": progress[part]["ready"] - 1}
                                        for part in ("total", "current")}}


class StackedClassifier(L.LightningModule):
    """Cross-entropy classification by each of ``members`` of its own (K', b, features) rows.

    Args:
        members: the group's members, their networks stacked (``Member.stack_net``) and their optimizer and
            scheduler factories set.
    """

    def __init__(self, members: list[Member], max_members: int | None = None):
        super().__init__()
        self.members = members
        self.nets = nn.ModuleList(m.stack_net for m in members)
        running = [k for k, m in enumerate(members) if m.running]
        self.capacity = max_members or len(members)  # members in the stack at most
        self.training_members = running[:self.capacity]  # drawn in every training batch
        self.queue = running[len(self.training_members):]  # waiting for a slot: they join as members leave
        for k in self.queue:
            members[k].joined = False
        self.epoch_members: list[int] = []  # those that started the current epoch
        self._stack: MemberStack | None = None
        self._stacked: tuple[int, ...] = ()
        self._views: dict[int, MemberTrainer] = {}
        self._train_totals: torch.Tensor | None = None  # per member of the stack: [Σ loss·b, Σ correct, Σ b]
        self._eval_totals: torch.Tensor | None = None  # per member evaluated: [Σ loss·b, Σ accuracy·b, Σ b]
        self._step_losses: torch.Tensor | None = None  # the training members' losses of the latest batch
        pruner = members[0].settings.pruner if members else None  # one pruner: it is part of the group's signature
        self.pruner = instantiate_node(pruner, "pruner") if pruner else None

    # --- which members take part, and their stack ------------------------------------------------------------------

    def evaluated(self) -> list[int]:
        """The members validated or tested: those training, less any that diverged."""
        return [k for k in self.training_members if self.members[k].run.running]

    def hooked(self) -> list[int]:
        """The members whose callbacks Lightning's hooks reach now."""
        return self.evaluated()

    def view(self, k: int) -> MemberTrainer:
        if k not in self._views or self._views[k]._trainer is not self.trainer:
            self._views[k] = MemberTrainer(self.trainer, self.members[k], k)
        return self._views[k]

    def stack(self, members: list[int]) -> MemberStack:
        """The networks of ``members`` as one (rebuilt when they change: a member that left costs nothing)."""
        if self._stack is None or self._stacked != tuple(members):
            if self._stack is not None:  # a member leaving keeps no gradient the group optimizer would step it with
                self._stack.zero_grad()
            self._stack = MemberStack([self.members[k].stack_net for k in members],
                                      masks=[self.members[k].padding.masks() for k in members])
            self._stacked = tuple(members)
        return self._stack

    def keep_metrics(self, k: int) -> None:
        """Member k's metrics so far into its record's (what a solo run records when it ends now)."""
        metrics = self.view(k).callback_metrics
        self.members[k].metrics.update({name: float(v) for name, v in metrics.items() if v.numel() == 1})

    def end_members(self, pruned: dict[int, dict]) -> None:
        """The end of an epoch, after every callback: a member whose training is over, or ``pruned`` (member: why)
        leaves (its callbacks get ``on_train_end``, as a solo run's do); when none is left the Trainer stops."""
        for k in self.evaluated():
            member, view = self.members[k], self.view(k)
            self.keep_metrics(k)
            epoch = view.current_epoch + 1
            stopped = member.stop_requested and epoch >= view.min_epochs
            if epoch >= member.max_epochs or stopped or k in pruned:
                member.fitted, member.epochs, member.global_step = True, epoch, view.global_step
                for callback in member.callbacks:
                    callback.on_train_end(view, view.lightning_module)
        for k, why in pruned.items():  # recorded at once, after its callbacks ended (its last.ckpt); not tested
            self.members[k].run.end(Status.PRUNED, pruned=why)
            self.members[k].finish()
        self.training_members = [k for k in self.training_members if self.members[k].running]
        self.refill()
        if not self.training_members:
            self.trainer.should_stop = True

    def refill(self) -> None:
        """Queued members take the slots members left, at the start of the next epoch (their own epoch 0): their
        callbacks set up as for a fit of their own, the Trainer's epochs extended to cover theirs."""
        trainer = self.trainer
        while self.queue and len(self.training_members) < self.capacity:
            k = self.queue.pop(0)
            member = self.members[k]
            if not member.running:
                continue
            member.joined = True
            member.epoch_offset, member.step_offset = self.current_epoch + 1, trainer.global_step
            member.run.record["stacked_group"]["joined_at_epoch"] = member.epoch_offset
            trainer.fit_loop.max_epochs = max(trainer.fit_loop.max_epochs, member.epoch_offset + member.max_epochs)
            view = self.view(k)
            for callback in member.callbacks:
                callback.setup(view, view.lightning_module, stage="fit")
                callback.on_fit_start(view, view.lightning_module)
                callback.on_train_start(view, view.lightning_module)
            self.training_members.append(k)

    def prune(self) -> dict[int, dict]:
        """At the end of an epoch that is a rung of the pruner: the members reported to the sweep's store and judged
        on every report of the rung (:func:`~rpn_exp.run.rung_store.report_group_and_judge`); the members of dominated
        configurations and why (their record's ``pruned``); {} between rungs and without a pruner."""
        if self.pruner is None:
            return {}
        by_epoch: dict[int, dict[str, int]] = {}  # the members at each of their own epochs: {job: member}
        for k in self.evaluated():
            if "val/acc" in self.view(k).callback_metrics:
                by_epoch.setdefault(self.view(k).current_epoch + 1, {})[self.members[k].out.name] = k
        pruned = {}
        for epoch, members in by_epoch.items():
            entries = [Entry.of(self.members[k].run.record, job, self.members[k].max_epochs,
                                self.view(k).callback_metrics["val/acc"]) for job, k in members.items()]
            sweep = self.members[next(iter(members.values()))].out.parent
            judged = report_group_and_judge(sweep, self.pruner, epoch, entries)
            pruned.update({members[job]: why for job, why in judged.items()})
        return pruned

    # --- training ----------------------------------------------------------------------------------------------

    def on_train_epoch_start(self) -> None:
        self.epoch_members = list(self.training_members)
        self._train_totals = None
        for k in self.training_members:  # one that joined now: the group's loop counters before its first epoch
            member = self.members[k]
            if member.epoch_offset and member.loops_offset is None:
                member.loops_offset = before_epoch(self.trainer.fit_loop.state_dict())

    def member_epochs(self, members: list[int]) -> list[int]:
        """The epoch each of ``members`` is at (its own: the group's less the epoch it joined at)."""
        return [self.current_epoch - self.members[k].epoch_offset for k in members]

    def training_step(self, batch, batch_idx):
        x, y = batch
        members = self.training_members
        logits = self.stack(members)(x)
        losses = member_losses(logits, y)
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            self._diverged(members, losses, finite)
            losses = losses.where(finite, torch.zeros_like(losses))
        with torch.no_grad():
            b = y.shape[1]
            totals = torch.stack([losses * b, (logits.argmax(-1) == y).sum(1).to(losses.dtype),
                                  torch.full_like(losses, b)], dim=1)
            self._train_totals = totals if self._train_totals is None else self._train_totals + totals
        self._step_losses = losses.detach()
        return losses.sum()

    def _log_step_losses(self) -> None:
        """Each running member's ``train/loss_step``, where and when Lightning logs a solo run's (every
        ``log_every_n_steps`` optimizer steps, at the count of batches stepped before this one): in one call to the
        group's logger and into the Trainer's ``callback_metrics``, not one ``self.log`` per member (about 0.8 ms
        each, as much as the network's step at K = 8)."""
        step, every = self.global_step, max(1, self.trainer.log_every_n_steps)  # the steps taken so far
        logging = [(position, k) for position, k in enumerate(self.training_members)
                   if self.members[k].run.running and not (step - self.members[k].step_offset + 1) % every]
        if self._step_losses is None or not logging:
            return
        values = self._step_losses.float().cpu()
        metrics = {member_key(k, "train/loss_step"): values[position] for position, k in logging}
        self.trainer.callback_metrics.update(metrics)
        for logger in self.loggers:
            logger.log_metrics({**{key: float(v) for key, v in metrics.items()}, "epoch": self.current_epoch}, step)
            logger.save()

    def _diverged(self, members: list[int], losses: torch.Tensor, finite: torch.Tensor) -> None:
        for position in torch.nonzero(~finite).flatten().tolist():
            member = self.members[members[position]]
            if member.run.running:
                self.keep_metrics(members[position])
                view = self.view(members[position])
                member.epochs, member.global_step = view.current_epoch, view.global_step
                member.run.fail(DivergenceError(divergence_message(losses[position].item(), view.current_epoch,
                                                                   view.global_step)))

    def optimizer_zero_grad(self, epoch, batch_idx, optimizer):
        """No gradient in the stack or its members (a member outside the stack has none: ``stack``)."""
        if self._stack is not None:
            self._stack.zero_grad()

    def on_before_optimizer_step(self, optimizer) -> None:
        """Each member's gradients from the stack's (none for a member that diverged: its step is not taken)."""
        members = self.training_members
        self.stack(members).member_grads(skip=[i for i, k in enumerate(members) if not self.members[k].run.running])
        self._log_step_losses()

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        """The group optimizer's step, members of equal settings updated by one call (``one_group_per_setting``)."""
        with one_group_per_setting(optimizer.optimizer):
            optimizer.step(closure=optimizer_closure)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Each member's gradients clipped on their own (their norm, not the group's), as its solo run's are."""
        if not gradient_clip_val:
            return
        for k in self.evaluated():
            params = [p for p in self.nets[k].parameters() if p.grad is not None]
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    def on_train_epoch_end(self) -> None:
        totals, self._train_totals = self._train_totals, None
        if totals is None:
            return
        for position, k in enumerate(self.training_members):
            if self.members[k].run.running:
                loss_sum, correct, count = totals[position]
                self.log(member_key(k, "train/loss_epoch"), loss_sum / count)
                self.log(member_key(k, "train/acc"), correct / count)

    def configure_optimizers(self):
        params = [list(net.parameters()) for net in self.nets]
        optimizer = group_optimizer([m.optimizer_factory for m in self.members], params)
        for k, member in enumerate(self.members):
            member.share = member_share(optimizer, k, params[k])
            member.scheduler = member.scheduler_factory(member.share) if member.scheduler_factory else None
        if all(m.scheduler is None for m in self.members):
            return optimizer
        schedulers = MemberSchedulers(optimizer, [m.scheduler for m in self.members])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedulers, "interval": "epoch"}}

    def lr_scheduler_step(self, scheduler, metric) -> None:
        scheduler.step([k for k in self.epoch_members if self.members[k].run.running])

    def on_load_checkpoint(self, checkpoint) -> None:
        from rpn_exp.run.checkpointing import restore_rng_states

        if "rng_states" in checkpoint:
            restore_rng_states(checkpoint["rng_states"])

    # --- validation and test -------------------------------------------------------------------------------------

    def _evaluate(self, batch) -> None:
        x, y = batch
        logits = self.stack(self.evaluated())(x)
        losses = member_losses(logits, y).double()
        accuracy = (logits.argmax(-1) == y).double().mean(1)
        b = y.shape[1]
        totals = torch.stack([losses * b, accuracy * b, torch.full_like(losses, b)], dim=1)
        self._eval_totals = totals if self._eval_totals is None else self._eval_totals + totals

    def _log_evaluation(self, stage: str) -> torch.Tensor | None:
        totals, self._eval_totals = self._eval_totals, None
        if totals is None or self.trainer.sanity_checking:
            return None
        means = (totals[:, :2] / totals[:, 2:]).float()
        for (loss, acc), k in zip(means, self.evaluated()):
            self.log(member_key(k, f"{stage}/loss"), loss)
            self.log(member_key(k, f"{stage}/acc"), acc)
        return means

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch)

    def on_validation_epoch_end(self) -> None:
        means = self._log_evaluation("val")
        if means is None:
            return
        for (_, acc), k in zip(means.tolist(), self.evaluated()):
            member = self.members[k]
            member.val_acc_best = max(member.val_acc_best, acc)
            self.log(member_key(k, "val/acc_best"), member.val_acc_best)

    def test_step(self, batch, batch_idx):
        self._evaluate(batch)

    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")
