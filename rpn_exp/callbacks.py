"""Lightning callbacks of the train task (module-level classes, so ``ddp_spawn`` can pickle them)."""

from __future__ import annotations

from pathlib import Path

import lightning as L


class SaveOnInterrupt(L.Callback):
    """Writes ``<dirpath>/last.ckpt`` when training is interrupted (Ctrl-C), so it can be resumed."""

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)

    def on_exception(self, trainer, pl_module, exception):
        if isinstance(exception, KeyboardInterrupt):
            self.dirpath.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(str(self.dirpath / "last.ckpt"))
