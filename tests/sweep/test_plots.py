"""Pictures for people: weight heatmaps and the sweep's accuracy-per-parameter plot."""

import matplotlib.figure
import torch

from rpn_exp.functions import reconciliation
from rpn_exp.run.snapshots import weight_figure
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
    path = pareto_plot(rows, tmp_path / "pareto.png", title="t")
    assert path.read_bytes().startswith(PNG)


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
