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

import copy
import json
import logging
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from rpn_exp.config.build import ConfigError, instantiate_node
from rpn_exp.config.checks import check_added_keys, check_settings
from rpn_exp.nn.members import MemberStack, member_losses
from rpn_exp.nn.padding import RankPadding
from rpn_exp.run.checkpointing import LAST, atomic_torch_save
from rpn_exp.run.loggers import TensorBoardLogger
from rpn_exp.run.members import PER_PARAMETER_OPTIMIZERS, MemberBatches, MemberOptimizers
from rpn_exp.run.record import summary_line
from rpn_exp.run.snapshots import write_weight_snapshots
from rpn_exp.run.task import (
    SIGTERM_EXIT,
    build_experiment,
    clear_attempt,
    close_dashboards,
    dashboard_hparams,
    interruption_checkpoints,
    log_hyperparameters,
    new_record,
    objective_names,
    objective_value,
    save_record,
    sweep_keys,
)

log = logging.getLogger("rpn_exp")


@dataclass
class Member:
    """One job of a stacked group and everything its solo run would keep."""

    cfg: DictConfig
    context: dict
    record: dict
    started: float
    stopped: float | None = None  # when it left the stack by diverging (its wall time ends there)
    net: torch.nn.Module | None = None  # the network of its solo run (its shapes, its checkpoints)
    stack_net: torch.nn.Module | None = None  # the network it trains as in the stack: ``net``, or net zero-padded
    padding: RankPadding | None = None  # how ``net`` sits in ``stack_net``
    datamodule: object = None
    optimizer_factory: object = None
    scheduler_factory: object = None
    optimizers: MemberOptimizers | None = None  # the group's, once training starts; this member is ``index`` in it
    index: int = 0
    loggers: list = field(default_factory=list)
    epoch: int = 0
    global_step: int = 0
    val_acc_best: float = 0.0
    best_score: float | None = None
    best_path: Path | None = None
    best_state: dict | None = None
    resume: dict | None = None  # the last.ckpt it continues from
    metrics: dict = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.cfg.paths.output_dir)

    @property
    def running(self) -> bool:
        return self.record["status"] == "running"

    @property
    def max_epochs(self) -> int:
        return int(self.cfg.trainer.max_epochs)

    def log(self, metrics: dict, step: int) -> None:
        self.metrics.update(metrics)
        for logger in self.loggers:
            logger.log_metrics(metrics, step)

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


def train_group(jobs: list[tuple[DictConfig, dict]], group: str) -> list:
    """Train the jobs ``(resolved config, hydra context)`` of one group together; return each one's objective.

    Every member always leaves its ``result.json``, whatever happens to the others.
    """
    members = [start_member(cfg, context, group, len(jobs), k) for k, (cfg, context) in enumerate(jobs)]
    stop = _StopOnSigterm()
    try:
        stack_nets(members)
        fit_members([m for m in members if m.running], stop)
        test_members([m for m in members if m.record["status"] == "fitted"])
    except Exception as error:  # a failure of the shared loop fails every member that was still training
        for member in members:
            if member.running or member.record["status"] == "fitted":
                member.record.update(status="failed", error=f"{type(error).__name__}: {error}",
                                     traceback=traceback.format_exc())
        log.error("Stacked group %s failed: %s", group, error)
    finally:
        stop.restore()
        for member in members:
            finish_member(member, stop.received)
    if stop.received:  # as a solo run: SIGTERM ends the sweep, once every member's record is written
        raise SystemExit(SIGTERM_EXIT)
    return [objective_value(m.record, objective_names(m.cfg)) for m in members]


def start_member(cfg: DictConfig, context: dict, group: str, size: int, index: int) -> Member:
    """A member's record (written at once, as a solo run writes it), then its data, network, optimizer, scheduler
    and loggers; a member whose settings are refused is recorded ``failed`` and takes no part."""
    out = Path(cfg.paths.output_dir)
    record = new_record(cfg, out, context)
    record.update(resumed_from=None, stacked_group={"name": group, "members": size, "member": index})
    member = Member(cfg=cfg, context=context, record=record, started=time.perf_counter())
    if cfg.get("skip_completed", False):  # a job run again: from its last completed epoch, or from the start
        last = out / "checkpoints" / LAST
        if last.is_file():
            member.resume, record["resumed_from"] = torch.load(last, map_location="cpu", weights_only=False), str(last)
        else:
            clear_attempt(out)
    save_record(out, record)
    try:
        check_settings(cfg)
        check_added_keys(context["overrides"], set(context["choices"]))
        member.datamodule, member.net = build_experiment(cfg, record, verbose=False)
        member.optimizer_factory = instantiate_node(cfg.optimizer, "optimizer")
        if cfg.get("scheduler"):
            member.scheduler_factory = instantiate_node(cfg.scheduler, "scheduler")
        member.loggers = [instantiate_node(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items()]
        log_hyperparameters(member.loggers, dashboard_hparams(record, cfg, sweep_keys(context)))
        if member.resume is not None:
            restore_member(member, member.resume)
    except ConfigError as error:
        record.update(status="failed", error=f"invalid configuration: {error}")
    return member


def restore_member(member: Member, checkpoint: dict) -> None:
    """A member continues where its ``last.ckpt`` ends: weights, epoch, step, best score and checkpoint (its
    optimizer and scheduler states are restored once the group's optimizers exist)."""
    prefix = "net."
    state = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    try:
        member.net.load_state_dict(state)
    except RuntimeError as error:
        raise ConfigError(f"ckpt_path={member.record['resumed_from']}: {error}") from error
    member.epoch, member.global_step = checkpoint["epoch"] + 1, checkpoint["global_step"]
    member.val_acc_best = checkpoint.get("val_acc_best", 0.0)
    best = checkpoint.get("best_checkpoint")
    if best and Path(best).is_file():
        member.best_score, member.best_path = checkpoint.get("best_score"), Path(best)
        saved = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
        member.best_state = {k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix)}
    if member.epoch >= member.max_epochs:
        member.record["status"] = "fitted"


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
    keys = [f"epoch {m.epoch}: {optimizer_key(m.cfg, k)}" for k, m in enumerate(members)]  # one schedule per share
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
            _snapshot(member, "start")
    active = [k for k in active if members[k].running]
    while active:
        stack = _stack([members[k] for k in active])
        _train_epoch(members, active, stack, optimizers, train, stop)
        if stop.received:
            for k in active:
                members[k].record.update(status="interrupted", error="stopped by SIGTERM (e.g. a cluster's time "
                                         "limit or kill)", **interruption_checkpoints(members[k].out))
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
                member.record["status"] = "fitted"
                _snapshot(member, "end")
            elif member.max_epochs > 2 and member.epoch == member.max_epochs // 2:
                _snapshot(member, "middle")
        for k in active:
            if not members[k].running:  # a finished member: its optimizer must not step it again
                members[k].stack_net.zero_grad(set_to_none=True)
        active = [k for k in active if members[k].running]


def _stack(members: list[Member]) -> MemberStack:
    return MemberStack([m.stack_net for m in members], masks=[m.padding.masks() for m in members])


def optimizer_key(cfg: DictConfig, k: int) -> str:
    """Members with equal keys share one optimizer and scheduler (same settings, a per-parameter optimizer)."""
    target = str(OmegaConf.select(cfg, "optimizer._target_") or "")
    if target.rsplit(".", 1)[-1] not in PER_PARAMETER_OPTIMIZERS:
        return f"member {k}"
    settings = {key: OmegaConf.to_container(cfg[key], resolve=True) if cfg.get(key) else None
                for key in ("optimizer", "scheduler")}
    return json.dumps(settings, sort_keys=True, default=str)


def _train_epoch(members: list[Member], active: list[int], stack: MemberStack, optimizers: MemberOptimizers,
                 data: MemberBatches, stop) -> None:
    """One pass over every active member's training split, each in its own order; a member whose loss stops being
    finite is recorded ``diverged`` and its step is not taken (the others' step is)."""
    every = [max(1, int(members[k].cfg.trainer.log_every_n_steps)) for k in active]
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
                member.stopped = time.perf_counter()
                member.record.update(status="diverged", error=(
                    f"training loss became {losses[position].item()} at epoch {member.epoch}, step "
                    f"{member.global_step}; lower optimizer.lr or check the data normalization"))
                log.error("Member %s diverged: %s", member.out.name, member.record["error"])
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
    node = OmegaConf.select(member.cfg, "callbacks.model_checkpoint")
    if node is None:
        return
    monitor, mode = node.get("monitor") or "val/acc", node.get("mode", "max")
    score = values[monitor]
    better = member.best_score is None or (score > member.best_score if mode == "max" else score < member.best_score)
    if not better:
        return
    path = member.out / "checkpoints" / f"best-epoch{member.epoch:03d}.ckpt"
    save_checkpoint(member, path)
    if member.best_path is not None and member.best_path != path:
        member.best_path.unlink(missing_ok=True)
    member.best_score, member.best_path = score, path
    member.best_state = member.weights()


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
        member.record["best_checkpoint"] = str(member.best_path) if member.best_path else None
        member.record["status"] = "completed"


def save_checkpoint(member: Member, path: Path) -> None:
    """A checkpoint in the solo run's format (``RPNClassifier.load_from_checkpoint`` and ``rpn_exp.eval`` read
    it): the member's weights under ``net.``, its optimizer and scheduler states, epoch, step and config."""
    import lightning

    checkpoint = {
        "epoch": member.epoch - 1, "global_step": member.global_step,
        "pytorch-lightning_version": lightning.__version__,
        "state_dict": {f"net.{k}": v for k, v in member.weights().items()},
        "hyper_parameters": {"config": OmegaConf.to_container(member.cfg, resolve=True)},
        "optimizer_states": [member.padding.unpad_optimizer(member.optimizers.state_dict(member.index))],
        "lr_schedulers": [s for s in [member.optimizers.scheduler_state_dict(member.index)] if s is not None],
        "val_acc_best": member.val_acc_best,
        "best_checkpoint": str(member.best_path) if member.best_path else None, "best_score": member.best_score,
        "stacked_group": member.record["stacked_group"],
    }
    atomic_torch_save(checkpoint, path)


def _snapshot(member: Member, moment: str) -> None:
    node = OmegaConf.select(member.cfg, "callbacks.weight_snapshots")
    writers = [lg.experiment for lg in member.loggers if isinstance(lg, TensorBoardLogger)]
    if node is not None and writers and member.net is not None:
        write_weight_snapshots(writers, member.solo_net(), member.global_step, node.get("rows", 128),
                               node.get("cols", 512))


def finish_member(member: Member, interrupted: bool) -> None:
    """Write the member's final record and close its dashboards, as a solo run ends."""
    record = member.record
    if record["status"] in ("running", "fitted"):
        record.update(status="interrupted" if interrupted else "failed",
                      error=record.get("error") or "the stacked group stopped before this member finished")
    if member.datamodule is not None and member.datamodule.splits is not None:
        record["data_sizes"] = member.datamodule.sizes()
    record["metrics"].update(member.metrics)
    record["epochs"], record["global_step"] = member.epoch, member.global_step
    record["wall_time_s"] = round((member.stopped or time.perf_counter()) - member.started, 3)
    close_dashboards(member.loggers, record["status"])
    for logger in member.loggers:
        if not isinstance(logger, TensorBoardLogger):
            logger.finalize("success" if record["status"] == "completed" else "failed")
    save_record(member.out, record)
    log.info(summary_line(record))


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
