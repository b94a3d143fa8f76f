"""How a run asks whether the machine has a GPU: once, not on every optimizer step.

Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``, so that asking whether CUDA is available cannot
initialize CUDA in a process that forks afterwards. Under that setting a CUDA build of torch answers
``torch.cuda.is_available()`` by loading and asking NVML each time, without caching the answer, and every
``torch.optim`` optimizer asks on each ``step()`` (its graph-capture check). On a machine without a GPU that is a
failed library load per training step: 0.55 ms of the 4.4 ms step of a stacked group of eight small MLPs
(``benchmarks/stacked_loop.py``, BENCHMARKS.md "Stacked under Lightning's Trainer").

Where NVML (or the CUDA runtime, without NVML) finds no GPU there is no CUDA to initialize, so the setting protects
nothing: :func:`probe_gpu_once` removes it from this process, and torch's runtime check, which caches its answer,
is used from then on. On a machine with a GPU nothing changes.
"""

from __future__ import annotations

import os

#: The variable Lightning sets on import (``lightning/fabric/__init__.py``).
NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def probe_gpu_once() -> bool:
    """Whether this process sees a GPU, asked once; without one, later checks no longer ask NVML (see above)."""
    import torch

    if torch.cuda.device_count() > 0:
        return True
    os.environ.pop(NVML_CHECK, None)
    return False
