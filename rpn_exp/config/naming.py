"""Names of sweep jobs: the job number, zero-padded so that folders and TensorBoard runs sort, and what it sets.

``conf/hydra/default.yaml`` names each job's folder ``${rpn_exp.job_dir:${hydra.job.num},${hydra.overrides.task}}``,
e.g. ``003_lorr_r8`` for job 3 of ``reconciliation=lorr reconciliation.r=8``. The name depends only on the job's
number and overrides, so re-running a sweep command finds the same folders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

#: Config groups whose choice (``group=option``) and keys (``group.key=value``) name a job.
LABEL_GROUPS = ("dataset", "expansion", "reconciliation", "interdependence", "remainder", "model", "optimizer",
                "scheduler", "experiment")
#: Top-level keys that name a job (``key=value``).
LABEL_KEYS = ("seed",)
#: Width of the zero-padded job number: folders sort in job order up to 1,000 jobs.
NUMBER_WIDTH = 3


def job_label(overrides: Iterable[str]) -> str:
    """``lorr_r8`` for ``["reconciliation=lorr", "reconciliation.r=8"]``: the options and values a job sets.

    A group choice contributes its option (a nested group's too: ``model/patch=cylinder``),
    ``group.sub.key=value`` contributes ``keyvalue`` and ``seed=3`` contributes ``seed3``; overrides of other keys
    (paths, trainer, callbacks, hydra, ...) are left out, and so is a value that is a path
    (``dataset.root=/data/mnist``: where the data is, not what the job does).
    A per-layer override names its layer (``L1identity``, ``L0heads2``); a list value is written ``64-32`` and an
    empty one ``none``. Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``-``; the label is at
    most 60 characters.
    """
    parts = []
    for override in overrides:
        key, sep, value = str(override).partition("=")
        key = key.lstrip("+~")
        value = _value(value)
        layer = re.search(r"layer_overrides\.(\d+)\.(.+)$", key.split("@")[-1])
        if sep and layer:  # a per-layer override: L1identity (a group placed there), L0heads2 (a value)
            parts.append(f"L{layer.group(1)}{value}" if "@" in key else f"L{layer.group(1)}{layer.group(2)}{value}")
            continue
        group, dot, _ = key.partition(".")
        group = group.split("/")[0]  # a nested group's choice (model/patch=cylinder) names the job as its group's
        if not sep or "@" in key or "/" in value:  # a path (dataset.root=...) names a place, not the job
            continue
        if (not dot and group in LABEL_GROUPS) or key in LABEL_KEYS:
            parts.append(value if group in LABEL_GROUPS else f"{key}{value}")
        elif dot and group in LABEL_GROUPS:
            parts.append(f"{key.rsplit('.', 1)[1]}{value}")
    clean = (re.sub(r"[^A-Za-z0-9._-]+", "-", part).strip("-") for part in parts)
    return "_".join(part for part in clean if part)[:60]


def _value(text: str) -> str:
    """A value as a label writes it: ``[64,32]`` -> ``64-32``, ``[]`` -> ``none``."""
    if text.startswith("[") and text.endswith("]"):
        return "-".join(v.strip() for v in text[1:-1].split(",") if v.strip()) or "none"
    return text


#: Overrides that do not change what a job computes, only where, how fast and how verbosely: a resumed job or sweep
#: may differ from its record in these (a slow sweep resumed with ``threads=1`` on a busy machine is the same sweep).
NOT_COMPARED = ("skip_completed", "allow_config_change", "paths.", "progress_bars_in_sweeps", "print_config",
                "launcher", "threads", "callbacks.progress_bar.", "hydra.launcher.")


def comparable_overrides(overrides: Iterable[str]) -> list[str]:
    """The overrides that define what a job or sweep computes, sorted (those of :data:`NOT_COMPARED` left out)."""
    return sorted(o for o in map(str, overrides) if not o.split("=", 1)[0].lstrip("+~").startswith(NOT_COMPARED))


def job_dir(num, overrides: Iterable[str] = ()) -> str:
    """The folder name of sweep job ``num``: ``003_lorr_r8`` (just ``003`` when no override names it)."""
    label = job_label(overrides or ())
    return f"{int(num):0{NUMBER_WIDTH}d}" + (f"_{label}" if label else "")


def run_suffix(overrides: Iterable[str] = ()) -> str:
    """``_lorr_r8`` after a single run's time stamp (empty when no override names it)."""
    label = job_label(overrides or ())
    return f"_{label}" if label else ""


def job_number(name: str) -> int | None:
    """The job number a folder name starts with (``003_lorr_r8`` -> 3), None if it does not."""
    match = re.match(r"(\d+)(?:_|$)", name)
    return int(match.group(1)) if match else None


def basename(path: str) -> str:
    """The last part of a path (``outputs/x/multiruns/s/003_lorr_r8`` -> ``003_lorr_r8``)."""
    return Path(str(path)).name


def register_resolvers() -> None:
    """Make ``${rpn_exp.job_dir:...}``, ``${rpn_exp.run_suffix:...}`` and ``${rpn_exp.basename:...}`` available
    to OmegaConf (idempotent)."""
    from omegaconf import OmegaConf

    for name, function in (("rpn_exp.job_dir", job_dir), ("rpn_exp.run_suffix", run_suffix),
                           ("rpn_exp.basename", basename)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
