"""Shared helpers of the benchmark scripts: config composition, memory readings, timing and tables."""

from __future__ import annotations

import os
import platform
import resource
import shlex
import statistics
import sys
import time

import torch


def compose(overrides):
    """The composed rpn_exp config for ``overrides`` (as ``python -m rpn_exp`` would build it)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rpn_exp.config.location import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def rss_mb() -> float:
    """Current resident memory of this process (MB)."""
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kb / 1024


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS mark (Linux ≥ 4.0 via /proc/self/clear_refs); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_since_reset_mb() -> float:
    """VmHWM: the peak RSS since the last ``reset_peak_rss`` (MB)."""
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return kb / 1024


def timed(fn, *, warmup: int = 3, repeats: int = 20) -> float:
    """Median wall time of ``fn()`` in milliseconds after ``warmup`` calls (synchronizing CUDA)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {device}")


def print_table(rows: list[dict], columns: list[str]) -> None:
    """A Markdown table of ``rows``, then the command that produced it."""
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for line in cells:
        print("| " + " | ".join(line) + " |")
    print()
    print(f"machine: {machine()}")
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
