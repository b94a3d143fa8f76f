"""The Hydra callback of every multirun (registered in ``conf/hydra/default.yaml``): it claims the sweep folder,
prints progress lines while the jobs run, and writes ``summary.csv``, ``summary.md`` and ``pareto.png`` when they
are done."""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rpn_exp.config.build import build_datamodule, qualify
from rpn_exp.config.checks import folder_problem, task_name_problem
from rpn_exp.config.sweep_definition import SWEEP_FILE, sweep_definition, sweep_plan, swept_keys
from rpn_exp.files import FILE_MODE, links_problem
from rpn_exp.run.ownership import busy_problem
from rpn_exp.run.record import RECORD_FILE, REFUSED_FILE, Status, process_alive, read_refused, write_json
from rpn_exp.sweep.progress import SweepProgress, planned_jobs
from rpn_exp.sweep.rows import summarize
from rpn_exp.sweep.summary import default_title, front_text, status_counts, write_summary

log = logging.getLogger("rpn_exp")

#: Held by the sweep that runs in a folder (its pid and host), from its start until its summary is written.
LOCK_FILE = "sweep.lock"


class SweepFolderError(ValueError):
    """A sweep folder that belongs to another sweep, or that holds this sweep's jobs without the resume switch."""


def lock_folder(folder: str | Path) -> Path:
    """Take the folder's lock: ``sweep.lock`` created atomically (``O_EXCL``) with this process's pid and host.

    Refused (SweepFolderError) while another sweep holds it; a lock whose process is gone (same host, pid not
    alive) is stale and taken over.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_FILE
    for _ in range(3):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, FILE_MODE)
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text())
            except (OSError, ValueError):  # being written by a sweep that is starting right now
                owner = {}
            if not owner or process_alive(owner):
                raise SweepFolderError(
                    f"{folder} is in use by a running sweep (pid {owner.get('pid', '?')} on "
                    f"{owner.get('host', '?')}); nothing was run. Wait for it to end, or give a fresh hydra.sweep.dir"
                ) from None
            lock.unlink(missing_ok=True)  # its sweep is gone
            continue
        with os.fdopen(handle, "w") as out:
            json.dump({"pid": os.getpid(), "host": socket.gethostname()}, out)
        return lock
    raise SweepFolderError(f"{folder}: could not take {LOCK_FILE}; give a fresh hydra.sweep.dir")


def claim_folder(folder: str | Path, definition: dict, resume: bool, plan: dict | None = None) -> None:
    """Make ``folder`` this sweep's, or refuse it before any job runs.

    Refused: a folder whose ``sweep.json`` defines another sweep; a folder holding this sweep's job records
    unless ``resume`` (``skip_completed=true``); a folder holding job records but no ``sweep.json``.
    Otherwise ``sweep.json`` is written (kept as it is when resuming), with the grid's ``plan`` if there is one.
    """
    folder = Path(folder)
    saved = folder / SWEEP_FILE
    has_jobs = folder.is_dir() and any(folder.glob(f"*/{RECORD_FILE}"))
    fresh = "give a fresh hydra.sweep.dir (or leave it unset: every sweep gets a new stamped folder)"
    if saved.is_file():
        previous = json.loads(saved.read_text()).get("definition")
        if previous != definition:
            raise SweepFolderError(
                f"{folder} belongs to another sweep ({_describe(previous)}), not this one ({_describe(definition)}); "
                f"nothing was run. To resume that sweep repeat its command with skip_completed=true, or {fresh}"
            )
        if has_jobs and not resume:
            raise SweepFolderError(
                f"{folder} already holds this sweep's jobs; nothing was run. Add skip_completed=true to resume it "
                f"(completed jobs are kept, the others run again), or {fresh}"
            )
        return
    if has_jobs:
        raise SweepFolderError(f"{folder} holds job records of a sweep without {SWEEP_FILE}; nothing was run. {fresh}")
    write_json(saved, {"definition": definition, "plan": plan})


def _describe(definition: dict | None) -> str:
    if not definition:
        return "unknown"
    parts = [f"{k}={v}" for k, v in definition.get("params", {}).items()] + list(definition.get("overrides", []))
    return " ".join(parts) or "no overrides"


def launch_settings_problem(hydra: DictConfig) -> str | None:
    """A launcher or sweeper setting with which the sweep cannot run anything: no trials, no parallel jobs, no
    members in a stacked group."""
    for key, low in (("sweeper.n_trials", 1), ("launcher.n_jobs", None), ("launcher.max_members", 1),
                     ("launcher.cpus_per_task", 1), ("launcher.tasks_per_node", 1)):
        value = OmegaConf.select(hydra, key, default=None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            return f"hydra.{key}={value!r} is invalid; it must be an integer"
        if low is None and value == 0:  # joblib: n_jobs=-1 is one job per core
            return f"hydra.{key}=0 is invalid; give a number of parallel jobs >= 1, or -1 for one per core"
        if low is not None and value < low:
            return f"hydra.{key}={value} is invalid; it must be an integer >= {low}"
    return None


def output_problem(key: str, config: DictConfig) -> str | None:
    """Why the run or sweep folder ``key`` cannot be written, checked before Hydra writes anything into it (its
    ``.hydra/`` and log file): a ``task_name`` that leads out of ``paths.log_dir``, symbolic links planted inside,
    a run folder another process owns (a sweep folder in use is refused by its ``sweep.lock``), a file in the way
    or no write permission."""
    folder = OmegaConf.select(config, key)
    busy = busy_problem(key, Path(folder)) if key == "hydra.run.dir" else None
    return (task_name_problem(config.get("task_name")) or links_problem(key, folder) or busy
            or folder_problem(key, folder))


#: Exit status of a sweep that ran to its end but in which a job failed, diverged, was interrupted or refused.
INCOMPLETE_EXIT = 3


def incomplete_problem(rows: list[dict], refused: list[dict]) -> str | None:
    """One line on the jobs of a finished sweep that did not complete (by status) and those refused before they
    started, or None when every job completed (or was a dry run)."""
    bad = [row for row in rows if row["status"] not in (Status.COMPLETED, Status.DRY_RUN, Status.PRUNED)]
    parts = [f"{len(bad)} of {len(rows)} jobs did not complete ({status_counts(bad)}; see summary.md)"] if bad else []
    if refused:
        parts.append(f"{len(refused)} refused before they started (e.g. {refused[0]['job']}: {refused[0]['why']})")
    return "; ".join(parts) or None


def data_problem(config: DictConfig) -> str | None:
    """A dataset that cannot be found, said once before a sweep launches (instead of by each of its jobs); None when
    it is found, for a dry run (which reads no data), or when the sweep varies the dataset (each job then looks for
    its own)."""
    if config.get("dry_run") or any(key == "dataset" or key.startswith("dataset.")
                                    for key in swept_keys(sweep_definition(config))):
        return None
    try:
        missing = build_datamodule(config).missing()
    except Exception:  # a dataset setting the job itself refuses with its key
        return None
    return qualify("dataset", missing, config.dataset.keys()) if missing else None


class SweepSummary(Callback):
    """Claims the sweep folder (:func:`claim_folder`), prints one line per job start and end (k/N, status,
    accuracy, time, an estimate of the rest) and writes ``summary.csv``, ``summary.md`` and ``pareto.png`` into
    the sweep folder at the end of a multirun.

    Everything reads the records the jobs write, so it works with any launcher (in-process, joblib, submitit)
    and any sweeper (basic grid, Optuna); ``python -m rpn_exp.report`` rebuilds the same files later.
    """

    def __init__(self) -> None:
        self.progress: SweepProgress | None = None
        self.folder: Path | None = None  # set while a sweep runs and has no summary yet

    def __getstate__(self) -> dict:
        """Launchers (joblib, submitit) pickle the callbacks into each job: the watcher stays in this process."""
        return {**self.__dict__, "progress": None, "folder": None}

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        problem = output_problem("hydra.run.dir", config)
        if problem:
            print(f"Error: invalid configuration: {problem}", file=sys.stderr, flush=True)
            raise SystemExit(2)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        problem = (launch_settings_problem(config.hydra) or output_problem("hydra.sweep.dir", config)
                   or data_problem(config))
        if problem:  # refused before any folder is claimed or job launched
            print(f"Error: invalid configuration: {problem}", file=sys.stderr, flush=True)
            raise SystemExit(2)
        lock = None
        try:
            lock = lock_folder(config.hydra.sweep.dir)
            claim_folder(config.hydra.sweep.dir, sweep_definition(config), resume=bool(config.get("skip_completed")),
                         plan=sweep_plan(config))
        except SweepFolderError as error:  # Hydra turns a callback's exception into a warning: leave instead
            if lock is not None:
                lock.unlink(missing_ok=True)
            print(f"Error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2) from error
        (Path(config.hydra.sweep.dir) / REFUSED_FILE).unlink(missing_ok=True)  # an earlier attempt's
        total = planned_jobs(sweep_plan(config), config.hydra.sweeper.get("n_trials"))
        self.progress = SweepProgress(config.hydra.sweep.dir, total).start()
        self.folder = Path(config.hydra.sweep.dir)
        atexit.register(self._summarize_interrupted)  # Ctrl-C or SIGTERM end the process before on_multirun_end

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """The summary files; then, if any job did not complete or was refused, one line on stderr per kind and
        exit status :data:`INCOMPLETE_EXIT` (a sweep whose jobs all failed does not end as a success)."""
        rows = self.write_summary_files()
        problem = incomplete_problem(rows, read_refused(config.hydra.sweep.dir))
        if problem:
            print(f"Error: {problem}", file=sys.stderr, flush=True)
            raise SystemExit(INCOMPLETE_EXIT)

    def _summarize_interrupted(self) -> None:
        if self.folder is not None:
            print(f"[sweep] stopped before its end; summarizing what it left in {self.folder}", flush=True)
            self.write_summary_files()

    def write_summary_files(self) -> list[dict]:
        """Stop the watcher and write the summary files of the sweep folder (once); returns its rows."""
        folder, self.folder = self.folder, None
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if folder is None or not folder.is_dir():
            log.warning("sweep folder %s does not exist; no summary written", folder)
            return []
        rows, left_out = summarize([folder])
        paths = write_summary(folder, rows, title=default_title([folder], rows), left_out=left_out)
        (folder / LOCK_FILE).unlink(missing_ok=True)
        log.info("sweep summary: %d jobs (%s); Pareto front: %s\n  %s", len(rows), status_counts(rows),
                 front_text(rows), "\n  ".join(str(p) for p in paths.values()))
        return rows
