"""The shared training loop of a stacked group: one epoch of every running member at a time, then each one's
validation and checkpoints, as Lightning does them for a solo run (the logged series and their steps, validation after
every epoch, the best checkpoint on the monitored metric, strictly better only)."""

from __future__ import annotations

import json

import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from rpn_exp.config.settings import RunSettings
from rpn_exp.nn.members import MemberStack, member_losses
from rpn_exp.run.checkpointing import LAST
from rpn_exp.run.member import Member, save_checkpoint, snapshot
from rpn_exp.run.members import PER_PARAMETER_OPTIMIZERS, MemberBatches, MemberOptimizers
from rpn_exp.run.module import DivergenceError


def fit_members(members: list[Member], stop) -> None:
    """The shared training loop: one epoch of every running member at a time, then each one's validation."""
    if not members:
        return
    splits = {name: [m.datamodule.splits[name] for m in members] for name in ("train", "val")}
    stats = {"mean": [m.datamodule.mean for m in members], "std": [m.datamodule.std for m in members]}
    first = members[0].datamodule
    train = MemberBatches(splits["train"], seeds=[m.datamodule.seed for m in members],
                          batch_size=first.batch_size, **stats)
    val = MemberBatches(splits["val"], seeds=[0] * len(members), batch_size=first.eval_batch_size, **stats)
    active = list(range(len(members)))
    keys = [f"epoch {m.epoch}: {optimizer_key(m.settings, k)}" for k, m in enumerate(members)]  # one schedule per share
    optimizers = MemberOptimizers([m.stack_net for m in members], keys,
                                  lambda k, params: members[k].optimizer_factory(params),
                                  lambda k, opt: members[k].scheduler_factory(opt) if members[k].scheduler_factory
                                  else None)
    for k, member in enumerate(members):
        member.optimizers, member.index = optimizers, k
        if member.resume is not None:
            optimizers.load_state_dict(k, member.padding.pad_optimizer(member.resume["optimizer_states"][0]),
                                       (member.resume.get("lr_schedulers") or [None])[0])
        else:
            snapshot(member, "start")
    active = [k for k in active if members[k].running]
    while active:
        stack = _stack([members[k] for k in active])
        _train_epoch(members, active, stack, optimizers, train, stop)
        if stop.received:
            for k in active:
                members[k].run.fail(SIGTERMException())
            return
        running = [k for k in active if members[k].running]
        for k in set(active) - set(running):  # a diverged member: its optimizer must not step it again
            members[k].stack_net.zero_grad(set_to_none=True)
        if running != active:
            stack = _stack([members[k] for k in running])
            active = running
        if not active:
            return
        _validate(members, active, stack, val)
        optimizers.scheduler_step(active)
        for k in active:
            member = members[k]
            member.epoch += 1
            save_checkpoint(member, member.out / "checkpoints" / LAST)  # as Lightning's: after the scheduler's step
            if member.epoch >= member.max_epochs:
                member.fitted = True
                snapshot(member, "end")
            elif member.max_epochs > 2 and member.epoch == member.max_epochs // 2:
                snapshot(member, "middle")
        for k in active:
            if not members[k].running:  # a finished member: its optimizer must not step it again
                members[k].stack_net.zero_grad(set_to_none=True)
        active = [k for k in active if members[k].running]


def _stack(members: list[Member]) -> MemberStack:
    return MemberStack([m.stack_net for m in members], masks=[m.padding.masks() for m in members])


def optimizer_key(settings: RunSettings, k: int) -> str:
    """Members with equal keys share one optimizer and scheduler (same settings, a per-parameter optimizer)."""
    target = str((settings.optimizer or {}).get("_target_") or "")
    if target.rsplit(".", 1)[-1] not in PER_PARAMETER_OPTIMIZERS:
        return f"member {k}"
    return json.dumps({"optimizer": settings.optimizer, "scheduler": settings.scheduler}, sort_keys=True, default=str)


def _train_epoch(members: list[Member], active: list[int], stack: MemberStack, optimizers: MemberOptimizers,
                 data: MemberBatches, stop) -> None:
    """One pass over every active member's training split, each in its own order; a member whose loss stops being
    finite is recorded ``diverged`` and its step is not taken (the others' step is)."""
    every = [members[k].settings.log_every_n_steps for k in active]
    for k in active:
        members[k].log({"train/lr": optimizers.lr(k)}, members[k].global_step)
    order = data.orders([members[k].epoch for k in active], active)
    totals = torch.zeros(len(active), 3)
    stack.train()
    for x, y in data.batches(active, order):
        if stop.received:
            return
        logits = stack(x)
        losses = member_losses(logits, y)
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            for position in torch.nonzero(~finite).flatten().tolist():
                member = members[active[position]]
                if not member.running:
                    continue
                member.run.fail(DivergenceError(
                    f"training loss became {losses[position].item()} at epoch {member.epoch}, step "
                    f"{member.global_step}; lower optimizer.lr or check the data normalization"))
            losses = losses.where(finite, torch.zeros_like(losses))
        stack.zero_grad()
        losses.sum().backward()
        stack.member_grads(skip=[i for i, k in enumerate(active) if not members[k].running])
        with torch.no_grad():
            correct = (logits.argmax(-1) == y).sum(1)
            totals += torch.stack([losses * y.shape[1], correct.to(losses.dtype),
                                   torch.full_like(losses, y.shape[1])], dim=1)
        optimizers.step([k for k in active if members[k].running])
        for position, k in enumerate(active):
            member = members[k]
            if not member.running:
                continue
            if (member.global_step + 1) % every[position] == 0:
                member.log({"train/loss_step": float(losses[position].detach())}, member.global_step)
            member.global_step += 1
    for position, k in enumerate(active):
        if members[k].running:
            loss_sum, correct, count = totals[position].tolist()
            members[k].log({"train/loss_epoch": loss_sum / count, "train/acc": correct / count},
                           members[k].global_step - 1)


@torch.no_grad()
def evaluate(stack: MemberStack, data: MemberBatches, members: list[int]) -> torch.Tensor:
    """Each member's (loss, accuracy) over its split, as Lightning averages them: batch means weighted by batch
    size. Returns (K, 2)."""
    stack.train(False)
    totals = torch.zeros(len(members), 3, dtype=torch.float64)
    for x, y in data.batches(members):
        logits = stack(x)
        losses = member_losses(logits, y)
        accuracy = (logits.argmax(-1) == y).float().mean(1)
        b = y.shape[1]
        totals += torch.stack([losses.double() * b, accuracy.double() * b, torch.full_like(losses, b).double()], 1)
    return totals[:, :2] / totals[:, 2:]


def _validate(members: list[Member], active: list[int], stack: MemberStack, data: MemberBatches) -> None:
    results = evaluate(stack, data, active)
    for (loss, acc), k in zip(results.tolist(), active):
        member = members[k]
        member.val_acc_best = max(member.val_acc_best, acc)
        step = member.global_step - 1
        member.log({"val/loss": loss, "val/acc": acc, "val/acc_best": member.val_acc_best}, step)
        _keep_best(member, {"val/acc": acc, "val/loss": loss})


def _keep_best(member: Member, values: dict) -> None:
    """ModelCheckpoint's rule: the first epoch, then any epoch strictly better on the monitored metric."""
    node = member.settings.callbacks.get("model_checkpoint")
    if node is None:
        return
    monitor, mode = node.get("monitor") or "val/acc", node.get("mode", "max")
    score = values[monitor]
    better = member.best_score is None or (score > member.best_score if mode == "max" else score < member.best_score)
    if not better:
        return
    path = member.out / "checkpoints" / f"best-epoch{member.epoch:03d}.ckpt"
    save_checkpoint(member, path)
    if member.best_path is not None and member.best_path != path and member.best_path.parent == path.parent:
        member.best_path.unlink(missing_ok=True)  # its own earlier best; a resumed-from run's stays where it is
    member.best_score, member.best_path = score, path
    member.best_state = member.weights()
