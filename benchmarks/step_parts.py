"""Where a stacked group's time goes inside its run: the forward, backward, batches and optimizer step, timed in place.

    python benchmarks/step_parts.py                                  # this checkout, one epoch of 8 seeds
    python benchmarks/step_parts.py --code /tmp/old --stack-module rpn_exp.nn.members \
        --batches-module rpn_exp.run.members                         # the old loop (251e283): its module names

Runs ``python -m rpn_exp -m experiment=paper_mnist dataset=fashion_mnist trainer.max_epochs=1 launcher=stacked
seed=1,...,8`` from the checkout's folder, in this process, with a timer around ``MemberStack.forward``,
``member_losses``, ``Tensor.backward``, each batch of ``MemberBatches.batches`` and ``AdamW.step`` (under
Lightning's Trainer the optimizer's step runs its closure: the forward, loss and backward are inside it). Prints
the calls and mean ms of each; what the step takes beyond them is the loop's own.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import os
import runpy
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timer(totals: dict, key: str, function):
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[key][0] += time.perf_counter() - started
            totals[key][1] += 1

    return timed


def timed_batches(totals: dict, batches):
    def each(*args, **kwargs):
        iterator = batches(*args, **kwargs)
        while True:
            started = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            totals["batch"][0] += time.perf_counter() - started
            totals["batch"][1] += 1
            yield batch

    return each


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout to run")
    parser.add_argument("--stack-module", default="rpn_exp.nn.stack", help="where its MemberStack is")
    parser.add_argument("--batches-module", default="rpn_exp.run.stacked.data", help="where its MemberBatches is")
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    command = "python " + " ".join([sys.argv[0], *sys.argv[1:]])
    os.chdir(args.code)
    sys.path.insert(0, str(args.code.resolve()))
    import torch

    totals = collections.defaultdict(lambda: [0.0, 0])
    stack = importlib.import_module(args.stack_module)
    stack.MemberStack.forward = timer(totals, "forward", stack.MemberStack.forward)
    stack.member_losses = timer(totals, "losses", stack.member_losses)
    torch.Tensor.backward = timer(totals, "backward", torch.Tensor.backward)
    torch.optim.AdamW.step = timer(totals, "optimizer step", torch.optim.AdamW.step)
    data = importlib.import_module(args.batches_module)
    data.MemberBatches.batches = timed_batches(totals, data.MemberBatches.batches)
    with tempfile.TemporaryDirectory() as folder:
        seeds = ",".join(str(seed) for seed in range(1, args.seeds + 1))
        sys.argv = ["rpn_exp", "-m", "experiment=paper_mnist", "dataset=fashion_mnist", "trainer.max_epochs=1",
                    "launcher=stacked", f"seed={seeds}", f"hydra.sweep.dir={folder}"]
        try:
            runpy.run_module("rpn_exp", run_name="__main__", alter_sys=True)
        except SystemExit as stop:
            if stop.code:
                raise
    print(f"code: {args.code}")
    print("| part | calls | mean ms |")
    print("|---|---|---|")
    for key, (seconds, calls) in sorted(totals.items()):
        print(f"| {key} | {calls:,} | {seconds / max(calls, 1) * 1e3:.3f} |")
    print(f"command: {command}")


if __name__ == "__main__":
    main()
