"""The files that summarize one or more sweeps: ``summary.csv``, ``summary_by_config.csv``, ``summary.md`` and
``pareto.png``, written from the rows of :mod:`rpn_exp.sweep.rows`."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

from rpn_exp.run.atomic import atomic_write
from rpn_exp.run.record import Status
from rpn_exp.sweep.grouping import GROUP_COLUMNS, format_group_table, group_by_config
from rpn_exp.sweep.plots import pareto_plot
from rpn_exp.sweep.rows import CHANCE_MARGIN, COLUMNS, METRICS, RANK_MARK, SHOWN_IF_VARYING

SUMMARY_CSV, SUMMARY_MD, PARETO_PNG = "summary.csv", "summary.md", "pareto.png"
BY_CONFIG_CSV = "summary_by_config.csv"


def default_title(folders: Sequence[str | Path], rows: Sequence[dict] = ()) -> str:
    """``<task_name> | <dataset> | <epochs> epochs | <stamp>`` for a sweep folder laid out as
    outputs/<task_name>/multiruns/<stamp> (``merged sweeps | ...`` for several)."""
    if len(folders) != 1:
        head, stamp = ["merged sweeps"], []
    else:
        folder = Path(folders[0]).resolve()
        in_multiruns = folder.parent.name == "multiruns"
        head, stamp = ([folder.parent.parent.name], [folder.name]) if in_multiruns else ([folder.name], [])
    about = []
    done = [row for row in rows if row.get("status") == Status.COMPLETED] or rows  # epochs reached by completed jobs
    for column, unit in (("dataset", ""), ("epochs", " epochs")):
        values = sorted({str(row[column]) for row in done if row.get(column) not in ("", None)}, key=_natural)
        if values:
            about.append(", ".join(values) + unit)
    return " | ".join(head + about + stamp)


def front_text(rows: Sequence[dict]) -> str:
    """The Pareto front as the tables mark it: configurations (mean over seeds) where seeds were pooled, else jobs."""
    groups = group_by_config(rows)
    if any(group["n"] > 1 for group in groups):
        front = [f"`{group['config']}`" for group in groups if group["pareto"]]
        return f"configurations {', '.join(front)} (mean over seeds)" if front else "none"
    front = [row["job"] for row in rows if row["pareto"]]
    return f"jobs {', '.join(front)}" if front else "none"


def _natural(text: str):
    return (0, float(text), text) if text.replace(".", "", 1).isdigit() else (1, 0.0, text)


def write_csv(rows: Sequence[dict], path: str | Path, columns: Sequence[str] = COLUMNS) -> Path:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, lambda handle: handle.write(text.getvalue().encode()))


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a ``summary.csv`` as strings (as written)."""
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a ``summary.csv`` or ``summary_by_config.csv`` with the types the summary made them with (counts as
    integers, accuracies as floats, NaN for an empty one, flags as booleans): what :func:`pareto_plot` draws. A
    column the file predates (written by an earlier version) is empty."""
    rows = read_csv(path)
    for row in rows:
        if "n" in row:  # a configuration pooled over seeds: only completed jobs are pooled
            row.setdefault("status", Status.COMPLETED)
        for column in GROUP_COLUMNS if "n" in row else COLUMNS:
            row.setdefault(column, "")
        for key, value in list(row.items()):
            if key in ("pareto", "rank_limited"):
                row[key] = value == "True"
            elif key in ("learnable_params", "frozen_params", "n") and value:
                row[key] = int(value)
            elif key.startswith(("test_acc", "val_acc_best")):
                row[key] = float(value) if value else (math.nan if key.endswith(("_std", "_ci95")) else "")
    return rows


def status_counts(rows: Sequence[dict]) -> str:
    """How many jobs ended in each status, e.g. ``3 completed, 1 failed``."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def varying(rows: Sequence[dict], column: str) -> bool:
    """Whether ``column`` holds more than one value among the rows of jobs that built their model (a pending,
    missing or refused job's empty cell says nothing of the column, so it does not make a constant one vary)."""
    built = [row for row in rows if row.get("learnable_params", "") != ""] or rows
    return len({str(row.get(column, "")) for row in built}) > 1


def format_markdown(rows: Sequence[dict], left_out: int = 0) -> str:
    """The summary as a Markdown table sorted by learnable parameters; Pareto-optimal runs marked with ★.

    The overrides column shows what differs between jobs; the overrides they all share are listed below.
    Columns of :data:`SHOWN_IF_VARYING` appear only when jobs differ in them. ``left_out`` debug jobs are noted.
    """
    limited = any(row.get("rank_limited") for row in rows)
    columns = [c for c in COLUMNS if c not in ("error", "pareto", "rank_limited", "configuration")
               and (c not in SHOWN_IF_VARYING or varying(rows, c) or (c == "rank_bound" and limited))]
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
    notes = [f"{len(rows)} jobs: {status_counts(rows)}. ★ marks the Pareto front of best validation accuracy "
             "against learnable parameters (the test accuracy is reported, not used to choose; models within "
             f"{CHANCE_MARGIN:.2f} of chance accuracy are not on it)."]
    if limited:
        notes.append(f"{RANK_MARK} in rank_bound: the output layer's W cannot reach rank classes − 1 (its structure "
                     "caps it), so its logits lie in a smaller subspace (at rank 1 at most two classes can ever be "
                     "predicted): such a point shows a limit of the structure, not only of training.")
    if left_out:
        notes.append(f"{left_out} debug job(s) left out (`python -m rpn_exp.report --include-debug` shows them).")
    repeats = [rows[i] for i in ordered if rows[i].get("repeat_of")]
    if repeats:
        notes.append(f"{len(repeats)} job(s) trained a configuration with a seed another job had trained (sweeps "
                     "merged whose seeds overlap): each (configuration, seed) counts once, from the folder given first "
                     "(a published summary before any), so these are not pooled and not on the front: " +
                     ", ".join(f"`{r['job']}` (repeats `{r['repeat_of']}`)" for r in repeats) + ".")
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
    if column == "rank_bound" and row.get("rank_limited"):
        return f"{value} {RANK_MARK}"
    return str(value).replace("|", "\\|")


def write_summary(folder: str | Path, rows: Sequence[dict], title: str = "", left_out: int = 0) -> dict[str, Path]:
    """Write ``summary.csv``, ``summary_by_config.csv`` (jobs that differ only in seed pooled), ``summary.md`` and
    ``pareto.png`` into ``folder``; return their paths. With several seeds of a configuration, ``summary.md``
    leads with the pooled table and ``pareto.png`` draws each configuration at its mean with its 95% interval."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    groups = group_by_config(rows)
    seeded = any(group["n"] > 1 for group in groups)
    md = folder / SUMMARY_MD
    text = f"# Sweep summary{': ' + title if title else ''}\n\n"
    if seeded:
        text += ("## By configuration (jobs that differ only in seed pooled)\n\n" + format_group_table(groups) +
                 "\n\n★: the front by mean best validation accuracy. The interval is the mean's 95% confidence "
                 "interval (Student's t).\n\n## By job\n\n")
    png, key = pareto_plot(groups if seeded else rows, folder / PARETO_PNG, title=title)
    text += format_markdown(rows, left_out) + plot_key(key)
    atomic_write(md, lambda handle: handle.write(text.encode()))
    return {
        "csv": write_csv(rows, folder / SUMMARY_CSV),
        "by_config": write_csv(groups, folder / BY_CONFIG_CSV, GROUP_COLUMNS),
        "md": md,
        "png": png,
    }


def plot_key(key: Sequence[tuple[str, str]]) -> str:
    """The section of ``summary.md`` that says what each number on ``pareto.png`` stands for (a point whose label
    found no free place); empty when there is none."""
    if not key:
        return ""
    return (f"\n## Plot key\n\nNumbers on `{PARETO_PNG}` in place of labels with no free place beside their point:\n\n"
            "| number | point |\n|---|---|\n" + "".join(f"| {n} | {what.replace('|', '/')} |\n" for n, what in key))
