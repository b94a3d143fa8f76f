"""The solo train task: config → functions → network → LightningModule → Trainer → result record.

``train`` is the run's lifecycle (:mod:`rpn_exp.run.lifecycle`) around Lightning's fit and test. It returns the
configured objective (the test accuracy by default; None when the run did not complete) so a Hydra sweeper can
optimize it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from rpn_exp.config.build import ConfigError, instantiate_node
from rpn_exp.config.settings import RunSettings, resolved_config, run_settings
from rpn_exp.config.tree import format_config_tree
from rpn_exp.run.checkpointing import AtomicCheckpointIO, LastCheckpoint, SaveOnInterrupt
from rpn_exp.run.console import configure_console
from rpn_exp.run.context import hydra_context, local_worker, own_process_job
from rpn_exp.run.lifecycle import SIGTERM_EXIT, Run, objective_names, objective_value
from rpn_exp.run.loggers import quiet_full_disk_in_writer_threads
from rpn_exp.run.module import RPNClassifier
from rpn_exp.run.ownership import FolderInUse, own_folder, release_folder, watch_launcher
from rpn_exp.run.record import Status, note_refused, summary_line
from rpn_exp.run.resume import clear_attempt, rerun_state
from rpn_exp.run.rung_store import RungPruning

log = logging.getLogger("rpn_exp")


def train(cfg: DictConfig) -> float | tuple[float, ...] | None:
    """Run one experiment described by ``cfg``; always leaves ``result.json`` in the output folder.

    With ``skip_completed`` a job whose folder already holds its completed record is not run again. Inside a sweep a
    failed or diverged job is recorded and the sweep goes on; a single run fails loudly (exit status 1).
    """
    from lightning.pytorch.utilities import rank_zero_only

    context, settings = hydra_context(), run_settings(cfg)
    objectives = objective_names(settings)
    configure_console(quiet=context["multirun"])
    out = settings.output_dir
    watch_launcher(local_worker())
    quiet_full_disk_in_writer_threads()
    if rank_zero_only.rank == 0:
        try:
            own_folder(out)
        except FolderInUse as error:  # another process runs this job: its folder is left to it
            if not context["multirun"]:
                raise
            log.error("rpn_exp [refused] %s", error)
            note_refused(context["sweep_dir"], out.name, str(error))
            return None
    try:
        return _train(cfg, settings, context, objectives, out)
    finally:
        release_folder(out)


def _train(cfg: DictConfig, settings: RunSettings, context: dict, objectives: list[str], out: Path):
    """:func:`train` in a job folder this process owns."""
    from lightning.pytorch.utilities import rank_zero_only
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    changed, done = rerun_state(cfg, settings, context["overrides"])
    if changed and not settings.allow_config_change:  # refused: the job's earlier record stays as it is
        if not context["multirun"]:
            raise ConfigError(changed)
        log.error("rpn_exp [refused] %s", changed)
        note_refused(context["sweep_dir"], out.name, changed)
        return None
    if changed:
        log.warning("%s: settings changed (allow_config_change=true); it runs again from the start", out.name)
        clear_attempt(out)
    if done is not None:
        log.info(summary_line(done).replace("rpn_exp ", f"rpn_exp [skipped: already {done['status']}] ", 1))
        return objective_value(done, objectives)
    if settings.print_config and rank_zero_only.rank == 0 and not context["multirun"]:
        log.info("%s", format_config_tree(cfg, context["choices"]))  # a sweep job's config is in .hydra/
    try:
        run = Run.start(cfg, context, main_process=rank_zero_only.rank == 0)
    except ConfigError as error:  # a resume refused before anything was written: an earlier record stays as it is
        if not context["multirun"]:
            raise
        log.error("rpn_exp [refused] %s: %s", out.name, error)
        note_refused(context["sweep_dir"], out.name, str(error))
        return None
    trainer = None
    try:
        datamodule, net = run.prepare(verbose=not context["multirun"])
        if settings.dry_run:
            run.end(Status.DRY_RUN)
            return run.objective()
        pruning = rung_pruning(settings, context, run)
        trainer, module = make_trainer(cfg, settings, net, context, extra_callbacks=[pruning] if pruning else [])
        run.record["precision"] = str(trainer.precision)  # what Lightning runs (16 on a CPU is bf16-mixed)
        run.open_dashboards(trainer.loggers)
        fit_and_test(settings, trainer, module, datamodule, run.record, run.resume_from,
                     verbose=not context["multirun"], pruning=pruning)
        end_fitted(run, pruning)
        return run.objective()
    except SIGTERMException as error:  # Lightning stops at the next batch boundary after a SIGTERM
        run.fail(error)
        if own_process_job():  # a submitit job: return, so that its launcher learns the job ended
            return run.objective()
        raise SystemExit(SIGTERM_EXIT) from error
    except (SystemExit, KeyboardInterrupt) as error:  # Lightning exits with 1 after a Ctrl-C that stopped cleanly
        run.fail(error, interrupted=trainer is not None and trainer.interrupted)
        raise
    except Exception as error:
        run.fail(error)
        if context["multirun"]:
            return run.objective()
        raise
    finally:
        progress = {"epochs": trainer.current_epoch, "global_step": trainer.global_step} if trainer else {}
        run.finish(_metrics(trainer) if trainer else None, **progress)


def end_fitted(run: Run, pruning: RungPruning | None) -> None:
    """A run whose fit ended: ``pruned`` when its sweep's pruner stopped it (untested), else ``completed``."""
    if pruning and pruning.pruned:
        run.record["metrics"].setdefault("val/acc", pruning.pruned["val_acc"])
        run.end(Status.PRUNED, pruned=pruning.pruned)
    else:
        run.end(Status.COMPLETED)


def rung_pruning(settings: RunSettings, context: dict, run: Run) -> RungPruning | None:
    """The job's part in its sweep's pruning (``pruner``; :mod:`rpn_exp.run.rung_store`), None without a pruner;
    a single run has no other job to be compared with: it warns and is not pruned."""
    if not settings.pruner:
        return None
    if not context["multirun"]:
        log.warning("pruner: it compares the jobs of a sweep (-m); a single run is not pruned")
        return None
    return RungPruning(instantiate_node(settings.pruner, "pruner"), run.out.parent, run.record)


def make_trainer(cfg: DictConfig, settings: RunSettings, net, context: dict, extra_callbacks=()):
    """The LightningModule and the Trainer with the configured callbacks (and ``extra_callbacks``) and loggers.

    Inside a multirun the per-job progress bars and model summaries are off (the sweep prints one line per job
    instead) unless ``progress_bars_in_sweeps=true``.
    """
    module = RPNClassifier(
        net,
        optimizer=instantiate_node(settings.optimizer, "optimizer"),
        scheduler=instantiate_node(settings.scheduler, "scheduler") if settings.scheduler else None,
        config=resolved_config(cfg),
    )
    quiet = quiet_trainer(settings, context)
    loggers = [instantiate_node(c, f"logger.{k}") for k, c in settings.loggers.items()]
    callbacks = [*run_callbacks(settings, progress_bars=not quiet), *extra_callbacks]
    return new_trainer(settings, callbacks, loggers, quiet), module


def quiet_trainer(settings: RunSettings, context: dict) -> bool:
    """Whether a run's Trainer shows no progress bar or model summary: inside a sweep, unless asked for."""
    return context["multirun"] and not settings.progress_bars_in_sweeps


def run_callbacks(settings: RunSettings, progress_bars: bool = True) -> list:
    """A run's callbacks: the configured ones (progress bars left out unless ``progress_bars``), then
    ``last.ckpt`` at every epoch's end and ``interrupted.ckpt`` on an interruption, in the run's folder."""
    callbacks = [
        instantiate_node(c, f"callbacks.{k}")
        for k, c in settings.callbacks.items()
        if progress_bars or not str(c.get("_target_", "")).endswith("ProgressBar")
    ]
    checkpoints = settings.output_dir / "checkpoints"
    return callbacks + [LastCheckpoint(checkpoints), SaveOnInterrupt(checkpoints)]


def new_trainer(settings: RunSettings, callbacks: list, loggers, quiet: bool, plugins=None, **overrides):
    """The configured Trainer (``settings.trainer``) with these callbacks, loggers and checkpoint plugin (atomic
    writes by default); ``quiet``: no progress bar or model summary."""
    extra = {"enable_progress_bar": False, "enable_model_summary": False} if quiet else {}
    return instantiate_node(settings.trainer, "trainer", callbacks=callbacks, logger=loggers or False,
                            plugins=plugins or [AtomicCheckpointIO()], **{**extra, **overrides})


def fit_and_test(settings: RunSettings, trainer, module, datamodule, record: dict, resume_from: str | None = None,
                 verbose: bool = True, pruning: RungPruning | None = None) -> None:
    """Fit (continuing from the checkpoint ``resume_from`` if given), then test the best checkpoint (not when
    ``pruning`` stopped it); the metrics go into ``record`` (and the test table to the console when ``verbose``)."""
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    record["metrics"].update(_metrics(trainer))
    if settings.test and not (pruning and pruning.pruned):
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") if trainer.checkpoint_callback else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True, verbose=verbose)
        record["metrics"].update(_metrics(trainer))
        record["best_checkpoint"] = best or None


def _metrics(trainer) -> dict:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
