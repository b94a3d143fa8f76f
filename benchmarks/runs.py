"""Whole runs of ``python -m rpn_exp``: wall time, peak resident memory and the accuracy reached.

Each run is the command a user types, in a fresh process, timed from start to exit (imports, data loading,
training, validation, testing and writing the record included); the peak resident memory is the child's
``ru_maxrss``. The accuracy and the run's own fit+test time come from its ``result.json``.

    python benchmarks/runs.py                        # the paper model on Fashion-MNIST (20 epochs), the digits default
    python benchmarks/runs.py --runs digits          # one of them
    python benchmarks/runs.py --extra trainer=gpu    # appended to every command (e.g. on a GPU machine)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table  # noqa: E402

RUNS = {
    "paper_fashion_mnist": ["experiment=paper_mnist", "dataset=fashion_mnist", "reconciliation=dual_lphm",
                            "reconciliation.r=5"],
    "digits": ["reconciliation=dual_lphm"],
}


def run(name: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as logs:
        command = [sys.executable, "-m", "rpn_exp", *RUNS[name], *extra, f"paths.log_dir={logs}",
                   "callbacks.progress_bar.refresh_rate=0"]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        record = json.loads(next(Path(logs).rglob("result.json")).read_text())
    metrics = record["metrics"]
    return {
        "run": name,
        "command": "python -m rpn_exp " + " ".join(RUNS[name] + extra),
        "epochs": record["epochs"],
        "steps": record["global_step"],
        "learnable": record["learnable_params"],
        "test acc": metrics["test/acc"],
        "best val acc": metrics["val/acc_best"],
        "wall s": wall,
        "fit+test s": record["wall_time_s"],
        "peak RSS MB": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=",".join(RUNS), help=f"any of {list(RUNS)}")
    parser.add_argument("--extra", default="", help="overrides appended to every command, space-separated")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:  # child: one run, so ru_maxrss (a maximum over all children) is this run's
        print(json.dumps(run(args.runs, args.extra.split())))
        return
    rows = []
    for name in args.runs.split(","):
        done = subprocess.run([sys.executable, __file__, "--runs", name, "--extra", args.extra, "--json"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-3000:])
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"measured {name}", file=sys.stderr)
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
