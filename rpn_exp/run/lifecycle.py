"""One run from start to record, written once: the solo task (:mod:`rpn_exp.run.task`) and every member of a
stacked group (:mod:`rpn_exp.run.stacked`) are made of these steps.

    start       the record, written at once as ``running`` (a run killed from outside is reported, not lost)
    prepare     check the settings and the keys the overrides add; seed; build the data module (its data loaded and
                checked before anything trains) and the network, described in the record; check the checkpoint it
                resumes from (:mod:`rpn_exp.run.resume`)
    dashboards  the HPARAMS entry when training starts, the outcome when it ends (:mod:`rpn_exp.run.dashboard`)
    fit, test   the task's own: Lightning's Trainer, or the members' shared loop
    fail        the failure policy: one status and message for each way a run can end early (:func:`outcome`)
    finish      metrics, epochs and wall time; ``result.json`` written (a full disk keeps the last good one); one
                summary line
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from rpn_exp.config.build import (
    FUNCTION_GROUPS,
    ConfigError,
    build_datamodule,
    build_network,
    is_baseline_model,
    model_name,
    qualify,
    reconciliation_hparams,
)
from rpn_exp.config.checks import check_added_keys, check_settings
from rpn_exp.config.configuration import configuration_id, flat_settings
from rpn_exp.config.settings import RunSettings, run_settings
from rpn_exp.data import DatasetError
from rpn_exp.nn.describe import format_layer_table, model_record
from rpn_exp.run import ownership
from rpn_exp.run.allocator import keep_freed_memory
from rpn_exp.run.context import cluster_job, is_debug
from rpn_exp.run.dashboard import close_dashboards, dashboard_hparams, log_hyperparameters, sweep_keys
from rpn_exp.run.gpu_probe import probe_gpu_once
from rpn_exp.run.learning import frequency_loss, learning_flag
from rpn_exp.run.module import DivergenceError
from rpn_exp.run.provenance import provenance
from rpn_exp.run.record import Record, Status, reserve_space, save_outcome, summary_line, write_record
from rpn_exp.run.resume import check_checkpoint, check_resume, interruption_checkpoints, resume_point
from rpn_exp.run.threads import use_threads

log = logging.getLogger("rpn_exp")

#: Exit status of a run stopped by SIGTERM (128 + 15, as a shell reports a process ended by that signal).
SIGTERM_EXIT = 143


#: What the task can return to a sweeper (``objective``): a metric of the run or a count from its record.
OBJECTIVES = ("test/acc", "test/loss", "val/acc", "val/acc_best", "val/loss",
              "learnable_params", "frozen_params", "wall_time_s")


def objective_names(settings: RunSettings) -> list[str]:
    """The configured ``objective`` as a list, validated against :data:`OBJECTIVES`."""
    objective, names = settings.objective, settings.objectives
    bad = [name for name in names if name not in OBJECTIVES]
    if not names or bad:
        raise ConfigError(f"objective={objective!r} is invalid; give one of {list(OBJECTIVES)} or a list of them")
    return names


def objective_value(record: dict, names: list[str]) -> float | tuple[float, ...] | None:
    """The objective(s) of a completed run: a float for one name, a tuple for several (NaN where one is missing).

    None for a run that did not complete (dry run, failed, diverged, interrupted): it has no value to optimize.
    The Optuna sweeper records such a trial as failed and goes on; a NaN would make it stop the whole search.
    """
    if record.get("status") != Status.COMPLETED:
        return None
    values = tuple(float(record.get("metrics", {}).get(n, record.get(n, math.nan))) for n in names)
    return values[0] if len(values) == 1 else values


def new_record(cfg: DictConfig, settings: RunSettings, context: dict) -> Record:
    """The record of a run that is starting: what was asked for and where the code and numbers come from."""
    return {
        "status": Status.RUNNING, "pid": os.getpid(), "host": socket.gethostname(),
        "output_dir": str(settings.output_dir), "overrides": context["overrides"],
        "choices": context["choices"], "seed": settings.seed, "tags": list(settings.tags),
        "debug": is_debug(settings, context), "reconciliation_hparams": reconciliation_hparams(cfg),
        "cluster_job": cluster_job(), "lr": settings.lr, "max_epochs": settings.trainer.get("max_epochs"),
        "provenance": provenance(settings.accelerator), "metrics": {},
        "configuration": configuration_id(cfg), "settings": flat_settings(cfg),
    }


def build_experiment(cfg: DictConfig, settings: RunSettings, record: dict, verbose: bool = True):
    """Seed, then build the data module and the network; describe the network in ``record`` (and the console
    when ``verbose``; the log file always)."""
    import lightning as L

    L.seed_everything(settings.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    net = build_network(cfg, datamodule.num_features, datamodule.num_classes, shapes_only=settings.dry_run,
                        grid=datamodule.grid)
    if not settings.dry_run:  # the data is loaded (and checked) before anything is written
        try:
            datamodule.setup("fit")
        except (FileNotFoundError, DatasetError) as error:
            raise ConfigError(qualify("dataset", error, settings.dataset_keys)) from error
        warn_small_splits(datamodule.sizes())
    head = net.layers[0].heads[0]
    record.update(
        model=model_name(cfg),
        dataset=datamodule.name,
        expansion=head.expansion.name,
        reconciliation=head.reconciliation.name,
        interdependence=head.interdependence.name,
        remainder=net.layers[0].remainder.name,
        **model_record(net),
    )
    log.log(logging.INFO if verbose else logging.DEBUG, "RPN network %s\n%s", net.widths,
            format_layer_table(record["layers"]))
    return datamodule, net


#: Fewer validation or test samples than this, and a run says how coarse its accuracy is.
MIN_EVAL_SAMPLES = 100


def warn_small_splits(sizes: dict[str, int]) -> None:
    """Warn, with the sample count, about a validation or test split too small to mean much: the best checkpoint is
    chosen on the first, the reported accuracy measured on the second, in steps of 1/samples."""
    for split, fraction in (("val", "dataset.val_fraction"), ("test", "dataset.test_fraction")):
        count = sizes.get(split)
        if count is not None and count < MIN_EVAL_SAMPLES:
            log.warning("the %s split has %d samples (%s): its accuracy moves in steps of %.3f and %s; give at least "
                        "%d samples", split, count, fraction, 1 / max(count, 1),
                        "the best checkpoint is chosen on it" if split == "val" else "it is the reported test accuracy",
                        MIN_EVAL_SAMPLES)


def save_record(out: Path, record: dict, final: bool = False) -> None:
    """Write ``result.json`` (a ``final`` one with the space the run reserved, ``record.save_outcome``); if that
    fails (a full disk), say so on stderr and keep the last good record."""
    try:
        (save_outcome if final else write_record)(out, record)
    except OSError as error:
        print(f"rpn_exp: could not write {out / 'result.json'} ({error}); its last good version is kept, the run's "
              f"outcome was: {summary_line(record)}", file=sys.stderr, flush=True)


def no_space_message(error: OSError, out: Path | None = None) -> str:
    """What a run that met a full disk says (its record, and one line on stderr): where to resume from, if the run
    folder ``out`` holds a ``last.ckpt``; else that it must start again."""
    where = f" writing {error.filename}" if error.filename else ""
    last = out / "checkpoints" / "last.ckpt" if out is not None else None
    if last is not None and last.is_file():
        then = f"free some space and resume with ckpt_path={last}"
    elif last is not None:
        then = "no epoch had ended, so there is no checkpoint to resume from: free some space and run it again"
    else:
        then = "free some space and resume from the run's checkpoints/last.ckpt if it has one, or run it again"
    return f"no space left on device{where}: the last good checkpoint and record are kept; {then}"


def outcome(error: BaseException, out: Path, interrupted: bool = False) -> dict:
    """The status and error a run that ended with ``error`` records: the failure policy, in one place.

    ``interrupted``: Lightning stopped training cleanly after a Ctrl-C and then exited (``SystemExit``).
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(error, ConfigError):
        return {"status": Status.FAILED, "error": f"invalid configuration: {error}"}
    if isinstance(error, DivergenceError):
        return {"status": Status.DIVERGED, "error": str(error)}
    if isinstance(error, SIGTERMException):
        why = (f"stopped: its sweep's launching process (pid {ownership.orphaned_from}) ended"
               if ownership.orphaned_from else "stopped by SIGTERM (e.g. a cluster's time limit or kill)")
        return {"status": Status.INTERRUPTED, "error": why, **interruption_checkpoints(out)}
    if isinstance(error, KeyboardInterrupt) or (isinstance(error, SystemExit) and interrupted):
        return {"status": Status.INTERRUPTED, "error": "interrupted by the user (Ctrl-C)",
                **interruption_checkpoints(out)}
    if isinstance(error, SystemExit):
        return {"status": Status.FAILED, "error": f"exited with {error.code}"}
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return {"status": Status.FAILED, "error": no_space_message(error, out)}
    return {"status": Status.FAILED, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}


@dataclass
class Run:
    """One run's record and the steps every task takes with it (module docstring)."""

    cfg: DictConfig  # the composed config, passed to rpn_exp.config's builders (read there only)
    settings: RunSettings  # what the run reads of it
    context: dict
    record: Record
    objectives: list[str]
    resume_from: str | None = None
    main_process: bool = True  # under DDP the other ranks train but leave the record to rank 0
    started: float = field(default_factory=time.perf_counter)
    stopped: float | None = None  # when it stopped training early (a diverged member): its wall time ends there
    loggers: list = field(default_factory=list)

    @classmethod
    def start(cls, cfg: DictConfig, context: dict, main_process: bool = True, **extra) -> Run:
        """Begin the run: where it resumes from, and its record, written at once."""
        settings = run_settings(cfg)
        out = settings.output_dir
        run = cls(cfg, settings, context, record={}, objectives=objective_names(settings), main_process=main_process)
        if main_process:
            ownership.own_folder(out)  # a stacked member's folder (a solo run's is taken before it starts)
        run.resume_from = resume_point(settings)
        resumed = check_resume(run.resume_from, cfg, settings)  # refused (ConfigError) before anything is written
        run.record = {**new_record(cfg, settings, context), "resumed_from": run.resume_from, **resumed, **extra}
        run.save()
        if main_process:
            reserve_space(out)
        return run

    @property
    def out(self) -> Path:
        return self.settings.output_dir

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def running(self) -> bool:
        return self.record["status"] == Status.RUNNING

    def prepare(self, verbose: bool = True):
        """Check the settings, build the data module and the network (described in the record), and check the
        checkpoint it resumes from; returns (datamodule, network). Raises ConfigError for a refused setting."""
        check_added_keys(self.context["overrides"], set(self.context["choices"]))
        check_settings(self.cfg)
        self.record["threads"] = use_threads(self.settings.threads, self.context.get("launcher"),
                                             self.settings.trainer)
        probe_gpu_once()
        keep_freed_memory()
        datamodule, net = build_experiment(self.cfg, self.settings, self.record, verbose=verbose)
        self.note_unused_overrides()
        if not self.settings.dry_run:
            self.record["data_sizes"] = datamodule.sizes()
            self.record["frequency_loss"] = frequency_loss(datamodule.splits["train"][1], datamodule.num_classes)
            check_checkpoint(self.resume_from, net)
        return datamodule, net

    def note_unused_overrides(self) -> None:
        """A baseline (``model=mlp``) built from a command that also sets the RPN's functions: what it ignores is
        said once and kept in the record (``ignored_overrides``), so a sweep over both kinds of model stays valid."""
        name = self.record.get("model", "rpn")
        ignored = [o for o in self.context["overrides"]
                   if is_baseline_model(name) and o.lstrip("+~").split("=")[0].split(".")[0] in FUNCTION_GROUPS]
        if ignored:
            self.record["ignored_overrides"] = ignored
            log.warning("model=%s uses no expansion, reconciliation, interdependence or remainder: %s ignored",
                        name, " ".join(ignored))

    def open_dashboards(self, loggers) -> None:
        """The run's hyper-parameters to every logger (TensorBoard's HPARAMS entry); closed by :meth:`finish`."""
        self.loggers = list(loggers)
        log_hyperparameters(self.loggers, dashboard_hparams(self.record, self.settings, sweep_keys(self.context)))

    def end(self, status: Status, **extra) -> None:
        """Record an outcome that is not a failure (``completed``, ``dry_run``)."""
        self.record.update(status=status, **extra)

    def fail(self, error: BaseException, interrupted: bool = False) -> None:
        """Record the outcome of ``error`` (:func:`outcome`); a divergence is also logged as it happens."""
        self.record.update(outcome(error, self.out, interrupted))
        if self.status == Status.DIVERGED:
            self.stopped = time.perf_counter()
            log.error("%s diverged: %s", self.out.name, error)
        elif isinstance(error, Exception) and not isinstance(error, ConfigError) and self.status == Status.FAILED:
            log.error("Run failed: %s", error)

    def finish(self, metrics: dict | None = None, **progress) -> None:
        """Metrics and progress (``epochs``, ``global_step``, ...) into the record, dashboards closed with the
        outcome, ``result.json`` written and the summary line logged."""
        self.record["metrics"].update(metrics or {})
        self.record.update(progress)
        if self.status == Status.COMPLETED:
            flag = learning_flag(self.record["metrics"].get("train/loss_epoch"), self.record.get("frequency_loss"))
            if flag:
                self.record["flag"] = flag
                log.warning("%s: %s", self.out.name, flag)
        try:
            close_dashboards(self.loggers, self.status)
        except OSError as error:  # an event file that cannot be written (a full disk): the record still can
            log.error("%s: could not close the TensorBoard run: %s", self.out.name, error)
        self.record["wall_time_s"] = round((self.stopped or time.perf_counter()) - self.started, 3)
        self.save(final=True)
        if self.main_process:
            log.info(summary_line(self.record))
            ownership.release_folder(self.out)

    def save(self, final: bool = False) -> None:
        if self.main_process:
            save_record(self.out, self.record, final)

    def objective(self) -> float | tuple[float, ...] | None:
        """The configured objective of a completed run (None otherwise)."""
        return objective_value(self.record, self.objectives)
