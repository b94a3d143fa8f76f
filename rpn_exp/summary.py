"""Aggregate the per-job records of one or more sweeps into ``summary.csv``, ``summary.md`` and ``pareto.png``.

Everything here reads what the jobs left on disk (``result.json``, and Hydra's ``.hydra/overrides.yaml`` for a
job that left no record), never process memory, so it works whichever launcher ran the jobs and on sweeps that
were interrupted, are still running, or come from several folders.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from .record import RECORD_FILE

SUMMARY_CSV, SUMMARY_MD, PARETO_PNG = "summary.csv", "summary.md", "pareto.png"

#: The columns of ``summary.csv`` in order; ``summary.md`` shows the same minus the long ``error`` text.
COLUMNS = (
    "job", "status", "dataset", "expansion", "reconciliation", "r", "p", "q",
    "learnable_params", "frozen_params", "test_acc", "val_acc_best", "wall_time_s", "pareto", "overrides", "error",
)
#: Where each accuracy column comes from in a record's ``metrics``.
METRICS = {"test_acc": "test/acc", "val_acc_best": "val/acc_best"}


def find_jobs(folders: Iterable[str | Path]) -> list[Path]:
    """Every job folder under ``folders``: a folder holding ``result.json`` or Hydra's ``.hydra/overrides.yaml``.

    A job that started but left no record (killed, or still composing) is found through its ``.hydra`` folder.
    Raises FileNotFoundError naming a folder that does not exist.
    """
    jobs: set[Path] = set()
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder; give the sweep folder (outputs/<task>/multiruns/<stamp>)")
        jobs.update(p.parent for p in folder.rglob(RECORD_FILE))
        jobs.update(p.parent.parent for p in folder.rglob(".hydra/overrides.yaml"))
    return sorted(jobs, key=_job_sort_key)


def _job_sort_key(path: Path):
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts)


def job_row(folder: str | Path, root: str | Path | None = None) -> dict:
    """One summary row for the job in ``folder`` (named relative to ``root``).

    A missing record gives status ``missing`` and an unreadable one ``unreadable``, with the overrides Hydra
    saved for that job, so a report on a partial sweep still lists every job it launched.
    """
    folder = Path(folder)
    name = str(folder.relative_to(root)) if root is not None and folder != Path(root) else folder.name
    row = dict.fromkeys(COLUMNS, "")
    row.update(job=name, pareto=False)
    path = folder / RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return {**row, "status": "missing", "overrides": _hydra_overrides(folder),
                "error": f"no {RECORD_FILE}: the job did not start its task or was killed"}
    except (OSError, ValueError) as error:
        return {**row, "status": "unreadable", "overrides": _hydra_overrides(folder), "error": f"{path}: {error}"}

    layers = record.get("layers", [])
    metrics = record.get("metrics", {})
    choices = record.get("choices", {})  # a job that failed while building still names its config choices
    row.update(
        status=record.get("status", "unknown"),
        dataset=record.get("dataset") or choices.get("dataset", ""),
        expansion=record.get("expansion") or choices.get("expansion", ""),
        reconciliation=record.get("reconciliation") or choices.get("reconciliation", ""),
        learnable_params=record.get("learnable_params", ""),
        frozen_params=record.get("frozen_params", ""),
        wall_time_s=record.get("wall_time_s", ""),
        overrides=" ".join(record.get("overrides", [])),
        error=(record.get("error") or "").splitlines()[0] if record.get("error") else "",
    )
    for key in ("r", "p", "q"):
        row[key] = _per_layer(layers, key) if layers else record.get("reconciliation_hparams", {}).get(key, "")
    for column, metric in METRICS.items():
        value = metrics.get(metric)
        row[column] = "" if value is None else float(value)
    return row


def _per_layer(layers: Sequence[dict], key: str) -> str | int:
    """A hyper-parameter as resolved in each layer: one value if all layers agree, else ``a/b/c``."""
    values = [row[key] for row in layers if key in row]
    if not values:
        return ""
    return values[0] if len(set(values)) == 1 else "/".join(map(str, values))


def _hydra_overrides(folder: Path) -> str:
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ""
    from omegaconf import OmegaConf

    return " ".join(OmegaConf.load(path))


def accuracy(row: dict, metric: str = "test_acc") -> float:
    """The row's accuracy, NaN when the job has none (failed, missing, not tested)."""
    value = row.get(metric, "")
    return float(value) if value not in ("", None) else math.nan


def pareto_front(rows: Sequence[dict], metric: str = "test_acc") -> list[int]:
    """Indices of the completed rows that no other completed row beats on both fewer parameters and more accuracy.

    Row i is dominated when some row j has params_j <= params_i and acc_j >= acc_i with one of them strict;
    ``metric`` is the accuracy column compared. Returned in order of increasing parameter count.
    """
    points = [
        (int(row["learnable_params"]), accuracy(row, metric), i)
        for i, row in enumerate(rows)
        if row["status"] == "completed" and row["learnable_params"] != "" and not math.isnan(accuracy(row, metric))
    ]
    front, best = [], (math.nan, -math.inf)
    for params, acc, i in sorted(points, key=lambda t: (t[0], -t[1])):
        if acc > best[1] or (params, acc) == best:  # equal runs (same size and accuracy) are both optimal
            front.append(i)
            best = (params, acc)
    return front


def summarize(folders: Iterable[str | Path]) -> list[dict]:
    """The rows of every job under ``folders``, with the Pareto-optimal ones marked (``pareto`` True)."""
    folders = [Path(f) for f in folders]
    rows = []
    for job in find_jobs(folders):
        root = next((f for f in folders if job == f or f in job.parents), None)
        rows.append(job_row(job, root.parent if len(folders) > 1 and root is not None else root))
    for i in pareto_front(rows):
        rows[i]["pareto"] = True
    return rows


def default_title(folders: Sequence[str | Path]) -> str:
    """``<task_name> <stamp>`` for one sweep folder laid out as outputs/<task_name>/multiruns/<stamp>."""
    if len(folders) != 1:
        return "merged sweeps"
    folder = Path(folders[0]).resolve()
    return f"{folder.parent.parent.name} {folder.name}" if folder.parent.name == "multiruns" else folder.name


def write_csv(rows: Sequence[dict], path: str | Path) -> Path:
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a ``summary.csv`` as strings (as written)."""
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def status_counts(rows: Sequence[dict]) -> str:
    """How many jobs ended in each status, e.g. ``3 completed, 1 failed``."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def format_markdown(rows: Sequence[dict]) -> str:
    """The summary as a Markdown table sorted by learnable parameters; Pareto-optimal runs marked with ★.

    The overrides column shows what differs between jobs; the overrides they all share are listed below.
    """
    columns = [c for c in COLUMNS if c not in ("error", "pareto")]
    split = [row["overrides"].split() for row in rows]
    shared = [o for o in split[0] if all(o in other for other in split)] if len(rows) > 1 else []
    ordered = sorted(range(len(rows)), key=lambda i: (rows[i]["learnable_params"] == "",
                                                      rows[i]["learnable_params"] or 0, rows[i]["job"]))
    lines = [
        "| " + " | ".join(["front", *columns]) + " |",
        "|" + "|".join(["---"] * (len(columns) + 1)) + "|",
    ]
    for i in ordered:
        row = {**rows[i], "overrides": " ".join(o for o in split[i] if o not in shared)}
        cells = ["★" if row["pareto"] else ""] + [_cell(row, c) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"{len(rows)} jobs: {status_counts(rows)}. ★ marks the Pareto front of test accuracy against "
             "learnable parameters."]
    if shared:
        notes.append(f"Overrides shared by every job: `{' '.join(shared)}`")
    failures = [rows[i] for i in ordered if rows[i]["error"]]
    if failures:
        notes += ["", "Errors:", ""] + [f"- job `{r['job']}` ({r['status']}): {r['error']}" for r in failures]
    return "\n".join(lines + [""] + notes) + "\n"


def _cell(row: dict, column: str) -> str:
    value = row[column]
    if column in METRICS and value != "":
        return f"{value:.4f}"
    if column in ("learnable_params", "frozen_params") and value != "":
        return f"{value:,}"
    if column == "overrides":
        return f"`{value}`" if value else ""
    return str(value).replace("|", "\\|")


def write_summary(folder: str | Path, rows: Sequence[dict], title: str = "") -> dict[str, Path]:
    """Write ``summary.csv``, ``summary.md`` and ``pareto.png`` into ``folder``; return their paths."""
    from .plots import pareto_plot

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / SUMMARY_MD
    md.write_text(f"# Sweep summary{': ' + title if title else ''}\n\n" + format_markdown(rows))
    return {
        "csv": write_csv(rows, folder / SUMMARY_CSV),
        "md": md,
        "png": pareto_plot(rows, folder / PARETO_PNG, title=title),
    }
