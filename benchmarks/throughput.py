"""Sweep throughput: configurations per hour for the paper run and the digits default, by launcher.

Each row runs one real sweep of jobs that differ only in seed (``python -m rpn_exp -m ... seed=1,...``), or with
``--over rank`` only in the rank (``reconciliation.r=1,...``, which a stacked group zero-pads to its largest r), and
divides the number of jobs by the command's wall time (start-up, data loading, evaluation and the sweep summary
included). The basic and joblib rows run ``--paper-seeds``/``--digits-seeds`` jobs, a stacked row K jobs (one group).

    python benchmarks/throughput.py                       # every launcher on both workloads
    python benchmarks/throughput.py --launchers stacked   # only the rows whose launcher name contains "stacked"
    python benchmarks/throughput.py --paper-seeds 2 --digits-seeds 4
    python benchmarks/throughput.py --over rank --paper-seeds 8 --digits-seeds 8 --launchers "basic|K = 8"
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table  # noqa: E402

WORKLOADS = {
    "paper_mnist, Fashion-MNIST, 20 epochs": ["experiment=paper_mnist", "dataset=fashion_mnist"],
    "digits default, 30 epochs": [],
}
LAUNCHERS = {"basic (one job at a time)": [], "joblib (2 jobs at a time)": ["launcher=joblib"]}
#: Stacked rows: K members trained as one model (``launcher=stacked``), K jobs each.
STACKED = (4, 8, 16)
LAUNCHERS.update({f"stacked (K = {k})": ["launcher=stacked", f"hydra.launcher.max_members={k}"] for k in STACKED})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper-seeds", type=int, default=4)
    parser.add_argument("--digits-seeds", type=int, default=8)
    parser.add_argument("--over", choices=("seed", "rank"), default="seed",
                        help="the jobs differ in seed (1..N) or in reconciliation.r (1..N, dual_lphm, seed 42)")
    parser.add_argument("--launchers", default="",
                        help="run only the rows whose launcher name contains this (alternatives split by |)")
    parser.add_argument("--workloads", default="", help="run only the workloads whose name contains this")
    args = parser.parse_args(argv)
    rows = []
    for workload, overrides in WORKLOADS.items():
        if args.workloads not in workload:
            continue
        for launcher, extra in LAUNCHERS.items():
            if not any(part in launcher for part in args.launchers.split("|")):
                continue
            seeds = int(extra[-1].split("=")[1]) if "launcher=stacked" in extra else (
                args.paper_seeds if overrides else args.digits_seeds)
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                key = "seed" if args.over == "seed" else "reconciliation.r"
                subprocess.run([sys.executable, "-m", "rpn_exp", "-m", *overrides, *extra,
                                f"{key}=" + ",".join(str(s) for s in range(1, seeds + 1)),
                                f"hydra.sweep.dir={folder}"], check=True, capture_output=True)
                wall = time.perf_counter() - started
            rows.append({"workload": workload + (", r = 1.." + str(seeds) if args.over == "rank" else ""),
                         "launcher": launcher, "jobs": seeds, "wall s": f"{wall:.1f}",
                         "configurations per hour": f"{seeds / wall * 3600:.0f}"})
            print(rows[-1], flush=True)
    print_table(rows, ["workload", "launcher", "jobs", "wall s", "configurations per hour"])


if __name__ == "__main__":
    main()
