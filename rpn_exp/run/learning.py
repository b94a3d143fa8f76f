"""Whether a run learned anything: a completed run whose training loss ends no lower than that of a model that knows
only the class frequencies learned nothing from its inputs, and one far above it blew up. Either is flagged in its
record (``flag``), its summary line and the sweep summary, instead of passing as a plain ``completed`` at chance."""

from __future__ import annotations

import math

import torch

#: A final training loss this many times the frequency loss is flagged as exploded.
EXPLODED = 100.0


def frequency_loss(labels: torch.Tensor, classes: int) -> float:
    """The cross-entropy of always predicting the class frequencies p_c of ``labels`` (N,): H = −Σ_c p_c log p_c,
    in nats (log C for balanced classes: 2.3026 for ten)."""
    counts = torch.bincount(labels.long().flatten(), minlength=classes).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def learning_flag(final_loss: float | None, chance: float | None) -> str | None:
    """What the run's last training loss says against ``chance`` (:func:`frequency_loss`): ``exploded: ...``,
    ``learned nothing: ...`` or None (it learned, or there is nothing to compare)."""
    if final_loss is None or chance is None or not math.isfinite(final_loss):
        return None
    if final_loss > EXPLODED * max(chance, 1e-12):
        return (f"exploded: final training loss {final_loss:.4g} is {final_loss / chance:.3g} times {chance:.4f}, the "
                f"loss of predicting the class frequencies (lower the learning rate)")
    if final_loss >= chance:
        return (f"learned nothing: final training loss {final_loss:.4f} is not below {chance:.4f}, the loss of "
                f"predicting the class frequencies")
    return None
