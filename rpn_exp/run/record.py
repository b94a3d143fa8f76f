"""The per-run record: ``result.json`` in the run's output folder, its status vocabulary and its summary line."""

from __future__ import annotations

import json
import os
import socket
from enum import StrEnum
from pathlib import Path
from typing import Any, TypedDict

from rpn_exp.config.build import is_baseline_model
from rpn_exp.files import open_new
from rpn_exp.nn.describe import STRUCTURE_HPARAMS, per_layer
from rpn_exp.run.atomic import atomic_write

RECORD_FILE = "result.json"


class Status(StrEnum):
    """Every status a job can show: those a run writes into its record, and those a summary reads off a job folder
    (a string enum: ``Status.COMPLETED == "completed"``, and it is written to JSON as that string)."""

    RUNNING = "running"  # written when the run starts; replaced by its outcome
    COMPLETED = "completed"
    DRY_RUN = "dry_run"
    DIVERGED = "diverged"  # the training loss became NaN or infinite
    PRUNED = "pruned"  # stopped at a rung of the pruner: dominated (rpn_exp.run.pruning); not tested
    INTERRUPTED = "interrupted"  # SIGTERM or Ctrl-C; its last.ckpt resumes it
    FAILED = "failed"
    KILLED = "killed"  # read: a running record whose process is gone (SIGKILL, out of memory)
    UNKNOWN = "unknown"  # read: a running record whose process ended but could not write its outcome (a full disk)
    MISSING = "missing"  # read: a job folder without a record
    UNREADABLE = "unreadable"  # read: a record that cannot be parsed
    PENDING = "pending"  # read: a planned job that has no folder yet


#: The outcomes a run writes: a record with one of these is final.
FINAL = frozenset({Status.COMPLETED, Status.DRY_RUN, Status.DIVERGED, Status.PRUNED, Status.INTERRUPTED,
                   Status.FAILED})
#: The final outcomes a resumed sweep keeps (``skip_completed``): the others are run again.
DONE = frozenset({Status.COMPLETED, Status.PRUNED})


class Record(TypedDict, total=False):
    """``result.json``: what one run was asked to do, what it built and how it ended (every key a run may write).

    Written by :class:`rpn_exp.run.lifecycle.Run` (solo and stacked alike); read by the sweep progress lines, the
    summary rows and the report.
    """

    # the run, when it starts (rpn_exp.run.lifecycle.new_record)
    status: Status
    pid: int
    host: str
    output_dir: str
    overrides: list[str]
    choices: dict[str, str | None]
    seed: int
    tags: list[str]
    debug: bool
    reconciliation_hparams: dict[str, Any]  # r, p, q, l as configured (None: automatic)
    cluster_job: str | None
    lr: float | None
    max_epochs: int | None
    provenance: dict[str, Any]
    resumed_from: str | None
    threads: int  # intra-op threads it computed with (rpn_exp.run.threads)
    stacked_group: dict[str, Any]  # name, members, member: a member of a stacked group only
    configuration: str  # what it trains, but for the seed (rpn_exp.config.configuration): runs that pool
    settings: dict[str, Any]  # the composed config it trains with, flat (a resume compares it)
    # what it built (rpn_exp.nn.describe.model_record), and its data
    model: str
    dataset: str
    expansion: str
    reconciliation: str
    interdependence: str
    remainder: str
    widths: list[int]
    learnable_params: int
    frozen_params: int
    identity_params: int
    compression_vs_identity: float
    layers: list[dict[str, Any]]  # one row per layer: m, n, D, l, path, rank bound, ψ's hyper-parameters
    data_sizes: dict[str, int]
    frequency_loss: float  # the training loss of predicting the class frequencies (rpn_exp.run.learning)
    # how it ended
    metrics: dict[str, float]
    best_checkpoint: str | None
    epochs: int
    global_step: int
    wall_time_s: float
    error: str
    flag: str  # a completed run that learned nothing or exploded (rpn_exp.run.learning)
    pruned: dict[str, Any]  # a pruned run: rung, epoch, val_acc, margin, dominated_by (rpn_exp.run.rungs)
    traceback: str
    last_checkpoint: str | None  # an interrupted run: where it resumes exactly
    interrupted_checkpoint: str | None


def process_alive(record: dict) -> bool:
    """Whether the process that wrote a ``running`` record still runs (True when that cannot be told: another
    host, or a record without its pid)."""
    pid, host = record.get("pid"), record.get("host")
    if pid is None or host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json(path: str | Path, data: dict) -> Path:
    """Write ``data`` as JSON to ``path`` atomically and return the path.

    Through :func:`~rpn_exp.run.atomic.atomic_write`: a reader never sees a partial file, and a failed write (a full
    disk) leaves ``path`` with its last good content.
    """
    text = (json.dumps(data, indent=2, default=_jsonable) + "\n").encode()
    return atomic_write(path, lambda handle: handle.write(text))


def write_record(folder: str | Path, record: Record) -> Path:
    """Write ``record`` to ``folder/result.json`` atomically and return the path."""
    return write_json(Path(folder) / RECORD_FILE, record)


#: Beside a sweep's jobs: one line per job refused before it wrote anything (its folder's earlier record kept), read by
#: the sweep's summary so that the sweep says so and exits non-zero.
REFUSED_FILE = "refused.jsonl"


def note_refused(sweep_dir: str | Path | None, job: str, why: str) -> None:
    """Append ``{"job", "why"}`` to the sweep folder's :data:`REFUSED_FILE` (one short line: an atomic append)."""
    if not sweep_dir:
        return
    line = (json.dumps({"job": job, "why": why}) + "\n").encode()
    fd = os.open(Path(sweep_dir) / REFUSED_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_refused(sweep_dir: str | Path) -> list[dict]:
    """The refusals :func:`note_refused` wrote into ``sweep_dir`` ([] when none)."""
    path = Path(sweep_dir) / REFUSED_FILE
    if not path.is_file() or path.is_symlink():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


#: Space a run keeps next to its record from its start to its end, so that its outcome can be written on a full disk:
#: the run gives it up to write its last record (:func:`save_outcome`). A running record whose process is gone
#: still has it if the process was killed, and lacks it if the process ended but even then could not write.
RESERVE_FILE, RESERVE_BYTES = ".outcome_reserve", 64 * 1024


def reserve_space(folder: str | Path) -> None:
    """Keep :data:`RESERVE_BYTES` beside the record (nothing if the disk has no room for it already)."""
    try:
        with open_new(Path(folder) / RESERVE_FILE) as handle:
            handle.write(b"\0" * RESERVE_BYTES)
    except OSError:
        (Path(folder) / RESERVE_FILE).unlink(missing_ok=True)


def save_outcome(folder: str | Path, record: Record) -> None:
    """Write the run's last record: on a full disk, give up the reserved space and write again. Raises OSError when
    even that fails."""
    reserve = Path(folder) / RESERVE_FILE
    try:
        write_record(folder, record)
    except OSError:
        if not reserve.is_file():
            raise
        reserve.unlink()
        write_record(folder, record)
    reserve.unlink(missing_ok=True)


#: The type of each key of a record that readers rely on (a record of another shape is refused, not half-read).
RECORD_SHAPE = {"status": str, "metrics": dict, "layers": list, "overrides": list, "choices": dict, "settings": dict}


def read_record(folder: str | Path) -> Record:
    """``folder/result.json``; ValueError for a file that is not JSON, or JSON of another shape (a list, a status
    that is not a string, metrics that are not a mapping, ...)."""
    record = json.loads((Path(folder) / RECORD_FILE).read_text())
    if not isinstance(record, dict):
        raise ValueError(f"not a record of rpn_exp: it holds a JSON {type(record).__name__}, not an object")
    wrong = [f"{key} is a {type(record[key]).__name__}" for key, kind in RECORD_SHAPE.items()
             if key in record and not isinstance(record[key], kind)]
    if "status" not in record or wrong:
        raise ValueError(f"not a record of rpn_exp: {'; '.join(wrong) or 'it has no status'}")
    return record


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def model_label(record: Record) -> str:
    """What was trained, in a few words: ``taylor x dual_lphm r=5 k=1 p=8/2 q=64/128`` for an RPN
    (``dual_lphm/identity`` where layers differ), ``mlp 64-32-10`` for a dense baseline; from the config's choices for
    a run that failed before building."""
    choices = record.get("choices") or {}
    model = record.get("model") or choices.get("model") or "rpn"
    if is_baseline_model(model):
        return " ".join([model, "-".join(map(str, record.get("widths", [])))]).strip()
    families = [row.get("reconciliation") for row in record.get("layers", []) if row.get("reconciliation")]
    family = "/".join(dict.fromkeys(families)) or record.get("reconciliation") or choices.get("reconciliation")
    expansion = record.get("expansion") or choices.get("expansion")
    hparams = "".join(f" {k}={v}" for k, v in structure_hparams(record).items())
    label = " x ".join(part for part in (expansion, family) if part) + hparams
    return label if model == "rpn" else f"{model} {label}"


def structure_hparams(record: Record) -> dict[str, Any]:
    """ψ's structural hyper-parameters in force, ``8/2`` where layers differ (a fitted p, a per-layer override);
    for a run that failed before building, those configured."""
    layers = record.get("layers") or []
    if not layers:
        configured = record.get("reconciliation_hparams") or {}
        return dict(sorted(configured.items(), key=lambda item: (STRUCTURE_HPARAMS + (item[0],)).index(item[0])))
    values = {key: per_layer(layers, key) for key in STRUCTURE_HPARAMS}
    return {key: value for key, value in values.items() if value != ""}


#: The longest error a progress line, a summary line or ``summary.md`` shows (``result.json`` keeps it whole).
ERROR_CHARS = 300


def one_line(message: str, limit: int = ERROR_CHARS) -> str:
    """An error message as one line that keeps what to do about it: its lines joined (a list's items by ``;``);
    over ``limit`` characters its middle gives way to ``…``, so that both the start (what went wrong) and the end
    (how to fix it, where rpn_exp's messages say it) stay."""
    text = ""
    for line in (raw.strip().lstrip("-*").strip() for raw in message.splitlines()):
        if line:
            text += line if not text else (" " if text.endswith(":") else "; ") + line
    if len(text) <= limit:
        return text
    head = limit // 3
    return text[:head].rstrip() + " … " + text[len(text) - (limit - head - 3):].lstrip()


def summary_line(record: Record) -> str:
    """One line: status, dataset, what was trained, parameters, accuracy, time, folder (what is unknown is left
    out)."""
    metrics = record.get("metrics", {})
    dataset = record.get("dataset") or (record.get("choices") or {}).get("dataset")
    parts = [f"[{record.get('status', '?')}]", *([dataset] if dataset else []), model_label(record)]
    if "learnable_params" in record:
        compression = record.get("compression_vs_identity")
        versus = ""
        if not is_baseline_model(record.get("model", "rpn")) and compression:
            versus = (f" ({compression:.1f}x fewer than identity)" if compression >= 1 else
                      f" ({1 / compression:.1f}x more than identity)")
        parts.append(f"{record['learnable_params']:,} learnable params{versus}")
    for key, label in (("test/acc", "test acc"), ("val/acc_best", "best val acc")):
        if metrics.get(key) is not None:
            parts.append(f"{label} {metrics[key]:.4f}")
    if record.get("wall_time_s") is not None:
        parts.append(f"{record['wall_time_s']:.1f} s")
    if record.get("flag"):
        parts.append(record["flag"])
    if record.get("error"):
        parts.append(f"error: {one_line(record['error'])}")
    return "rpn_exp " + " | ".join(parts) + f" | {record.get('output_dir', '')}"
