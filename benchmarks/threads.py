"""Intra-op threads against wall time: a solo run, a 2-worker joblib sweep and a stacked group, each with the
threads rpn_exp gives it (``threads=null``, its share of the cores) and with a fixed count.

    python benchmarks/threads.py                  # digits, 20 epochs; prints a table (a few minutes on 2 cores)

Every row is a whole ``python -m rpn_exp`` process (imports included), timed from outside, the median of
``--repeats``; each record's ``threads`` says what the run used.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rpn_exp.run.threads import available_cores

COMMON = ["trainer.max_epochs=20", "callbacks.progress_bar.refresh_rate=0", "~callbacks.weight_snapshots",
          "print_config=false"]
SETUPS = {
    "solo run": [],
    "joblib sweep, 2 workers, 4 jobs": ["-m", "launcher=joblib", "seed=1,2,3,4"],
    "stacked group, 4 members": ["-m", "launcher=stacked", "seed=1,2,3,4"],
}


def run(args: list[str], threads: str) -> tuple[float, list[int]]:
    """Wall time of one ``python -m rpn_exp`` process and the threads its records say."""
    with tempfile.TemporaryDirectory() as folder:
        where = f"hydra.sweep.dir={folder}" if "-m" in args else f"hydra.run.dir={folder}"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "rpn_exp", *args, *COMMON, f"threads={threads}", where],
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(done.stderr[-3000:])
        used = [json.loads(p.read_text()).get("threads") for p in sorted(Path(folder).rglob("result.json"))]
    return wall, used


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    cores = available_cores()
    print(f"{cores} cores; command: python benchmarks/threads.py --repeats {args.repeats}\n")
    print(f"| setup | threads | threads per run (recorded) | wall time (median of {args.repeats}) |")
    print("|---|---|---|---|")
    for name, setup in SETUPS.items():
        for threads in ("null", "1", str(cores)):
            walls, used = [], []
            for _ in range(args.repeats):
                wall, used = run(setup, threads)
                walls.append(wall)
            label = "null (its share)" if threads == "null" else threads
            print(f"| {name} | {label} | {sorted(set(used))} | {statistics.median(walls):.1f} s |", flush=True)


if __name__ == "__main__":
    main()
