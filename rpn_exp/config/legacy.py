"""Configs saved by earlier versions (in checkpoints and run folders) name ``_target_`` paths that have since moved:
this table maps each old path to where its class lives now, and :func:`upgrade_targets` rewrites a saved config
before it is built from (``rpn_exp.eval``, ``RPNClassifier.load_from_checkpoint``)."""

from __future__ import annotations

from typing import Any

#: Old ``_target_`` -> current ``_target_`` (0.1.0's flat package -> the layered one).
MOVED_TARGETS = {
    "rpn_exp.loggers.TensorBoardLogger": "rpn_exp.run.loggers.TensorBoardLogger",
    "rpn_exp.callbacks.WeightSnapshots": "rpn_exp.run.snapshots.WeightSnapshots",
    "rpn_exp.sweep.SweepSummary": "rpn_exp.sweep.callback.SweepSummary",
}


def upgrade_targets(config: Any) -> Any:
    """A copy of the plain (dict/list) ``config`` with every moved ``_target_`` replaced by its current path."""
    if isinstance(config, dict):
        return {key: MOVED_TARGETS.get(value, value) if key == "_target_" else upgrade_targets(value)
                for key, value in config.items()}
    if isinstance(config, list):
        return [upgrade_targets(value) for value in config]
    return config
