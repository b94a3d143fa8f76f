"""Where a run runs: its Hydra job (overrides, group choices, sweep or not), its SLURM job, whether it is a debug run,
and whether submitit started it in a process of its own."""

from __future__ import annotations

import os

from omegaconf import DictConfig, OmegaConf

from rpn_exp.config.settings import RunSettings


def hydra_context(hc: DictConfig | None = None) -> dict:
    """Overrides, group choices and mode of the running Hydra job, or of the job whose ``hydra`` node is ``hc``
    (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if hc is None and not HydraConfig.initialized():
        return {"overrides": [], "choices": {}, "multirun": False, "sweep_dir": None, "launcher": None}
    hc = hc if hc is not None else HydraConfig.get()
    multirun = str(hc.mode) == "RunMode.MULTIRUN"
    return {
        "overrides": list(hc.overrides.task),
        "choices": {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")},
        "multirun": multirun,
        "sweep_dir": hc.sweep.dir,
        # the launcher's own settings (how many jobs share the machine), as written
        "launcher": OmegaConf.to_container(hc.launcher, resolve=False) if multirun and hc.get("launcher") else None,
    }


def cluster_job() -> str | None:
    """The SLURM job this run is (``<array job>_<task>`` for a job array, as SLURM names it), None elsewhere."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def is_debug(settings: RunSettings, context: dict) -> bool:
    """A run of a ``debug`` preset (or any ``fast_dev_run``): its numbers are not results."""
    return context["choices"].get("debug") is not None or settings.debug_trainer


def own_process_job() -> bool:
    """Whether this run is a sweep job that submitit started in a process of its own (SLURM or local).

    Such a job that SIGTERM stops (a cluster's time limit) returns instead of exiting with 143: submitit then
    stores its result before the SIGKILL that follows, and the launching process, which may have no other way
    to learn the state of a killed job (SLURM without accounting), sees it end. Elsewhere SIGTERM stops the
    whole process, sweep included.
    """
    return bool(os.environ.get("SUBMITIT_EXECUTOR"))


def local_worker() -> bool:
    """Whether this process is a worker that a local launcher started for sweep jobs (a joblib/loky worker, a
    submitit_local job), which must not outlive the launching process (``rpn_exp.run.ownership``)."""
    import multiprocessing

    return multiprocessing.current_process().name.startswith("LokyProcess") or \
        os.environ.get("SUBMITIT_EXECUTOR") == "local"
