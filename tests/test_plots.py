"""Pictures for people: weight heatmaps and the sweep's accuracy-per-parameter plot."""

import matplotlib.figure
import torch

from rpn_exp.functions import reconciliation
from rpn_exp.plots import family_colour, pareto_plot, point_label, weight_figure

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_family_keeps_its_colour_and_the_main_families_differ():
    main = ["identity", "lorr", "hm", "lphm", "dual_lphm", "duplicated_padding", "duplicated_diagonal_padding",
            "masking", "random_matrix_adaption", "hypernet"]
    assert [getattr(reconciliation, c).name for c in reconciliation.__all__[1:11]] == main
    colours = [family_colour(name) for name in main]
    assert len(set(colours)) == len(main)
    assert family_colour("lphm") == family_colour("lphm") and family_colour("mlp") == family_colour("mlp")


def test_points_are_labelled_with_what_varies():
    assert point_label({"r": 8, "p": "8/2", "seed": ""}, ["r", "seed"]) == "r=8"


def test_the_weight_heatmap_is_centred_on_zero_with_a_colour_bar():
    figure = weight_figure(torch.tensor([[1.0, -3.0], [0.5, 0.0]]), "layer 0 W", (128, 4160))
    assert isinstance(figure, matplotlib.figure.Figure)
    image, colour_bar = figure.axes[0].images[0], figure.axes[1]
    assert image.get_clim() == (-3.0, 3.0) and image.get_cmap().name == "RdBu_r"
    assert colour_bar is not None
    assert "rows 0-1, columns 0-1 of 128 x 4160" in figure.axes[0].get_title()


def test_the_pareto_plot_is_a_png_with_a_chance_line(tmp_path):
    rows = [{"status": "completed", "learnable_params": 983, "test_acc": 0.8, "reconciliation": "lphm",
             "pareto": True, "r": 1, "widths": "64-128-10"},
            {"status": "completed", "learnable_params": 1198, "test_acc": 0.85, "reconciliation": "dual_lphm",
             "pareto": True, "r": 2, "widths": "64-128-10"}]
    path = pareto_plot(rows, tmp_path / "pareto.png", title="t")
    assert path.read_bytes().startswith(PNG)
