"""What Lightning's ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` costs an optimizer step on a machine without a GPU, and what
``rpn_exp.run.gpu_probe`` takes back: the paper model's AdamW step with the variable set (as importing Lightning
leaves it) and without it (as a run has it after its probe), alternated in blocks in one process.

    python benchmarks/gpu_probe.py
    python benchmarks/gpu_probe.py --blocks 10 --steps 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import compose, print_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=6, help="blocks of steps for each setting, alternated")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per block")
    args = parser.parse_args()

    import lightning  # noqa: F401  (sets PYTORCH_NVML_BASED_CUDA_CHECK=1, as in every run)
    import torch
    from hydra.utils import instantiate

    from rpn_exp.config.build import build_network
    from rpn_exp.run.gpu_probe import NVML_CHECK

    cfg = compose(["experiment=paper_mnist"])
    net = build_network(cfg, 784, 10)
    optimizer = instantiate(cfg.optimizer)(net.parameters())
    for parameter in net.parameters():
        parameter.grad = torch.randn_like(parameter)
    times: dict[str, list[float]] = {"set (Lightning's)": [], "removed (after the probe)": []}
    for _ in range(args.blocks):
        for setting, values in times.items():
            if setting.startswith("set"):
                os.environ[NVML_CHECK] = "1"
            else:
                os.environ.pop(NVML_CHECK, None)
            for _ in range(args.steps):
                start = time.perf_counter()
                optimizer.step()
                values.append((time.perf_counter() - start) * 1e6)
    rows = [{"PYTORCH_NVML_BASED_CUDA_CHECK": setting, "AdamW step µs (median)": statistics.median(values),
             "steps": len(values)} for setting, values in times.items()]
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
