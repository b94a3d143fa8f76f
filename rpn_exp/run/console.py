"""What a run prints: Lightning's messages once, no adverts, and inside a sweep only what matters."""

from __future__ import annotations

import logging
import os
import warnings

#: The loggers Lightning gives a console handler of their own when it is imported.
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
#: Lightning messages that say nothing about the run (no TPU on these machines; an advertisement).
NOISE = ("TPU available", "💡 Tip", "HPU available")
#: Warnings raised inside Lightning about its own use of deprecated APIs: nothing a user can change.
LIGHTNING_INTERNAL_WARNINGS = (r".*isinstance\(treespec, LeafSpec\).*",)
#: Lightning's hint to use ``srun`` wherever SLURM is installed, inside a SLURM job or not.
SRUN_HINT = r"The `srun` command is available on your system but is not used"


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in NOISE)


def configure_console(quiet: bool) -> None:
    """Lightning's console messages go out once, through the application's handlers, without noise.

    Lightning gives its loggers handlers of their own; under Hydra the root logger has one too, so every message
    appeared twice (``INFO: ...`` and Hydra's format). Those extra handlers are removed, and the records passed on
    to the root, when the root logger has a handler. ``quiet`` (a sweep job, an evaluation) lets Lightning say only
    warnings: the sweep prints a line per job, the evaluation its result.
    """
    lightning = logging.getLogger("lightning.pytorch")
    if logging.getLogger().handlers:
        for name in LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                if isinstance(handler, logging.StreamHandler):
                    logger.removeHandler(handler)
            logger.propagate = True
    source = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropNoise) for f in source.filters):
        source.addFilter(_DropNoise())
    lightning.setLevel(logging.WARNING if quiet else logging.INFO)
    for message in LIGHTNING_INTERNAL_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    if not os.environ.get("SLURM_JOB_ID"):  # SLURM installed but this is no SLURM job: the srun hint is noise
        warnings.filterwarnings("ignore", message=SRUN_HINT)
