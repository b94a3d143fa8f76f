"""A stacked group after some members stopped: leave the stack (rebuild it over the others) or mask them?

    python benchmarks/stacked_stopped.py                    # K = 8 members of the paper model, 0/2/4/6 stopped
    python benchmarks/stacked_stopped.py --members 16 --steps 100

A member that stops (early stopping, divergence, pruning) must cost no more compute. Two ways:

* **left**: the stack is rebuilt over the K − s members still training (what a stacked group does,
  ``StackedClassifier.stack``): a step costs one step of K − s members, plus one rebuild when a member leaves;
* **masked**: the stack keeps its K members; the stopped ones' losses are zeroed and their gradients not handed
  to the optimizer (``MemberStack.member_grads(skip=...)``): a step still computes K members.

Each step is forward, backward and the group's AdamW step on batches of 64, as ``benchmarks/stacked_step.py``
builds them; times are the least of three medians over ``--steps`` calls, the two ways alternated;
the rebuild is a median over 20.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import print_table, timed  # noqa: E402
from benchmarks.stacked_step import members  # noqa: E402
from rpn_exp.nn.stack import MemberStack, member_losses  # noqa: E402


def step_ms(stack: MemberStack, optimizer, x, y, stopped: list[int], steps: int) -> float:
    def step():
        stack.zero_grad()
        losses = member_losses(stack(x), y)
        if stopped:
            losses = losses * torch.tensor([0.0 if k in stopped else 1.0 for k in range(len(stack))])
        losses.sum().backward()
        stack.member_grads(skip=stopped)
        optimizer.step()

    return timed(step, warmup=5, repeats=steps)


def measure(K: int, stopped: int, steps: int) -> dict:
    nets, _, optimizer = members(K)
    x, y = torch.randn(K, 64, 784), torch.randint(0, 10, (K, 64))
    gone = list(range(K - stopped, K))
    kept = nets[:K - stopped]
    rebuild = timed(lambda: MemberStack(kept), warmup=2, repeats=20)
    masked, left = [], []
    for _ in range(3):  # alternated, the least of three medians each: the machine's drift falls on both
        masked.append(step_ms(MemberStack(nets), optimizer, x, y, gone, steps))
        left.append(step_ms(MemberStack(kept), optimizer, x[:K - stopped], y[:K - stopped], [], steps))
    masked, left = min(masked), min(left)
    return {"K": K, "stopped": stopped, "masked step ms": masked, "left step ms": left, "rebuild ms": rebuild,
            "left / masked": f"{left / masked:.2f}", "steps to repay rebuild": (
                f"{rebuild / (masked - left):.1f}" if masked > left else "never")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--stopped", type=int, nargs="+", default=[0, 2, 4, 6])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)
    rows = []
    for stopped in args.stopped:
        rows.append(measure(args.members, stopped, args.steps))
        print(rows[-1], flush=True)
    print_table(rows, ["K", "stopped", "masked step ms", "left step ms", "rebuild ms", "left / masked",
                       "steps to repay rebuild"])


if __name__ == "__main__":
    main()
