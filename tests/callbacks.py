"""Lightning callbacks used by the tests through the real config (``+callbacks.x._target_=...``)."""

import lightning as L


class InterruptAt(L.Callback):
    """Raise KeyboardInterrupt after ``step`` training batches, as Ctrl-C would."""

    def __init__(self, step: int = 3):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            raise KeyboardInterrupt


class SignalFromEnv(L.Callback):
    """Send a signal to this process after a training step, as a cluster or the OOM killer would.

    ``RPN_TEST_SIGNAL=<job prefix>:<step>:<signal>`` (e.g. ``001:13:SIGKILL``): in runs whose output folder name
    starts with the prefix (empty: every run), after global step ``step``. Without the variable it does nothing,
    so a killed sweep and its resume can use the same command.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        import os
        import signal
        from pathlib import Path

        spec = os.environ.get("RPN_TEST_SIGNAL")
        if not spec:
            return
        prefix, step, name = spec.split(":")
        if Path(trainer.default_root_dir).name.startswith(prefix) and trainer.global_step == int(step):
            os.kill(os.getpid(), getattr(signal, name))
