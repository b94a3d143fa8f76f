"""Sweeps as pictures: accuracy against learnable parameters, with the Pareto front."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from rpn_exp.run.record import Status
from rpn_exp.sweep.rows import chance, family, is_baseline

#: Columns whose values tell the points of a sweep apart (labelled on the plot when they vary).
LABEL_COLUMNS = ("r", "p", "q", "seed", "lr", "epochs", "expansion", "interdependence", "remainder", "widths",
                 "dataset")


#: The dense baselines (``model=mlp``) in greys, apart from the families' hues.
BASELINE_COLOURS = {"mlp": "#3a3a3a", "linear": "#9a9a9a"}


def family_colour(family: str):
    """The colour of a reconciliation family, the same in every plot.

    The i-th family of ``rpn_exp.functions.reconciliation.FAMILIES`` gets tab20's colour 2i (the ten strong
    hues first), then 2i + 1 (their light tints) from the eleventh on; the baselines are grey
    (:data:`BASELINE_COLOURS`); other names hash into the palette.
    """
    import zlib

    from matplotlib import colormaps

    from rpn_exp.functions import reconciliation

    if family in BASELINE_COLOURS:
        return BASELINE_COLOURS[family]
    names = [kind.name for kind in reconciliation.FAMILIES]
    i = names.index(family) if family in names else zlib.crc32(family.encode()) % 20
    return colormaps["tab20"]((2 * i) % 20 + (i // 10) % 2)


def label_columns(series: Sequence[dict]) -> list[str]:
    """What tells the points of one family apart: the :data:`LABEL_COLUMNS` that vary within it, or, for a family of
    one configuration, its rank (r) where it has one."""
    varying = [c for c in LABEL_COLUMNS if len({str(r.get(c, "")) for r in series if r.get(c) not in ("", None)}) > 1]
    return varying or [c for c in ("r",) if any(r.get(c) not in ("", None) for r in series)]


def baseline_label(row: dict) -> str:
    """A dense baseline's point: its hidden width(s), ``h=32`` (``linear`` has none)."""
    hidden = str(row.get("widths", "")).split("-")[1:-1]
    return f"h={'-'.join(hidden)}" if hidden else ""


def point_label(row: dict, columns: Sequence[str]) -> str:
    """``r=8 p=2`` from the row's values of ``columns`` (those that vary in the sweep)."""
    return " ".join(f"{c}={row[c]}" for c in columns if row.get(c) not in ("", None))


#: With points far below the best, :func:`pareto_figure` adds a panel for the top this-much of test accuracy.
ZOOM_SPAN = 0.05


def pareto_plot(rows: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """:func:`pareto_figure` of ``rows`` written as a PNG to ``path``; returns the path."""
    import matplotlib.pyplot as plt

    fig = pareto_figure(rows, title)
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def pareto_figure(rows: Sequence[dict], title: str = ""):
    """Test accuracy against learnable parameters (log axis), one colour per reconciliation family, front drawn;
    dense baselines (``model=mlp``: ``mlp``, ``linear``) as dashed curves with their own legend entries.

    ``rows`` are summary rows (``rpn_exp.sweep.summary``); completed rows with a test accuracy are plotted, each
    labelled with what tells it from the other points of its family, and those with ``pareto`` set are joined by
    the front's step line. A family keeps its colour across plots (:func:`family_colour`; a layout variant is drawn
    as diamonds); chance accuracy (1 / classes) is a grey line; the legend sits outside the axes. When some points
    lie far below the best (structures that cannot fit), a second panel shows the top :data:`ZOOM_SPAN` of test
    accuracy, where the configurations compete. Returns the matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = bool(rows) and "test_acc_mean" in rows[0]  # configurations pooled over seeds (rpn_exp.sweep.grouping)
    y_key = "test_acc_mean" if grouped else "test_acc"
    done = [r for r in rows if r["status"] == Status.COMPLETED and r[y_key] != "" and r["learnable_params"] != ""]
    done = [r for r in done if not math.isnan(float(r[y_key]))]
    several = len({family(r) for r in done}) > 1 or len(done) > 1
    ys = sorted(float(r[y_key]) for r in done)
    near = [y for y in ys if ys and y >= ys[-1] - ZOOM_SPAN]
    zoom = bool(ys) and ys[0] < ys[-1] - 4 * ZOOM_SPAN and len(near) >= 3
    fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(14 if zoom else 9, 5), dpi=120, squeeze=False)
    for ax in axes[0]:
        _draw(ax, done, y_key, grouped, several)
    main, last = axes[0][0], axes[0][-1]
    if zoom:
        last.set_ylim(min(near) - 0.01, ys[-1] + 0.01)
        last.set_title(f"the top {ZOOM_SPAN:.2f} of test accuracy (zoom)", fontsize=9)
    if done:
        last.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        main.text(0.5, 0.5, "no completed job yet", ha="center", va="center", transform=main.transAxes)
    skipped = len(rows) - len(done)
    heading = title or "accuracy per parameter"
    main.set_title(heading + (f"\n({skipped} job(s) without a test accuracy not shown)" if skipped else ""),
                   fontsize=9)
    fig.tight_layout()
    return fig


def _draw(ax, done: Sequence[dict], y_key: str, grouped: bool, several: bool) -> None:
    """The families, baselines, front and chance line of :func:`pareto_figure` on one axes."""
    for name in sorted({family(r) for r in done}, key=lambda f: (f not in ("linear", "mlp"), f)):
        series = sorted((r for r in done if family(r) == name), key=lambda r: int(r["learnable_params"]))
        xs, ys = [int(r["learnable_params"]) for r in series], [float(r[y_key]) for r in series]
        colour = family_colour(name.split(" (")[0])  # a layout variant keeps its family's colour, as diamonds
        if is_baseline(series[0]):  # dense baselines: a dashed curve across their widths
            ax.plot(xs, ys, linestyle="--", marker="s", markersize=5, linewidth=1.5, color=colour, zorder=3,
                    label=f"{name} (dense baseline)")
        else:
            ax.scatter(xs, ys, label=name, s=40, alpha=0.9, zorder=3, color=colour,
                       marker="D" if name.endswith(" layout)") else "o")
        if grouped:  # each configuration's 95% interval of the mean over its seeds
            errors = [0.0 if math.isnan(r["test_acc_ci95"]) else r["test_acc_ci95"] for r in series]
            ax.errorbar(xs, ys, yerr=errors, fmt="none", ecolor=colour, elinewidth=1.2, capsize=3, zorder=3)
        columns = label_columns(series)
        for x, y, row in zip(xs, ys, series):
            text = baseline_label(row) if is_baseline(row) else point_label(row, columns)
            if several and text:
                ax.annotate(text, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7, color="#333333",
                            annotation_clip=True)
    front = sorted((int(r["learnable_params"]), float(r[y_key])) for r in done if r["pareto"])
    if front:
        xs, ys = zip(*front)
        ax.step(xs, ys, where="post", color="black", linewidth=1, alpha=0.6, zorder=2,
                label="Pareto front (chosen on validation)")
        ax.scatter(xs, ys, s=120, facecolors="none", edgecolors="black", linewidths=1.2, zorder=4)
    levels = {round(chance(r), 6) for r in done if not math.isnan(chance(r))}
    for level in sorted(levels):
        ax.axhline(level, color="grey", linewidth=1, linestyle=":", zorder=1,
                   label=f"chance ({level:.3g})" if len(levels) == 1 else None)
    ax.set_xscale("log")
    _parameter_ticks(ax, [int(r["learnable_params"]) for r in done])
    ax.set_xlabel("learnable parameters (log scale)")
    ax.set_ylabel("test accuracy" + (" (mean over seeds, 95% interval)" if grouped else ""))
    ax.grid(True, which="both", alpha=0.3)


def _parameter_ticks(ax, counts: Sequence[int]) -> None:
    """Parameter counts written out (``9,330``) at 1, 2 and 5 per decade over a short range, 1 over a long one."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if not counts:
        return
    decades = math.log10(max(counts) / max(1, min(counts)))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
