"""Images for people: fabricated weight matrices as colour heatmaps, sweeps as accuracy-per-parameter plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def weight_image(W: torch.Tensor, max_width: int = 1024, max_height: int = 512) -> np.ndarray:
    """An (H, W, 3) float image of a weight matrix on a diverging colour map (blue < 0 < red).

    Matrices wider or taller than the limits are average-pooled down to them.
    """
    from matplotlib import colormaps

    W = W.detach().float().cpu()
    height, width = min(W.shape[0], max_height), min(W.shape[1], max_width)
    if (height, width) != tuple(W.shape):
        W = F.adaptive_avg_pool2d(W[None, None], (height, width))[0, 0]
    scale = W.abs().max().clamp_min(1e-12)
    return colormaps["RdBu_r"](((W / scale + 1) / 2).numpy())[..., :3].astype(np.float32)


def pareto_plot(rows: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Test accuracy against learnable parameters (log axis), one series per reconciliation, front drawn.

    ``rows`` are summary rows (``rpn_exp.summary``); completed rows with a test accuracy are plotted, and those
    with ``pareto`` set are joined by the front's step line. Writes a PNG to ``path`` and returns it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] == "completed" and r["test_acc"] != "" and r["learnable_params"] != ""]
    done = [r for r in done if not math.isnan(float(r["test_acc"]))]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for family in sorted({r["reconciliation"] for r in done}):
        series = [r for r in done if r["reconciliation"] == family]
        ax.scatter([int(r["learnable_params"]) for r in series], [float(r["test_acc"]) for r in series],
                   label=family, s=36, alpha=0.85, zorder=3)
    front = sorted((int(r["learnable_params"]), float(r["test_acc"])) for r in done if r["pareto"])
    if front:
        xs, ys = zip(*front)
        ax.step(xs, ys, where="post", color="black", linewidth=1, linestyle="--", label="Pareto front", zorder=2)
        ax.scatter(xs, ys, s=110, facecolors="none", edgecolors="black", linewidths=1.2, zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel("learnable parameters (log scale)")
    ax.set_ylabel("test accuracy")
    ax.grid(True, which="both", alpha=0.3)
    if done:
        ax.legend(fontsize=8, loc="lower right")
    else:
        ax.text(0.5, 0.5, "no completed job yet", ha="center", va="center", transform=ax.transAxes)
    skipped = len(rows) - len(done)
    heading = title or "accuracy per parameter"
    ax.set_title(heading + (f" ({skipped} job(s) without a test accuracy not shown)" if skipped else ""), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
