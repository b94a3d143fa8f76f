"""One console line per sweep job start and end, whichever launcher runs the jobs.

The jobs' records on disk (``<sweep>/<job>/result.json``: ``running`` at start, the outcome at the end) are
watched from the process that launched the sweep, so the same lines appear for jobs run in-process, by joblib
workers or as submitit jobs:

    [sweep 3/12] started   002_lorr_r4
    [sweep 3/12] completed 002_lorr_r4: test acc 0.8969, 4.1 s | 3 of 12 done in 0:00:13, about 0:00:39 left
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

from rpn_exp.config.naming import job_number
from rpn_exp.run.pruning import pruned_text
from rpn_exp.run.record import DONE, FINAL, RECORD_FILE, Status, one_line, read_record


def grid_jobs(plan: dict) -> list[list[str]] | None:
    """The overrides of every job of a grid sweep's ``plan`` (:func:`rpn_exp.config.sweep_definition.sweep_plan`), in
    Hydra's job order: for each part (a study's sweep; a sweep is one), the product of ``params`` then ``overrides``
    (of which a later one replaces a key of the same name); a job an earlier part has is left out. None when they
    cannot be expanded (a search space such as ``interval(...)``, which only a search sweeper samples)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    jobs, seen = [], set()
    for part in plan.get("parts") or [plan]:
        texts = [f"{key}={value}" for key, value in (part.get("params") or {}).items()]
        try:
            (expanded,) = BasicSweeper.split_arguments(
                OverridesParser.create().parse_overrides([*texts, *part.get("overrides", [])]), None)
        except HydraException:
            return None
        for job in expanded:
            if tuple(sorted(job)) not in seen:
                seen.add(tuple(sorted(job)))
                jobs.append(job)
    return jobs


def planned_jobs(plan: dict | None, n_trials: int | None = None) -> int | None:
    """How many jobs a sweep launches: ``n_trials`` for a search (Optuna), else the size of the grid ``plan``
    (:func:`grid_jobs`); None when it cannot be told."""
    if n_trials is not None:
        return int(n_trials)
    jobs = grid_jobs(plan) if plan is not None else None
    return None if jobs is None else len(jobs)


class SweepProgress:
    """Polls ``folder`` in a background thread and prints a line when a job starts and when it ends.

    ``total`` is the planned number of jobs (None: unknown, shown as ``?``). :meth:`stop` takes a last look,
    so every job that ended is reported before the sweep summary.
    """

    def __init__(self, folder: str | Path, total: int | None, interval: float = 0.5, printer=print):
        self.folder, self.total, self.interval, self.printer = Path(folder), total, interval, printer
        self.started_at = time.monotonic()
        self._seen: dict[str, str] = {}  # job folder name -> last status reported ("started" or final)
        self._stale: dict[str, object] = {}  # jobs that ended without completing before a resume: their old pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rpn_exp-sweep-progress", daemon=True)

    def start(self) -> SweepProgress:
        """Start watching. In a resumed sweep the jobs that already completed count as done, and those that ended
        otherwise (failed, interrupted) are reported again when they run again; both are named in one line."""
        self.poll(report=False)
        done = sorted(name for name, status in self._seen.items() if status == Status.COMPLETED)
        again = sorted(self._stale)
        if done or again:
            parts = [f"{len(done)} job(s) already completed ({', '.join(done)})"] if done else []
            parts += [f"{len(again)} to run again ({', '.join(again)})"] if again else []
            self.printer(f"[sweep] resuming: {'; '.join(parts)}", flush=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.poll()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self, report: bool = True) -> None:
        """Report every job whose record appeared or reached a final status since the last look (``report``
        False: only note them)."""
        if not self.folder.is_dir():
            return
        ended = []
        for record_path in sorted(self.folder.glob(f"*/{RECORD_FILE}")):
            name = record_path.parent.name
            try:
                record = read_record(record_path.parent)
            except (OSError, ValueError):  # being replaced right now: read it on the next look
                continue
            status = record.get("status", Status.RUNNING)
            if not report:
                if status in FINAL and status not in DONE:  # to run again: reported when its new record ends
                    self._stale[name] = record.get("pid")
                self._seen[name] = Status.COMPLETED if status in DONE else "started"
                continue
            if name in self._stale:
                if record.get("pid") == self._stale[name]:  # still the old attempt's record
                    continue
                del self._stale[name], self._seen[name]  # its new attempt: reported like a new job
            if name not in self._seen:
                self._seen[name] = "started"
                self.printer(f"{self._prefix(name)} started   {name}", flush=True)
            if status in FINAL and self._seen[name] not in FINAL:
                self._seen[name] = status
                ended.append((name, status, record))
        for name, status, record in ended:  # counted after the whole look: members of a stacked group end together
            self.printer(f"{self._prefix(name)} {status:<9} {name}: {self._outcome(record)} | {self._eta()}",
                         flush=True)

    def _prefix(self, name: str) -> str:
        number = job_number(name)
        position = "?" if number is None else str(number + 1)
        return f"[sweep {position}/{self.total or '?'}]"

    @staticmethod
    def _outcome(record: dict) -> str:
        metrics, parts = record.get("metrics", {}), []
        if metrics.get("test/acc") is not None:
            parts.append(f"test acc {metrics['test/acc']:.4f}")
        elif metrics.get("val/acc_best") is not None:
            parts.append(f"best val acc {metrics['val/acc_best']:.4f}")
        if record.get("pruned"):
            parts.append(f"pruned at {pruned_text(record['pruned'], long=True)}")
        if record.get("flag"):
            parts.append(record["flag"])
        if record.get("error"):
            parts.append(one_line(record["error"]))
        if record.get("wall_time_s") is not None:
            parts.append(f"{record['wall_time_s']:.1f} s")
        return ", ".join(parts) or "no metrics"

    def _eta(self) -> str:
        done = sum(status in FINAL for status in self._seen.values())
        elapsed = time.monotonic() - self.started_at
        text = f"{done} of {self.total or '?'} done in {timedelta(seconds=round(elapsed))}"
        if self.total and done < self.total:
            text += f", about {timedelta(seconds=round(elapsed / done * (self.total - done)))} left"
        return text
