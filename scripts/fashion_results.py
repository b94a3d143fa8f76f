"""Regenerate RESULTS.md: accuracy against parameters on real Fashion-MNIST, 20 epochs, 3 seeds per configuration.

    python scripts/fashion_results.py            # about 35 minutes on 2 cores (launcher=joblib, 2 jobs at a time)

Needs Debian's Fashion-MNIST (apt-get install -y dataset-fashion-mnist). Runs four sweeps into
``outputs/fashion_results/<stamp>/`` (the paper's architecture and optimizer, ``experiment=paper_mnist``):

* ``rpn``: the low-parameter families over r (dual_lphm, lphm; r = 1, 2, 5, 8; the default layout; r = 8 is the
  largest any layer of the paper's model can use);
* ``reference``: the paper's configuration as the reference implementation builds it (``experiment=paper_reference``);
* ``baselines``: the linear classifier and MLPs of width 4..64 (``hparams_search=mlp_baseline``);
* ``epochs3``: the default and the reference layout at 9,330 parameters after 3 epochs (γ = 0.95).

then merges the first three with ``python -m rpn_exp.report`` and copies the summaries, the plot and
``provenance.json`` (commands, wall times, git commit) into ``outputs/examples/fashion_mnist/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rpn_exp.run.provenance import provenance  # noqa: E402

COMMON = ["dataset=fashion_mnist", "seed=1,2,3", "launcher=joblib"]
SWEEPS = {
    "rpn": ["experiment=paper_mnist", "reconciliation=dual_lphm,lphm", "reconciliation.r=1,2,5,8"],
    "reference": ["experiment=paper_reference"],
    "baselines": ["experiment=paper_mnist", "hparams_search=mlp_baseline"],
    "epochs3": ["experiment=paper_mnist,paper_reference", "trainer.max_epochs=3", "scheduler.gamma=0.95"],
}
EXAMPLE = ROOT / "outputs" / "examples" / "fashion_mnist"


def main() -> None:
    folder = ROOT / "outputs" / "fashion_results" / time.strftime("%Y-%m-%d_%H-%M-%S")
    record = {"provenance": provenance(None), "sweeps": {}}
    for name, overrides in SWEEPS.items():
        command = [sys.executable, "-m", "rpn_exp", "-m", *overrides, *COMMON, f"hydra.sweep.dir={folder / name}"]
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True)
        record["sweeps"][name] = {"command": "python -m rpn_exp -m " + " ".join(command[4:-1]),
                                  "wall_time_s": round(time.perf_counter() - started, 1)}
        print(f"[fashion_results] {name}: {record['sweeps'][name]['wall_time_s']} s", flush=True)
    merged = [str(folder / name) for name in ("rpn", "reference", "baselines")]
    subprocess.run([sys.executable, "-m", "rpn_exp.report", *merged, "--out", str(folder / "merged"),
                    "--title", "Fashion-MNIST | paper architecture | 20 epochs | 3 seeds"], cwd=ROOT, check=True)
    record["total_wall_time_s"] = round(sum(s["wall_time_s"] for s in record["sweeps"].values()), 1)
    EXAMPLE.mkdir(parents=True, exist_ok=True)
    for source, target in ((folder / "merged", EXAMPLE), (folder / "epochs3", EXAMPLE / "epochs3")):
        target.mkdir(parents=True, exist_ok=True)
        for name in ("summary.csv", "summary_by_config.csv", "summary.md", "pareto.png"):
            shutil.copy2(source / name, target / name)
    (EXAMPLE / "provenance.json").write_text(json.dumps({**record, "folder": str(folder.relative_to(ROOT))},
                                                        indent=2) + "\n")
    print(f"[fashion_results] done in {record['total_wall_time_s']} s: {EXAMPLE}")


if __name__ == "__main__":
    main()
