"""Sweeps as pictures: accuracy against learnable parameters, with the Pareto front."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from rpn_exp.nn.describe import STRUCTURE_HPARAMS
from rpn_exp.run.atomic import atomic_write
from rpn_exp.run.record import Status
from rpn_exp.sweep.grouping import accuracy_interval
from rpn_exp.sweep.labels import place_labels
from rpn_exp.sweep.rows import accuracy, chance, family, is_baseline

#: Columns whose values tell the points of a sweep apart (labelled on the plot when they vary).
LABEL_COLUMNS = (*STRUCTURE_HPARAMS, "seed", "lr", "epochs", "expansion", "interdependence", "remainder", "widths",
                 "grid", "dataset")


#: The dense baselines (``model=mlp``, ``model=cnn``) in greys and a grey brown, apart from the families' hues.
BASELINE_COLOURS = {"mlp": "#3a3a3a", "linear": "#9a9a9a", "cnn": "#7a5c3e"}


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


def label_columns(series: Sequence[dict], exclude: Sequence[str] = ()) -> list[str]:
    """What tells the points of one series apart: the :data:`LABEL_COLUMNS` that vary within it (none for a series of
    one point: the legend names it); ``exclude``: the columns the series are made of."""
    return [c for c in LABEL_COLUMNS if c not in exclude
            and len({str(r.get(c, "")) for r in series if r.get(c) not in ("", None)}) > 1]


#: What a point's colour and marker can stand for, in that order of precedence: the family (with its layout), then
#: the other component functions.
SERIES_COLUMNS = ("reconciliation", "model", "expansion", "interdependence", "remainder")


def series_columns(rows: Sequence[dict]) -> list[str]:
    """The component columns that vary among the RPN rows (the reconciliation family when none does)."""
    rpn = [r for r in rows if not is_baseline(r)]
    values = {c: {family(r) if c == "reconciliation" else str(r.get(c, "")) for r in rpn} for c in SERIES_COLUMNS}
    return [c for c in SERIES_COLUMNS if len(values[c]) > 1] or ["reconciliation"]


def series_name(row: dict, columns: Sequence[str]) -> str:
    """The legend entry of a row: the values of the varying component ``columns`` (a baseline: its model)."""
    if is_baseline(row):
        return row["model"]
    return " · ".join(family(row) if c == "reconciliation" else str(row.get(c, "")) for c in columns)


def baseline_label(row: dict) -> str:
    """A dense baseline's point: its hidden width(s), ``h=32`` (``linear`` has none); a CNN's channels, ``c=8-16``."""
    if row.get("grid"):
        return f"c={row['grid']}"
    hidden = str(row.get("widths", "")).split("-")[1:-1]
    return f"h={'-'.join(hidden)}" if hidden else ""


def point_label(row: dict, columns: Sequence[str]) -> str:
    """``r=8 p=2`` from the row's values of ``columns`` (those that vary in the sweep)."""
    return " ".join(f"{c}={row[c]}" for c in columns if row.get(c) not in ("", None))


#: With points far below the best, :func:`pareto_figure` adds a panel for the top this-much of test accuracy.
ZOOM_SPAN = 0.05


def zoom_window(ys: Sequence[float]) -> tuple[float, float]:
    """The accuracy range of the zoom panel for the accuracies ``ys`` (sorted): the top :data:`ZOOM_SPAN` with 0.01
    either side, its lower edge moved below a point it would cut (one within 3% of the range under it: its marker
    would show half) so that the point is in the panel, whole."""
    lower, upper = min(y for y in ys if y >= ys[-1] - ZOOM_SPAN) - 0.01, ys[-1] + 0.01
    while cut := [y for y in ys if lower - 0.03 * (upper - lower) < y < lower]:
        lower = min(cut) - 0.03 * (upper - lower)
    return lower, upper


#: The factor on the log axis between the points of two series drawn at one parameter count.
DODGE = 1.04


def dodged(rows: Sequence[dict], name_of) -> list[float]:
    """Where each of ``rows`` is drawn on the parameter axis: its learnable count, or, where series (``name_of``)
    share a count, moved sideways by factors of :data:`DODGE` around it in the order of their names, so that their
    markers and intervals do not hide each other (labels and tooltips keep the count)."""
    names: dict[int, list[str]] = {}
    for row in rows:
        names.setdefault(int(row["learnable_params"]), []).append(name_of(row))
    places = {count: sorted(set(shared)) for count, shared in names.items()}
    return [int(r["learnable_params"]) * DODGE ** (places[int(r["learnable_params"])].index(name_of(r))
                                                   - (len(places[int(r["learnable_params"])]) - 1) / 2)
            for r in rows]


def pareto_plot(rows: Sequence[dict], path: str | Path, title: str = "") -> tuple[Path, list[tuple[str, str]]]:
    """:func:`pareto_figure` of ``rows`` written as a PNG to ``path``; returns the path and the plot's key (the
    numbers drawn in place of labels that found no free place, with what they name: ``place_labels``)."""
    import matplotlib.pyplot as plt

    fig = pareto_figure(rows, title)
    path = Path(path)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png"))
    plt.close(fig)
    return path, fig.point_key


def pareto_figure(rows: Sequence[dict], title: str = ""):
    """Test accuracy against learnable parameters (log axis); returns the matplotlib Figure.

    ``rows`` are summary rows (``rpn_exp.sweep.rows``), or configurations pooled over seeds
    (``rpn_exp.sweep.grouping``: drawn at their mean with their 95% interval, clipped to [0, 1]). Colour stands for
    what the sweep varies among the component functions (the reconciliation family by default, a family keeping its
    colour in every plot; :func:`series_columns`), the marker for a second varying one or a layout variant; dense
    baselines (``model=mlp``) are dashed grey curves. Points of a series are labelled with what tells them apart.
    The Pareto front, chosen on validation accuracy, is marked by rings (no line: joined in test accuracy, it would
    seem to go down where validation and test disagree). Chance accuracy is a grey line; the legend sits outside the
    axes; frozen parameters are a dotted line to learnable + frozen. Labels are placed clear of every mark, label and
    the legend (:mod:`rpn_exp.sweep.labels`), the series named in a label whose text another series shares; a label
    with no free place becomes a number, listed in the figure's ``point_key`` (``summary.md``'s plot key). When
    some points lie far below the best, a second panel shows the top :data:`ZOOM_SPAN` of test accuracy, where its
    points are labelled and their error bars drawn (not in the first panel).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = bool(rows) and "test_acc_mean" in rows[0]  # configurations pooled over seeds (rpn_exp.sweep.grouping)
    y_key = "test_acc_mean" if grouped else "test_acc"
    done = [r for r in rows if r["status"] == Status.COMPLETED and r[y_key] != "" and r["learnable_params"] != ""
            and not r.get("repeat_of")]  # a repeated (configuration, seed) is drawn once
    done = [r for r in done if not math.isnan(float(r[y_key]))]
    pruned = [r for r in rows if r["status"] == Status.PRUNED and r["learnable_params"] != ""
              and not r.get("repeat_of") and not math.isnan(accuracy(r, PRUNED_Y[grouped]))]
    ys = sorted(float(r[y_key]) for r in done)
    near = [y for y in ys if ys and y >= ys[-1] - ZOOM_SPAN]
    zoom = bool(ys) and ys[0] < ys[-1] - 4 * ZOOM_SPAN and len(near) >= 3
    fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(14 if zoom else 9.5, 5), dpi=120, squeeze=False)
    labels = []
    window = zoom_window(ys) if zoom else None
    inside = (lambda y: window[0] <= y <= window[1]) if zoom else (lambda y: False)
    for ax in axes[0]:  # with a zoom panel, a point in it is labelled there, and only its error bar drawn there
        labels += (_draw(ax, done, y_key, grouped, pruned, bars=inside, labelled=inside) if ax is not axes[0][0]
                   else _draw(ax, done, y_key, grouped, pruned, labelled=lambda y: not inside(y)))
    main, last = axes[0][0], axes[0][-1]
    fig.point_key = []
    if zoom:
        last.set_ylim(*window)
        last.set_title(f"the top {ZOOM_SPAN:.2f} of test accuracy (zoom)", fontsize=9)
    legend = (last.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
              if done or pruned else None)
    counted = [r for r in rows if r["learnable_params"] != "" and not r.get("repeat_of")]
    if not done and not pruned and counted:  # a dry run, or nothing trained yet: the parameter counts are the picture
        _parameter_counts(main, counted)
        main.set_title((title or "learnable parameters per job") + "\n(no job has a test accuracy yet: the "
                       "parameter count of each job that built its model)", fontsize=9)
        fig.tight_layout()
        return fig
    if not done:
        main.text(0.5, 0.5, "no completed job yet", ha="center", va="center", transform=main.transAxes)
    skipped = len(rows) - len(done) - len(pruned)
    main.set_title((title or "accuracy per parameter") + (f"\n({skipped} job(s) without a test accuracy not shown)"
                                                          if skipped else ""), fontsize=9)
    fig.tight_layout()
    fig.point_key = place_labels(fig, labels, legend)
    return fig


#: Where a pruned job (or configuration) is drawn: its best validation accuracy up to its rung (it has no test one).
PRUNED_Y = {False: "val_acc_best", True: "val_acc_best_mean"}


def _draw_pruned(ax, pruned: Sequence[dict], y_key: str, columns: Sequence[str], labelled=lambda y: True) -> list:
    """Pruned jobs or configurations as crosses in their family's colour at their best validation accuracy before
    the rung that stopped them: off the front, untested, but where the pruner saw them; those at an accuracy y
    ``labelled(y)`` labelled by ``columns`` (a baseline by its width). Returns the labels."""
    if not pruned:
        return []
    xs, ys = [int(r["learnable_params"]) for r in pruned], [accuracy(r, y_key) for r in pruned]
    ax.scatter(xs, ys, marker="x", s=36, linewidths=1.2, zorder=3,
               color=[family_colour(family(r).split(" (")[0]) for r in pruned],
               label="pruned at a rung (its best validation accuracy by then; not tested)")
    texts = [baseline_label(row) if is_baseline(row) else point_label(row, columns) for row in pruned]
    return [ax.annotate(text, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=7, color="#777777",
                        gid=f"{family(row)} {text} (pruned), {x:,} learnable parameters, best validation accuracy "
                        f"{y:.4f}")
            for x, y, row, text in zip(xs, ys, pruned, texts) if text and labelled(y)]


def _draw(ax, done: Sequence[dict], y_key: str, grouped: bool, pruned: Sequence[dict] = (),
          bars=lambda y: True, labelled=lambda y: True) -> list:
    """The series, baselines, pruned points, front and chance line of :func:`pareto_figure` on one axes; returns the
    point labels (placed later, :func:`~rpn_exp.sweep.labels.place_labels`) of the points at an accuracy y
    ``labelled(y)``; error bars are drawn for those ``bars(y)``."""
    columns = series_columns(done)
    names = sorted({series_name(r, columns) for r in done}, key=lambda f: (f not in BASELINE_COLOURS, f))
    by_colour = columns[0] != "reconciliation"  # other functions vary: colours in order, not the families' own
    markers = _markers([r for r in done if not is_baseline(r)], columns)
    labels, named = [], []  # named: (label, its series)
    place = dict(zip(map(id, done), dodged(done, lambda r: series_name(r, columns))))
    for i, name in enumerate(names):
        series = sorted((r for r in done if series_name(r, columns) == name), key=lambda r: int(r["learnable_params"]))
        xs, ys = [place[id(r)] for r in series], [float(r[y_key]) for r in series]
        if is_baseline(series[0]):  # dense baselines: a dashed curve across their widths
            colour = family_colour(name)
            ax.plot(xs, ys, linestyle="--", marker="s", markersize=5, linewidth=1.5, color=colour, zorder=3,
                    label=f"{name} (dense baseline)")
        else:
            colour = _ordered_colour(i) if by_colour else family_colour(family(series[0]).split(" (")[0])
            ax.scatter(xs, ys, label=name, s=40, alpha=0.9, zorder=3, color=colour, marker=markers(series[0]))
        if grouped:  # each configuration's 95% interval of the mean over its seeds, clipped to [0, 1]
            _error_bars(ax, [(x, y, r) for x, y, r in zip(xs, ys, series) if bars(y)], colour)
        _frozen(ax, series, y_key, colour)
        varying = label_columns(series, exclude=columns)
        for x, y, row in zip(xs, ys, series):
            text = baseline_label(row) if is_baseline(row) else point_label(row, varying)
            if text and labelled(y):
                named.append((ax.annotate(text, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=7,
                                          color="#333333", gid=f"{name}: {text}, {int(row['learnable_params']):,} "
                                          f"learnable parameters, test accuracy {y:.4f}"), name))
    texts = {}
    for label, name in named:
        texts.setdefault(label.get_text(), set()).add(name)
    for label, name in named:  # the same text in two series: the series named in it, not by its colour alone
        if len(texts[label.get_text()]) > 1:
            label.set_text(f"{name} {label.get_text()}")
        labels.append(label)
    rpn = [r for r in [*done, *pruned] if not is_baseline(r)]  # what tells RPN points apart, less their epochs
    labels += _draw_pruned(ax, pruned, PRUNED_Y[grouped], label_columns(rpn, exclude=[*columns, "epochs"]), labelled)
    front = [(place[id(r)], float(r[y_key])) for r in done if r["pareto"]]
    if front:
        xs, ys = zip(*front)
        ax.scatter(xs, ys, s=130, facecolors="none", edgecolors="black", linewidths=1.2, zorder=4,
                   label="Pareto front (chosen on validation accuracy)")
    levels = {round(chance(r), 6) for r in done if not math.isnan(chance(r))}
    for level in sorted(levels):
        ax.axhline(level, color="grey", linewidth=1, linestyle=":", zorder=1,
                   label=f"chance ({level:.3g})" if len(levels) == 1 else None)
    ax.set_xscale("log")
    counts = [int(r["learnable_params"]) + frozen_count(r) for r in [*done, *pruned]]
    if len(set(counts)) == 1:  # one count: an axis from half to twice it, not the decade autoscaling picks
        ax.set_xlim(counts[0] / 2, counts[0] * 2)
    _parameter_ticks(ax, counts)
    ax.set_xlabel("learnable parameters (log scale)")
    ax.set_ylabel("test accuracy" + (" (mean over seeds, 95% interval)" if grouped else ""))
    ax.grid(True, which="both", alpha=0.3)
    return labels


def _error_bars(ax, points: Sequence[tuple[int, float, dict]], colour) -> None:
    """Each configuration's 95% interval of its mean over seeds (x, mean, row), clipped to [0, 1]."""
    if not points:
        return
    xs, ys, rows = zip(*points)
    halves = [0.0 if math.isnan(r["test_acc_ci95"]) else r["test_acc_ci95"] for r in rows]
    bounds = [accuracy_interval(y, h) for y, h in zip(ys, halves)]
    ax.errorbar(xs, ys, yerr=[[y - lo for y, (lo, _) in zip(ys, bounds)], [hi - y for y, (_, hi) in zip(ys, bounds)]],
                fmt="none", ecolor=colour, elinewidth=1.2, capsize=3, zorder=3)


def frozen_count(row: dict) -> int:
    """A row's frozen (fixed, not learned) parameters: 0 when it has none or does not say."""
    value = row.get("frozen_params", "")
    return int(value) if value not in ("", None) and not (isinstance(value, float) and math.isnan(value)) else 0


#: The legend entry of the dotted lines that show frozen parameters.
FROZEN_LABEL = "frozen parameters (dotted: to learnable + frozen)"


def _frozen(ax, series: Sequence[dict], y_key: str, colour) -> None:
    """A dotted line from each point with frozen parameters (``random_matrix_adaption``'s fixed matrices) to its
    learnable + frozen count, ending in a bar: the parameters it holds but does not learn, on the same axis."""
    for row in series:
        frozen = frozen_count(row)
        if frozen:
            x, y = int(row["learnable_params"]), float(row[y_key])
            first = FROZEN_LABEL not in [line.get_label() for line in ax.get_lines()]
            ax.plot([x, x + frozen], [y, y], linestyle=":", linewidth=1.2, color=colour, marker="|", markevery=[1],
                    markersize=8, zorder=2, label=FROZEN_LABEL if first else None)


def _parameter_counts(ax, rows: Sequence[dict]) -> None:
    """Each job at its learnable parameter count (log axis), one line per job in order of the count, coloured by
    family, named by its job: what a dry-run sweep tells before anything trains."""
    ordered = sorted(rows, key=lambda r: (int(r["learnable_params"]), r["job"]))
    counts, places = [int(r["learnable_params"]) for r in ordered], list(range(len(ordered)))
    colours = [family_colour(family(r).split(" (")[0]) for r in ordered]
    ax.hlines(places, [min(counts) / 1.5] * len(ordered), counts, colors=colours, linewidth=1, alpha=0.5)
    ax.scatter(counts, places, color=colours, s=30, zorder=3)
    for count, place in zip(counts, places):
        ax.annotate(f"{count:,}", (count, place), xytext=(6, 0), textcoords="offset points", va="center", fontsize=7,
                    color="#333333")
    ax.set_xlim(min(counts) / 2, max(counts) * 3)  # room for the last count's text
    ax.set_ylabel("")
    ax.set_yticks(places, [r["job"] for r in ordered], fontsize=7 if len(ordered) <= 40 else 5)
    ax.set_ylim(-0.7, len(ordered) - 0.3)
    ax.set_xscale("log")
    _parameter_ticks(ax, counts)
    ax.set_xlabel("learnable parameters (log scale)")
    ax.grid(True, axis="x", which="both", alpha=0.3)


def _ordered_colour(i: int):
    from matplotlib import colormaps

    return colormaps["tab10"](i % 10)


def _markers(rows: Sequence[dict], columns: Sequence[str]):
    """A row's marker: by its values of the varying components after the first (the colour's) when more than one
    varies, so that two series of one colour never share a marker; a diamond for a layout variant."""
    if len(columns) > 1:
        def key(row: dict) -> tuple[str, ...]:
            return tuple(family(row) if c == "reconciliation" else str(row.get(c, "")) for c in columns[1:])

        shapes = dict(zip(sorted({key(r) for r in rows}), "osD^vPX*<>" * 3))
        return lambda row: shapes[key(row)]
    return lambda row: "D" if family(row).endswith(" layout)") else "o"


def _compact(value: float) -> str:
    """A parameter count in few characters: 950, 9.3k, 50k, 1.2M."""
    for scale, unit in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.0f}"


def _parameter_ticks(ax, counts: Sequence[int]) -> None:
    """Parameter counts in few characters (``9.33k``) at 1, 2 and 5 per decade over a short range, 1 over a long
    one, so that tick labels never run into each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if not counts:
        return
    decades = math.log10(max(counts) / max(1, min(counts)))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _compact(value)))
    ax.xaxis.set_minor_formatter(NullFormatter())
