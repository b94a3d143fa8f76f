"""Images for people: fabricated weight matrices as colour heatmaps."""

from __future__ import annotations

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
