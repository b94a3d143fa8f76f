"""Forward + backward time of one grid layer (RPN 2) against torch.nn.Conv2d and, where it is importable, against
tinybig 0.2.1's grid head on the same shape; ratios from this one process.

Each case maps a batch of (b, c · h · w) images to (b, n · h · w): a 3 × 3 cuboid patch at every cell (cd = 1, zero
padding), no bias, no output processing. ``conv2d`` is ``torch.nn.Conv2d(c, n, 3, padding=1, bias=False)``; the grid
layers are :class:`rpn_exp.nn.grid.GridLayer` with identity κ and ψ identity or dual_lphm r = 2 (path
``convolution``: W built from ψ, applied by conv2d) and with Taylor κ (d = 2, layer norm) × dual_lphm r = 2 (a
quadratic convolution by the product path, and materialized for comparison). tinybig's grid head has identity κ.
Times are medians in milliseconds after every case is warmed up; "vs conv2d" divides by the conv2d time of the same
shape. tinybig 0.2.1 needs Python 3.12 for its data loaders and torchtext for its text ones, neither of which its
grid head uses: install its wheel with ``pip install --no-deps --target DIR`` and stub both (see BENCHMARKS.md).

    python benchmarks/grid.py
    python benchmarks/grid.py --tinybig /path/to/tinybig-0.2.1   # a folder holding the tinybig package
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table, timed  # noqa: E402
from rpn_exp.functions import expansion as E  # noqa: E402
from rpn_exp.functions import reconciliation as R  # noqa: E402
from rpn_exp.functions.geometry import Grid, Patch  # noqa: E402
from rpn_exp.nn.grid import GridLayer  # noqa: E402

#: (batch, in channels, out channels, side): a first layer on 28 × 28 and a second one after 2 × 2 pooling.
SHAPES = [(64, 1, 16, 28), (64, 16, 32, 14)]


def grid_layer(c: int, n: int, side: int, quadratic: bool, materialize: bool = False, kronecker: bool = True
               ) -> GridLayer:
    kappa = E.TaylorExpansion(d=2, postprocess=["layer_norm"]) if quadratic else E.IdentityExpansion()
    psi = R.DualLPHMReconciliation(r=2) if kronecker else R.IdentityReconciliation()
    return GridLayer(Grid(side, side, 1, c), n, patch=Patch.cuboid(1, 1), cd=(1, 1, 1), expansion=kappa,
                     reconciliation=psi, materialize=materialize)


def tinybig_head(c: int, n: int, side: int, dual_lphm: bool):
    from tinybig.head import grid_interdependence_head

    return grid_interdependence_head(h=side, w=side, in_channel=c, out_channel=n, p_h=1, p_w=1, with_batch_norm=False,
                                     with_relu=False, with_dual_lphm=dual_lphm, r=2)


def step(module: torch.nn.Module, x: torch.Tensor):
    def run():
        module.zero_grad(set_to_none=True)
        module(x).sum().backward()
    return run


def cases(c: int, n: int, side: int, with_tinybig: bool) -> dict:
    conv = torch.nn.Conv2d(c, n, 3, padding=1, bias=False)
    built = {
        "conv2d": (torch.nn.Sequential(torch.nn.Unflatten(1, (c, side, side)), conv), "dense"),
        "grid identity × identity": (grid_layer(c, n, side, False, kronecker=False), None),
        "grid identity × dual_lphm r=2": (grid_layer(c, n, side, False), None),
        "grid taylor × dual_lphm r=2": (grid_layer(c, n, side, True), None),
        "grid taylor × dual_lphm r=2, materialized": (grid_layer(c, n, side, True, materialize=True), None),
    }
    if with_tinybig:
        built["tinybig 0.2.1 grid head, identity ψ"] = (tinybig_head(c, n, side, False), "dense")
        built["tinybig 0.2.1 grid head, dual_lphm r=2"] = (tinybig_head(c, n, side, True), "dense")
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tinybig", help="a folder holding the tinybig package (tinybig 0.2.1)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    if args.tinybig:
        sys.path.insert(0, args.tinybig)
    torch.manual_seed(0)
    rows = []
    for batch, c, n, side in SHAPES:
        x = torch.randn(batch, c * side * side)
        base = None
        built = cases(c, n, side, bool(args.tinybig))
        for module, _ in built.values():  # warm every case up before any is timed
            timed(step(module, x), repeats=2)
        for name, (module, _) in built.items():
            ms = timed(step(module, x), repeats=args.repeats)
            base = base or ms
            path = getattr(module, "path", "")
            params = sum(p.numel() for p in module.parameters() if p.requires_grad)
            rows.append({"shape": f"{batch}×{c}×{side}×{side} → {n}", "layer": name, "path": path,
                         "learnable": params, "fwd+bwd ms": ms, "vs conv2d": ms / base})
    print_table(rows, ["shape", "layer", "path", "learnable", "fwd+bwd ms", "vs conv2d"])


if __name__ == "__main__":
    main()
