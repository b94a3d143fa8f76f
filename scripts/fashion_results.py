"""Regenerate RESULTS.md: accuracy against parameters on real Fashion-MNIST, 20 epochs, 3 seeds per configuration.

    python scripts/fashion_results.py            # about 35 minutes on 2 cores (launcher=joblib, 2 jobs at a time)
    python scripts/fashion_results.py --publish outputs/fashion_results/<stamp>   # merge and publish it again

Needs Debian's Fashion-MNIST (apt-get install -y dataset-fashion-mnist). Runs four sweeps into
``outputs/fashion_results/<stamp>/`` (the paper's architecture and optimizer, ``experiment=paper_mnist``):

* ``rpn``: the low-parameter families over r (dual_lphm, lphm; r = 1, 2, 5, 8; the default layout; r = 8 is the
  largest any layer of the paper's model can use);
* ``reference``: the paper's configuration as the reference implementation builds it (``experiment=paper_reference``);
* ``baselines``: the linear classifier and MLPs of width 4..64 (``hparams_search=mlp_baseline``);
* ``epochs3``: the default and the reference layout at 9,330 parameters after 3 epochs (γ = 0.95).

then merges the first three with ``python -m rpn_exp.report``, together with the published rows of the p, q and
Kronecker-sum study (``scripts/fashion_kronecker.py``), and copies the summaries, the plot and ``provenance.json``
(commands, wall times, git commit) into ``outputs/examples/fashion_mnist/``.
"""

from __future__ import annotations

import argparse
import csv
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

COMMON = ["dataset=fashion_mnist", "seed=1,2,3", "launcher=joblib"]
SWEEPS = {
    "rpn": ["experiment=paper_mnist", "reconciliation=dual_lphm,lphm", "reconciliation.r=1,2,5,8"],
    "reference": ["experiment=paper_reference"],
    "baselines": ["experiment=paper_mnist", "hparams_search=mlp_baseline"],
    "epochs3": ["experiment=paper_mnist,paper_reference", "trainer.max_epochs=3", "scheduler.gamma=0.95"],
}
EXAMPLE = ROOT / "outputs" / "examples" / "fashion_mnist"
#: The sweep folders of this study in the published summary (``rpn_r8``: r = 8 once ran as a sweep of its own).
FIRST_STUDY = ("rpn", "rpn_r8", "reference", "baselines", "epochs3")


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
    record["total_wall_time_s"] = round(sum(s["wall_time_s"] for s in record["sweeps"].values()), 1)
    (folder / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    publish(folder)


def publish(folder: Path) -> None:
    """Merge the finished ``folder``'s first three sweeps (``folder/merged``), then those rows with the published
    rows of the other studies (the p, q and Kronecker-sum sweeps of ``scripts/fashion_kronecker.py``, kept from the
    published ``summary.csv``; a configuration and seed both trained is counted once, this study's job kept) into
    ``folder/published``, and copy the summaries, the plot and ``provenance.json`` into
    ``outputs/examples/fashion_mnist/``."""
    record = json.loads((folder / "provenance.json").read_text())
    title = ["--title", "Fashion-MNIST | paper architecture | 20 epochs | 3 seeds"]
    sweeps = [str(folder / name) for name in ("rpn", "reference", "baselines")]
    subprocess.run([sys.executable, "-m", "rpn_exp.report", *sweeps, "--out", str(folder / "merged"), *title],
                   cwd=ROOT, check=True)
    published = EXAMPLE / "summary.csv"
    rows = []
    if published.is_file():
        with open(published, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row["job"].split("/")[0] not in FIRST_STUDY]
    with tempfile.TemporaryDirectory() as others:
        if rows:
            with open(Path(others) / "summary.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        subprocess.run([sys.executable, "-m", "rpn_exp.report", str(folder / "merged"), *([others] if rows else []),
                        "--out", str(folder / "published"), *title], cwd=ROOT, check=True)
    EXAMPLE.mkdir(parents=True, exist_ok=True)
    for source, target in ((folder / "published", EXAMPLE), (folder / "epochs3", EXAMPLE / "epochs3")):
        target.mkdir(parents=True, exist_ok=True)
        for name in ("summary.csv", "summary_by_config.csv", "summary.md", "pareto.png"):
            shutil.copy2(source / name, target / name)
    (EXAMPLE / "provenance.json").write_text(json.dumps({**record, "folder": str(folder.relative_to(ROOT))},
                                                        indent=2) + "\n")
    print(f"[fashion_results] done in {record['total_wall_time_s']} s: {EXAMPLE}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publish", type=Path, metavar="FOLDER",
                        help="only merge and publish a finished outputs/fashion_results/<stamp> folder")
    arguments = parser.parse_args()
    main() if arguments.publish is None else publish(arguments.publish.resolve())
