"""The grid-RPN study of RESULTS.md: RPN 2's grid layers on Fashion-MNIST against the convolutional baseline, 20 epochs,
3 seeds per configuration, the protocol of the first study (``experiment=grid_fashion``).

    python scripts/fashion_grid.py              # the sweeps below into outputs/fashion_grid/<stamp>/, then merged
    python scripts/fashion_grid.py --dry-run    # every job's layer table and parameter count, nothing trained

Sweeps (``seed=1,2,3 launcher=joblib`` on each):

* ``grid``: κ ∈ {identity, Taylor d = 2 + layer norm} × ψ ∈ {lorr r = 2, dual_lphm r = 2} in the grid layers,
  channels [8, 16];
* ``output``: dense convolutions (identity κ and ψ), channels [8, 16] and [16, 32]: the ψ = identity, κ = identity
  point of the same model, and where the parameters of a small CNN are (its output layer);
* ``cnn``: the dense convolutional baseline (``hparams_search=cnn_baseline``) at channels [4, 8] and [8, 16].

Every grid-RPN job has the same output layer: identity κ, dual_lphm r = 5 (``OUTPUT_LAYER``).

A one-seed pilot of some of these configurations took 200–600 s per job with two jobs sharing the two cores.
The merged summary and plot go to ``outputs/fashion_grid/<stamp>/merged`` (``python -m rpn_exp.report``), with
``provenance.json`` holding each sweep's command and wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rpn_exp.run.provenance import provenance  # noqa: E402

COMMON = ["experiment=grid_fashion", "seed=1,2,3", "launcher=joblib"]
#: The output layer (layer 2) of every grid-RPN job: identity κ and dual_lphm r = 5 (its default), so that the jobs
#: differ only in the convolutions' κ and ψ (with a Taylor κ there it would have 0.6 M features per sample, and with
#: the convolutions' rank-2 ψ the logits would lie in a 2- or 4-dimensional subspace).
OUTPUT_LAYER = ["+expansion@model.layer_overrides.2.expansion=identity",
                "+reconciliation@model.layer_overrides.2.reconciliation=dual_lphm"]
SWEEPS = {
    "grid": ["expansion=identity,taylor", "reconciliation=lorr,dual_lphm", "reconciliation.r=2", *OUTPUT_LAYER,
             "model.grid.out_channels=[8,16]"],
    "output": ["expansion=identity", "reconciliation=identity", *OUTPUT_LAYER,
               "model.grid.out_channels=[8,16],[16,32]"],
    "cnn": ["hparams_search=cnn_baseline", "model.grid.out_channels=[4,8],[8,16]"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="build every job, train none")
    args = parser.parse_args()
    folder = ROOT / "outputs" / "fashion_grid" / time.strftime("%Y-%m-%d_%H-%M-%S")
    record = {"provenance": provenance(None), "sweeps": {}}
    extra = ["dry_run=true"] if args.dry_run else []
    for name, overrides in SWEEPS.items():
        command = [sys.executable, "-m", "rpn_exp", "-m", *COMMON, *overrides, *extra,
                   f"hydra.sweep.dir={folder / name}"]
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True)
        record["sweeps"][name] = {"command": "python -m rpn_exp -m " + " ".join(command[4:-1]),
                                  "wall_time_s": round(time.perf_counter() - started, 1)}
        print(f"[fashion_grid] {name}: {record['sweeps'][name]['wall_time_s']} s", flush=True)
    subprocess.run([sys.executable, "-m", "rpn_exp.report", *(str(folder / name) for name in SWEEPS),
                    "--out", str(folder / "merged"),
                    "--title", "Fashion-MNIST | grid models | 20 epochs | 3 seeds"], cwd=ROOT, check=True)
    record["total_wall_time_s"] = round(sum(s["wall_time_s"] for s in record["sweeps"].values()), 1)
    (folder / "merged" / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"[fashion_grid] done in {record['total_wall_time_s']} s: {folder / 'merged'}")


if __name__ == "__main__":
    main()
