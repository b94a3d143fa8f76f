"""Settings checked before anything is built or trained: each refusal names the key, the value and what to give.

These are the run's scalar settings (optimizer, scheduler, data batching, epochs, seed) and overrides that add
keys nothing reads. Hyper-parameters of the component functions are checked where they are used (the functions
raise plain ``ValueError``s, which ``rpn_exp.config.build`` turns into ``ConfigError``s).
"""

from __future__ import annotations

import difflib
import math
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rpn_exp.config.build import ConfigError, instantiate_node
from rpn_exp.config.schema import MODEL_KEYS, check_types


def _number(cfg: DictConfig, key: str, *, integer: bool = False, low: float | None = None, high: float | None = None,
            low_open: bool = False, hint: str = ""):
    value = OmegaConf.select(cfg, key)
    if value is None:
        return
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        raise ConfigError(f"{key}={value!r} is invalid; it must be {'a finite number' if ok_type else kind}{hint}")
    if low is not None and (value < low or (low_open and value == low)):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ConfigError(f"{key}={value!r} is invalid; it must be {kind} {bound}{hint}")
    if high is not None and value > high:
        raise ConfigError(f"{key}={value!r} is invalid; it must be {kind} <= {high}{hint}")


def check_settings(cfg: DictConfig) -> None:
    """Refuse run settings that cannot work, before anything is built (ConfigError): first every type
    (``rpn_exp.config.schema``), then the ranges and rules between keys that a type cannot say."""
    check_types(cfg)
    _number(cfg, "seed", integer=True, low=0, high=SEED_MAX, hint=", e.g. seed=42")
    _number(cfg, "threads", integer=True, low=1, hint=", or null for the run's share of this machine's cores")
    _number(cfg, "optimizer.lr", low=0, low_open=True, hint=", e.g. optimizer.lr=1e-3")
    _number(cfg, "optimizer.weight_decay", low=0, hint=", e.g. optimizer.weight_decay=2e-4")
    _number(cfg, "scheduler.gamma", low=0, low_open=True, high=1, hint=" (the factor of the learning rate per epoch)")
    check_data_values(cfg)
    problem = task_name_problem(cfg.get("task_name", ""))
    if problem:
        raise ConfigError(problem)
    if not cfg.get("dry_run", False):
        _number(cfg, "trainer.max_epochs", integer=True, low=1,
                hint=", or evaluate a checkpoint with: python -m rpn_exp.eval ckpt_path=<file.ckpt>")
        check_training(cfg)


def check_data_values(cfg: DictConfig) -> None:
    """Batch sizes of at least 1 and split fractions that leave training data."""
    _number(cfg, "dataset.batch_size", integer=True, low=1, hint=", e.g. dataset.batch_size=64")
    _number(cfg, "dataset.eval_batch_size", integer=True, low=1, hint=", e.g. dataset.eval_batch_size=1024")
    for key in ("dataset.val_fraction", "dataset.test_fraction"):
        _number(cfg, key, low=0, low_open=True, high=0.99, hint=", a fraction of the data, e.g. 0.1")
    fractions = [OmegaConf.select(cfg, k) or 0 for k in ("dataset.val_fraction", "dataset.test_fraction")]
    if sum(fractions) >= 1:
        raise ConfigError(f"dataset.val_fraction + dataset.test_fraction = {sum(fractions)} leaves no training data; "
                          "keep their sum below 1")


#: numpy's seed range (``np.random.seed``), which ``lightning.seed_everything`` also requires.
SEED_MAX = 2**32 - 1
#: The metrics the LightningModule logs that a callback may monitor (``rpn_exp.run.module.RPNClassifier``).
MONITORABLE = ("val/acc", "val/loss", "val/acc_best", "train/loss_epoch", "train/acc")


def check_training(cfg: DictConfig) -> None:
    """Optimizer, scheduler, trainer and callback values a type allows but training cannot use."""
    _number(cfg, "optimizer.momentum", low=0, hint=", e.g. optimizer.momentum=0.9")
    if cfg.get("pruner") is not None:  # the pruner's own rules (rpn_exp.run.pruning), refused with their key
        instantiate_node(cfg.pruner, "pruner")
    _number(cfg, "scheduler.T_max", integer=True, low=1, hint=" (epochs of one cosine half-period)")
    _number(cfg, "trainer.min_epochs", integer=True, low=0)
    _number(cfg, "trainer.accumulate_grad_batches", integer=True, low=1)
    _number(cfg, "trainer.log_every_n_steps", integer=True, low=1)
    _number(cfg, "trainer.gradient_clip_val", low=0)
    _number(cfg, "trainer.limit_train_batches", low=0, low_open=True,
            hint=" (a count of batches, or a fraction of them): with 0 nothing would train")
    max_epochs, min_epochs = OmegaConf.select(cfg, "trainer.max_epochs"), OmegaConf.select(cfg, "trainer.min_epochs")
    if isinstance(min_epochs, int) and isinstance(max_epochs, int) and min_epochs > max_epochs:
        raise ConfigError(f"trainer.min_epochs={min_epochs} is above trainer.max_epochs={max_epochs}; give "
                          f"trainer.min_epochs <= {max_epochs}")
    every = OmegaConf.select(cfg, "trainer.check_val_every_n_epoch")
    if every is not None:
        _number(cfg, "trainer.check_val_every_n_epoch", integer=True, low=1, high=max_epochs,
                hint=f" so that validation (and the best checkpoint) happens at least once in {max_epochs} epochs")
    devices = OmegaConf.select(cfg, "trainer.devices")
    if isinstance(devices, int) and not isinstance(devices, bool) and devices < -1 or devices in (0, "0", []):
        raise ConfigError(f"trainer.devices={devices!r} is invalid; give a number of devices >= 1, -1 (all) or auto")
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator") or "")
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.accelerator={accelerator} but this machine has no usable GPU; use "
                              f"trainer=cpu (or trainer.accelerator=cpu)")
    for name, callback in (cfg.get("callbacks") or {}).items():
        check_callback(f"callbacks.{name}", callback)
    for name, logger in (cfg.get("logger") or {}).items():
        for field in ("save_dir", "root_dir"):
            problem = folder_problem(f"logger.{name}.{field}", str(logger[field])) if logger.get(field) else None
            if problem:
                raise ConfigError(problem)


def check_callback(key: str, callback: DictConfig) -> None:
    """A monitored metric the module logs, a mode of min or max, a patience >= 0, a snapshot of >= 1 cell."""
    monitor = callback.get("monitor")
    if monitor is not None and monitor not in MONITORABLE:
        guess = difflib.get_close_matches(str(monitor), MONITORABLE, n=1)
        hint = f"; did you mean {guess[0]}?" if guess else ""
        raise ConfigError(f"{key}.monitor={monitor!r} is not a metric the model logs; valid choices: "
                          f"{', '.join(MONITORABLE)}{hint}")
    mode = callback.get("mode")
    if mode is not None and mode not in ("min", "max"):
        raise ConfigError(f"{key}.mode={mode!r} is invalid; valid choices: min, max")
    if monitor is not None and mode is not None and (mode == "max") != (monitor.endswith("acc") or
                                                      monitor.endswith("acc_best")):
        better = "max" if mode == "min" else "min"
        raise ConfigError(f"{key}.mode={mode} would keep the worst {monitor}; give {key}.mode={better}")
    for field in ("patience", "refresh_rate", "rows", "cols"):
        if callback.get(field) is not None:
            holder = OmegaConf.create()
            OmegaConf.update(holder, f"{key}.{field}", callback.get(field))
            _number(holder, f"{key}.{field}", integer=True, low=0 if field in ("patience", "refresh_rate") else 1)


def check_added_keys(overrides: list[str], groups: set[str]) -> None:
    """Refuse ``+key=value`` overrides that add a key nothing reads: a new top-level key (``+foo=1``), or a
    model key that is not one of :data:`MODEL_KEYS` (``+model.hiden=[64]``, a typo of ``hidden``)."""
    for override in overrides:
        if not override.startswith("+") or override.startswith("++"):
            continue
        key = override[1:].split("=", 1)[0]
        if "@" in key:  # +group@path=option: a config group placed somewhere (e.g. per-layer overrides)
            continue
        head, _, rest = key.partition(".")
        if not rest and head not in groups:
            raise ConfigError(f"{override} adds a top-level key that nothing reads; remove it (a typo of an "
                              f"existing key? see python -m rpn_exp --cfg job)")
        if head == "model" and rest.split(".")[0] not in MODEL_KEYS:
            guess = difflib.get_close_matches(rest.split(".")[0], MODEL_KEYS, n=1)
            hint = f"; did you mean model.{guess[0]}?" if guess else ""
            raise ConfigError(f"{override} adds model.{rest.split('.')[0]}, which the model does not read; valid keys: "
                              f"{', '.join(MODEL_KEYS)}{hint}")


def task_name_problem(task) -> str | None:
    """Why ``task_name`` cannot name a folder under ``paths.log_dir`` (it would lead out of it), or None."""
    task = str(task or "")
    if not task or "/" in task or task in (".", "..") or "\0" in task:
        return (f"task_name={task!r} is invalid; it names a folder under paths.log_dir: give a plain name such as "
                f"task_name=my_sweep (no '/', not '..')")
    return None


def folder_problem(key: str, folder: str) -> str | None:
    """Why ``folder`` cannot be the output folder (a file is in its way, or it cannot be created), or None."""
    path = Path(folder)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return f"{key}={folder} cannot be a folder: {blocker} is a file; give another {key}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"{key}={folder} cannot be created ({error.strerror}); give a folder you can write to"
    if not os.access(path, os.W_OK):
        return f"{key}={folder} is not writable; give a folder you can write to"
    return None


def check_eval_overrides(saved: DictConfig, cfg: DictConfig, overrides) -> None:
    """For ``rpn_exp.eval``: each override names a key of the checkpoint's ``saved`` config, and ``cfg`` (saved
    merged with the overrides) gives the data module values it can use; ConfigError otherwise."""
    from rpn_exp.config.schema import check_target

    missing = object()
    for override in overrides:
        key = override.partition("=")[0]
        if OmegaConf.select(saved, key, default=missing) is missing:
            parent = key.rpartition(".")[0]
            node = OmegaConf.select(saved, parent) if parent else saved
            valid = ", ".join(str(k) for k in node) if isinstance(node, DictConfig) else "none"
            where = f" of {parent}" if parent else ""
            raise ConfigError(f"{key} is not a key of the run's saved config; valid keys{where}: {valid}")
    check_target(cfg.dataset, "dataset")
    check_data_values(cfg)
