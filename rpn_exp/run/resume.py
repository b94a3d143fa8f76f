"""Where a run continues from: the checkpoint it is given (``ckpt_path``), or, for a sweep job run again into its
folder (``skip_completed=true``), its own ``last.ckpt``; a job already completed there is not run again.

``last.ckpt`` is the end of the last completed epoch: resuming there computes what an uninterrupted run computes.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig

from rpn_exp.config.build import ConfigError
from rpn_exp.config.configuration import changed_settings, flat_settings, resume_changes
from rpn_exp.config.legacy import upgrade_targets
from rpn_exp.config.naming import comparable_overrides
from rpn_exp.config.settings import RunSettings
from rpn_exp.run.checkpointing import (
    INTERRUPTED,
    LAST,
    UnsafeCheckpoint,
    check_epoch_boundary,
    check_resumable,
    load_checkpoint,
    relocate_best,
)
from rpn_exp.run.record import DONE, read_record

log = logging.getLogger("rpn_exp")


def resume_point(settings: RunSettings) -> str | None:
    """The checkpoint the run continues from: ``ckpt_path`` if given; else, with ``skip_completed``, the job's own
    ``last.ckpt`` (:func:`prepare_rerun`); else None (a fresh start)."""
    if settings.ckpt_path:
        return str(settings.ckpt_path)
    return prepare_rerun(settings.output_dir) if settings.skip_completed else None


def settings_change(cfg: DictConfig, out: Path) -> str | None:
    """For a job run again into its folder (``skip_completed=true``): what differs between the settings its record
    holds and the composed config now (a config file edited between the sweep and its resume, a default changed), as
    one line; None when nothing differs or there is no earlier record to compare."""
    try:
        record = read_record(out)
    except (OSError, ValueError):
        return None
    recorded = record.get("settings")
    if recorded is None:  # a record from before settings were kept: its configuration hash, if any
        return None
    changes = changed_settings(recorded, flat_settings(cfg))
    if not changes:
        return None
    shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
    return (f"skip_completed=true: {out.name} was run ({record.get('status')}) with other settings than the config "
            f"composes now: {shown}. Resume it with the settings it had, or give allow_config_change=true to run it "
            f"again from the start with the new ones")


def rerun_state(cfg: DictConfig, settings: RunSettings, overrides: list[str]) -> tuple[str | None, dict | None]:
    """For a job run again into its folder (``skip_completed=true``): what changed in its settings since its record
    (:func:`settings_change`, None when nothing did) and, when nothing did, its completed record (None when it did
    not complete); (None, None) without ``skip_completed``. Raises ValueError when the folder holds another sweep's
    completed job (:func:`completed_record`)."""
    if not settings.skip_completed:
        return None, None
    changed = settings_change(cfg, settings.output_dir)
    return changed, None if changed else completed_record(settings.output_dir, overrides)


def completed_record(out: Path, overrides: list[str]) -> dict | None:
    """The completed record already in ``out`` for the same overrides, or None if the job must run.

    Raises ValueError when ``out`` holds a completed job with other overrides: it belongs to another sweep.
    """
    try:
        record = read_record(out)
    except (OSError, ValueError):
        return None
    if record.get("status") not in DONE:
        return None
    ours, theirs = comparable_overrides(overrides), comparable_overrides(record.get("overrides", []))
    if ours != theirs:
        raise ValueError(
            f"skip_completed=true: {out} holds a completed job with overrides {theirs}, not {ours}; re-run the "
            "same sweep command into that folder, or give a fresh hydra.sweep.dir"
        )
    return record


def prepare_rerun(out: Path) -> str | None:
    """A job run again into its folder (``skip_completed=true``) that did not complete: it continues from its own
    ``last.ckpt`` (the end of its last completed epoch; returned), or, without one, starts from a clean folder:
    the earlier attempt's checkpoints, event files and logs are removed (its ``.hydra/`` and record stay until
    the new record replaces it)."""
    last = out / "checkpoints" / LAST
    if last.is_file():
        log.info("resuming %s from its last completed epoch: %s", out.name, last)
        return str(last)
    clear_attempt(out)
    return None


def clear_attempt(out: Path) -> None:
    """Remove an earlier attempt's checkpoints, event files and logs from the job folder ``out``."""
    for folder in (out / "checkpoints", out / "csv"):
        shutil.rmtree(folder, ignore_errors=True)
    for stale in [*out.glob("events.out.tfevents.*"), out / "hparams.yaml"]:
        stale.unlink(missing_ok=True)


def check_checkpoint(path: str | None, net) -> None:
    """Refuse a ``ckpt_path`` (or a sweep job's own last.ckpt) that cannot be resumed into ``net``."""
    if path is None:
        return
    try:
        check_resumable(path, net)
    except ValueError as error:
        raise ConfigError(f"ckpt_path={path}: {error}") from error


def check_resume(path: str | None, cfg: DictConfig, settings: RunSettings) -> dict:
    """Before a resumed run writes anything: refuse a checkpoint that cannot be read safely or was trained with other
    settings than ``cfg`` (:func:`check_settings`); returns what the run's record says of the resume (the settings
    it changed, a best checkpoint that is gone)."""
    if path is None:
        return {}
    try:
        checkpoint = load_checkpoint(path)
    except FileNotFoundError:
        raise ConfigError(f"ckpt_path={path}: no such file (a run keeps its checkpoints in <run folder>/"
                          "checkpoints/)") from None
    except UnsafeCheckpoint as error:
        raise ConfigError(f"ckpt_path={path}: {error}") from None
    except Exception as error:  # unreadable: check_checkpoint says how, once the network is built
        log.debug("%s is not readable here (%s)", path, error)
        return {}
    if not isinstance(checkpoint, dict):  # not a checkpoint: check_checkpoint says so once the network is built
        return {}
    try:
        check_epoch_boundary(Path(path), checkpoint)
    except ValueError as error:
        raise ConfigError(f"ckpt_path={path}: {error}") from error
    noted = {}
    relocate_best(checkpoint, path)
    changes = check_settings(path, checkpoint, cfg, settings.allow_config_change)
    if changes:
        noted["config_changes"] = changes
        if any(line.startswith("optimizer.lr:") for line in changes):  # it trains on the checkpoint's schedule
            noted["lr"] = checkpoint["hyper_parameters"]["config"]["optimizer"]["lr"]
    best, _ = best_checkpoint(checkpoint)
    if best and not Path(best).is_file():
        log.warning("ckpt_path=%s names its best checkpoint %s, which is gone: val/acc_best and the tested weights "
                    "come from the epochs trained from here on", path, best)
        noted["missing_best_checkpoint"] = best
    return noted


def check_settings(path: str, checkpoint: dict, cfg: DictConfig, allow_change: bool = False) -> list[str]:
    """The settings a resume changes from those the checkpoint was trained with (:func:`resume_changes`): a change of
    the data split is refused always (it would train on samples the checkpoint's run validated or tested on), any
    other unless ``allow_config_change=true`` (then returned, to be recorded)."""
    saved = (checkpoint.get("hyper_parameters") or {}).get("config")
    if not isinstance(saved, dict):  # a checkpoint without its config (not rpn_exp's): nothing to compare
        return []
    split, other = resume_changes(upgrade_targets(saved), cfg)
    if split:
        raise ConfigError(f"ckpt_path={path}: resuming with {'; '.join(split)} would change which samples train, "
                          "validate and test (the checkpoint's weights have seen its own training split); resume "
                          "with the seed and dataset settings it was trained with, or start a new run")
    if other and not allow_change:
        shown = "; ".join(other[:6]) + (f"; and {len(other) - 6} more" if len(other) > 6 else "")
        raise ConfigError(f"ckpt_path={path} was trained with other settings than the config composes now: {shown}. "
                          "Resume with the settings it had, or give allow_config_change=true to continue from its "
                          "weights and training state with the new ones (its optimizer and scheduler state, "
                          "learning rate included, still come from the checkpoint; result.json lists the changes)")
    if other:
        log.warning("ckpt_path=%s: continuing with changed settings (allow_config_change=true): %s", path,
                    "; ".join(other))
    return other


def interruption_checkpoints(out: Path) -> dict:
    """Where an interrupted run can continue: ``last.ckpt`` (the last completed epoch: resume there for the same
    result as an uninterrupted run) and ``interrupted.ckpt`` (the state when it stopped); None where absent."""
    folder = out / "checkpoints"
    return {key: str(folder / name) if (folder / name).is_file() else None
            for key, name in (("last_checkpoint", LAST), ("interrupted_checkpoint", INTERRUPTED))}


def best_checkpoint(checkpoint: dict) -> tuple[str | None, float | None]:
    """(path, score) of the best checkpoint a checkpoint names: a stacked member's own keys, or the state of the solo
    run's ``ModelCheckpoint`` callback; (None, None) when it names none."""
    if checkpoint.get("best_checkpoint"):
        return checkpoint["best_checkpoint"], checkpoint.get("best_score")
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and state.get("best_model_path"):
            score = state.get("best_model_score")
            return state["best_model_path"], float(score) if score is not None else None
    return None, None
