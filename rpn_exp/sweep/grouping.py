"""Jobs that differ only in ``seed`` form one configuration: its mean, standard deviation and 95% interval.

A sweep over seeds (``python -m rpn_exp -m hparams_search=rank seed=1,2,3``) measures how much of a difference
between configurations is noise. Rows are the per-job summary rows of ``rpn_exp.sweep.rows``; the configuration of
a job is what it trained but for its seed (the record's ``configuration``, ``rpn_exp.config.configuration``), so
sweeps that spell the same settings differently pool; it is named by its overrides.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from rpn_exp.nn.describe import STRUCTURE_HPARAMS
from rpn_exp.run.record import Status
from rpn_exp.sweep.rows import RANK_MARK, accuracy, config_of, configuration, pareto_front

#: The columns of ``summary_by_config.csv`` in order.
GROUP_COLUMNS = (
    "config", "n", "seeds", "model", "dataset", "expansion", "reconciliation", "layout", "interdependence",
    "remainder", "widths", "grid", *STRUCTURE_HPARAMS, "rank_bound", "rank_limited", "lr", "epochs", "learnable_params",
    "frozen_params", "test_acc_mean", "test_acc_std", "test_acc_ci95",
    "val_acc_best_mean", "val_acc_best_std", "val_acc_best_ci95", "pareto", "status", "pruned",
)
#: Columns that are the same for every job of a configuration (taken from its first job).
SHARED = ("model", "dataset", "expansion", "reconciliation", "layout", "interdependence", "remainder", "widths", "grid",
          *STRUCTURE_HPARAMS, "rank_bound", "rank_limited", "lr", "epochs", "learnable_params", "frozen_params")


def interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, sample standard deviation, half-width of the 95% confidence interval of the mean).

    The half-width is t(0.975, n − 1) · s / √n (Student's t); std and half-width are NaN for a single value.
    """
    n = len(values)
    mean = statistics.fmean(values) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t

    std = statistics.stdev(values)
    return mean, std, float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)


def group_by_config(rows: Sequence[dict]) -> list[dict]:
    """One row per configuration of the completed jobs that have a test accuracy, in order of first appearance,
    with n, the seeds, and mean/std/ci95 of test and best validation accuracy; ``pareto`` marks the front chosen
    by mean validation accuracy (the test accuracy is reported, never used to choose). A configuration whose jobs
    were all pruned (``pruner``) is a row too, ``status`` pruned: its best validation accuracy up to its rung, no
    test accuracy, never on the front."""
    groups: dict[tuple[str, str], list[dict]] = {}  # configuration -> its jobs
    for row in rows:
        if row["status"] == Status.COMPLETED and not math.isnan(accuracy(row, "test_acc")) and not row.get("repeat_of"):
            groups.setdefault(configuration(row), []).append(row)
    for row in rows:  # pruned: a configuration of its own unless some of its seeds completed
        if row["status"] == Status.PRUNED and not row.get("repeat_of") and configuration(row) not in groups:
            groups.setdefault(("pruned", *configuration(row)), []).append(row)
    # each configuration named by its most explicit spelling, less what every configuration shares
    spelled = {key: max((config_of(m) for m in members), key=lambda c: len(c.split()))
               for key, members in groups.items()}
    shared = set.intersection(*(set(s.split()) for s in spelled.values())) if spelled else set()
    result = []
    for key, members in groups.items():
        label = " ".join(o for o in spelled[key].split() if o not in shared)  # what tells it from the others
        grouped = {"config": label or ("(all jobs)" if len(groups) == 1 else "(defaults)"), "n": len(members),
                   "configuration": members[0].get("configuration", ""),
                   "status": members[0]["status"], "pruned": members[0].get("pruned", ""),
                   "seeds": " ".join(str(m.get("seed", "")) for m in members), "pareto": False,
                   **{key: members[0].get(key, "") for key in SHARED}}
        for metric in ("test_acc", "val_acc_best"):
            known = [accuracy(m, metric) for m in members]  # a pruned job has no test accuracy
            mean, std, half = interval([value for value in known if not math.isnan(value)])
            grouped.update({f"{metric}_mean": mean, f"{metric}_std": std, f"{metric}_ci95": half})
        result.append(grouped)
    for i in pareto_front(result, metric="val_acc_best_mean"):
        result[i]["pareto"] = True
    return result


def accuracy_interval(mean: float, half: float) -> tuple[float, float]:
    """The 95% interval of a mean accuracy, clipped to [0, 1] (Student's t is symmetric and knows no bounds; an
    accuracy does)."""
    return max(0.0, mean - half), min(1.0, mean + half)


def format_group_table(groups: Sequence[dict]) -> str:
    """Markdown: one line per configuration, sorted by learnable parameters, mean ± std [95% interval]; a
    configuration whose output layer cannot reach rank classes − 1 is marked (``rpn_exp.sweep.summary.RANK_MARK``);
    a pruned one says where it stopped and behind which configuration, in place of a test accuracy."""
    def stat(group: dict, metric: str) -> str:
        mean, std, half = (group[f"{metric}_{k}"] for k in ("mean", "std", "ci95"))
        if group["status"] == Status.PRUNED and metric == "test_acc":
            return f"pruned at {group['pruned']}"
        if math.isnan(std):
            return f"{mean:.4f}"
        low, high = accuracy_interval(mean, half)
        return f"{mean:.4f} ± {std:.4f} [{low:.4f}, {high:.4f}]"

    lines = ["| front | config | n | learnable_params | test acc mean ± std [95% interval] "
             "| best val acc mean ± std [95% interval] |", "|---|---|---|---|---|---|"]
    for group in sorted(groups, key=lambda g: (int(g["learnable_params"] or 0), g["config"])):
        limit = f" {RANK_MARK} rank ≤ {group['rank_bound']}" if group.get("rank_limited") else ""
        config = f"`{group['config']}`{limit}"
        cells = ["★" if group["pareto"] else "", config, str(group["n"]),
                 f"{int(group['learnable_params']):,}", stat(group, "test_acc"), stat(group, "val_acc_best")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
