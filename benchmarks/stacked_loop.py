"""A stacked group of 8 seeds of the paper model under one or more checkouts of this project, alternated: the
group's wall time and its training step read back from a member's TensorBoard events.

    python benchmarks/stacked_loop.py                                  # this checkout, 3 epochs, 3 rounds
    python benchmarks/stacked_loop.py --code /tmp/old . --rounds 3     # an older checkout against this one
    python benchmarks/stacked_loop.py --code /tmp/old . --epochs 20 --rounds 2 --solo   # and one solo run each

Each round runs every checkout in turn (``python -m rpn_exp -m experiment=paper_mnist dataset=fashion_mnist
trainer.max_epochs=3 launcher=stacked seed=1,...,8`` from the checkout's folder). "ms per step" is the median,
over member 1's logged steps, of the wall time between consecutive ``train/loss_step`` events divided by the steps
between them: it leaves out start-up, validation, checkpoints and snapshots (an interval holding an epoch's end is
an outlier the median drops). ``--solo`` runs seed 1 alone before each group, for the group's wall time over a
solo run's. Every other round runs the checkouts in reverse order, so a machine that slows or speeds up during the
measure weighs on each alike. Fashion-MNIST from Debian (``apt-get install -y dataset-fashion-mnist``).

    python benchmarks/stacked_loop.py --epochs 1 --rounds 4 --allocator both   # glibc's defaults against a run's

``--allocator both`` alternates each checkout as it runs (``rpn_exp.run.allocator`` fixes glibc's thresholds) and
with glibc's defaults (``GLIBC_TUNABLES`` set empty, which a run leaves alone); the table adds the group's minor page
faults, system time and peak memory (its process's resource usage).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import print_table  # noqa: E402


def step_ms(folder: Path) -> float:
    """The median ms per training step of the first member's ``train/loss_step`` events in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(min(p for p in folder.iterdir() if p.is_dir())))
    events.Reload()
    scalars = events.Scalars("train/loss_step")
    rates = [(b.wall_time - a.wall_time) * 1000 / (b.step - a.step) for a, b in zip(scalars, scalars[1:])]
    return statistics.median(rates)


def group(code: Path, epochs: int, seeds: int, overrides: list[str], allocator: str = "run",
          stacked: bool = True) -> dict:
    """One group of ``seeds`` seeds run from ``code`` (``stacked`` False: seed 1 alone, a solo run); ``allocator``
    "glibc" keeps glibc's own thresholds."""
    with tempfile.TemporaryDirectory() as folder:
        seed_list = ",".join(str(seed) for seed in range(1, seeds + 1)) if stacked else "1"
        command = [sys.executable, "-m", "rpn_exp", "-m", "experiment=paper_mnist", "dataset=fashion_mnist",
                   f"trainer.max_epochs={epochs}", f"seed={seed_list}", f"hydra.sweep.dir={folder}", *overrides,
                   *(["launcher=stacked"] if stacked else [])]
        env = {**os.environ, "GLIBC_TUNABLES": ""} if allocator == "glibc" else None
        started = time.perf_counter()
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(command, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=errors)
            _, status, usage = os.wait4(process.pid, 0)  # the child's own resource usage
            wall = time.perf_counter() - started
            if os.waitstatus_to_exitcode(status):
                errors.seek(0)
                raise RuntimeError(f"{command} failed in {code}:\n{errors.read().decode()[-2000:]}")
        return {"code": f"{code} ({allocator})", "stacked": stacked, "wall s": wall,
                "ms per step": step_ms(Path(folder)), "minor faults": usage.ru_minflt, "system s": usage.ru_stime,
                "peak MB": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", nargs="+", type=Path, default=[ROOT], help="checkouts to alternate")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--overrides", nargs="*", default=[], help="more overrides, e.g. model=mlp 'model.hidden=[16]'")
    parser.add_argument("--allocator", choices=("run", "glibc", "both"), default="run",
                        help="the run's allocator thresholds, glibc's defaults, or both alternated")
    parser.add_argument("--solo", action="store_true", help="before each group, seed 1 alone: the group / solo ratio")
    args = parser.parse_args()
    allocators = ("run", "glibc") if args.allocator == "both" else (args.allocator,)
    variants = [(code.resolve(), allocator) for code in args.code for allocator in allocators]
    rows = []
    for round_ in range(args.rounds):
        for code, allocator in variants if round_ % 2 == 0 else variants[::-1]:
            for stacked in (False, True) if args.solo else (True,):
                rows.append(group(code, args.epochs, args.seeds, args.overrides, allocator, stacked))
                print(rows[-1], flush=True)
    columns = ["wall s", "ms per step", "minor faults", "system s", "peak MB"]
    summary = []
    for code, allocator in variants:
        mine = [r for r in rows if r["code"] == f"{code} ({allocator})" and r["stacked"]]
        solo = [r["wall s"] for r in rows if r["code"] == f"{code} ({allocator})" and not r["stacked"]]
        summary.append({"code": mine[0]["code"], **{c: ", ".join(f"{r[c]:.{0 if 'faults' in c or 'MB' in c else 2}f}"
                                                                 for r in mine) for c in columns},
                        "mean ms per step": statistics.mean(r["ms per step"] for r in mine),
                        "mean wall s": statistics.mean(r["wall s"] for r in mine),
                        **({"solo wall s": ", ".join(f"{w:.1f}" for w in solo),
                            "group / solo": statistics.mean(r["wall s"] for r in mine) / statistics.mean(solo)}
                           if solo else {})})
    extra = ["solo wall s", "group / solo"] if args.solo else []
    print_table(summary, ["code", *columns, "mean ms per step", "mean wall s", *extra])


if __name__ == "__main__":
    main()
