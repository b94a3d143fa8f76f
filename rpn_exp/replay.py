"""``python -m rpn_exp.replay DIR [DIR ...]``: what ``pruner=halving`` would have stopped in sweeps run without it.

The pruning rule (``rpn_exp.run.pruning``) replayed on the validation curves the jobs recorded
(``rpn_exp.sweep.replay``): which configurations would have stopped, at which rung and behind which configuration,
the epochs that saves, and whether every configuration on the final front (the summary's) would have been kept.
Prints the table and writes it to ``pruning_replay.md``, each decision to ``pruning_replay.jsonl`` (in DIR, or in
``--out`` when replaying several). Exit status 0 when the front is kept, 3 when the replay would have stopped a
configuration on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rpn_exp.files import restrict_umask
from rpn_exp.run.atomic import atomic_write
from rpn_exp.run.pruning import SuccessiveHalving, pruned_text
from rpn_exp.sweep.grouping import group_by_config
from rpn_exp.sweep.replay import VAL_SERIES, Replay, recorded_jobs, replay
from rpn_exp.sweep.rows import find_jobs, summarize

REPLAY_MD, REPLAY_JSONL = "pruning_replay.md", "pruning_replay.jsonl"
FRONT_LOST = 3


def parse_args(argv=None) -> argparse.Namespace:
    defaults = SuccessiveHalving()
    parser = argparse.ArgumentParser(prog="python -m rpn_exp.replay", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, metavar="DIR", help="sweep folders with their job folders")
    parser.add_argument("--first-rung", type=int, default=defaults.first_rung, help="b, the first rung epoch")
    parser.add_argument("--eta", type=float, default=defaults.eta, help="η, the factor between rungs")
    parser.add_argument("--margin", type=float, default=defaults.margin,
                        help="the lead that stops a configuration (default: twice the seeds' spread at each rung)")
    parser.add_argument("--out", type=Path, default=None, help="where the replay goes (default: DIR)")
    return parser.parse_args(argv)


def table(groups: list[dict], outcome: Replay) -> list[str]:
    """Markdown: one line per configuration, by learnable parameters, with the replay's verdict."""
    lines = ["| front | config | n | learnable_params | best val acc mean | replay |", "|---|---|---|---|---|---|"]
    for group in sorted(groups, key=lambda g: (int(g["learnable_params"] or 0), g["config"])):
        decision = outcome.pruned.get(group["configuration"])
        verdict = f"pruned at {pruned_text(decision, long=True)}" if decision else "kept"
        lines.append(f"| {'★' if group['pareto'] else ''} | `{group['config']}` | {group['n']} | "
                     f"{int(group['learnable_params']):,} | {group['val_acc_best_mean']:.4f} | {verdict} |")
    return lines


def report(groups: list[dict], outcome: Replay, pruner: SuccessiveHalving, jobs: int, left_out: list[str]):
    """(the replay's lines, the configurations on the final front it would have stopped)."""
    lost = [g["config"] for g in groups if g["pareto"] and g["configuration"] in outcome.pruned]
    saved = outcome.epochs_saved / outcome.epochs_total if outcome.epochs_total else 0.0
    margin = "twice the seeds' spread" if pruner.margin is None else f"{pruner.margin:g}"
    lines = [f"Pruning replayed (first_rung={pruner.first_rung}, eta={pruner.eta:g}, margin={margin}) on {jobs} "
             f"jobs, {len(groups)} configurations.", "", *table(groups, outcome), "",
             f"{len(outcome.pruned)} of {len(groups)} configurations would have stopped; "
             f"{outcome.epochs_saved:,} of {outcome.epochs_total:,} epochs saved ({saved:.0%}).",
             "Front kept: every configuration on the final front goes on." if not lost else
             f"FRONT LOST: the replay stops {', '.join(f'`{c}`' for c in lost)}, on the final front."]
    return lines + [f"Left out: {line}" for line in left_out], lost


def main(argv=None) -> int:
    restrict_umask()
    args = parse_args(argv)
    if args.out is None and len(args.folders) > 1:
        print("error: several DIRs are replayed together; say where the replay goes with --out FOLDER",
              file=sys.stderr)
        return 2
    try:
        pruner = SuccessiveHalving(args.first_rung, args.eta, args.margin)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    jobs, left_out = recorded_jobs(find_jobs(args.folders))
    if not jobs:
        print(f"error: no completed job with a recorded {VAL_SERIES} curve under "
              f"{', '.join(map(str, args.folders))}", file=sys.stderr)
        return 1
    outcome = replay(jobs, pruner)
    lines, lost = report(group_by_config(summarize(args.folders)[0]), outcome, pruner, len(jobs), left_out)
    out = args.out or args.folders[0]
    atomic_write(out / REPLAY_MD, lambda handle: handle.write(("\n".join(lines) + "\n").encode()))
    atomic_write(out / REPLAY_JSONL, lambda handle: handle.write(
        "".join(json.dumps(d) + "\n" for d in outcome.decisions).encode()))
    print("\n".join(lines))
    print(f"wrote {out / REPLAY_MD}, {out / REPLAY_JSONL}")
    return FRONT_LOST if lost else 0


if __name__ == "__main__":
    sys.exit(main())
