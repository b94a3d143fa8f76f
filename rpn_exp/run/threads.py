"""How many intra-op threads a run computes with: its share of the machine's cores.

PyTorch starts with one thread per core in every process. When several runs share the machine (joblib workers,
submitit jobs, DDP ranks on the CPU) that oversubscribes it: on 2 cores, two workers of two threads each run slower
than two of one. A run therefore takes ``cores / processes sharing them`` threads, unless ``threads`` says otherwise
(or ``OMP_NUM_THREADS`` was set for the process).

A run alone on the machine takes the cores that are idle when it starts: on a machine whose cores are all busy with
other work, a thread per core makes every step wait for the slowest preempted thread (the paper model's step was
~10x slower with 2 threads than with 1 against 10 busy processes on 2 cores; ``benchmarks/threads.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a cluster's allocation narrows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_share(threads: int | None, launcher: Mapping | None, trainer: Mapping, cores: int,
                 busy: int = 0) -> tuple[int, str]:
    """(threads, why) for a run configured with ``threads`` (None: automatic), launched by ``launcher`` (the Hydra
    launcher's settings; None for a single run) with ``trainer`` settings, on a machine share of ``cores`` of which
    ``busy`` run other work (a run alone takes the idle ones, at least one)."""
    if threads is not None:
        return threads, "set by threads"
    target = str((launcher or {}).get("_target_", "")).lower()
    n_jobs = int((launcher or {}).get("n_jobs") or 1)
    if "joblib" in target or ("stacked" in target and n_jobs > 1):
        workers = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib: -1 is one worker per core
        kind = "joblib" if "joblib" in target else "stacked launcher"
        return max(1, cores // workers), f"{workers} {kind} workers share {cores} cores"
    if "submitit" in target.lower() and launcher.get("cpus_per_task"):
        return int(launcher["cpus_per_task"]), "the cpus_per_task of each submitit job"
    strategy, devices = str(trainer.get("strategy") or ""), trainer.get("devices")
    if strategy.startswith("ddp") and trainer.get("accelerator") in ("cpu", None, "auto") and isinstance(devices, int):
        return max(1, cores // devices), f"{devices} DDP processes share {cores} cores"
    free = max(1, cores - busy)
    return free, f"{free} of the {cores} cores of this process idle when it started"


def busy_elsewhere(samples: int = 5) -> int:
    """How many processes are running now besides this one: the median of a few readings of the kernel's count of
    runnable tasks (``/proc/loadavg``, 10 ms apart); 0 where the kernel does not say."""
    import statistics
    import time

    readings = []
    for _ in range(samples):
        try:
            with open("/proc/loadavg") as handle:
                running = int(handle.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):  # not Linux
            return 0
        readings.append(max(0, running - 1))
        time.sleep(0.01)
    return int(statistics.median(readings))


def use_threads(threads: int | None, launcher: Mapping | None, trainer: Mapping) -> int:
    """Set this process's intra-op threads to the run's share (kept as they are when ``OMP_NUM_THREADS`` is set
    and ``threads`` is not); returns the number in force."""
    import torch

    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    count, _ = thread_share(threads, launcher, trainer, available_cores(), busy_elsewhere() if threads is None else 0)
    torch.set_num_threads(count)
    return count
