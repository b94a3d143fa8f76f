"""A member of a stacked group: its solo run's lifecycle, network and state, and its checkpoints in the solo run's
format (``RPNClassifier.load_from_checkpoint`` and ``rpn_exp.eval`` read them; a solo run resumes from them and a
member from a solo run's)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rpn_exp.config.build import ConfigError
from rpn_exp.config.settings import RunSettings, resolved_config
from rpn_exp.nn.padding import RankPadding
from rpn_exp.run.checkpointing import atomic_torch_save, load_checkpoint
from rpn_exp.run.lifecycle import Run
from rpn_exp.run.loggers import TensorBoardLogger
from rpn_exp.run.members import MemberOptimizers
from rpn_exp.run.resume import best_checkpoint
from rpn_exp.run.snapshots import write_weight_snapshots


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
    optimizers: MemberOptimizers | None = None  # the group's, once training starts; this member is ``index`` in it
    index: int = 0
    epoch: int = 0
    global_step: int = 0
    val_acc_best: float = 0.0
    best_score: float | None = None
    best_path: Path | None = None
    best_state: dict | None = None
    resume: dict | None = None  # the checkpoint it continues from (ckpt_path, or its own last.ckpt)
    metrics: dict = field(default_factory=dict)
    fitted: bool = False  # trained to its max_epochs: tested next

    @property
    def settings(self) -> RunSettings:
        return self.run.settings

    @property
    def out(self) -> Path:
        return self.run.out

    @property
    def running(self) -> bool:
        """Still training: no outcome recorded and not yet at its max_epochs."""
        return self.run.running and not self.fitted

    @property
    def max_epochs(self) -> int:
        return self.settings.max_epochs

    def log(self, metrics: dict, step: int) -> None:
        self.metrics.update(metrics)
        for logger in self.run.loggers:
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


def restore_member(member: Member, checkpoint: dict) -> None:
    """A member continues where its checkpoint ends (its own ``last.ckpt`` or a solo run's): weights, epoch, step,
    best score and checkpoint (its optimizer and scheduler states are restored once the group's optimizers exist)."""
    prefix = "net."
    state = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    try:
        member.net.load_state_dict(state)
    except RuntimeError as error:
        raise ConfigError(f"ckpt_path={member.run.record['resumed_from']}: {error}") from error
    member.epoch, member.global_step = checkpoint["epoch"] + 1, checkpoint["global_step"]
    member.val_acc_best = checkpoint.get("val_acc_best", 0.0)
    best, score = best_checkpoint(checkpoint)
    if best and not Path(best).is_file():  # its best epoch's weights are gone: the best is chosen again from here on
        member.val_acc_best = 0.0
    elif best:
        member.best_score, member.best_path = score, Path(best)
        saved = load_checkpoint(best)["state_dict"]
        member.best_state = {k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix)}
    member.fitted = member.epoch >= member.max_epochs


def save_checkpoint(member: Member, path: Path) -> None:
    """A checkpoint in the solo run's format (``RPNClassifier.load_from_checkpoint`` and ``rpn_exp.eval`` read
    it): the member's weights under ``net.``, its optimizer and scheduler states, epoch, step and config."""
    import lightning

    checkpoint = {
        "epoch": member.epoch - 1, "global_step": member.global_step,
        "pytorch-lightning_version": lightning.__version__,
        "state_dict": {f"net.{k}": v for k, v in member.weights().items()},
        "hyper_parameters": {"config": resolved_config(member.run.cfg)},
        "optimizer_states": [member.padding.unpad_optimizer(member.optimizers.state_dict(member.index))],
        "lr_schedulers": [s for s in [member.optimizers.scheduler_state_dict(member.index)] if s is not None],
        "val_acc_best": member.val_acc_best,
        "best_checkpoint": str(member.best_path) if member.best_path else None, "best_score": member.best_score,
        "stacked_group": member.run.record["stacked_group"],
    }
    atomic_torch_save(checkpoint, path)


def snapshot(member: Member, moment: str) -> None:
    node = member.settings.callbacks.get("weight_snapshots")
    writers = [lg.experiment for lg in member.run.loggers if isinstance(lg, TensorBoardLogger)]
    if node is not None and writers and member.net is not None:
        write_weight_snapshots(writers, member.solo_net(), member.global_step, node.get("rows", 128),
                               node.get("cols", 512))
