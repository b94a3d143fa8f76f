"""The pruning measure of RESULTS.md: the first Fashion-MNIST study (the same configurations, 20 epochs, 3 seeds) with
``launcher=stacked``, once without pruning and once with ``pruner=halving``, back to back on the same machine.

    python scripts/fashion_pruning.py                       # both runs into outputs/fashion_pruning/<stamp>/
    python scripts/fashion_pruning.py --report FOLDER        # the comparison again from a finished FOLDER
    python scripts/fashion_pruning.py --reuse reference      # the pruned run takes the unpruned run's reference sweep
    python scripts/fashion_pruning.py --reuse reference --pooled   # the pruned run's sweeps share one store
    python scripts/fashion_pruning.py --pooled --together   # each run's three sweeps at once, sharing the two cores
    python scripts/fashion_pruning.py --study               # each run as one multirun: study=fashion_first

Needs Debian's Fashion-MNIST (apt-get install -y dataset-fashion-mnist). Each run is the first study's three sweeps
(``scripts/fashion_results.py``: ``rpn``, ``reference``, ``baselines``) with ``launcher=stacked
hydra.launcher.n_jobs=2`` (two groups at a time, one core each); pruning compares the configurations of one sweep,
or with ``--pooled`` of all three (``pruner.storage``: one store folder for the pruned run's sweeps, the baselines
run first so that the RPN configurations are judged against them). With ``--together`` a run's three sweeps start
at once and share the cores (six workers on two cores, one thread each), so that no core waits at the end of a
sweep; its wall time is from the first start to the last end. A configuration of the RPN sweep that reaches a rung
before the baselines report it is judged again at its next rung (``rpn_exp.run.rungs.judged_again``).
The comparison (``comparison.md``, ``comparison.json``): both wall times, the jobs pruned and at which rung, the epochs
trained, and whether the pruned study reaches the same Pareto front (the same configurations on it, each mean within
the unpruned run's 95% interval); plus ``python -m rpn_exp.replay`` of the rule on the unpruned run's recorded
curves (what it would have stopped, all three sweeps pooled). Copied into ``outputs/examples/fashion_pruning/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rpn_exp.run.provenance import provenance  # noqa: E402
from rpn_exp.run.rungs import read_decisions  # noqa: E402
from scripts.fashion_results import COMMON, SWEEPS  # noqa: E402

STUDY = ("rpn", "reference", "baselines")
LAUNCHER = ["launcher=stacked", "hydra.launcher.n_jobs=2"]
RUNS = {"unpruned": [], "pruned": ["pruner=halving"]}
STUDY_SWEEP = ["study=fashion_first", *COMMON[:2]]  # the three sweeps as one multirun (conf/study/fashion_first.yaml)
EXAMPLE = ROOT / "outputs" / "examples" / "fashion_pruning"


def run(folder: Path, name: str, extra: list[str], done: dict, shared: tuple[str, ...],
        order: tuple[str, ...] = STUDY, together: bool = False) -> dict:
    """One run of the study: its three sweeps (in ``order``, or all at once with ``together``) into
    ``folder / name``, each sweep's command and wall time; the sweeps in ``done`` (a run stopped earlier) are kept,
    and those in ``shared`` are the unpruned run's (a sweep of one configuration, which pruning cannot change), their
    wall time counted as measured there."""
    sweeps = dict(done)
    common = [c for c in COMMON if not c.startswith("launcher=")] + LAUNCHER + extra
    commands = {}
    for sweep in order:
        if sweep in sweeps:
            continue
        if sweep in shared and name != "unpruned":
            (folder / name).mkdir(parents=True, exist_ok=True)
            (folder / name / sweep).symlink_to(folder / "unpruned" / sweep, target_is_directory=True)
            sweeps[sweep] = {"reused": "unpruned"}
            continue
        commands[sweep] = [sys.executable, "-m", "rpn_exp", "-m", *SWEEPS[sweep], *common,
                           f"hydra.sweep.dir={folder / name / sweep}"]
    started = time.perf_counter()
    for group in ([list(commands)] if together else [[sweep] for sweep in commands]):
        begun = time.perf_counter()
        ended = finish({sweep: subprocess.Popen(commands[sweep], cwd=ROOT) for sweep in group})
        for sweep in group:
            sweeps[sweep] = {"command": "python -m rpn_exp -m " + " ".join(commands[sweep][4:-1]),
                             "wall_time_s": round(ended[sweep] - begun, 1)}
            print(f"[fashion_pruning] {name} {sweep}: {sweeps[sweep]['wall_time_s']} s", flush=True)
    together_s = {"together": True, "wall_time_s": round(time.perf_counter() - started, 1)} if together else {}
    return {"sweeps": sweeps, **together_s}


def run_study(folder: Path, name: str, extra: list[str]) -> dict:
    """One run of the study as one multirun into ``folder / name``: its command and wall time."""
    command = [sys.executable, "-m", "rpn_exp", "-m", *STUDY_SWEEP, *LAUNCHER, *extra,
               f"hydra.sweep.dir={folder / name}"]
    begun = time.perf_counter()
    finish({name: subprocess.Popen(command, cwd=ROOT)})
    wall = round(time.perf_counter() - begun, 1)
    print(f"[fashion_pruning] {name}: {wall} s", flush=True)
    return {"study": True, "command": "python -m rpn_exp -m " + " ".join(command[4:-1]), "wall_time_s": wall}


def sweep_folders(folder: Path, name: str, record: dict) -> list[Path]:
    """The sweep folders of run ``name``: its one folder for a study, else its three sweeps'."""
    return [folder / name] if record["runs"][name].get("study") else [folder / name / sweep for sweep in STUDY]


def finish(processes: dict[str, subprocess.Popen]) -> dict[str, float]:
    """Wait for every process; when each ended (``time.perf_counter``). Raises if one failed."""
    ended = {}
    while len(ended) < len(processes):
        for sweep, process in processes.items():
            if sweep not in ended and process.poll() is not None:
                if process.returncode:
                    raise subprocess.CalledProcessError(process.returncode, process.args)
                ended[sweep] = time.perf_counter()
        time.sleep(0.2)
    return ended


def wall_time(record: dict, name: str) -> float:
    """A run's wall time: from the first sweep's start to the last one's end when they ran together; else the sum
    of its sweeps', a reused one's as measured in the run it comes from."""
    run = record["runs"][name]
    if run.get("together") or run.get("study"):
        return run["wall_time_s"]
    return round(sum(record["runs"][s["reused"]]["sweeps"][k]["wall_time_s"] if "reused" in s else s["wall_time_s"]
                     for k, s in run["sweeps"].items()), 1)


def configurations(folder: Path) -> dict[str, dict]:
    with open(folder / "merged" / "summary_by_config.csv", newline="") as handle:
        return {row["config"]: row for row in csv.DictReader(handle)}


def records(sweeps: list[Path]) -> list[dict]:
    return [json.loads(p.read_text()) for sweep in sweeps for p in sorted(sweep.glob("*/result.json"))]


def compare(folder: Path, record: dict) -> dict:
    """Fronts, pruned jobs and epochs of both runs, and the replay on the unpruned curves."""
    sweeps = {name: sweep_folders(folder, name, record) for name in RUNS}
    for name in RUNS:
        subprocess.run([sys.executable, "-m", "rpn_exp.report", *map(str, sweeps[name]),
                        "--out", str(folder / name / "merged"),
                        "--title", f"Fashion-MNIST | first study | launcher=stacked | {name}"], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "-m", "rpn_exp.replay", *map(str, sweeps["unpruned"]),
                    "--out", str(folder / "replay")], cwd=ROOT, check=False)
    unpruned, pruned = configurations(folder / "unpruned"), configurations(folder / "pruned")
    front = {c for c, row in unpruned.items() if row["pareto"] == "True"}
    pruned_front = {c for c, row in pruned.items() if row["pareto"] == "True"}
    within = {}
    for config in front & pruned_front:
        mean, half = float(unpruned[config]["test_acc_mean"]), float(unpruned[config]["test_acc_ci95"])
        within[config] = abs(float(pruned[config]["test_acc_mean"]) - mean) <= half
    decisions = [d for s in sweeps["pruned"] for d in read_decisions(s) if d["decision"] == "pruned"]
    return {
        "front_unpruned": sorted(front), "front_pruned": sorted(pruned_front),
        "same_front": front == pruned_front and all(within.values()), "means_within_interval": within,
        "pruned": [{"configuration": d.get("overrides") or d["configuration"], "epoch": d["epoch"], "rung": d["rung"],
                    "jobs": d.get("jobs") or [d.get("judged")]} for d in decisions],
        "epochs": {name: sum(r.get("epochs") or 0 for r in records(sweeps[name])) for name in RUNS},
        "jobs": {name: len(records(sweeps[name])) for name in RUNS},
    }


def write(folder: Path, record: dict) -> None:
    comparison = record["comparison"]
    how = ("as one multirun (study=fashion_first)" if record["runs"]["unpruned"].get("study") else
           "at once" if record["runs"]["unpruned"].get("together") else "one after another")
    lines = ["# Pruning measure: the first Fashion-MNIST study with launcher=stacked", "",
             f"Each run's three sweeps {how}.", "",
             "| run | wall time, s | jobs | jobs pruned | epochs trained |", "|---|---|---|---|---|"]
    for name in RUNS:
        pruned = sum(len(p["jobs"]) for p in comparison["pruned"]) if name == "pruned" else 0
        lines.append(f"| {name} | {wall_time(record, name)} | {comparison['jobs'][name]} | {pruned} | "
                     f"{comparison['epochs'][name]} |")
    lines += ["", f"Same Pareto front (the same configurations, means within the unpruned 95% intervals): "
              f"**{'yes' if comparison['same_front'] else 'no'}**", "", "Pruned:", ""]
    lines += [f"- `{p['configuration']}`: epoch {p['epoch']} (rung {p['rung']}), {len(p['jobs'])} jobs"
              for p in comparison["pruned"]] or ["- none"]
    lines += ["", "Front (unpruned): " + "; ".join(f"`{c}`" for c in comparison["front_unpruned"]),
              "", "Front (pruned): " + "; ".join(f"`{c}`" for c in comparison["front_pruned"]), ""]
    (folder / "comparison.md").write_text("\n".join(lines))
    (folder / "comparison.json").write_text(json.dumps(record, indent=2) + "\n")
    EXAMPLE.mkdir(parents=True, exist_ok=True)
    for name in RUNS:
        for file in ("summary_by_config.csv", "summary.md", "pareto.png"):
            (EXAMPLE / name).mkdir(exist_ok=True)
            shutil.copy2(folder / name / "merged" / file, EXAMPLE / name / file)
    for file in ("comparison.md", "comparison.json"):
        shutil.copy2(folder / file, EXAMPLE / file)
    for replay in (folder / "replay").glob("*"):
        shutil.copy2(replay, EXAMPLE / f"replay_{replay.name}")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, metavar="FOLDER", help="compare a finished run again")
    parser.add_argument("--resume", type=Path, metavar="FOLDER", help="go on with the sweeps a run has not done")
    parser.add_argument("--reuse", nargs="*", default=[], choices=STUDY,
                        help="sweeps of one configuration the pruned run takes from the unpruned one")
    parser.add_argument("--pooled", action="store_true",
                        help="the pruned run's sweeps share one store (pruner.storage), the baselines first")
    parser.add_argument("--together", action="store_true",
                        help="each run's three sweeps at once (each with its two workers), not one after another")
    parser.add_argument("--study", action="store_true",
                        help="each run as one multirun of the three sweeps (study=fashion_first; pooled by design)")
    args = parser.parse_args()
    if args.study and (args.reuse or args.together or args.pooled):
        parser.error("--study runs each run's sweeps as one multirun: no sweep is reused, and they are pooled already")
    if args.together and args.reuse:
        parser.error("--together runs every sweep in both runs: the sweeps share the cores, so none is reused")
    if args.report:
        folder = args.report.resolve()
        record = json.loads((folder / "comparison.json").read_text())
    else:
        folder = args.resume.resolve() if args.resume else (
            ROOT / "outputs" / "fashion_pruning" / time.strftime("%Y-%m-%d_%H-%M-%S"))
        record = json.loads((folder / "comparison.json").read_text()) if args.resume else {
            "provenance": provenance(None), "folder": str(folder.relative_to(ROOT)), "runs": {}}
        for name, extra in RUNS.items():
            if args.study:
                if name not in record["runs"]:  # a run --resume finds done is kept
                    record["runs"][name] = run_study(folder, name, extra)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "comparison.json").write_text(json.dumps(record, indent=2) + "\n")
                continue
            done = record["runs"].get(name, {}).get("sweeps", {})
            pooled = args.pooled and name != "unpruned"
            extra = [*extra, f"pruner.storage={folder / name / 'rungs'}"] if pooled else extra
            order = ("baselines", "reference", "rpn") if pooled else STUDY
            record["runs"][name] = run(folder, name, extra, done, tuple(args.reuse), order, args.together)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "comparison.json").write_text(json.dumps(record, indent=2) + "\n")
    record["comparison"] = compare(folder, record)
    write(folder, record)


if __name__ == "__main__":
    main()
