"""The rows of a sweep: one per job folder, read from what the job left on disk, and the Pareto front.

Everything here reads what the jobs left on disk (``result.json``, and Hydra's ``.hydra/overrides.yaml`` for a
job that left no record), never process memory, so it works whichever launcher ran the jobs and on sweeps that
were interrupted, are still running, or come from several folders.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from rpn_exp.config.build import is_baseline_model
from rpn_exp.config.configuration import is_bookkeeping
from rpn_exp.config.naming import comparable_overrides
from rpn_exp.nn.describe import STRUCTURE_HPARAMS, output_rank_limit, per_layer
from rpn_exp.run.pruning import pruned_text
from rpn_exp.run.record import RECORD_FILE, RESERVE_FILE, Status, one_line, process_alive, read_record

#: The columns of ``summary.csv`` in order; ``summary.md`` shows the same minus the long ``error`` text and
#: minus the :data:`SHOWN_IF_VARYING` columns that hold one value for every job.
COLUMNS = (
    "job", "status", "model", "dataset", "expansion", "reconciliation", "layout", "interdependence", "remainder",
    "widths", "grid",
    *STRUCTURE_HPARAMS, "rank_bound", "rank_limited", "seed", "lr", "epochs", "learnable_params", "frozen_params",
    "test_acc", "val_acc_best", "wall_time_s", "pareto", "flag", "pruned", "repeat_of", "overrides", "configuration",
    "error",
)
SHOWN_IF_VARYING = ("model", "layout", "interdependence", "remainder", "widths", "grid", "rank_bound", "seed", "lr",
                    "epochs", "flag", "pruned", "repeat_of")
#: Marks a rank bound below classes − 1 (``rpn_exp.run.record.output_rank_limit``) in the tables.
RANK_MARK = "⚠"
#: A model within this much accuracy of chance (1 / classes) is never on the Pareto front.
CHANCE_MARGIN = 0.05
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
            raise FileNotFoundError(
                f"{folder} is not a folder; give the sweep folder (outputs/<task>/multiruns/<stamp>)"
            )
        jobs.update(p.parent for p in folder.rglob(RECORD_FILE))
        jobs.update(p.parent.parent for p in folder.rglob(".hydra/overrides.yaml"))
    return sorted(jobs, key=_job_sort_key)


def _job_sort_key(path: Path):
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts)


def job_row(folder: str | Path, root: str | Path | None = None) -> dict:
    """One summary row for the job in ``folder`` (named relative to ``root``).

    A missing record gives status ``missing`` and an unreadable one ``unreadable``, with the overrides Hydra
    saved for that job, so a report on a partial sweep still lists every job it launched. A ``running`` record
    whose process is gone (same host, pid not alive) is ``killed``, or ``unknown`` when the process reached its end but
    could not write its outcome.
    """
    folder = Path(folder)
    name = str(folder.relative_to(root)) if root is not None and folder != Path(root) else folder.name
    row = dict.fromkeys(COLUMNS, "")
    row.update(job=name, pareto=False, debug=None, rank_limited=False)  # None: unknown (no readable record)
    path = folder / RECORD_FILE
    try:
        record = read_record(folder)
    except FileNotFoundError:
        return {**row, "status": Status.MISSING, "overrides": _hydra_overrides(folder),
                "error": f"no {RECORD_FILE}: the job did not start its task or was killed"}
    except (OSError, ValueError) as error:
        return {**row, "status": Status.UNREADABLE, "overrides": _hydra_overrides(folder), "error": f"{path}: {error}"}

    if record.get("status") == Status.RUNNING and not process_alive(record):
        record = {**record, **_ended_unrecorded(folder, record.get("pid"))}
    layers = record.get("layers", [])
    metrics = record.get("metrics", {})
    choices = record.get("choices", {})  # a job that failed while building still names its config choices
    row.update(
        status=record.get("status", "unknown"),
        model=record.get("model") or "rpn",
        dataset=record.get("dataset") or choices.get("dataset", ""),
        expansion=record.get("expansion") or choices.get("expansion", ""),
        reconciliation=record.get("reconciliation") or choices.get("reconciliation", ""),
        interdependence=record.get("interdependence") or choices.get("interdependence", ""),
        remainder=record.get("remainder") or choices.get("remainder", ""),
        widths="-".join(map(str, record.get("widths", []))),
        grid="-".join(map(str, record.get("grid_channels", []))),
        seed=record.get("seed", ""),
        lr=record.get("lr", ""),
        epochs=record.get("epochs", ""),
        debug=bool(record.get("debug", False)),
        learnable_params=record.get("learnable_params", ""),
        frozen_params=record.get("frozen_params", ""),
        wall_time_s=record.get("wall_time_s", ""),
        overrides=" ".join(record.get("overrides", [])),
        configuration=record.get("configuration", ""),
        error=one_line(record["error"]) if record.get("error") else "",
        flag=(record.get("flag") or "").split(":")[0],
        pruned=pruned_text(record["pruned"]) if record.get("pruned") else "",
    )
    for key in STRUCTURE_HPARAMS:
        row[key] = per_layer(layers, key) if layers else record.get("reconciliation_hparams", {}).get(key, "")
    row["rank_bound"] = per_layer(layers, "rank_bound")
    row["layout"] = per_layer(layers, "layout")
    row["rank_limited"] = output_rank_limit(layers) is not None
    for column, metric in METRICS.items():
        value = metrics.get(metric)
        row[column] = "" if value is None else float(value)
    return row


def _ended_unrecorded(folder: Path, pid) -> dict:
    """Status and error of a running record whose process is gone: ``killed`` if it never reached its end (its
    reserve is still there, ``rpn_exp.run.record.RESERVE_FILE``), else ``unknown`` (it could not write its outcome)."""
    again = "skip_completed=true runs it again"
    if (folder / RESERVE_FILE).is_file():
        return {"status": Status.KILLED, "error": f"the process (pid {pid}) ended without writing an outcome: killed "
                                                  f"(SIGKILL, out of memory) or lost with its machine; {again}"}
    return {"status": Status.UNKNOWN,
            "error": f"the process (pid {pid}) ended but could not write its outcome (a full disk?); {again}"}


def pending_rows(folder: Path, found: set[str]) -> list[dict]:
    """Rows for the jobs a grid sweep plans (``sweep.json``) that have no folder yet: ``pending``."""
    from rpn_exp.config.naming import job_dir
    from rpn_exp.sweep.progress import grid_jobs

    path = folder / "sweep.json"
    plan = json.loads(path.read_text()).get("plan") if path.is_file() else None
    if not plan:  # no sweep.json, or a search sweeper: its trials are not known in advance
        return []
    jobs = grid_jobs(plan)
    rows = []
    for num, overrides in enumerate(jobs or []):
        name = job_dir(num, overrides)
        if name not in found:
            row = dict.fromkeys(COLUMNS, "")
            row.update(job=name, status=Status.PENDING, pareto=False, debug=None, overrides=" ".join(overrides),
                       error="not started: the sweep stopped before this job (skip_completed=true runs it)")
            rows.append(row)
    return rows


def _hydra_overrides(folder: Path) -> str:
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ""
    from omegaconf import OmegaConf

    return " ".join(OmegaConf.load(path))


def family(row: dict) -> str:
    """What a point of the Pareto plot belongs to: the model for a baseline (``mlp``, ``linear``), else the
    reconciliation family, with its layout when it is not the default (``dual_lphm (reference layout)``)."""
    if is_baseline(row):
        return row["model"]
    layout = row.get("layout")
    plain = layout in ("", None, "kronecker")
    return row["reconciliation"] if plain else f"{row['reconciliation']} ({layout} layout)"


def is_baseline(row: dict) -> bool:
    """Whether the row is a dense baseline (``model=mlp``, ``model=cnn``) rather than an RPN configuration."""
    return is_baseline_model(row.get("model", "rpn"))


def accuracy(row: dict, metric: str = "test_acc") -> float:
    """The row's accuracy, NaN when the job has none (failed, missing, not tested)."""
    value = row.get(metric, "")
    return float(value) if value not in ("", None) else math.nan


def chance(row: dict) -> float:
    """Accuracy of guessing, 1 / classes (the last of the row's widths); NaN when the widths are unknown."""
    widths = str(row.get("widths", ""))
    return 1.0 / int(widths.rsplit("-", 1)[-1]) if widths else math.nan


def above_chance(row: dict, metric: str = "test_acc") -> bool:
    """Whether the row's accuracy is more than :data:`CHANCE_MARGIN` above chance (True if chance is unknown)."""
    level = chance(row)
    return math.isnan(level) or accuracy(row, metric) > level + CHANCE_MARGIN


def pareto_front(rows: Sequence[dict], metric: str = "test_acc") -> list[int]:
    """Indices of the completed rows that no other completed row beats on both fewer parameters and more accuracy.

    Row i is dominated when some row j has params_j <= params_i and acc_j >= acc_i with one of them strict;
    ``metric`` is the accuracy column compared. Rows at chance level (:func:`above_chance` false) are never on
    the front: a model that guesses is not a trade-off; nor is a flagged one (learned nothing, exploded). Returned
    in order of increasing parameter count.
    """
    points = [
        (int(row["learnable_params"]), accuracy(row, metric), i)
        for i, row in enumerate(rows)
        if row["status"] == Status.COMPLETED and row["learnable_params"] != "" and not math.isnan(accuracy(row, metric))
        and above_chance(row, metric) and not row.get("flag") and not row.get("repeat_of")
    ]
    front, best = [], (math.nan, -math.inf)
    for params, acc, i in sorted(points, key=lambda t: (t[0], -t[1])):
        if acc > best[1] or (params, acc) == best:  # equal runs (same size and accuracy) are both optimal
            front.append(i)
            best = (params, acc)
    return front


def config_of(row: dict) -> str:
    """The configuration of a job: its overrides, in their order, without the seed and the other keys that change
    nothing trained (``rpn_exp.config.configuration.BOOKKEEPING``: ``task_name``, ``tags``, paths, switches)."""
    given = str(row.get("overrides", "")).split()
    kept = set(comparable_overrides(given))
    return " ".join(o for o in given if o in kept and not is_bookkeeping(o))


def configuration(row: dict) -> tuple[str, str]:
    """What a job trained, but for its seed: the record's ``configuration`` (the effective settings, however they
    were spelled); for a record written before it had one, its overrides without seed and its parameter count."""
    if row.get("configuration"):
        return ("configuration", row["configuration"])
    return (config_of(row), str(row["learnable_params"]))


def mark_repeats(rows: Sequence[dict]) -> list[dict]:
    """Each (configuration, seed) counts once. When several completed jobs trained the same configuration with the
    same seed (sweeps merged whose seeds overlap), the first of ``rows`` is kept (:func:`summarize` lists the rows
    of published summaries first, then the jobs folder by folder in the order given). Each later one gets
    ``repeat_of`` (the job it repeats), which keeps it out of the pooled statistics and the front; the repeats are
    returned."""
    first: dict[tuple, dict] = {}
    repeats = []
    for row in rows:
        if row["status"] != Status.COMPLETED or row.get("seed") in ("", None):
            continue
        key = (configuration(row), str(row["seed"]))
        if key in first:
            row["repeat_of"] = first[key]["job"]
            repeats.append(row)
        else:
            first[key] = row
    return repeats


def summarize(folders: Iterable[str | Path], include_debug: bool = False,
              published: Sequence[dict] = ()) -> tuple[list[dict], int]:
    """The rows of every job under ``folders`` (and the ``published`` rows of earlier summaries), Pareto-optimal ones
    marked (``pareto`` True), and how many debug jobs were left out.

    Jobs of a ``debug`` preset (record ``"debug": true``) are left out unless ``include_debug`` is set or every
    job with a record is one (a debug sweep is summarized as such); a job without a readable record is kept.
    """
    folders = [Path(f) for f in folders]
    rows = [{**dict.fromkeys(COLUMNS, ""), **row, "pareto": False, "debug": False} for row in published]
    given = {}  # each job row's place in the order of the folders given (published rows before them all)
    for job in find_jobs(folders):
        root = next((f for f in folders if job == f or f in job.parents), None)
        rows.append(job_row(job, root.parent if len(folders) + bool(published) > 1 and root is not None else root))
        given[id(rows[-1])] = folders.index(root) if root is not None else len(folders)
    if len(folders) == 1 and not published:  # the jobs of the sweep's plan that never started
        rows += pending_rows(folders[0], {row["job"] for row in rows})
        rows.sort(key=lambda row: _job_sort_key(Path(row["job"])))
    known = [row["debug"] for row in rows if row["debug"] is not None]
    keep_all = include_debug or all(known)  # a sweep made only of debug jobs is summarized as such
    kept = rows if keep_all else [row for row in rows if row["debug"] is not True]
    mark_repeats(sorted(kept, key=lambda row: given.get(id(row), -1)))
    for i in pareto_front(kept, metric="val_acc_best"):  # chosen on validation: the test split only reports
        kept[i]["pareto"] = True
    return kept, len(rows) - len(kept)
