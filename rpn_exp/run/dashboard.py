"""The run's TensorBoard dashboard: its HPARAMS entry (the columns a sweep varies, with the values each layer
resolved) when it starts, and its outcome when it ends; other loggers get the same hyper-parameters."""

from __future__ import annotations

from rpn_exp.config.settings import RunSettings
from rpn_exp.config.sweep_definition import read_definition, swept_keys
from rpn_exp.nn.describe import STRUCTURE_HPARAMS, per_layer
from rpn_exp.run.loggers import TensorBoardLogger
from rpn_exp.run.record import Status

#: Each HPARAMS column and the config groups (or top-level keys) whose change can change it.
HPARAM_SOURCES = {
    "model": ("model",),
    "reconciliation": ("reconciliation",),
    "r": ("reconciliation",),
    "k": ("reconciliation",),
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


def dashboard_hparams(record: dict, settings: RunSettings, swept: set[str] | None = None) -> dict:
    """The run's hyper-parameters for TensorBoard's HPARAMS tab (str, bool or number values).

    r, k, p and q are the values each layer resolved, as text (``2``, or ``8/2`` where layers differ, as in the
    sweep summary), so that each column holds one type across the runs of a sweep;
    hyper-parameters a family does not have are left out rather than logged as a placeholder. In a sweep
    (``swept``: the config keys it varies) only the columns those keys can change are logged: TensorBoard then
    shows what tells the jobs apart, and the constants stay in ``result.json`` and ``hparams.yaml``.
    """
    hp = {
        "model": record.get("model", "rpn"),
        "reconciliation": record["reconciliation"],
        "learnable_params": record["learnable_params"],
        "seed": int(settings.seed),
        "lr": float(record["lr"]) if record.get("lr") is not None else float("nan"),
        "dataset": record["dataset"],
        "expansion": record["expansion"],
        "interdependence": record["interdependence"],
        "remainder": record["remainder"],
        "widths": "-".join(map(str, record["widths"])),
        "batch_size": int(settings.batch_size),
        "max_epochs": settings.max_epochs,
    }
    for key in STRUCTURE_HPARAMS:  # text always: "2" and "8/2" in one column, which TensorBoard types once
        value = per_layer(record["layers"], key)
        if value != "":
            hp[key] = str(value)
    if record.get("tags"):
        hp["tags"] = ",".join(record["tags"])
    if swept is not None:
        hp = {key: value for key, value in hp.items() if varied_by(swept, key)}
    return hp


def sweep_keys(context: dict) -> set[str] | None:
    """The config keys the running sweep varies (None outside a sweep, or for a sweep without ``sweep.json``)."""
    definition = read_definition(context["sweep_dir"]) if context["multirun"] else None
    return swept_keys(definition) if definition is not None else None


def log_hyperparameters(loggers, hparams: dict) -> None:
    """The run's hyper-parameters to every logger: TensorBoard's HPARAMS session, the others' own format."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_session(hparams)
        else:
            logger.log_hyperparams(hparams)


def close_dashboards(loggers, status: str) -> None:
    """End each TensorBoard run with the outcome of the record's ``status``."""
    outcomes = {Status.COMPLETED: "success", Status.INTERRUPTED: "aborted", Status.RUNNING: "aborted",
                Status.PRUNED: "aborted"}  # stopped on purpose: not a failure
    outcome = outcomes.get(status, "failure")
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.close(outcome)
