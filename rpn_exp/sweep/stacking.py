"""Which jobs of a sweep can train together (``launcher=stacked``): shape signatures and groups.

Two jobs stack when their composed configs are equal once the member keys are set aside: the keys a member of a
stacked run keeps for itself (seed, optimizer hyper-parameters, scheduler, initialization, epochs, tags) and the
paths that name its own folder. What is left fixes every parameter shape, the data, the batching, the optimizer's
class and the Trainer, so the members step together under one Trainer.
The rank ``reconciliation.r`` of a ψ that pads its rank (``Reconciliation.rank_pads``: lorr, lphm, dual_lphm) is set
aside too: its members train in the shape of the group's largest r, the others zero-padded (``rpn_exp.nn.padding``);
so is the width of an MLP's hidden layer (``model=mlp``, one hidden layer: :func:`pads_width`), its members trained
in the shape of the widest.
A stacked member honours everything a solo run honours (precision, gradient clipping and accumulation, the
accelerator, early stopping and every callback and logger below, each per member), except what cannot be per
member, which makes a job run solo with the reason said in :func:`solo_reason`: more than one device (a group
trains in one process), ``fast_dev_run``, validation inside an epoch, ``model.compile``, a dry run, an optimizer
that couples parameters (not :data:`PER_PARAMETER_OPTIMIZERS`), and callbacks or loggers not listed in
:data:`STACKED_CALLBACKS` and :data:`STACKED_LOGGERS` (a callback runs per member against the member's view of
the Trainer, which Lightning's own callbacks and rpn_exp's are known to need only).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from omegaconf import DictConfig

from rpn_exp.config.settings import RunSettings, resolved_config, run_settings
from rpn_exp.run.stacked.optimizer import PER_PARAMETER_OPTIMIZERS

#: Config keys each member of a stacked group keeps for itself (they change no shape).
MEMBER_KEYS = ("seed", "dataset.seed", "optimizer", "scheduler", "model.init", "trainer.max_epochs",
               "trainer.min_epochs", "tags", "paths", "trainer.default_root_dir", "ckpt_path")
#: Set aside as well when the ψ pads its rank.
RANK_KEY = "reconciliation.r"
#: Set aside as well (its depth kept) for an MLP of one hidden layer (:func:`pads_width`).
WIDTH_KEY = "model.hidden"
#: Processing between an MLP's layers that acts on each unit alone and keeps no state: zero-padded units change
#: nothing the next layer reads (its weights from them are zero).
UNITWISE = ("relu", "gelu", "sigmoid", "tanh", "silu", "dropout")
#: Callbacks known to run per member (the others make a job run solo; progress bars are the group's).
STACKED_CALLBACKS = ("model_checkpoint", "early_stopping", "lr_monitor", "progress_bar", "rich_progress_bar",
                     "weight_snapshots")
#: Loggers each member writes to.
STACKED_LOGGERS = ("tensorboard", "csv", "mlflow")
#: Trainer settings a group's one process can honour only for these values.
TRAINER_VALUES = {"devices": (1, "1"), "num_nodes": (None, 1), "strategy": (None, "auto"),
                  "fast_dev_run": (None, False, 0), "val_check_interval": (None, 1.0)}


def _drop(container: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        container = container.get(key)
        if not isinstance(container, dict):
            return
    container.pop(leaf, None)


def signature(cfg: DictConfig) -> str:
    """What must be equal for two jobs to stack: the resolved config without :data:`MEMBER_KEYS`, the callbacks'
    and loggers' folders and run names (each member writes its own), as canonical JSON."""
    config = resolved_config(cfg)
    config.pop("hydra", None)
    optimizer_class = (config.get("optimizer") or {}).get("_target_")
    for key in MEMBER_KEYS:
        _drop(config, key)
    if _pads_rank(run_settings(cfg)):
        _drop(config, RANK_KEY)
    if pads_width(config.get("model") or {}):
        config["model"]["hidden"] = len(config["model"]["hidden"])
    for group in ("callbacks", "logger"):
        for node in (config.get(group) or {}).values():
            if isinstance(node, dict):
                for key in ("dirpath", "save_dir", "log_dir", "run_name"):
                    node.pop(key, None)
    config["optimizer"] = {"_target_": optimizer_class}  # one optimizer steps the group: its class is shared
    return json.dumps(config, sort_keys=True, default=str)


def _pads_rank(settings: RunSettings) -> bool:
    from hydra.utils import get_class

    target = settings.reconciliation_target
    try:
        return bool(getattr(get_class(target), "rank_pads", False)) if target else False
    except ImportError:  # a ψ that does not exist: its job fails with the key to change, solo or stacked
        return False


def pads_width(model: dict) -> bool:
    """Whether jobs with this (resolved) ``model`` node that differ in the width of its hidden layer stack, the
    narrower zero-padded to the widest (``rpn_exp.nn.padding``): an MLP of one hidden layer, its functions fixed
    (``model.functions``) as identity κ without post-processing, a ψ with ``width_pads``, identity ξ and zero π, no
    per-layer overrides, no output processing and a :data:`UNITWISE` activation (or none)."""
    from hydra.utils import get_class

    functions, hidden = model.get("functions") or {}, model.get("hidden")
    if not isinstance(hidden, list) or len(hidden) != 1 or model.get("layer_overrides") or model.get(
            "output_processing") or model.get("activation") not in (None, *UNITWISE):
        return False
    try:
        kinds = {key: get_class((functions.get(key) or {}).get("_target_") or "")
                 for key in ("expansion", "reconciliation", "interdependence", "remainder")}
    except (ImportError, ValueError, AttributeError):
        return False
    return (getattr(kinds["expansion"], "identity", False) and not functions["expansion"].get("postprocess")
            and getattr(kinds["reconciliation"], "width_pads", False)
            and getattr(kinds["interdependence"], "identity", False)
            and getattr(kinds["remainder"], "name", "") == "zero")


def solo_reason(settings: RunSettings) -> str | None:
    """Why the job must run solo (a setting a stacked group cannot honour), or None when it can stack."""
    trainer = settings.trainer
    for key, allowed in TRAINER_VALUES.items():
        value = trainer.get(key, None)
        if value not in allowed and not (key == "devices" and value == "auto" and trainer.get("accelerator") == "cpu"):
            return f"trainer.{key}={value}"
    target = str((settings.optimizer or {}).get("_target_") or "")
    if target.rsplit(".", 1)[-1] not in PER_PARAMETER_OPTIMIZERS:
        return f"optimizer={target} (one optimizer steps every member: it must update each parameter on its own)"
    if settings.compile is not None:
        return f"model.compile={settings.compile}"
    for key in settings.callbacks:
        if key not in STACKED_CALLBACKS:
            return f"callbacks.{key}"
    for key in settings.loggers:
        if key not in STACKED_LOGGERS:
            return f"logger.{key}"
    if settings.dry_run:
        return "dry_run=true"
    return None


def stack_groups(configs: Sequence[DictConfig], workers: int = 1) -> list[list[int]]:
    """The jobs (indices into ``configs``) in groups that train together, in order of each group's first job.

    Jobs of equal :func:`signature` form a group (trained ``max_members`` at a time by the launcher, the others
    queued); a job with a :func:`solo_reason` or whose signature no other job shares is a group of one (a solo run).
    With fewer groups than ``workers`` (``hydra.launcher.n_jobs``), the largest is split in two (its first half of
    jobs, then the rest) until every worker has one or no group has two jobs: a worker without a group leaves its
    cores to a group's threads, which use them less well than a process each (BENCHMARKS.md, "Groups spread over
    the workers").
    """
    by_signature: dict[str, list[int]] = {}
    groups: list[list[int]] = []
    for index, cfg in enumerate(configs):
        if solo_reason(run_settings(cfg)) is not None:
            groups.append([index])
            continue
        key = signature(cfg)
        if key not in by_signature:
            by_signature[key] = []
            groups.append(by_signature[key])
        by_signature[key].append(index)
    while len(groups) < workers and max(map(len, groups), default=0) > 1:
        largest = max(groups, key=len)
        half = (len(largest) + 1) // 2
        groups[groups.index(largest):groups.index(largest) + 1] = [largest[:half], largest[half:]]
    return sorted(groups, key=lambda group: group[0])
