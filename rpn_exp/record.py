"""The per-run record: ``result.json`` in the run's output folder, plus its text renderings."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

from .layers import RPNNetwork, count_frozen, count_learnable

RECORD_FILE = "result.json"
STATUSES = ("completed", "dry_run", "diverged", "interrupted", "failed", "running")


def model_record(net: RPNNetwork) -> dict:
    """Parameter counts, per-layer shapes and compression against identity reconciliation."""
    learnable = count_learnable(net)
    identity = sum(layer.identity_learnable() for layer in net.layers)
    return {
        "widths": list(net.widths),
        "learnable_params": learnable,
        "frozen_params": count_frozen(net),
        "identity_params": identity,
        "compression_vs_identity": identity / learnable if learnable else math.inf,
        "layers": net.describe(),
    }


def output_rank_limit(layers: list[dict]) -> tuple[int, int] | None:
    """(rank bound, classes) when the output layer's rank bound is below classes − 1, the dimension of the logit
    differences softmax reads; None otherwise. Its logits then lie in a smaller subspace (at rank 1 they are
    multiples of one vector, and at most two classes can ever be predicted).
    ``layers`` are the rows of ``RPNNetwork.describe()``."""
    if not layers or "rank_bound" not in layers[-1]:
        return None
    bound, classes = int(layers[-1]["rank_bound"]), int(layers[-1]["n"])
    return (bound, classes) if bound < classes - 1 else None


def per_layer(layers: list[dict], key: str) -> str | int:
    """A hyper-parameter as resolved in each layer: one value if all layers agree, else ``a/b/c`` ("" if none)."""
    values = [row[key] for row in layers if key in row]
    if not values:
        return ""
    return values[0] if len(set(values)) == 1 else "/".join(map(str, values))


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

    The text goes to ``<path>.tmp``, is flushed to disk, then renamed over ``path``: a reader never sees a partial
    file. If writing fails (a full disk), the temporary file is removed and the error raised: ``path`` keeps its
    last good content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        with open(tmp, "w") as handle:
            handle.write(json.dumps(data, indent=2, default=_jsonable) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_record(folder: str | Path, record: dict) -> Path:
    """Write ``record`` to ``folder/result.json`` atomically and return the path."""
    return write_json(Path(folder) / RECORD_FILE, record)


def read_record(folder: str | Path) -> dict:
    return json.loads((Path(folder) / RECORD_FILE).read_text())


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def format_layer_table(layers: list[dict]) -> str:
    """A fixed-width text table of the per-layer description rows."""
    columns = ["layer", "m", "n", "D", "l", "learnable", "frozen", "path", "rank_bound", "hparams"]
    known = set(columns)
    rows = []
    for row in layers:
        hp = " ".join(f"{k}={v}" for k, v in row.items() if k not in known)
        rows.append([str(row.get(c, "")) if c != "hparams" else hp for c in columns])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    line = lambda cells: "  ".join(c.rjust(w) if c.isdigit() else c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def summary_line(record: dict) -> str:
    """One line: status, dataset, functions, parameters, accuracy, time, folder."""
    metrics = record.get("metrics", {})
    parts = [
        f"[{record.get('status', '?')}]",
        record.get("dataset", "?"),
        f"{record.get('expansion', '?')} x {record.get('reconciliation', '?')}"
        + "".join(f" {k}={v}" for k, v in record.get("reconciliation_hparams", {}).items()),
    ]
    if "learnable_params" in record:
        parts.append(
            f"{record['learnable_params']:,} learnable params "
            f"({record['compression_vs_identity']:.1f}x fewer than identity)"
        )
    for key, label in (("test/acc", "test acc"), ("val/acc_best", "best val acc")):
        if metrics.get(key) is not None:
            parts.append(f"{label} {metrics[key]:.4f}")
    if record.get("wall_time_s") is not None:
        parts.append(f"{record['wall_time_s']:.1f} s")
    if record.get("error"):
        parts.append(f"error: {record['error'].splitlines()[0]}")
    return "rpn_exp " + " | ".join(parts) + f" | {record.get('output_dir', '')}"
