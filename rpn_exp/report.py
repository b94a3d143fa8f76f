"""``python -m rpn_exp.report DIR [DIR ...]``: rebuild a sweep's summary from the job records on disk.

Writes ``summary.csv``, ``summary.md`` and ``pareto.png`` (into DIR, or into ``--out`` when merging several
sweeps) and prints the table. Works on finished, partial, interrupted and still-running sweeps: a job that
left no record or failed is listed with its status. A DIR that holds a ``summary.csv`` and no job folders (a summary
kept without its runs, e.g. ``outputs/examples/fashion_mnist``) contributes the rows of that summary, so new sweeps
can be set beside published ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rpn_exp.files import restrict_umask
from rpn_exp.sweep.rows import find_jobs, summarize
from rpn_exp.sweep.summary import SUMMARY_CSV, default_title, read_rows, write_summary


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rpn_exp.report",
        description="Summarize rpn_exp sweeps: summary.csv, summary.md (Pareto front marked) and pareto.png.",
    )
    parser.add_argument("folders", nargs="+", type=Path, metavar="DIR",
                        help="sweep folders (outputs/<task>/multiruns/<stamp>) or any folders holding job records")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the summary files (default: DIR; required with several DIRs)")
    parser.add_argument("--title", default=None,
                        help="title of the table and the plot (default: task, dataset, epochs and stamp of the sweep)")
    parser.add_argument("--include-debug", action="store_true",
                        help="keep jobs of debug presets (left out by default unless every job is one)")
    return parser.parse_args(argv)


def published_summary(folder: Path) -> bool:
    """Whether ``folder`` is a summary kept without its runs: a ``summary.csv`` and no job folder."""
    return (folder / SUMMARY_CSV).is_file() and not find_jobs([folder])


def main(argv=None) -> int:
    restrict_umask()
    args = parse_args(argv)
    if args.out is None and len(args.folders) > 1:
        print("error: several DIRs are merged into one summary; say where it goes with --out FOLDER", file=sys.stderr)
        return 2
    try:
        kept = [folder for folder in args.folders if not published_summary(folder)]
        published = [row for folder in args.folders if published_summary(folder)
                     for row in read_rows(folder / SUMMARY_CSV)]
        rows, left_out = summarize(kept, include_debug=args.include_debug, published=published)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not rows:
        looked = ", ".join(map(str, args.folders))
        print(f"error: no job folders (result.json or .hydra/overrides.yaml) under {looked}", file=sys.stderr)
        return 1
    out = args.out or args.folders[0]
    title = default_title(args.folders, rows) if args.title is None else args.title
    paths = write_summary(out, rows, title=title, left_out=left_out)
    print(paths["md"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
