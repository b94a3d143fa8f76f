"""Pictures for people: weight heatmaps and the sweep's accuracy-per-parameter plot."""

import math
from pathlib import Path

import matplotlib.figure
import pytest
import torch

from rpn_exp.functions import reconciliation
from rpn_exp.run.snapshots import weight_figure
from rpn_exp.sweep.labels import marks
from rpn_exp.sweep.plots import family_colour, pareto_plot, point_label

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_family_keeps_its_colour_and_the_main_families_differ():
    main = ["identity", "lorr", "hm", "lphm", "dual_lphm", "duplicated_padding", "duplicated_diagonal_padding",
            "masking", "random_matrix_adaption", "hypernet"]
    assert [family.name for family in reconciliation.FAMILIES[:10]] == main
    colours = [family_colour(name) for name in main]
    assert len(set(colours)) == len(main)
    from matplotlib import colormaps

    assert family_colour("lphm") == colormaps["tab20"](6)  # the 4th family: tab20's 7th colour, in every plot
    assert family_colour("mlp") == "#3a3a3a" and family_colour("my_family") == family_colour("my_family")


def test_points_are_labelled_with_what_varies():
    assert point_label({"r": 8, "p": "8/2", "seed": ""}, ["r", "seed"]) == "r=8"


def test_the_weight_heatmap_is_centred_on_zero_with_a_colour_bar():
    figure = weight_figure(torch.tensor([[1.0, -3.0], [0.5, 0.0]]), "layer 0 W", (128, 4160))
    assert isinstance(figure, matplotlib.figure.Figure)
    image, colour_bar = figure.axes[0].images[0], figure.axes[1]
    assert image.get_clim() == (-3.0, 3.0) and image.get_cmap().name == "RdBu_r"
    assert colour_bar.get_ylim() == (-3.0, 3.0)  # the colour bar spans the same symmetric range
    assert "rows 0-1, columns 0-1 of 128 x 4160" in figure.axes[0].get_title()


def test_the_pareto_plot_is_a_png_with_a_chance_line(tmp_path):
    rows = [{"status": "completed", "learnable_params": 983, "test_acc": 0.8, "reconciliation": "lphm",
             "pareto": True, "r": 1, "widths": "64-128-10"},
            {"status": "completed", "learnable_params": 1198, "test_acc": 0.85, "reconciliation": "dual_lphm",
             "pareto": True, "r": 2, "widths": "64-128-10"}]
    path, key = pareto_plot(rows, tmp_path / "pareto.png", title="t")
    assert path.read_bytes().startswith(PNG) and key == []  # two points: both labelled in place


def test_baselines_are_dashed_curves_with_their_own_legend_entries(tmp_path):
    from rpn_exp.sweep.plots import pareto_figure

    rpn = {"status": "completed", "model": "rpn", "reconciliation": "dual_lphm", "pareto": True, "widths": "784-64-10"}
    mlp = {**rpn, "model": "mlp", "reconciliation": "identity", "pareto": False}
    rows = [{**rpn, "learnable_params": 9330, "test_acc": 0.86},
            {**mlp, "learnable_params": 25450, "test_acc": 0.87, "widths": "784-32-10"},
            {**mlp, "learnable_params": 3190, "test_acc": 0.80, "widths": "784-4-10"},
            {**mlp, "model": "linear", "learnable_params": 7850, "test_acc": 0.84, "widths": "784-10"}]
    figure = pareto_figure(rows, "t")
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    curve = lines["mlp (dense baseline)"]
    assert curve.get_linestyle() == "--" and list(curve.get_xdata()) == [3190, 25450]  # sorted by size
    assert lines["linear (dense baseline)"].get_linestyle() == "--"
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert {"dual_lphm", "mlp (dense baseline)", "linear (dense baseline)"} <= set(legend)
    assert family_colour("mlp") != family_colour("dual_lphm")


# ---------------------------------------------------------------- what a reader sees: no text on top of another

EXAMPLES = Path(__file__).resolve().parents[2] / "outputs" / "examples"


def row(family="dual_lphm", params=1000, acc=0.9, pareto=False, **extra):
    return {"status": "completed", "model": "rpn", "reconciliation": family, "expansion": "taylor", "layout": "",
            "interdependence": "none", "remainder": "zero", "widths": "64-128-10", "learnable_params": params,
            "test_acc": acc, "pareto": pareto, "r": "", "seed": "", **extra}


def family_by_rank():
    """lorr, lphm and dual_lphm at r = 1, 2, 4, 8: crowded points of close accuracy."""
    return [row(f, int(p * r ** 0.9), 0.9 + 0.01 * math.log2(r) + 0.002 * i, pareto=f == "lphm", r=r)
            for i, (f, p) in enumerate((("lorr", 21000), ("lphm", 1000), ("dual_lphm", 450))) for r in (1, 2, 4, 8)]


def expansion_sweep():
    return [row("dual_lphm", 2085 + 300 * i, 0.4 + 0.02 * i, expansion=e, r=5)
            for i, e in enumerate(("taylor", "chebyshev", "fourier", "bspline", "gaussian_rbf"))]


def pooled_with_baselines():
    """Configurations pooled over seeds (one interval reaching past 1) and dense baselines, over 50k-200k."""
    groups = [row("lorr", 50_000 * k, 0.95 + 0.01 * k, r=k, n=3, test_acc_mean=0.95 + 0.01 * k, test_acc_ci95=0.3,
                  pareto=k == 4) for k in (1, 2, 4)]
    groups += [row("identity", 60_000 * k, 0.96, model="mlp", widths=f"784-{64 * k}-10", n=3, test_acc_mean=0.96,
                   test_acc_ci95=0.01) for k in (1, 2)]
    return groups


def assert_readable(figure):
    """No two point labels, tick labels or the legend overlap; every point label lies inside its axes, clear of the
    marks (markers, rings, crosses, error bars) of every point but its own."""
    renderer = figure.canvas.get_renderer()
    legend = [ax.get_legend() for ax in figure.axes if ax.get_legend()]
    for ax in figure.axes:
        frame = ax.get_window_extent(renderer)
        drawn = marks(ax)
        for text in ax.texts:
            if text.get_visible() and text.get_text() and hasattr(text, "xy"):
                box = text.get_window_extent(renderer)
                assert not [m for m in drawn if not m.of(text.xy) and box.overlaps(m.box)], text.get_text()
        labels = [t.get_window_extent(renderer) for t in ax.texts if t.get_visible() and t.get_text()]
        ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        others = ticks + [t.get_window_extent(renderer) for t in ax.get_yticklabels() if t.get_text()] + [
            lg.get_window_extent(renderer) for lg in legend]
        for i, box in enumerate(labels):
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            assert not any(box.overlaps(other) for other in labels[i + 1:] + others)
        for i, box in enumerate(ticks):
            assert not any(box.overlaps(other) for other in ticks[i + 1:])


@pytest.mark.parametrize("rows", [family_by_rank(), expansion_sweep(), pooled_with_baselines()],
                         ids=["family x r", "expansion sweep", "pooled with baselines"])
def test_no_text_of_a_sweep_plot_overlaps_another(rows):
    from rpn_exp.sweep.plots import pareto_figure

    assert_readable(pareto_figure(rows, "t"))


@pytest.mark.parametrize("summary", ["rank_digits/summary.csv", "fashion_mnist/summary_by_config.csv",
                                     "fashion_mnist/epochs3/summary_by_config.csv", "fashion_grid/summary_by_config.csv",
                                     "fashion_grid/with_first_study/summary_by_config.csv",
                                     "fashion_pruning/pooled/summary_by_config.csv"])
def test_the_example_plots_are_readable(summary):
    from rpn_exp.sweep.plots import pareto_figure
    from rpn_exp.sweep.summary import read_rows

    assert_readable(pareto_figure(read_rows(EXAMPLES / summary), "t"))


def test_colour_follows_what_the_sweep_varies():
    from rpn_exp.sweep.plots import pareto_figure

    figure = pareto_figure(expansion_sweep(), "t")
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert {"taylor", "chebyshev", "fourier", "bspline", "gaussian_rbf"} <= set(legend)
    colours = {tuple(c.get_facecolor()[0]) for c in figure.axes[0].collections if c.get_label() in legend[:5]}
    assert len(colours) == 5
    assert not [t.get_text() for t in figure.axes[0].texts if t.get_text() == "r=5"]  # a constant is not a label


def test_the_front_is_marked_points_and_intervals_stay_within_accuracy():
    from rpn_exp.sweep.plots import pareto_figure

    figure = pareto_figure(pooled_with_baselines(), "t")
    ax = figure.axes[0]
    assert not [line for line in ax.get_lines() if "Pareto" in line.get_label()]  # no staircase
    assert any("chosen on validation" in c.get_label() for c in ax.collections)
    tops = [segment[:, 1].max() for c in ax.collections if hasattr(c, "get_segments") for segment in c.get_segments()]
    assert tops and max(tops) <= 1.0


def test_a_dry_run_sweep_plots_the_parameter_count_of_each_job():
    """No job has a test accuracy: each one is drawn at its parameter count, named, its count written beside it."""
    from rpn_exp.sweep.plots import pareto_figure

    rows = [row(f, params, "", status="dry_run", job=f"{i:03d}_{f}") for i, (f, params) in
            enumerate((("lorr", 20_810), ("lphm", 983), ("dual_lphm", 417)))]
    rows.append(row("hm", "", "", status="failed", job="003_hm"))  # refused before its model was built: not drawn
    figure = pareto_figure(rows, "dry")
    (ax,) = figure.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["002_dual_lphm", "001_lphm", "000_lorr"]
    assert [t.get_text() for t in ax.texts] == ["417", "983", "20,810"]
    assert "no completed job yet" not in [t.get_text() for t in ax.texts] and ax.get_xscale() == "log"
    assert_readable(figure)


@pytest.mark.parametrize("grouped", [False, True], ids=["jobs", "configurations"])
def test_pruned_points_are_crosses_at_their_validation_accuracy_off_the_front(grouped):
    from rpn_exp.sweep.plots import pareto_figure

    rows = family_by_rank()
    key = "val_acc_best_mean" if grouped else "val_acc_best"
    rows += [row("lorr", 50_000, "", status="pruned", r=16, **{key: 0.42}),
             row("lphm", 3_000, "", status="pruned", r=16, **{key: 0.5})]
    if grouped:
        rows = [{**r, "test_acc_mean": r["test_acc"] or math.nan, "test_acc_ci95": math.nan} for r in rows]
    figure = pareto_figure(rows, "t")
    ax = figure.axes[0]
    (crosses,) = [c for c in ax.collections if c.get_label().startswith("pruned at a rung")]
    assert sorted(map(tuple, crosses.get_offsets().tolist())) == [(3000.0, 0.5), (50000.0, 0.42)]
    assert "pruned at a rung (its best validation accuracy by then; not tested)" in [
        t.get_text() for t in ax.get_legend().get_texts()]
    assert {t.get_text() for t in ax.texts} >= {"r=16"}  # named as the other points are
    assert "without a test accuracy not shown" not in ax.get_title()
    assert_readable(figure)


def test_a_pruned_point_beside_baselines_is_named_as_the_points_of_its_series():
    from rpn_exp.sweep.plots import pareto_figure

    mlp = {"model": "mlp", "reconciliation": "identity", "expansion": "identity", "epochs": 20}
    rows = [row("lphm", 14_400, 0.87, r=8, epochs=20), row("lphm", 11_592, 0.866, r=5, epochs=20),
            row("lphm", 8_784, "", status="pruned", r=2, epochs=2, val_acc_best=0.78),
            {**row(params=6_370, acc=0.846, widths="784-8-10", pareto=True), **mlp},
            {**row(params=3_190, acc=0.808, widths="784-4-10", pareto=True), **mlp}]
    texts = {t.get_text() for t in pareto_figure(rows, "t").axes[0].texts}
    assert "r=2" in texts and not [t for t in texts if "epochs" in t or "widths" in t or "expansion" in t]


def crowded_front():
    """Twenty configurations of two families within 15% in parameters and 0.02 in accuracy, pooled over seeds with
    intervals, half of them on the front: more labels than free places."""
    return [row(f, 9_000 + 130 * i + 40 * j, 0.85 + 0.001 * i, pareto=i % 2 == 0, r=i, p="8/5", q=16, n=3,
                test_acc_mean=0.85 + 0.001 * i + 0.0004 * j, test_acc_ci95=0.004)
            for j, f in enumerate(("lphm", "dual_lphm")) for i in range(10)]


def test_labels_on_a_crowded_front_stay_clear_of_markers_rings_and_error_bars():
    from rpn_exp.sweep.plots import pareto_figure

    figure = pareto_figure(crowded_front(), "t")
    assert_readable(figure)
    (ax,) = figure.axes
    shown = [t for t in ax.texts if t.get_visible()]
    assert len(shown) == 20  # every point named: by its label, or by a number of the plot key
    numbers = [t.get_text() for t in shown if t.get_text().isdigit()]
    assert numbers and sorted(numbers, key=int) == [n for n, _ in figure.point_key] == [
        str(i + 1) for i in range(len(numbers))]
    assert all("learnable parameters" in what for _, what in figure.point_key)


def test_a_label_two_series_share_names_its_series():
    from rpn_exp.sweep.plots import pareto_figure

    rows = [row(f, 9_000 * (j + 1), 0.85 + 0.01 * j, p="8/5", q=q) for j, f in enumerate(("lphm", "dual_lphm"))
            for q in (16, 32)]
    texts = {t.get_text() for t in pareto_figure(rows, "t").axes[0].texts}
    assert {"lphm q=16", "dual_lphm q=16", "lphm q=32", "dual_lphm q=32"} == texts  # not "q=16" twice


def test_a_zoom_panel_draws_no_error_bar_or_label_of_a_point_outside_it():
    from rpn_exp.sweep.plots import pareto_figure

    rows = [row("lorr", 1_000 * (i + 1), acc, r=i + 1, n=3, test_acc_mean=acc, test_acc_ci95=0.3)
            for i, acc in enumerate((0.2, 0.3, 0.90, 0.91, 0.92))]
    main, zoom = pareto_figure(rows, "t").axes
    low, high = zoom.get_ylim()
    bars = [segment for c in zoom.collections if hasattr(c, "get_segments") for segment in c.get_segments()]
    assert sorted({float(segment[0][0]) for segment in bars}) == [3000.0, 4000.0, 5000.0]
    assert all(low <= t.xy[1] <= high for t in zoom.texts)
    assert len([s for c in main.collections if hasattr(c, "get_segments") for s in c.get_segments()]) == 5


def test_a_point_just_below_the_zoom_panel_is_taken_into_it_whole():
    from rpn_exp.sweep.plots import pareto_figure, zoom_window

    assert zoom_window([0.2, 0.3, 0.90, 0.91, 0.92]) == pytest.approx((0.89, 0.93))  # the top 0.05, 0.01 either side
    low, high = zoom_window([0.2, 0.3, 0.8645, 0.875, 0.90, 0.91, 0.92])  # 0.8645: below the top 0.05, and half
    assert low == pytest.approx(0.8645 - 0.03 * (0.93 - 0.865)) and high == pytest.approx(0.93)  # its marker in it
    rows = [row("lorr", 1_000 * (i + 1), acc, r=i + 1, n=3, test_acc_mean=acc, test_acc_ci95=0.001)
            for i, acc in enumerate((0.2, 0.3, 0.8645, 0.875, 0.90, 0.91, 0.92))]
    _, zoom = pareto_figure(rows, "t").axes
    assert zoom.get_ylim()[0] < 0.8645 - 0.001 and "r=3" in {t.get_text() for t in zoom.texts}


def test_series_at_one_parameter_count_are_drawn_side_by_side():
    from rpn_exp.sweep.plots import DODGE, pareto_figure

    rows = [row("dual_lphm", 9330, 0.841, pareto=True), row("dual_lphm", 9330, 0.834, layout="reference")]
    (ax,) = pareto_figure(rows, "t").axes
    places = sorted(float(c.get_offsets()[0][0]) for c in ax.collections if c.get_label().startswith("dual_lphm"))
    assert places == pytest.approx([9330 / DODGE ** 0.5, 9330 * DODGE ** 0.5])  # apart, around the count
    assert ax.get_xlim() == pytest.approx((9330 / 2, 9330 * 2))  # one count: an axis around it, not a decade
    assert_readable(ax.figure)


def test_frozen_parameters_are_drawn_to_learnable_plus_frozen():
    from rpn_exp.sweep.plots import FROZEN_LABEL, pareto_figure

    rows = [row("random_matrix_adaption", 144, 0.7, frozen_params=1_200_000, r=2),
            row("lorr", 2_000, 0.8, frozen_params=0, r=2)]
    ax = pareto_figure(rows, "t").axes[0]
    (line,) = [line for line in ax.get_lines() if line.get_label() == FROZEN_LABEL]
    assert list(line.get_xdata()) == [144, 1_200_144] and list(line.get_ydata()) == [0.7, 0.7]
    assert line.get_linestyle() == ":" and ax.get_xlim()[1] >= 1_200_144
    assert FROZEN_LABEL in [t.get_text() for t in ax.get_legend().get_texts()]



def test_grid_models_are_their_own_series_beside_the_cnn_baseline(tmp_path):
    from rpn_exp.sweep.plots import pareto_figure

    rpn = {"status": "completed", "model": "rpn", "reconciliation": "dual_lphm", "pareto": True, "widths": "784-64-10"}
    grid = {**rpn, "model": "grid", "widths": "784-1568-10", "grid": "8"}
    cnn = {**rpn, "model": "cnn", "reconciliation": "identity", "pareto": False}
    rows = [{**rpn, "learnable_params": 9330, "test_acc": 0.86}, {**grid, "learnable_params": 2000, "test_acc": 0.88},
            {**grid, "learnable_params": 4000, "test_acc": 0.89, "grid": "16"},
            {**cnn, "learnable_params": 2066, "test_acc": 0.87, "grid": "2-4", "widths": "784-392-196-10"},
            {**cnn, "learnable_params": 4266, "test_acc": 0.89, "grid": "4-8", "widths": "784-784-392-10"}]
    axes = pareto_figure(rows, "t").axes[0]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert {"rpn", "grid", "cnn (dense baseline)"} <= set(legend)  # what varies among the structured models
    curve = {line.get_label(): line for line in axes.get_lines()}["cnn (dense baseline)"]
    assert curve.get_linestyle() == "--" and list(curve.get_xdata()) == [2066, 4266]
    texts = {t.get_text() for t in axes.texts}
    assert {"c=2-4", "c=4-8", "grid=8", "grid=16"} <= texts
    assert family_colour("cnn") not in (family_colour("mlp"), family_colour("dual_lphm"))


def test_two_series_of_one_colour_never_share_a_marker():
    """Family, model and expansion all vary: the colour is the family's, the marker the (model, expansion) pair's."""
    from rpn_exp.sweep.plots import pareto_figure

    rows = [row("dual_lphm", 400, 0.80, model="grid", expansion="identity"),
            row("dual_lphm", 700, 0.81, model="grid", expansion="taylor"),
            row("dual_lphm", 9000, 0.86, model="rpn", expansion="taylor"),
            row("lorr", 500, 0.81, model="grid", expansion="identity")]
    styles = {c.get_label(): (tuple(c.get_facecolor()[0]), c.get_paths()[0].vertices.round(3).tobytes())
              for c in pareto_figure(rows, "t").axes[0].collections if " · " in str(c.get_label())}
    assert len(styles) == 4 and len(set(styles.values())) == 4
    by_colour = {}
    for colour, marker in styles.values():
        by_colour.setdefault(colour, set()).add(marker)
    assert sorted(len(markers) for markers in by_colour.values()) == [1, 3]  # dual_lphm's three series differ
