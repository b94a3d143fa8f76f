"""The train task: config → functions → network → LightningModule → Trainer → result record.

Only this module touches the run's output folder. It returns the configured objective (the test accuracy by
default; NaN when the run did not complete) so a Hydra sweeper can optimize it.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig

from .build import ConfigError, build_datamodule, build_network, instantiate_node
from .callbacks import SaveOnInterrupt
from .module import HP_METRICS, DivergenceError, RPNClassifier
from .record import format_layer_table, model_record, read_record, summary_line, write_record

log = logging.getLogger("rpn_exp")


def hydra_context() -> dict:
    """Overrides, group choices and mode of the running Hydra job ({} outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {"overrides": [], "choices": {}, "multirun": False}
    hc = HydraConfig.get()
    return {
        "overrides": list(hc.overrides.task),
        "choices": {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")},
        "multirun": str(hc.mode) == "RunMode.MULTIRUN",
    }


def flat_hparams(record: dict, cfg: DictConfig) -> dict:
    """Scalar hyper-parameters for TensorBoard's HPARAMS tab."""
    rec_cfg = cfg.reconciliation
    hp = {
        "dataset": record["dataset"],
        "expansion": record["expansion"],
        "reconciliation": record["reconciliation"],
        "interdependence": record["interdependence"],
        "remainder": record["remainder"],
        "hidden": str(list(cfg.model.hidden)),
        "learnable_params": record["learnable_params"],
        "frozen_params": record["frozen_params"],
        "lr": float(cfg.optimizer.get("lr", float("nan"))),
        "batch_size": int(cfg.dataset.batch_size),
        "seed": int(cfg.seed),
    }
    for key in ("r", "p", "q", "l"):
        value = rec_cfg.get(key, None) if key in rec_cfg else "-"
        hp[f"reconciliation.{key}"] = "auto" if value is None else value
    return hp


def _log_weight_images(loggers, net, step: int) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger

    from .plots import weight_image

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            for layer in net.layers:
                preview = layer.heads[0].weight_preview()
                logger.experiment.add_image(f"weights/{layer.name}", weight_image(preview), step, dataformats="HWC")
            logger.experiment.flush()  # the writer reopened after fit is not flushed at exit otherwise


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


def objective_value(record: dict, names: list[str]) -> float | tuple[float, ...]:
    """The objective(s) of a finished run: a float for one name, a tuple for several (NaN where missing)."""
    values = tuple(float(record.get("metrics", {}).get(n, record.get(n, math.nan))) for n in names)
    if record.get("status") != "completed":
        values = tuple(math.nan for _ in names)
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
    ours, theirs = _job_overrides(overrides), _job_overrides(record.get("overrides", []))
    if ours != theirs:
        raise ValueError(
            f"skip_completed=true: {out} holds a completed job with overrides {theirs}, not {ours}; re-run the "
            "same sweep command into that folder, or give a fresh hydra.sweep.dir"
        )
    return record


#: Overrides that do not change what a job computes; a resumed job may differ from its record in these.
_NOT_COMPARED = ("skip_completed", "paths.")


def _job_overrides(overrides: list[str]) -> list[str]:
    return sorted(o for o in overrides if not o.split("=", 1)[0].lstrip("+~").startswith(_NOT_COMPARED))


def train(cfg: DictConfig) -> float | tuple[float, ...]:
    """Run one experiment described by ``cfg``; always leaves ``result.json`` in the output folder.

    Returns the configured ``objective`` (default the test accuracy; NaN when the run did not complete).
    With ``skip_completed`` a job whose folder already holds its completed record is not run again.
    """
    import lightning as L
    from lightning.pytorch.utilities import rank_zero_only

    started = time.perf_counter()
    main_process = rank_zero_only.rank == 0  # under DDP the other ranks train but leave the record to rank 0
    out = Path(cfg.paths.output_dir)
    context = hydra_context()
    objectives = objective_names(cfg)
    if cfg.get("skip_completed", False):
        done = completed_record(out, context["overrides"])
        if done is not None:
            log.info(summary_line(done).replace("rpn_exp ", "rpn_exp [skipped: already completed] ", 1))
            return objective_value(done, objectives)
    configured = {k: v for k, v in cfg.reconciliation.items() if k in ("r", "p", "q", "l") and v is not None}
    record: dict = {
        "status": "running", "output_dir": str(out), "overrides": context["overrides"], "choices": context["choices"],
        "seed": cfg.seed, "reconciliation_hparams": configured, "metrics": {},
    }
    if main_process:
        write_record(out, record)  # a job killed from outside is reported as "running", not lost
    trainer = None
    try:
        L.seed_everything(cfg.seed, workers=True)
        datamodule = build_datamodule(cfg)
        net = build_network(cfg, datamodule.num_features, datamodule.num_classes)
        head = net.layers[0].heads[0]
        record.update(
            dataset=datamodule.name,
            expansion=head.expansion.name,
            reconciliation=head.reconciliation.name,
            interdependence=head.interdependence.name,
            remainder=net.layers[0].remainder.name,
            **model_record(net),
        )
        log.info("RPN network %s\n%s", net.widths, format_layer_table(record["layers"]))
        if cfg.dry_run:
            record["status"] = "dry_run"
            return objective_value(record, objectives)

        module = RPNClassifier(
            net,
            optimizer=instantiate_node(cfg.optimizer, "optimizer"),
            scheduler=instantiate_node(cfg.scheduler, "scheduler") if cfg.get("scheduler") else None,
        )
        callbacks = [instantiate_node(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items()]
        callbacks.append(SaveOnInterrupt(str(out / "checkpoints")))
        loggers = [instantiate_node(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items()]
        trainer = instantiate_node(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
        for logger in trainer.loggers:
            _log_hyperparams(logger, flat_hparams(record, cfg))

        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        record["metrics"].update(_metrics(trainer))
        if cfg.get("test", True):
            best = getattr(trainer.checkpoint_callback, "best_model_path", "") if trainer.checkpoint_callback else ""
            trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=False)
            record["metrics"].update(_metrics(trainer))
            record["best_checkpoint"] = best or None
        _log_weight_images(trainer.loggers, net, trainer.global_step)
        record["status"] = "completed"
        record["data_sizes"] = datamodule.sizes()
        return objective_value(record, objectives)
    except ConfigError as error:
        record.update(status="failed", error=f"invalid configuration: {error}")
        log.error("Invalid configuration, nothing was trained:\n%s", error)
        return _finish_failure(context, error, objectives)
    except DivergenceError as error:
        record.update(status="diverged", error=str(error))
        log.error("Run diverged: %s", error)
        return objective_value(record, objectives)
    except SystemExit as error:
        if trainer is not None and trainer.interrupted:
            record.update(status="interrupted", error="interrupted by the user (Ctrl-C)")
            record["last_checkpoint"] = str(out / "checkpoints" / "last.ckpt")
        else:
            record.update(status="failed", error=f"exited with {error.code}")
        raise
    except KeyboardInterrupt:
        record.update(status="interrupted", error="interrupted by the user (Ctrl-C)")
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
        record["wall_time_s"] = round(time.perf_counter() - started, 3)
        if main_process:
            write_record(out, record)
            log.info(summary_line(record))


def _finish_failure(context: dict, error: Exception, objectives: list[str]):
    """Inside a sweep a failed job is recorded and the sweep goes on; a single run fails loudly."""
    if context["multirun"]:
        return objective_value({"status": "failed"}, objectives)
    raise error


def _log_hyperparams(logger, hparams: dict) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger

    if isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(hparams, metrics={key: 0.0 for key in HP_METRICS})
    else:
        logger.log_hyperparams(hparams)


def _metrics(trainer) -> dict:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
