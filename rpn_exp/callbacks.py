"""Lightning callbacks of the train task (module-level classes, so ``ddp_spawn`` can pickle them); the checkpoint
callbacks are in ``rpn_exp.checkpointing``."""

from __future__ import annotations

import lightning as L


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
    """One ``weights/<layer>`` image per layer of ``net`` at ``step`` to each TensorBoard ``SummaryWriter``."""
    from .plots import weight_figure

    for layer in net.layers:
        head = layer.heads[0]
        window = head.weight_window(rows, cols)
        for writer in writers:
            figure = weight_figure(window, f"{layer.name} W, step {step}", (head.n, head.D))
            writer.add_figure(f"weights/{layer.name}", figure, step)
