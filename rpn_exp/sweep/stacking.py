"""Which jobs of a sweep can train together (``launcher=stacked``): shape signatures and groups.

Two jobs stack when their composed configs are equal once the member keys are set aside: the keys a member of a
stacked run keeps for itself (seed, optimizer, scheduler, initialization, epochs, tags) and the paths that name its
own folder. What is left fixes every parameter shape, the data and the batching, so the members step together.
The rank ``reconciliation.r`` of a ψ that pads its rank (``Reconciliation.rank_pads``: lorr, lphm, dual_lphm) is set
aside too: its members train in the shape of the group's largest r, the others zero-padded (``rpn_exp.nn.padding``).
A job that the stacked loop cannot reproduce (a callback, trainer setting or logger it does not implement) runs
solo, with the reason said in :func:`solo_reason`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from omegaconf import DictConfig

from rpn_exp.config.settings import RunSettings, resolved_config, run_settings

#: Config keys each member of a stacked group keeps for itself (they change no shape).
MEMBER_KEYS = ("seed", "dataset.seed", "optimizer", "scheduler", "model.init", "trainer.max_epochs",
               "trainer.min_epochs", "tags", "paths", "trainer.default_root_dir", "ckpt_path")
#: Set aside as well when the ψ pads its rank.
RANK_KEY = "reconciliation.r"
#: Callbacks the stacked loop reproduces (the others make a job run solo).
STACKED_CALLBACKS = ("model_checkpoint", "lr_monitor", "progress_bar", "weight_snapshots")
#: Loggers the stacked loop writes to.
STACKED_LOGGERS = ("tensorboard", "csv")
#: Trainer settings the stacked loop implements, with the values it implements them for.
TRAINER_VALUES = {
    "devices": (1, "1", "auto"), "precision": ("32-true", "32", 32), "check_val_every_n_epoch": (1,),
    "fast_dev_run": (None, False, 0), "limit_train_batches": (None, 1.0), "limit_val_batches": (None, 1.0),
    "limit_test_batches": (None, 1.0),
    "max_steps": (None, -1), "max_time": (None,), "gradient_clip_val": (None, 0, 0.0),
    "accumulate_grad_batches": (None, 1), "val_check_interval": (None, 1.0), "strategy": (None, "auto"),
    "deterministic": (None, False),
}
#: Trainer settings the stacked loop honours whatever their value (or that change nothing it computes).
TRAINER_HONOURED = ("_target_", "default_root_dir", "min_epochs", "max_epochs", "accelerator", "log_every_n_steps",
                    "enable_model_summary", "enable_progress_bar", "enable_checkpointing", "logger", "callbacks")


def _drop(container: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        container = container.get(key)
        if not isinstance(container, dict):
            return
    container.pop(leaf, None)


def signature(cfg: DictConfig) -> str:
    """What must be equal for two jobs to stack: the resolved config without :data:`MEMBER_KEYS`, the callbacks'
    and loggers' folders (each member writes its own), as canonical JSON."""
    config = resolved_config(cfg)
    config.pop("hydra", None)
    for key in MEMBER_KEYS:
        _drop(config, key)
    if _pads_rank(run_settings(cfg)):
        _drop(config, RANK_KEY)
    for group in ("callbacks", "logger"):
        for node in (config.get(group) or {}).values():
            if isinstance(node, dict):
                for key in ("dirpath", "save_dir", "log_dir"):
                    node.pop(key, None)
    return json.dumps(config, sort_keys=True, default=str)


def _pads_rank(settings: RunSettings) -> bool:
    from hydra.utils import get_class

    target = settings.reconciliation_target
    try:
        return bool(getattr(get_class(target), "rank_pads", False)) if target else False
    except ImportError:  # a ψ that does not exist: its job fails with the key to change, solo or stacked
        return False


def solo_reason(settings: RunSettings) -> str | None:
    """Why the job must run solo (a setting the stacked loop does not implement), or None when it can stack."""
    trainer = settings.trainer
    for key in trainer:
        if key not in TRAINER_VALUES and key not in TRAINER_HONOURED:
            return f"trainer.{key}"
    for key, allowed in TRAINER_VALUES.items():
        value = trainer.get(key)
        if value not in allowed:
            return f"trainer.{key}={value}"
    accelerator = trainer.get("accelerator")
    if accelerator != "cpu" and not (accelerator in ("auto", None) and not _cuda()):
        return f"trainer.accelerator={accelerator} (the stacked loop trains on the CPU)"
    if settings.compile is not None:
        return f"model.compile={settings.compile}"
    for key in settings.callbacks:
        if key not in STACKED_CALLBACKS:
            return f"callbacks.{key}"
    monitor = settings.callbacks.get("model_checkpoint", {}).get("monitor")
    if monitor not in (None, "val/acc", "val/loss"):
        return f"callbacks.model_checkpoint.monitor={monitor}"
    for key in settings.loggers:
        if key not in STACKED_LOGGERS:
            return f"logger.{key}"
    if settings.dry_run:
        return "dry_run=true"
    return None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def stack_groups(configs: Sequence[DictConfig], max_members: int) -> list[list[int]]:
    """The jobs (indices into ``configs``) in groups that train together, in order of each group's first job.

    Jobs of equal :func:`signature` form a group, split into groups of at most ``max_members``; a job with a
    :func:`solo_reason` or whose signature no other job shares is a group of one (a solo run).
    """
    if isinstance(max_members, bool) or not isinstance(max_members, int) or max_members < 1:
        raise ValueError(f"max_members={max_members!r} is invalid; it must be an integer >= 1")
    by_signature: dict[str, list[int]] = {}
    groups: list[list[int]] = []
    for index, cfg in enumerate(configs):
        if solo_reason(run_settings(cfg)) is not None:
            groups.append([index])
            continue
        key = signature(cfg)
        group = by_signature.get(key)
        if group is None or len(group) >= max_members:
            group = by_signature[key] = []
            groups.append(group)
        group.append(index)
    return groups
