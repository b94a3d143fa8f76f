"""Forward + backward time of one RPN layer per reconciliation, fast path and materialized, against nn.Linear.

Each layer is RPNLayer(m, n) with the paper's expansion (Taylor d=2 + non-affine layer norm, D = m + m²) and
one reconciliation ψ; the input does not require a gradient (as in a first layer), the parameters do. The
baseline is ``torch.nn.Linear(D, n, bias=False)`` applied to a ready κ of the same batch: the cost of a dense
layer of that size, before any expansion. Times are medians in milliseconds.

    python benchmarks/layers.py                                   # 64→64 (D = 4,160) and 784→64 (D = 615,440)
    python benchmarks/layers.py --shapes 784x64 --batches 64 --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table  # noqa: E402
from rpn_exp.functions import expansion as E  # noqa: E402
from rpn_exp.functions import reconciliation as R  # noqa: E402
from rpn_exp.nn import RPNLayer  # noqa: E402

RECONCILIATIONS = {
    "identity": R.IdentityReconciliation,
    "lorr": lambda: R.LowRankReconciliation(r=5),
    "hm": R.HMReconciliation,
    "lphm": lambda: R.LPHMReconciliation(r=5),
    "dual_lphm": lambda: R.DualLPHMReconciliation(r=5),
    "duplicated_padding": R.DuplicatedPaddingReconciliation,
    "random_matrix_adaption": lambda: R.RandomMatrixAdaptionReconciliation(r=5),
}


def timed(fn, device: str, budget_s: float = 1.5) -> float:
    """Median milliseconds of ``fn()``: one warm-up, then as many calls as fit ``budget_s`` (3 to 50)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    fn()
    sync()
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    times = [first]
    for _ in range(min(49, max(2, int(budget_s / max(first, 1e-6))))):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def forward_backward(module: torch.nn.Module, x: torch.Tensor):
    def step():
        for p in module.parameters():
            p.grad = None
        module(x).sum().backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="64x64,784x64", help="m x n list")
    parser.add_argument("--batches", default="64,256", help="batch sizes (the 784-wide shape uses the first)")
    parser.add_argument("--reconciliations", default=",".join(RECONCILIATIONS))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    expansion = E.TaylorExpansion(d=2, postprocess=["layer_norm"])
    for shape in args.shapes.split(","):
        m, n = map(int, shape.split("x"))
        batches = [int(b) for b in args.batches.split(",")]
        for batch in batches[:1] if m > 256 else batches:
            x = torch.randn(batch, m, device=args.device)
            D = expansion.calculate_D(m)
            linear = torch.nn.Linear(D, n, bias=False, device=args.device)
            kappa = torch.randn(batch, D, device=args.device)
            linear_ms = timed(forward_backward(linear, kappa), args.device)
            del kappa
            for name in args.reconciliations.split(","):
                psi = RECONCILIATIONS[name]()
                fast = RPNLayer(m, n, expansion=expansion, reconciliation=psi).to(args.device)
                slow = RPNLayer(m, n, expansion=expansion, reconciliation=psi, materialize=True).to(args.device)
                slow.load_state_dict(fast.state_dict())
                fast_ms = timed(forward_backward(fast, x), args.device)
                slow_ms = timed(forward_backward(slow, x), args.device)
                rows.append({
                    "m→n": f"{m}→{n}", "D": D, "batch": batch, "reconciliation": name, "l": fast.l,
                    "fast path": fast.path, "fast ms": fast_ms, "materialized ms": slow_ms,
                    "nn.Linear ms": linear_ms, "Linear / fast": linear_ms / fast_ms,
                    "materialized / fast": slow_ms / fast_ms,
                })
                print(f"measured {m}->{n} b={batch} {name}", file=sys.stderr)
                del fast, slow
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
