"""The Hydra callback that summarizes every multirun when it ends (registered in ``conf/hydra/default.yaml``)."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .summary import default_title, status_counts, summarize, write_summary

log = logging.getLogger("rpn_exp")


class SweepSummary(Callback):
    """Writes ``summary.csv``, ``summary.md`` and ``pareto.png`` into the sweep folder at the end of a multirun.

    It reads the records the jobs wrote, so it works with any launcher (in-process, joblib, submitit) and any
    sweeper (basic grid, Optuna); ``python -m rpn_exp.report`` rebuilds the same files later.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        folder = Path(config.hydra.sweep.dir)
        if not folder.is_dir():
            log.warning("sweep folder %s does not exist; no summary written", folder)
            return
        rows = summarize([folder])
        paths = write_summary(folder, rows, title=default_title([folder]))
        front = [row["job"] for row in rows if row["pareto"]]
        log.info(
            "sweep summary: %d jobs (%s); Pareto front: jobs %s\n  %s",
            len(rows), status_counts(rows), ", ".join(front) or "none", "\n  ".join(str(p) for p in paths.values()),
        )
