"""Intra-op threads against step time, on an idle machine and on one whose every core is busy with other work.

For each model and load, the mean training step (forward, backward, AdamW step; batch 64, random 784-feature inputs)
of the paper's MNIST model with ``threads=1``, one thread per core, and ``threads=null`` (what rpn_exp picks: the
cores idle when the run starts, ``rpn_exp.run.threads``). The load is CPU-bound processes (``while True: pass``)
started before the measuring process and kept running through it.

    python benchmarks/threads.py                       # paper model dual_lphm r=5 and identity; ~4 min on 2 cores
    python benchmarks/threads.py --seconds 4 --models dual_lphm

The mean, not the median: on a loaded machine a few steps that wait for a preempted thread dominate the wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rpn_exp.run.threads import available_cores  # noqa: E402

#: Run in a fresh process: build the model, set the threads as a run would, train for ``seconds``, print
#: "<threads> <mean step ms> <steps>".
STEP = """
import sys, time, torch
from tests.conftest import compose_config
from rpn_exp.config.build import build_network
from rpn_exp.run.threads import use_threads
threads = None if sys.argv[2] == "null" else int(sys.argv[2])
used = use_threads(threads, None, {})
cfg = compose_config(["experiment=paper_mnist", f"reconciliation={sys.argv[1]}"])
net = build_network(cfg, 784, 10)
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
x, y = torch.randn(64, 784), torch.randint(0, 10, (64,))
def step():
    loss = torch.nn.functional.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3):
    step()
steps, start = 0, time.perf_counter()
while time.perf_counter() - start < float(sys.argv[3]) or steps < 3:
    step(); steps += 1
print(used, 1000 * (time.perf_counter() - start) / steps, steps)
"""


def measure(model: str, threads: str, seconds: float, load: int) -> tuple[int, float, int]:
    """(threads used, mean step in ms, steps) with ``load`` CPU-bound processes running beside it."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    try:
        done = subprocess.run([sys.executable, "-c", STEP, model, threads, str(seconds)], cwd=ROOT,
                              capture_output=True, text=True, check=True)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    used, ms, steps = done.stdout.split()
    return int(used), float(ms), int(steps)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--models", nargs="+", default=["dual_lphm", "identity"])
    args = parser.parse_args(argv)
    cores = available_cores()
    loads = {"idle": 0, f"{cores} busy processes": cores, f"{5 * cores} busy processes": 5 * cores}
    print(f"{cores} cores; command: python benchmarks/threads.py --seconds {args.seconds:g} --models "
          f"{' '.join(args.models)}\n")
    print("| model | load | threads | threads used | mean step | steps | vs the best of the row's load |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        for name, load in loads.items():
            rows = [(threads, *measure(model, threads, args.seconds, load)) for threads in ("1", str(cores), "null")]
            best = min(ms for _, _, ms, _ in rows)
            for threads, used, ms, steps in rows:
                label = "null (rpn_exp's choice)" if threads == "null" else threads
                print(f"| paper {model} | {name} | {label} | {used} | {ms:.1f} ms | {steps} | {ms / best:.2f}x |",
                      flush=True)


if __name__ == "__main__":
    main()
