"""One configuration's seeds stacked on 2 cores: one group in one process (2 threads) against the group split over
``hydra.launcher.n_jobs=2`` workers (one thread each), the sweep's wall time from start to exit.

    python benchmarks/spread_groups.py                          # the reference layout and the paper model, 3 seeds
    python benchmarks/spread_groups.py --epochs 20 --sweeps reference

With one group and ``n_jobs=1`` the group trains in one process on every core; with ``n_jobs=2`` the launcher splits
it in two (``rpn_exp.sweep.stacking.stack_groups``), 2 members and 1, each worker on one core. Fashion-MNIST from
Debian (``apt-get install -y dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import print_table  # noqa: E402

SWEEPS = {
    "reference": ["experiment=paper_reference"],
    "paper": ["experiment=paper_mnist", "reconciliation=dual_lphm", "reconciliation.r=5"],
}


def sweep(name: str, n_jobs: int, epochs: int, seeds: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "rpn_exp", "-m", *SWEEPS[name], "dataset=fashion_mnist", f"seed={seeds}",
                   f"trainer.max_epochs={epochs}", "launcher=stacked", f"hydra.launcher.n_jobs={n_jobs}",
                   f"hydra.sweep.dir={folder}", "callbacks.progress_bar.refresh_rate=0"]
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        wall = time.perf_counter() - started
        records = [json.loads(p.read_text()) for p in Path(folder).glob("*/result.json")]
    accuracy = sum(r["metrics"]["test/acc"] for r in records) / len(records)
    return {"sweep": name, "n_jobs": n_jobs, "processes": len({r["pid"] for r in records}),
            "threads": records[0]["threads"], "wall s": wall, "mean test/acc": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", nargs="+", choices=sorted(SWEEPS), default=list(SWEEPS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", default="1,2,3")
    args = parser.parse_args()
    rows = []
    for name in args.sweeps:
        for n_jobs in (1, 2):
            rows.append(sweep(name, n_jobs, args.epochs, args.seeds))
            print(rows[-1], flush=True)
    print_table(rows, ["sweep", "n_jobs", "processes", "threads", "wall s", "mean test/acc"])


if __name__ == "__main__":
    main()
