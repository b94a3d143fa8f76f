"""What a network is, in numbers: parameter counts, per-layer rows (m, n, D, l, path, rank bound, ψ's
hyper-parameters), compression against identity reconciliation, and the layer table printed when a run starts."""

from __future__ import annotations

import math

from torch import nn

#: ψ's structural hyper-parameters as records, tables, dashboards and plot labels show them, per layer: the rank r,
#: the number of Kronecker terms k and the block sizes p and q.
STRUCTURE_HPARAMS = ("r", "k", "p", "q")


def count_learnable(module: nn.Module) -> int:
    """Parameters that receive gradients."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


#: The buffers of a normalization layer: estimates of the data seen in training, not parameters of the function.
RUNNING_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def count_frozen(module: nn.Module) -> int:
    """Buffers plus parameters that do not receive gradients (random matrices, masks, frozen hypernets); batch norm's
    running statistics (:data:`RUNNING_STATISTICS`) are not counted."""
    return sum(b.numel() for name, b in module.named_buffers() if name.rsplit(".", 1)[-1] not in RUNNING_STATISTICS) \
        + sum(p.numel() for p in module.parameters() if not p.requires_grad)


def model_record(net: nn.Module) -> dict:
    """Parameter counts, per-layer shapes and compression against identity reconciliation."""
    learnable = count_learnable(net)
    identity = sum(layer.identity_learnable() for layer in net.layers)
    grid = [layer.n for layer in net.layers if hasattr(layer, "grid_out")]  # a grid model's output channels
    return {
        "widths": list(net.widths),
        **({"grid_channels": grid} if grid else {}),
        "learnable_params": learnable,
        "frozen_params": count_frozen(net),
        "identity_params": identity,
        "compression_vs_identity": identity / learnable if learnable else math.inf,
        "layers": net.describe(),
    }


def output_rank_limit(layers: list[dict]) -> tuple[int, int] | None:
    """(rank bound, classes) when the output layer's rank bound is below classes − 1, the dimension of the logit
    differences softmax reads; None otherwise. Its logits then lie in a smaller subspace (at rank 1 they are
    multiples of one vector, and at most two classes can ever be predicted).
    ``layers`` are the rows of ``RPNNetwork.describe()``."""
    if not layers or "rank_bound" not in layers[-1]:
        return None
    bound, classes = int(layers[-1]["rank_bound"]), int(layers[-1]["n"])
    return (bound, classes) if bound < classes - 1 else None


def per_layer(layers: list[dict], key: str) -> str | int:
    """A hyper-parameter as resolved in each layer: one value if all layers agree, else ``a/b/c`` ("" if none)."""
    values = [row[key] for row in layers if key in row]
    if not values:
        return ""
    return values[0] if len(set(values)) == 1 else "/".join(map(str, values))


def format_layer_table(layers: list[dict]) -> str:
    """A fixed-width text table of the per-layer description rows: l per parameter vector, H heads × C channels of
    them (their product times l is the layer's ψ parameters), ψ's family and resolved hyper-parameters."""
    columns = ["layer", "m", "n", "D", "l", "heads", "channels", "learnable", "frozen", "path", "rank_bound",
               "reconciliation", "hparams"]
    known = set(columns)
    rows = []
    for row in layers:
        hp = " ".join(f"{k}={v}" for k, v in row.items() if k not in known)
        rows.append([str(row.get(c, "")) if c != "hparams" else hp for c in columns])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    line = lambda cells: "  ".join(c.rjust(w) if c.isdigit() else c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in rows)])
