"""The train task: config → functions → network → LightningModule → Trainer → result record.

Only this module touches the run's output folder. It returns the test accuracy (NaN when the run did not
complete) so a Hydra sweeper can optimize it.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .build import ConfigError, build_datamodule, build_network, instantiate_node
from .module import HP_METRICS, DivergenceError, RPNClassifier
from .record import format_layer_table, model_record, summary_line, write_record

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


class SaveOnInterrupt:
    """Lightning callback factory: writes ``last.ckpt`` when training is interrupted (Ctrl-C)."""

    def __new__(cls, dirpath: str):
        import lightning as L

        class _SaveOnInterrupt(L.Callback):
            def on_exception(self, trainer, pl_module, exception):
                if isinstance(exception, KeyboardInterrupt):
                    path = Path(dirpath) / "last.ckpt"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    trainer.save_checkpoint(str(path))

        return _SaveOnInterrupt()


def _log_weight_images(loggers, net, step: int) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger

    from .plots import weight_image

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            for layer in net.layers:
                with torch.no_grad():
                    W = layer.heads[0].weight()[0]
                logger.experiment.add_image(f"weights/{layer.name}", weight_image(W), step, dataformats="HWC")
            logger.experiment.flush()  # the writer reopened after fit is not flushed at exit otherwise


def train(cfg: DictConfig) -> float:
    """Run one experiment described by ``cfg``; always leaves ``result.json`` in the output folder."""
    import lightning as L

    started = time.perf_counter()
    out = Path(cfg.paths.output_dir)
    context = hydra_context()
    record: dict = {"status": "running", "output_dir": str(out), "overrides": context["overrides"],
                    "choices": context["choices"], "seed": cfg.seed, "metrics": {}}
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
            reconciliation_hparams={k: v for k, v in OmegaConf.to_container(cfg.reconciliation).items()
                                    if k in ("r", "p", "q", "l") and v is not None},
            interdependence=head.interdependence.name,
            remainder=net.layers[0].remainder.name,
            **model_record(net),
        )
        log.info("RPN network %s\n%s", net.widths, format_layer_table(record["layers"]))
        if cfg.dry_run:
            record["status"] = "dry_run"
            return math.nan

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
        return float(record["metrics"].get("test/acc", math.nan))
    except ConfigError as error:
        record.update(status="failed", error=f"invalid configuration: {error}")
        log.error("Invalid configuration, nothing was trained:\n%s", error)
        return _finish_failure(context, error)
    except DivergenceError as error:
        record.update(status="diverged", error=str(error))
        log.error("Run diverged: %s", error)
        return math.nan
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
        return _finish_failure(context, error)
    finally:
        if trainer is not None:
            record["metrics"].update(_metrics(trainer))
            record["epochs"] = trainer.current_epoch
            record["global_step"] = trainer.global_step
        record["wall_time_s"] = round(time.perf_counter() - started, 3)
        write_record(out, record)
        log.info(summary_line(record))
        print(summary_line(record), flush=True)


def _finish_failure(context: dict, error: Exception) -> float:
    """Inside a sweep a failed job is recorded and the sweep goes on; a single run fails loudly."""
    if context["multirun"]:
        return math.nan
    raise error


def _log_hyperparams(logger, hparams: dict) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger

    if isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(hparams, metrics={key: 0.0 for key in HP_METRICS})
    else:
        logger.log_hyperparams(hparams)


def _metrics(trainer) -> dict:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
