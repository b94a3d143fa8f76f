"""The LightningModule: trains any ``nn.Module`` classifier with cross entropy."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F

#: Metrics that summarize a run: logged with ``self.log`` and shown in TensorBoard's HPARAMS tab.
HP_METRICS = ("hp/test_acc", "hp/val_acc_best")


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


class RPNClassifier(L.LightningModule):
    """Cross-entropy classification of (batch, num_features) tensors.

    Args:
        net: maps (batch, num_features) to class logits (see ``rpn_exp.build_model``).
        optimizer: a partial optimizer (``_partial_: true``) called with the parameters.
        scheduler: a partial LR scheduler called with the optimizer, stepped once per epoch; or None.

    Logs ``{train,val,test}/loss`` and ``/acc``, ``val/acc_best`` and the ``hp/`` metrics.
    """

    def __init__(self, net: torch.nn.Module, optimizer: Callable, scheduler: Callable | None = None):
        super().__init__()
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.val_acc_best = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(dim=1) == y).float().mean()
        on_step = stage == "train"
        # sync_dist: under DDP the epoch metrics are averaged over all ranks (a no-op in one process)
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        if not torch.isfinite(loss):
            raise DivergenceError(
                f"training loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}; "
                "lower optimizer.lr or check the data normalization"
            )
        return loss

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def on_validation_epoch_end(self):
        acc = self.trainer.callback_metrics.get("val/acc")
        if acc is not None and not self.trainer.sanity_checking:
            self.val_acc_best = max(self.val_acc_best, float(acc))
        self.log("val/acc_best", self.val_acc_best, prog_bar=False, sync_dist=True)
        self.log("hp/val_acc_best", self.val_acc_best, sync_dist=True)

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_test_epoch_end(self):
        acc = self.trainer.callback_metrics.get("test/acc")
        if acc is not None:
            self.log("hp/test_acc", float(acc), sync_dist=True)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["val_acc_best"] = self.val_acc_best

    def on_load_checkpoint(self, checkpoint):
        self.val_acc_best = checkpoint.get("val_acc_best", 0.0)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
