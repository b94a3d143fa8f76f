"""What a run reads of its composed config, typed and read once: :func:`run_settings` turns the config into
:class:`RunSettings`, which ``rpn_exp.run`` and ``rpn_exp.sweep`` receive. Outside ``rpn_exp.config`` the composed
config itself is only passed along (to the builders here, which read it), never read (a test holds it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rpn_exp.config.schema import RunSchema


def _plain(value):
    """A config value as plain Python (nodes resolved into dicts and lists)."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value


@dataclass
class RunSettings(RunSchema):
    """The run's own keys (:class:`~rpn_exp.config.schema.RunSchema`: seed, dry_run, test, ckpt_path, ...) and what
    a run reads of the groups: its folder, the trainer's arguments, the optimizer, scheduler, callbacks, loggers and
    pruner
    (each resolved, as plain dicts), the learning rate and batch size it records."""

    output_dir: Path = Path(".")
    trainer: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    callbacks: dict[str, dict] = field(default_factory=dict)
    loggers: dict[str, dict] = field(default_factory=dict)
    batch_size: int | None = None
    dataset_keys: tuple[str, ...] = ()
    compile: str | None = None
    reconciliation_target: str | None = None
    pruner: dict[str, Any] | None = None

    @property
    def max_epochs(self) -> int:
        return int(self.trainer["max_epochs"])

    @property
    def log_every_n_steps(self) -> int:
        return max(1, int(self.trainer.get("log_every_n_steps") or 50))

    @property
    def lr(self) -> float | None:
        return (self.optimizer or {}).get("lr")

    @property
    def accelerator(self) -> str | None:
        return self.trainer.get("accelerator")

    @property
    def debug_trainer(self) -> bool:
        """Whether the trainer runs Lightning's ``fast_dev_run`` (a debug run: its numbers are not results)."""
        return bool(self.trainer.get("fast_dev_run"))

    @property
    def objectives(self) -> list[str]:
        """``objective`` as a list."""
        return [self.objective] if isinstance(self.objective, str) else list(self.objective)


def run_settings(cfg: DictConfig) -> RunSettings:
    """The :class:`RunSettings` of a composed config (its types were checked by ``rpn_exp.config.checks``)."""
    own = {f.name: _plain(cfg[f.name]) for f in fields(RunSchema) if f.name in cfg}
    if own.get("tags") is None:
        own.pop("tags", None)
    return RunSettings(
        **own,
        output_dir=Path(OmegaConf.select(cfg, "paths.output_dir") or "."),  # "." for a config saved without paths
        trainer=_plain(cfg.get("trainer")) or {},
        optimizer=_plain(cfg.get("optimizer")),
        scheduler=_plain(cfg.get("scheduler")) or None,
        callbacks={str(k): _plain(v) or {} for k, v in (cfg.get("callbacks") or {}).items()},
        loggers={str(k): _plain(v) or {} for k, v in (cfg.get("logger") or {}).items()},
        batch_size=OmegaConf.select(cfg, "dataset.batch_size"),
        dataset_keys=tuple(str(k) for k in (cfg.get("dataset") or {})),
        compile=OmegaConf.select(cfg, "model.compile"),
        reconciliation_target=OmegaConf.select(cfg, "reconciliation._target_"),
        pruner=_plain(cfg.get("pruner")) or None,
    )


def resolved_config(cfg: DictConfig) -> dict:
    """The whole composed config, resolved, as plain Python: what a checkpoint keeps to rebuild its run."""
    return OmegaConf.to_container(cfg, resolve=True)
