"""The train task: config → functions → network → LightningModule → Trainer → result record.

Only this module touches the run's output folder. It returns the configured objective (the test accuracy by
default; None when the run did not complete) so a Hydra sweeper can optimize it.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import sys
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rpn_exp.config.build import (
    ConfigError,
    build_datamodule,
    build_network,
    function_configs,
    instantiate_node,
    model_name,
)
from rpn_exp.config.checks import check_added_keys, check_settings
from rpn_exp.config.naming import comparable_overrides
from rpn_exp.config.sweep_definition import read_definition, swept_keys
from rpn_exp.config.tree import format_config_tree
from rpn_exp.data import DatasetError
from rpn_exp.nn.describe import format_layer_table, model_record, per_layer
from rpn_exp.run.checkpointing import (
    INTERRUPTED,
    LAST,
    AtomicCheckpointIO,
    LastCheckpoint,
    SaveOnInterrupt,
    check_resumable,
)
from rpn_exp.run.console import configure_console
from rpn_exp.run.loggers import TensorBoardLogger
from rpn_exp.run.module import DivergenceError, RPNClassifier
from rpn_exp.run.provenance import provenance
from rpn_exp.run.record import read_record, summary_line, write_record

log = logging.getLogger("rpn_exp")


def hydra_context(hc: DictConfig | None = None) -> dict:
    """Overrides, group choices and mode of the running Hydra job, or of the job whose ``hydra`` node is ``hc``
    (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if hc is None and not HydraConfig.initialized():
        return {"overrides": [], "choices": {}, "multirun": False, "sweep_dir": None}
    hc = hc if hc is not None else HydraConfig.get()
    return {
        "overrides": list(hc.overrides.task),
        "choices": {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")},
        "multirun": str(hc.mode) == "RunMode.MULTIRUN",
        "sweep_dir": hc.sweep.dir,
    }


#: Each HPARAMS column and the config groups (or top-level keys) whose change can change it.
HPARAM_SOURCES = {
    "model": ("model",),
    "reconciliation": ("reconciliation",),
    "r": ("reconciliation",),
    "p": ("reconciliation", "model", "dataset"),
    "q": ("reconciliation", "model", "dataset", "expansion", "interdependence"),
    "learnable_params": ("reconciliation", "model", "dataset", "expansion", "interdependence", "remainder"),
    "seed": ("seed",),
    "lr": ("optimizer",),
    "dataset": ("dataset",),
    "expansion": ("expansion",),
    "interdependence": ("interdependence",),
    "remainder": ("remainder",),
    "widths": ("model", "dataset"),
    "batch_size": ("dataset",),
    "max_epochs": ("trainer",),
    "tags": ("tags",),
}


def varied_by(swept: set[str], column: str) -> bool:
    """Whether sweeping the config keys ``swept`` can change HPARAMS ``column`` (an ``experiment`` changes all)."""
    groups = {key.split("@")[0].split(".")[0] for key in swept}
    return "experiment" in groups or bool(groups & set(HPARAM_SOURCES[column]))


def dashboard_hparams(record: dict, cfg: DictConfig, swept: set[str] | None = None) -> dict:
    """The run's hyper-parameters for TensorBoard's HPARAMS tab (str, bool or number values).

    r, p and q are the values each layer resolved (``8/2`` where layers differ, as in the sweep summary);
    hyper-parameters a family does not have are left out rather than logged as a placeholder. In a sweep
    (``swept``: the config keys it varies) only the columns those keys can change are logged: TensorBoard then
    shows what tells the jobs apart, and the constants stay in ``result.json`` and ``hparams.yaml``.
    """
    hp = {
        "model": record.get("model", "rpn"),
        "reconciliation": record["reconciliation"],
        "learnable_params": record["learnable_params"],
        "seed": int(cfg.seed),
        "lr": float(record["lr"]) if record.get("lr") is not None else float("nan"),
        "dataset": record["dataset"],
        "expansion": record["expansion"],
        "interdependence": record["interdependence"],
        "remainder": record["remainder"],
        "widths": "-".join(map(str, record["widths"])),
        "batch_size": int(cfg.dataset.batch_size),
        "max_epochs": int(cfg.trainer.max_epochs),
    }
    for key in ("r", "p", "q"):
        value = per_layer(record["layers"], key)
        if value != "":
            hp[key] = value
    if record.get("tags"):
        hp["tags"] = ",".join(record["tags"])
    if swept is not None:
        hp = {key: value for key, value in hp.items() if varied_by(swept, key)}
    return hp


#: What the task can return to a sweeper (``objective``): a metric of the run or a count from its record.
OBJECTIVES = ("test/acc", "test/loss", "val/acc", "val/acc_best", "val/loss",
              "learnable_params", "frozen_params", "wall_time_s")


def objective_names(cfg: DictConfig) -> list[str]:
    """The configured ``objective`` as a list, validated against :data:`OBJECTIVES`."""
    objective = cfg.get("objective", "test/acc")
    names = [objective] if isinstance(objective, str) else list(objective)
    bad = [name for name in names if name not in OBJECTIVES]
    if not names or bad:
        raise ConfigError(f"objective={objective!r} is invalid; give one of {list(OBJECTIVES)} or a list of them")
    return names


def objective_value(record: dict, names: list[str]) -> float | tuple[float, ...] | None:
    """The objective(s) of a completed run: a float for one name, a tuple for several (NaN where one is missing).

    None for a run that did not complete (dry run, failed, diverged, interrupted): it has no value to optimize.
    The Optuna sweeper records such a trial as failed and goes on; a NaN would make it stop the whole search.
    """
    if record.get("status") != "completed":
        return None
    values = tuple(float(record.get("metrics", {}).get(n, record.get(n, math.nan))) for n in names)
    return values[0] if len(values) == 1 else values


def completed_record(out: Path, overrides: list[str]) -> dict | None:
    """The completed record already in ``out`` for the same overrides, or None if the job must run.

    Raises ValueError when ``out`` holds a completed job with other overrides: it belongs to another sweep.
    """
    try:
        record = read_record(out)
    except (OSError, ValueError):
        return None
    if record.get("status") != "completed":
        return None
    ours, theirs = comparable_overrides(overrides), comparable_overrides(record.get("overrides", []))
    if ours != theirs:
        raise ValueError(
            f"skip_completed=true: {out} holds a completed job with overrides {theirs}, not {ours}; re-run the "
            "same sweep command into that folder, or give a fresh hydra.sweep.dir"
        )
    return record


def train(cfg: DictConfig) -> float | tuple[float, ...] | None:
    """Run one experiment described by ``cfg``; always leaves ``result.json`` in the output folder.

    The steps: check the settings, start the record, build data and network, then (unless ``dry_run``) make
    the trainer, fit, test and record the metrics. Returns the configured ``objective`` (default the test
    accuracy; None when the run did not complete). With ``skip_completed`` a job whose folder already holds its
    completed record is not run again.
    """
    from lightning.pytorch.utilities import rank_zero_only
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    started = time.perf_counter()
    main_process = rank_zero_only.rank == 0  # under DDP the other ranks train but leave the record to rank 0
    out, context = Path(cfg.paths.output_dir), hydra_context()
    objectives = objective_names(cfg)
    configure_console(sweep=context["multirun"])
    resume_from = cfg.get("ckpt_path")
    if cfg.get("skip_completed", False):
        done = completed_record(out, context["overrides"])
        if done is not None:
            log.info(summary_line(done).replace("rpn_exp ", "rpn_exp [skipped: already completed] ", 1))
            return objective_value(done, objectives)
        resume_from = resume_from or prepare_rerun(out)
    if cfg.get("print_config", True) and main_process and not context["multirun"]:  # a sweep job: in .hydra/
        log.info("%s", format_config_tree(cfg, context["choices"]))
    record = new_record(cfg, out, context)
    record["resumed_from"] = resume_from
    if main_process:
        save_record(out, record)  # a job killed from outside is reported as "running" (then "killed"), not lost
    trainer = None
    try:
        check_settings(cfg)
        check_added_keys(context["overrides"], set(context["choices"]))
        datamodule, net = build_experiment(cfg, record, verbose=not context["multirun"])
        if cfg.dry_run:
            record["status"] = "dry_run"
            return objective_value(record, objectives)
        check_checkpoint(resume_from, net)
        trainer, module = make_trainer(cfg, net, out, context)
        log_hyperparameters(trainer.loggers, dashboard_hparams(record, cfg, sweep_keys(context)))
        fit_and_test(cfg, trainer, module, datamodule, record, resume_from, verbose=not context["multirun"])
        record["status"] = "completed"
        return objective_value(record, objectives)
    except ConfigError as error:  # said once: in the record's summary line (and by __main__ for a single run)
        record.update(status="failed", error=f"invalid configuration: {error}")
        return _finish_failure(context, error, objectives)
    except DivergenceError as error:
        record.update(status="diverged", error=str(error))
        log.error("Run diverged: %s", error)
        return _finish_failure(context, error, objectives)
    except SIGTERMException as error:  # Lightning stops at the next batch boundary after a SIGTERM
        record.update(status="interrupted", error="stopped by SIGTERM (e.g. a cluster's time limit or kill)",
                      **interruption_checkpoints(out))
        if own_process_job():  # a submitit job: return, so that its launcher learns the job ended
            return objective_value(record, objectives)
        raise SystemExit(SIGTERM_EXIT) from error
    except SystemExit as error:  # Lightning exits with 1 after Ctrl-C, once training stopped cleanly
        if trainer is not None and trainer.interrupted:
            record.update(status="interrupted", error="interrupted by the user (Ctrl-C)",
                          **interruption_checkpoints(out))
        else:
            record.update(status="failed", error=f"exited with {error.code}")
        raise
    except KeyboardInterrupt:
        record.update(status="interrupted", error="interrupted by the user (Ctrl-C)", **interruption_checkpoints(out))
        raise
    except Exception as error:  # recorded, then re-raised outside sweeps
        record.update(status="failed", error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
        log.error("Run failed: %s", error)
        return _finish_failure(context, error, objectives)
    finally:
        if trainer is not None:
            record["metrics"].update(_metrics(trainer))
            record["epochs"] = trainer.current_epoch
            record["global_step"] = trainer.global_step
            close_dashboards(trainer.loggers, record["status"])
        record["wall_time_s"] = round(time.perf_counter() - started, 3)
        if main_process:
            save_record(out, record)
            log.info(summary_line(record))


def check_checkpoint(path: str | None, net) -> None:
    """Refuse a ``ckpt_path`` (or a sweep job's own last.ckpt) that cannot be resumed into ``net``."""
    if path is None:
        return
    try:
        check_resumable(path, net)
    except ValueError as error:
        raise ConfigError(f"ckpt_path={path}: {error}") from error


def sweep_keys(context: dict) -> set[str] | None:
    """The config keys the running sweep varies (None outside a sweep, or for a sweep without ``sweep.json``)."""
    definition = read_definition(context["sweep_dir"]) if context["multirun"] else None
    return swept_keys(definition) if definition is not None else None


def save_record(out: Path, record: dict) -> None:
    """Write ``result.json``; if that fails (a full disk), say so on stderr and keep the last good record."""
    try:
        write_record(out, record)
    except OSError as error:
        print(f"rpn_exp: could not write {out / 'result.json'} ({error}); its last good version is kept, the run's "
              f"outcome was: {summary_line(record)}", file=sys.stderr, flush=True)


def prepare_rerun(out: Path) -> str | None:
    """A job run again into its folder (``skip_completed=true``) that did not complete: it continues from its own
    ``last.ckpt`` (the end of its last completed epoch; returned), or, without one, starts from a clean folder:
    the earlier attempt's checkpoints, event files and logs are removed (its ``.hydra/`` and record stay until
    the new record replaces it)."""
    last = out / "checkpoints" / LAST
    if last.is_file():
        log.info("resuming %s from its last completed epoch: %s", out.name, last)
        return str(last)
    clear_attempt(out)
    return None


def clear_attempt(out: Path) -> None:
    """Remove an earlier attempt's checkpoints, event files and logs from the job folder ``out``."""
    for folder in (out / "checkpoints", out / "csv"):
        shutil.rmtree(folder, ignore_errors=True)
    for stale in [*out.glob("events.out.tfevents.*"), out / "hparams.yaml"]:
        stale.unlink(missing_ok=True)


def new_record(cfg: DictConfig, out: Path, context: dict) -> dict:
    """The record of a run that is starting: what was asked for and where the code and numbers come from."""
    psi = function_configs(cfg)["reconciliation"][1]
    configured = {k: v for k, v in psi.items() if k in ("r", "p", "q", "l") and v is not None}
    return {
        "status": "running", "pid": os.getpid(), "host": socket.gethostname(),
        "output_dir": str(out), "overrides": context["overrides"],
        "choices": context["choices"], "seed": cfg.seed, "tags": list(cfg.get("tags") or []),
        "debug": is_debug(cfg, context), "reconciliation_hparams": configured, "cluster_job": cluster_job(),
        "lr": OmegaConf.select(cfg, "optimizer.lr"), "max_epochs": OmegaConf.select(cfg, "trainer.max_epochs"),
        "provenance": provenance(OmegaConf.select(cfg, "trainer.accelerator")), "metrics": {},
    }


def cluster_job() -> str | None:
    """The SLURM job this run is (``<array job>_<task>`` for a job array, as SLURM names it), None elsewhere."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def is_debug(cfg: DictConfig, context: dict) -> bool:
    """A run of a ``debug`` preset (or any ``fast_dev_run``): its numbers are not results."""
    return context["choices"].get("debug") is not None or bool(OmegaConf.select(cfg, "trainer.fast_dev_run"))


def build_experiment(cfg: DictConfig, record: dict, verbose: bool = True):
    """Seed, then build the data module and the network; describe the network in ``record`` (and the console
    when ``verbose``; the log file always)."""
    import lightning as L

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    net = build_network(cfg, datamodule.num_features, datamodule.num_classes, shapes_only=bool(cfg.dry_run))
    if not cfg.dry_run:  # the data is loaded (and checked) before anything is written
        try:
            datamodule.setup("fit")
        except (FileNotFoundError, DatasetError) as error:
            raise ConfigError(f"dataset: {error}") from error
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


def make_trainer(cfg: DictConfig, net, out: Path, context: dict):
    """The LightningModule and the Trainer with the configured callbacks and loggers.

    Inside a multirun the per-job progress bars and model summaries are off (the sweep prints one line per job
    instead) unless ``progress_bars_in_sweeps=true``.
    """
    module = RPNClassifier(
        net,
        optimizer=instantiate_node(cfg.optimizer, "optimizer"),
        scheduler=instantiate_node(cfg.scheduler, "scheduler") if cfg.get("scheduler") else None,
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    quiet = context["multirun"] and not cfg.get("progress_bars_in_sweeps", False)
    callbacks = [
        instantiate_node(c, f"callbacks.{k}")
        for k, c in (cfg.get("callbacks") or {}).items()
        if not (quiet and str(c.get("_target_", "")).endswith("ProgressBar"))
    ]
    callbacks += [LastCheckpoint(out / "checkpoints"), SaveOnInterrupt(out / "checkpoints")]
    loggers = [instantiate_node(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items()]
    extra = {"enable_progress_bar": False, "enable_model_summary": False} if quiet else {}
    trainer = instantiate_node(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False,
                               plugins=[AtomicCheckpointIO()], **extra)
    return trainer, module


def fit_and_test(cfg: DictConfig, trainer, module, datamodule, record: dict, resume_from: str | None = None,
                 verbose: bool = True) -> None:
    """Fit (continuing from the checkpoint ``resume_from`` if given), then test the best checkpoint; the metrics
    go into ``record`` (and the test table to the console when ``verbose``)."""
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    record["metrics"].update(_metrics(trainer))
    if cfg.get("test", True):
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") if trainer.checkpoint_callback else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=False, verbose=verbose)
        record["metrics"].update(_metrics(trainer))
        record["best_checkpoint"] = best or None
    record["data_sizes"] = datamodule.sizes()


def log_hyperparameters(loggers, hparams: dict) -> None:
    """The run's hyper-parameters to every logger: TensorBoard's HPARAMS session, the others' own format."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_session(hparams)
        else:
            logger.log_hyperparams(hparams)


def close_dashboards(loggers, status: str) -> None:
    """End each TensorBoard run with the outcome of the record's ``status``."""
    outcome = {"completed": "success", "interrupted": "aborted", "running": "aborted"}.get(status, "failure")
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.close(outcome)


#: Exit status of a run stopped by SIGTERM (128 + 15, as a shell reports a process ended by that signal).
SIGTERM_EXIT = 143


def interruption_checkpoints(out: Path) -> dict:
    """Where an interrupted run can continue: ``last.ckpt`` (the last completed epoch: resume there for the same
    result as an uninterrupted run) and ``interrupted.ckpt`` (the state when it stopped); None where absent."""
    folder = out / "checkpoints"
    return {key: str(folder / name) if (folder / name).is_file() else None
            for key, name in (("last_checkpoint", LAST), ("interrupted_checkpoint", INTERRUPTED))}


def own_process_job() -> bool:
    """Whether this run is a sweep job that submitit started in a process of its own (SLURM or local).

    Such a job that SIGTERM stops (a cluster's time limit) returns instead of exiting with 143: submitit then
    stores its result before the SIGKILL that follows, and the launching process, which may have no other way
    to learn the state of a killed job (SLURM without accounting), sees it end. Elsewhere SIGTERM stops the
    whole process, sweep included.
    """
    return bool(os.environ.get("SUBMITIT_EXECUTOR"))


def _finish_failure(context: dict, error: Exception, objectives: list[str]):
    """Inside a sweep a failed or diverged job is recorded and the sweep goes on; a single run fails loudly
    (exit status 1), so that automation never takes it for a success."""
    if context["multirun"]:
        return objective_value({"status": "failed"}, objectives)
    raise error


def _metrics(trainer) -> dict:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
