"""Lightning callbacks used by the tests through the real config (``+callbacks.x._target_=...``)."""

import lightning as L


class InterruptAt(L.Callback):
    """Raise KeyboardInterrupt after ``step`` training batches, as Ctrl-C would."""

    def __init__(self, step: int = 3):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            raise KeyboardInterrupt
