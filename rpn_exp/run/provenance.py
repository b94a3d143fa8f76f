"""Where a result came from: the code's git commit, the package versions and the device it ran on."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

#: Distributions whose versions every record carries (``rpn_exp`` itself included).
PACKAGES = ("torch", "lightning", "hydra-core", "omegaconf", "rpn_exp")


def git_state(folder: str | Path | None = None) -> dict:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``folder`` (rpn_exp's source by default).

    ``{"commit": None, "dirty": None}`` when the code is not in a git checkout (an installed wheel) or git is
    missing. ``dirty`` is True when tracked files differ from the commit (untracked files do not count).
    """
    folder = Path(folder) if folder is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        changes = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                 capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(changes.strip())}


def versions() -> dict[str, str | None]:
    """Python's version and each of :data:`PACKAGES`' (None if not installed)."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def device(accelerator: str | None = None) -> str:
    """What the run computes on: the CUDA device's name when it uses one, else the CPU's description."""
    import torch

    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def provenance(accelerator: str | None = None) -> dict:
    """Everything above as one record field: ``{"git": ..., "versions": ..., "device": ...}``."""
    return {"git": git_state(), "versions": versions(), "device": device(accelerator)}
