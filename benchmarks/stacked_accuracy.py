"""Stacked against solo on the paper run: wall time of K seeds stacked and each member's accuracy against its solo run.

    python benchmarks/stacked_accuracy.py                 # 8 seeds of paper_mnist on Fashion-MNIST, 20 epochs
    python benchmarks/stacked_accuracy.py --seeds 4 --epochs 3
    python benchmarks/stacked_accuracy.py --one-thread   # also every seed solo on one thread: rounding's own spread

Runs, one after the other: seed 1 solo (the wall time of one run), the K seeds with ``launcher=stacked``, then
seeds 2..K solo, one at a time as seed 1 (on all cores, as the stacked run). ``--one-thread`` adds every seed solo
again with ``launcher=joblib``, whose two workers get one thread each: the same arithmetic with its sums split
differently, which shows how far rounding alone moves a 20-epoch result.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table  # noqa: E402

WORKLOAD = ["experiment=paper_mnist", "dataset=fashion_mnist"]


def sweep(folder: Path, *overrides: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rpn_exp", "-m", *WORKLOAD, *overrides, f"hydra.sweep.dir={folder}"],
                   check=True, capture_output=True)
    return time.perf_counter() - started


def accuracies(folder: Path) -> dict[int, float]:
    records = [json.loads(p.read_text()) for p in folder.glob("*/result.json")]
    return {r["seed"]: r["metrics"]["test/acc"] for r in records if r["status"] == "completed"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--one-thread", action="store_true", help="also every seed solo on one thread")
    args = parser.parse_args(argv)
    epochs = f"trainer.max_epochs={args.epochs}"
    seeds = ",".join(str(s) for s in range(1, args.seeds + 1))
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        solo_wall = sweep(root / "solo1", "seed=1", epochs)
        stacked_wall = sweep(root / "stacked", "launcher=stacked", f"seed={seeds}", epochs)
        sweep(root / "solo", "seed=" + ",".join(str(s) for s in range(2, args.seeds + 1)), epochs)
        stacked, solo = accuracies(root / "stacked"), {**accuracies(root / "solo1"), **accuracies(root / "solo")}
        if args.one_thread:
            sweep(root / "one_thread", "launcher=joblib", f"seed={seeds}", epochs)
            one_thread = accuracies(root / "one_thread")
    rows = [{"seed": s, "solo test acc": f"{solo[s]:.4f}", "stacked test acc": f"{stacked[s]:.4f}",
             "difference": f"{stacked[s] - solo[s]:+.4f}"} for s in sorted(solo)]
    columns = ["seed", "solo test acc", "stacked test acc", "difference"]
    if args.one_thread:
        for row in rows:
            s = row["seed"]
            row.update({"solo, 1 thread": f"{one_thread[s]:.4f}", "1 thread - solo": f"{one_thread[s] - solo[s]:+.4f}"})
        columns += ["solo, 1 thread", "1 thread - solo"]
    print_table(rows, columns)
    print(f"\none solo run: {solo_wall:.1f} s; {args.seeds} seeds stacked: {stacked_wall:.1f} s "
          f"({stacked_wall / solo_wall:.2f}x one solo run; {args.seeds * solo_wall / stacked_wall:.2f}x the throughput)"
          f"; largest |difference|: {max(abs(stacked[s] - solo[s]) for s in solo):.4f}")


if __name__ == "__main__":
    main()
