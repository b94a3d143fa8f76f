"""The grid-RPN study of RESULTS.md: RPN 2's grid layers on Fashion-MNIST against the convolutional baseline, 20 epochs,
3 seeds per configuration, the protocol of the first study (``experiment=grid_fashion``).

    python scripts/fashion_grid.py              # the sweeps below into outputs/fashion_grid/<stamp>/, then merged
    python scripts/fashion_grid.py --dry-run    # every job's layer table and parameter count, nothing trained

Sweeps (``seed=1,2,3 threads=1`` on each), in two lanes that run side by side, one job at a time each:

* grid RPN: κ ∈ {identity, Taylor d = 2 + layer norm} × ψ ∈ {lorr r = 2, dual_lphm r = 2} in the grid layers
  (channels [8, 16]), less Taylor × lorr (11,055 parameters, above the 7,000 of the question, and the slowest);
* dense convolutions (identity κ and ψ), channels [8, 16] and [16, 32]: the ψ = identity, κ = identity point of
  the same model, and where the parameters of a small CNN are (its output layer);
* the dense convolutional baseline (``hparams_search=cnn_baseline``) at channels [4, 8] and [8, 16].

Every grid-RPN job has the same output layer: identity κ, dual_lphm r = 5 (``OUTPUT_LAYER``).

Jobs take 250 s (the small CNN) to about 1,000 s (Taylor κ) each with one core; the whole study about 1.5 h.
The merged summary and plot go to ``outputs/fashion_grid/<stamp>/merged`` (``python -m rpn_exp.report``), and with the
first study's families over r, reference layout and MLP baselines to ``with_first_study``; both are copied into
``outputs/examples/fashion_grid/`` with ``provenance.json`` (each sweep's command and wall time, the commit).
``python scripts/fashion_grid.py --report outputs/fashion_grid/<stamp>`` rebuilds and copies them without training.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rpn_exp.run.provenance import provenance  # noqa: E402

COMMON = ["experiment=grid_fashion", "seed=1,2,3", "threads=1"]
#: The output layer (layer 2) of every grid-RPN job: identity κ and dual_lphm r = 5 (its default), so that the jobs
#: differ only in the convolutions' κ and ψ (with a Taylor κ there it would have 0.6 M features per sample, and with
#: the convolutions' rank-2 ψ the logits would lie in a 2- or 4-dimensional subspace).
OUTPUT_LAYER = ["+expansion@model.layer_overrides.2.expansion=identity",
                "+reconciliation@model.layer_overrides.2.reconciliation=dual_lphm"]
GRID = [*OUTPUT_LAYER, "reconciliation.r=2", "model.grid.out_channels=[8,16]"]
DENSE = ["expansion=identity", "reconciliation=identity", *OUTPUT_LAYER]
#: Two lanes of sweeps run side by side, one job at a time each (one core each), balanced by the jobs' lengths.
LANES = {
    "a": {"grid_taylor": ["expansion=taylor", "reconciliation=dual_lphm", *GRID],
          "dense_8_16": [*DENSE, "model.grid.out_channels=[8,16]"],
          "cnn_8_16": ["hparams_search=cnn_baseline", "model.grid.out_channels=[8,16]"]},
    "b": {"grid_identity": ["expansion=identity", "reconciliation=lorr,dual_lphm", *GRID],
          "dense_16_32": [*DENSE, "model.grid.out_channels=[16,32]"],
          "cnn_4_8": ["hparams_search=cnn_baseline", "model.grid.out_channels=[4,8]"]},
}
SWEEPS = [name for lane in LANES.values() for name in lane]
#: Where the study's summaries and plot are kept, and the first study whose fronts they are drawn against.
EXAMPLE = ROOT / "outputs" / "examples" / "fashion_grid"
FIRST_STUDY = ROOT / "outputs" / "examples" / "fashion_mnist"
FIRST_STUDY_SWEEPS = ("rpn", "rpn_r8", "reference", "baselines")
PROVENANCE = "provenance.json"


def first_study(folder: Path) -> Path:
    """A published summary (``summary.csv``, no job folders) holding the first study's jobs only, the families over r,
    the reference layout and the MLP baselines of RESULTS.md's table, from ``outputs/examples/fashion_mnist``: the
    fronts the grid models are drawn against (its p, q and Kronecker-sum rows are left out)."""
    with open(FIRST_STUDY / "summary.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader
                if row["job"].split("/")[0] in FIRST_STUDY_SWEEPS and row["status"] == "completed"]
        columns = reader.fieldnames
    target = folder / "first_study"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return target


def report(folder: Path) -> None:
    """The study's merged summary (``merged/``) and, with the first study's fronts, ``with_first_study/``, copied with
    the provenance into ``outputs/examples/fashion_grid/``."""
    title = "Fashion-MNIST | grid models | 20 epochs | 3 seeds"
    sweeps = [str(folder / name) for name in SWEEPS]
    subprocess.run([sys.executable, "-m", "rpn_exp.report", *sweeps, "--out", str(folder / "merged"),
                    "--title", title], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "-m", "rpn_exp.report", str(first_study(folder)), *sweeps,
                    "--out", str(folder / "with_first_study"),
                    "--title", "Fashion-MNIST | grid models, MLPs and RPN-1 | 20 epochs | 3 seeds"],
                   cwd=ROOT, check=True)
    for source, target in ((folder / "merged", EXAMPLE), (folder / "with_first_study", EXAMPLE / "with_first_study")):
        target.mkdir(parents=True, exist_ok=True)
        for name in ("summary.csv", "summary_by_config.csv", "summary.md", "pareto.png"):
            shutil.copy2(source / name, target / name)
    shutil.copy2(folder / PROVENANCE, EXAMPLE / "provenance.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="build every job, train none")
    parser.add_argument("--report", type=Path, metavar="FOLDER",
                        help="train nothing: rebuild the summaries of the study in FOLDER and copy them")
    args = parser.parse_args()
    if args.report:
        report(args.report.resolve())
        return
    folder = ROOT / "outputs" / "fashion_grid" / time.strftime("%Y-%m-%d_%H-%M-%S")
    record = {"provenance": provenance(None), "sweeps": {}, "lanes": {}}
    extra = ["dry_run=true"] if args.dry_run else []

    def run_lane(lane: str) -> None:
        lane_started = time.perf_counter()
        for name, overrides in LANES[lane].items():
            command = [sys.executable, "-m", "rpn_exp", "-m", *COMMON, *overrides, *extra,
                       f"hydra.sweep.dir={folder / name}"]
            started = time.perf_counter()
            subprocess.run(command, cwd=ROOT, check=True)
            record["sweeps"][name] = {"lane": lane, "command": "python -m rpn_exp -m " + " ".join(command[4:-1]),
                                      "wall_time_s": round(time.perf_counter() - started, 1)}
            print(f"[fashion_grid] {name}: {record['sweeps'][name]['wall_time_s']} s", flush=True)
        record["lanes"][lane] = round(time.perf_counter() - lane_started, 1)

    lanes = [threading.Thread(target=run_lane, args=(lane,)) for lane in LANES]
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join()
    record["total_wall_time_s"] = max(record["lanes"].values())  # the lanes run side by side
    (folder / PROVENANCE).write_text(json.dumps(record, indent=2) + "\n")
    if not args.dry_run:
        report(folder)
    print(f"[fashion_grid] done in {record['total_wall_time_s']} s: {folder}, {EXAMPLE}")


if __name__ == "__main__":
    main()
