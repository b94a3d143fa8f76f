"""One training step of K stacked members of the paper model, by part, against one solo step.

    python benchmarks/stacked_step.py                 # K = 1, 4, 8, 16; paper model, dual_lphm r = 5
    python benchmarks/stacked_step.py --members 8 --steps 100
    python benchmarks/stacked_step.py --members 1 3 --overrides experiment=paper_reference   # the reference layout
    python benchmarks/stacked_step.py --members 15 --overrides experiment=paper_mnist hparams_search=mlp_baseline \
        'model.hidden=[64]' [--vmap]          # 15 MLPs, carrying the member dimension (or through vmap)

Every member is built from its own seed as its solo run builds it, with its AdamW (one group optimizer, a
parameter group per member, as a stacked group's members get) and batch of 64. "solo" is the same step of one
network without the member dimension (``F.cross_entropy``, ``backward``, AdamW), the plain-PyTorch part of a solo
run's step (Lightning adds its loop).
Times are medians over ``--steps`` calls.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.common import compose, print_table, timed  # noqa: E402
from rpn_exp.config.build import build_network, instantiate_node  # noqa: E402
from rpn_exp.nn.stack import MemberStack, member_losses  # noqa: E402
from rpn_exp.run.stacked.optimizer import group_optimizer  # noqa: E402

OVERRIDES = ["experiment=paper_mnist", "reconciliation=dual_lphm", "reconciliation.r=5"]


def members(K: int, overrides: list[str]):
    nets, factories = [], []
    for k in range(K):
        cfg = compose([*overrides, f"seed={k + 1}"])
        torch.manual_seed(k + 1)
        nets.append(build_network(cfg, 784, 10))
        factories.append(instantiate_node(cfg.optimizer, "optimizer"))
    optimizer = group_optimizer(factories, [list(net.parameters()) for net in nets])
    return nets, factories[0], optimizer


def measure(K: int, steps: int, overrides: list[str], vmap: bool = False) -> dict:
    nets, factory, optimizer = members(K, overrides)
    solo = copy.deepcopy(nets[0])
    solo_optimizer = factory(solo.parameters())
    stack = MemberStack(nets, native=False if vmap else None)
    x, y = torch.randn(K, 64, 784), torch.randint(0, 10, (K, 64))

    def solo_step():
        solo_optimizer.zero_grad()
        F.cross_entropy(solo(x[0]), y[0]).backward()
        solo_optimizer.step()

    def forward_backward():
        stack.zero_grad()
        member_losses(stack(x), y).sum().backward()

    def optimizer_step():
        stack.member_grads()
        optimizer.step()

    def step():
        forward_backward()
        optimizer_step()

    parts = (solo_step, forward_backward, optimizer_step, step)
    solo_ms, fb_ms, opt_ms, step_ms = (timed(fn, warmup=5, repeats=steps) for fn in parts)
    through = "its solo computation" if K == 1 else "members carried" if stack.native else "vmap"
    return {"K": K, "through": through, "solo step ms": solo_ms,
            "stacked forward+backward ms": fb_ms, "stacked optimizer ms": opt_ms,
            "stacked step ms": step_ms, "per member ms": step_ms / K,
            "throughput vs solo": f"{K * solo_ms / step_ms:.2f}x"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--overrides", nargs="+", default=OVERRIDES, help="the members' config (default: %(default)s)")
    parser.add_argument("--vmap", action="store_true", help="through vmap even where the network carries the members")
    args = parser.parse_args(argv)
    rows = []
    for K in args.members:
        rows.append(measure(K, args.steps, args.overrides, args.vmap))
        print(rows[-1], flush=True)
    print_table(rows, ["K", "through", "solo step ms", "stacked forward+backward ms", "stacked optimizer ms",
                       "stacked step ms", "per member ms", "throughput vs solo"])


if __name__ == "__main__":
    main()
