"""A stacked group of 8 seeds of the paper model under one or more checkouts of this project, alternated: the
group's wall time and its training step read back from a member's TensorBoard events.

    python benchmarks/stacked_loop.py                                  # this checkout, 3 epochs, 3 rounds
    python benchmarks/stacked_loop.py --code /tmp/old . --rounds 3     # an older checkout against this one

Each round runs every checkout in turn (``python -m rpn_exp -m experiment=paper_mnist dataset=fashion_mnist
trainer.max_epochs=3 launcher=stacked seed=1,...,8`` from the checkout's folder). "ms per step" is the median,
over member 1's logged steps, of the wall time between consecutive ``train/loss_step`` events divided by the steps
between them: it leaves out start-up, validation, checkpoints and snapshots (an interval holding an epoch's end is
an outlier the median drops). Fashion-MNIST from Debian (``apt-get install -y dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
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


def group(code: Path, epochs: int, seeds: int, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        seed_list = ",".join(str(seed) for seed in range(1, seeds + 1))
        command = [sys.executable, "-m", "rpn_exp", "-m", "experiment=paper_mnist", "dataset=fashion_mnist",
                   f"trainer.max_epochs={epochs}", "launcher=stacked", f"seed={seed_list}", f"hydra.sweep.dir={folder}",
                   *overrides]
        started = time.perf_counter()
        subprocess.run(command, cwd=code, check=True, capture_output=True)
        wall = time.perf_counter() - started
        return {"code": str(code), "wall s": wall, "ms per step": step_ms(Path(folder))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", nargs="+", type=Path, default=[ROOT], help="checkouts to alternate")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--overrides", nargs="*", default=[], help="more overrides, e.g. model=mlp 'model.hidden=[16]'")
    args = parser.parse_args()
    rows = []
    for _ in range(args.rounds):
        for code in args.code:
            rows.append(group(code.resolve(), args.epochs, args.seeds, args.overrides))
            print(rows[-1], flush=True)
    summary = [{"code": str(code.resolve()),
                "wall s": ", ".join(f"{r['wall s']:.1f}" for r in rows if r["code"] == str(code.resolve())),
                "ms per step": ", ".join(f"{r['ms per step']:.2f}" for r in rows if r["code"] == str(code.resolve())),
                "mean ms per step": statistics.mean(r["ms per step"] for r in rows if r["code"] == str(code.resolve()))}
               for code in args.code]
    print_table(summary, ["code", "wall s", "ms per step", "mean ms per step"])


if __name__ == "__main__":
    main()
