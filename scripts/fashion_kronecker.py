"""Extend RESULTS.md: p and q, Kronecker sums and the Kronecker layout closest to the reference layout, on real
Fashion-MNIST with the paper's architecture and optimizer, 20 epochs, 3 seeds per configuration stacked in one
process (``launcher=stacked``).

    python scripts/fashion_kronecker.py                          # the sweeps below, then the merged summary and plot
    python scripts/fashion_kronecker.py k1 --into <folder>       # one sweep more into an earlier folder, merged again

Needs Debian's Fashion-MNIST (apt-get install -y dataset-fashion-mnist). Runs into
``outputs/fashion_kronecker/<stamp>/``:

* ``pq``: lphm and dual_lphm at the paper's r = 5 over p = 2, 4, 8, 16 (q automatic: q = m keeps the product path);
* ``sums_*``: dual_lphm with k Kronecker terms at the parameter counts of r = 5 (9,330: k·r = 5) and r = 8
  (14,928: k·r = 8), l = k·r·(p + q + n/p + D/q) being the same for every split of k·r;
* ``closest``: lphm r = 6 p = 4 (9,232 parameters, first-layer rank bound 24), a Kronecker-layout candidate at most
  9,330 parameters;
* ``k1``: dual_lphm r = 5 and 8 with one term and automatic p (the published configurations), trained here in the
  same way as the sums they are compared with.

then merges them with the published summary (``outputs/examples/fashion_mnist/summary.csv``: the r sweep, the
reference layout and the dense baselines) through ``python -m rpn_exp.report`` into
``outputs/examples/fashion_mnist/`` (summary files, pareto.png) and records the commands and wall times in
``outputs/examples/fashion_mnist/kronecker_provenance.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rpn_exp.run.provenance import provenance  # noqa: E402

COMMON = ["experiment=paper_mnist", "dataset=fashion_mnist", "seed=1,2,3", "launcher=stacked"]
SWEEPS = {
    "pq": ["reconciliation=lphm,dual_lphm", "reconciliation.r=5", "reconciliation.p=2,4,8,16"],
    "sums_9330_r1k5": ["reconciliation=dual_lphm", "reconciliation.r=1", "reconciliation.k=5"],
    "sums_14928_r1k8": ["reconciliation=dual_lphm", "reconciliation.r=1", "reconciliation.k=8"],
    "sums_14928_r2k4": ["reconciliation=dual_lphm", "reconciliation.r=2", "reconciliation.k=4"],
    "sums_14928_r4k2": ["reconciliation=dual_lphm", "reconciliation.r=4", "reconciliation.k=2"],
    "closest": ["reconciliation=lphm", "reconciliation.r=6", "reconciliation.p=4"],
    "k1": ["reconciliation=dual_lphm", "reconciliation.r=5,8"],
}
EXAMPLE = ROOT / "outputs" / "examples" / "fashion_mnist"


def main(names: list[str], into: Path | None = None) -> None:
    folder = into or ROOT / "outputs" / "fashion_kronecker" / time.strftime("%Y-%m-%d_%H-%M-%S")
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "provenance.json"
    record = json.loads(log.read_text()) if log.is_file() else {"provenance": provenance(None), "sweeps": {}}
    for name in names or list(SWEEPS):
        command = [sys.executable, "-m", "rpn_exp", "-m", *SWEEPS[name], *COMMON, f"hydra.sweep.dir={folder / name}"]
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True)
        record["sweeps"][name] = {"command": "python -m rpn_exp -m " + " ".join(command[4:-1]),
                                  "wall_time_s": round(time.perf_counter() - started, 1)}
        log.write_text(json.dumps(record, indent=2) + "\n")
        print(f"[fashion_kronecker] {name}: {record['sweeps'][name]['wall_time_s']} s", flush=True)
    with tempfile.TemporaryDirectory() as published:  # the published rows, read from their summary.csv
        shutil.copy2(EXAMPLE / "summary.csv", Path(published) / "summary.csv")
        merged = [published, *(str(folder / name) for name in record["sweeps"])]
        subprocess.run([sys.executable, "-m", "rpn_exp.report", *merged, "--out", str(folder / "merged"),
                        "--title", "Fashion-MNIST | paper architecture | 20 epochs | 3 seeds"], cwd=ROOT, check=True)
    record["total_wall_time_s"] = round(sum(s["wall_time_s"] for s in record["sweeps"].values()), 1)
    log.write_text(json.dumps(record, indent=2) + "\n")
    for name in ("summary.csv", "summary_by_config.csv", "summary.md", "pareto.png"):
        shutil.copy2(folder / "merged" / name, EXAMPLE / name)
    (EXAMPLE / "kronecker_provenance.json").write_text(
        json.dumps({**record, "folder": str(folder.relative_to(ROOT))}, indent=2) + "\n")
    print(f"[fashion_kronecker] done in {record['total_wall_time_s']} s: {EXAMPLE}")


if __name__ == "__main__":
    args = sys.argv[1:]
    target = Path(args[args.index("--into") + 1]).resolve() if "--into" in args else None
    main([a for i, a in enumerate(args) if a != "--into" and (i == 0 or args[i - 1] != "--into")], target)
