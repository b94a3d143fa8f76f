"""The fused Kronecker × Taylor node of a stacked group's forward: under ``vmap`` (as the group calls it) against
the same node called directly on the stacked tensors.

    python benchmarks/vmap_node.py                    # 8 members of the paper model, dual_lphm r = 5
    python benchmarks/vmap_node.py --members 1 8 16

A stacked group whose network does not carry the member dimension itself computes its members' forward with
``torch.func.vmap`` over one member's network (``rpn_exp.nn.stack.MemberStack``); each layer's ``kron_taylor`` then
reaches the one node that computes all members (``_KronTaylor`` on (K, ...) tensors) through torch's custom-function
``vmap`` rule. The script records the
tensors each layer's node receives in one forward of K members, then times, per layer, ``vmap(kron_taylor)`` on them
and ``_KronTaylor.apply`` on them (no gradient; medians over ``--repeats`` calls). The difference is what the
``vmap`` route costs the node. The last row is the whole stacked forward under ``vmap`` and with the member
dimension carried by the network itself (``MemberStack``'s ``native``, where the network ``carries_members``).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.func import vmap  # noqa: E402

from benchmarks.common import print_table, timed  # noqa: E402
from benchmarks.stacked_step import OVERRIDES, members  # noqa: E402
from rpn_exp.functions import factors  # noqa: E402
from rpn_exp.nn.stack import MemberStack  # noqa: E402
from rpn_exp.run.allocator import keep_freed_memory  # noqa: E402


def node_inputs(stack: MemberStack, x: torch.Tensor) -> list[tuple]:
    """The (u, t, A, B, eps) each layer's fused node receives in one stacked forward of ``x``."""
    seen, apply = [], factors._KronTaylor.apply

    def record(*args):
        seen.append(args)
        return apply(*args)

    factors._KronTaylor.apply = record
    try:
        with torch.no_grad():
            stack(x)
    finally:
        factors._KronTaylor.apply = apply
    return seen


def node_times(u, t, A, B, eps, repeats: int) -> tuple[float, float]:
    """ms of the node on these (K, ...) tensors: through ``vmap(kron_taylor)``, and ``_KronTaylor.apply`` itself."""
    batched = vmap(lambda u_, t_, A_, B_: factors.kron_taylor(u_, t_, A_, B_, eps))
    second = u if t is None else t  # kron_taylor's d = 2: the same tensor as u and t
    return (timed(lambda: batched(u, second, A, B), repeats=repeats),
            timed(lambda: factors._KronTaylor.apply(u, t, A, B, eps), repeats=repeats))


def measure(K: int, repeats: int, overrides: list[str]) -> list[dict]:
    nets, _, _ = members(K, overrides)
    mapped, native = MemberStack(copy.deepcopy(nets), native=False), MemberStack(copy.deepcopy(nets))
    x = torch.randn(K, 64, nets[0].layers[0].m)
    rows = []
    with torch.no_grad():
        for layer, (u, t, A, B, eps) in enumerate(node_inputs(mapped, x)):
            via_vmap, direct = node_times(u, t, A, B, eps, repeats)
            rows.append({"K": K, "part": f"layer {layer} node, u {tuple(u.shape)}, A {tuple(A.shape)}",
                         "under vmap ms": via_vmap, "direct ms": direct, "vmap's cost ms": via_vmap - direct})
        if native.native:
            via_vmap, direct = timed(lambda: mapped(x), repeats=repeats), timed(lambda: native(x), repeats=repeats)
            rows.append({"K": K, "part": "whole forward (direct: the member dimension carried)",
                         "under vmap ms": via_vmap, "direct ms": direct, "vmap's cost ms": via_vmap - direct})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[8])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--overrides", nargs="+", default=OVERRIDES, help="the members' config (default: %(default)s)")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as a run's process does
    rows = [row for K in args.members for row in measure(K, args.repeats, args.overrides)]
    print_table(rows, ["K", "part", "under vmap ms", "direct ms", "vmap's cost ms"])


if __name__ == "__main__":
    main()
