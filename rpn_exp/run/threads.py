"""How many intra-op threads a run computes with: its share of the machine's cores.

PyTorch starts with one thread per core in every process. When several runs share the machine (joblib workers,
submitit jobs, DDP ranks on the CPU) that oversubscribes it: on 2 cores, two workers of two threads each run slower
than two of one. A run therefore takes ``cores / processes sharing them`` threads, unless ``threads`` says otherwise
(or ``OMP_NUM_THREADS`` was set for the process).
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a cluster's allocation narrows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_share(threads: int | None, launcher: Mapping | None, trainer: Mapping, cores: int) -> tuple[int, str]:
    """(threads, why) for a run configured with ``threads`` (None: automatic), launched by ``launcher`` (the Hydra
    launcher's settings; None for a single run) with ``trainer`` settings, on a machine share of ``cores``."""
    if threads is not None:
        return threads, "set by threads"
    target = str((launcher or {}).get("_target_", ""))
    if "joblib" in target.lower():
        n_jobs = int(launcher.get("n_jobs") or 1)
        workers = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib: -1 is one worker per core
        return max(1, cores // workers), f"{workers} joblib workers share {cores} cores"
    if "submitit" in target.lower() and launcher.get("cpus_per_task"):
        return int(launcher["cpus_per_task"]), "the cpus_per_task of each submitit job"
    strategy, devices = str(trainer.get("strategy") or ""), trainer.get("devices")
    if strategy.startswith("ddp") and trainer.get("accelerator") in ("cpu", None, "auto") and isinstance(devices, int):
        return max(1, cores // devices), f"{devices} DDP processes share {cores} cores"
    return cores, f"the {cores} cores of this process"


def use_threads(threads: int | None, launcher: Mapping | None, trainer: Mapping) -> int:
    """Set this process's intra-op threads to the run's share (kept as they are when ``OMP_NUM_THREADS`` is set
    and ``threads`` is not); returns the number in force."""
    import torch

    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    count, _ = thread_share(threads, launcher, trainer, available_cores())
    torch.set_num_threads(count)
    return count
