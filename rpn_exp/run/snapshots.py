"""Heatmaps of every layer's fabricated W in TensorBoard: the Lightning callback of a solo run, and the function
the stacked task calls for each member (module-level classes, so ``ddp_spawn`` can pickle them)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch


class WeightSnapshots(L.Callback):
    """TensorBoard heatmaps of every layer's fabricated W at the start, the middle and the end of training.

    Each image (tag ``weights/<layer>``, at the global step it was taken) is the leading ``rows`` × ``cols``
    window of head 0, channel 0's W at one cell per weight (``RPNHead.weight_window``), so Kronecker blocks and
    low-rank stripes are visible; the colour map is centred on 0 with a colour bar. Loggers other than
    TensorBoard are left alone.
    """

    def __init__(self, rows: int = 128, cols: int = 512):
        self.rows, self.cols = rows, cols

    def on_train_start(self, trainer, pl_module):
        self._snapshot(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        middle = trainer.max_epochs // 2
        if trainer.max_epochs > 2 and trainer.current_epoch == middle - 1:  # half of the epochs are done
            self._snapshot(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        self._snapshot(trainer, pl_module)

    def _snapshot(self, trainer, pl_module):
        from lightning.pytorch.loggers import TensorBoardLogger

        writers = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not writers or trainer.sanity_checking or not trainer.is_global_zero:
            return
        write_weight_snapshots(writers, pl_module.net, trainer.global_step, self.rows, self.cols)


def write_weight_snapshots(writers, net, step: int, rows: int, cols: int) -> None:
    """One ``weights/<layer>`` image per layer of ``net`` at ``step`` to each TensorBoard ``SummaryWriter``; a grid
    layer whose κ is the identity (D = m: W's rows are convolution filters) adds ``filters/<layer>``
    (:func:`filter_figure`)."""
    for layer in net.layers:
        head = layer.heads[0]
        window = head.weight_window(rows, cols)
        filters = hasattr(layer, "patch") and layer.mode == "padding" and head.D == head.m
        for writer in writers:
            figure = weight_figure(window, f"{layer.name} W, step {step}", (head.n, head.D))
            writer.add_figure(f"weights/{layer.name}", figure, step)
            if filters:
                W = head.weight_window(FILTER_OUTPUTS, head.m)
                figure = filter_figure(W, layer.grid_in.channels, layer.patch, f"{layer.name} filters, step {step}")
                writer.add_figure(f"filters/{layer.name}", figure, step)


#: Output channels (rows of the filter mosaic) and input channels (its columns) a filter image shows at most.
FILTER_OUTPUTS, FILTER_INPUTS = 16, 8


def filter_images(W: torch.Tensor, channels: int, patch) -> np.ndarray:
    """A grid layer's W (n, c · |patch|) as filters: (n, c, box_h, box_w), each patch cell at its offset from the
    centre (depth 0 of a 3-D patch), NaN where the box holds no cell of the patch (a cylinder's corners)."""
    W = W.detach().float().cpu().numpy()
    n = W.shape[0]
    (bh, _), (bw, _), _ = patch.extents
    kh, kw, _ = patch.box
    images = np.full((n, channels, kh, kw), np.nan, dtype=np.float32)
    offsets = patch.offsets()
    for index, (i, j, k) in enumerate(offsets):
        if k == 0:
            images[:, :, i + bh, j + bw] = W.reshape(n, channels, len(offsets))[:, :, index]
    return images


def filter_figure(W: torch.Tensor, channels: int, patch, title: str):
    """A mosaic of a grid layer's filters: one row per output channel, one column per input channel (at most
    :data:`FILTER_OUTPUTS` × :data:`FILTER_INPUTS`), on one colour scale centred on 0 with a colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = filter_images(W, channels, patch)[:FILTER_OUTPUTS, :FILTER_INPUTS]
    rows, cols = images.shape[:2]
    limit = float(np.nanmax(np.abs(images))) or 1.0
    fig, axes = plt.subplots(rows, cols, figsize=(max(3.6, 1.4 + 0.9 * cols), 1.0 + 0.9 * rows), dpi=100,
                             squeeze=False)
    for (o, c), ax in np.ndenumerate(axes):
        image = ax.imshow(images[o, c], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        if c == 0:
            ax.set_ylabel(f"out {o}", fontsize=7)
        if o == 0:
            ax.set_title(f"in {c}", fontsize=7)
    fig.colorbar(image, ax=axes, fraction=0.04, pad=0.02)
    fig.suptitle(f"{title}\n{patch.describe()}, {W.shape[0]} out x {channels} in", fontsize=8)
    return fig


def weight_figure(W: torch.Tensor, title: str, full_shape: tuple[int, int] | None = None):
    """A heatmap of a weight matrix: diverging colour map centred on 0 (blue < 0 < red) with a colour bar.

    ``W`` is drawn one cell per weight; ``full_shape`` (n, D) says, in the title, which part of a larger W it is.
    Returns a matplotlib Figure (the caller closes it, e.g. ``SummaryWriter.add_figure`` does).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    W = W.detach().float().cpu().numpy()
    limit = float(np.abs(W).max()) or 1.0
    rows, cols = W.shape
    fig, ax = plt.subplots(figsize=(9, 1.6 + 4.4 * min(1.0, rows / 128)), dpi=100)
    image = ax.imshow(W, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    shown = ""
    if full_shape is not None and tuple(full_shape) != (rows, cols):
        shown = f": rows 0-{rows - 1}, columns 0-{cols - 1} of {full_shape[0]} x {full_shape[1]}"
    ax.set_title(f"{title} ({rows} x {cols}{shown})", fontsize=9)
    ax.set_xlabel("column (feature of kappa)")
    ax.set_ylabel("row (output)")
    fig.tight_layout()
    return fig
