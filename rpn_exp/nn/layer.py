"""An RPN layer R^m → R^n: H heads averaged, plus the remainder π(x), an optional bias and output processing.

    y = mean_h head_h(x) + π(x) (+ b)
"""

from __future__ import annotations

import torch
from torch import nn

from rpn_exp.functions.expansion import Expansion
from rpn_exp.functions.interdependence import Interdependence, NoInterdependence
from rpn_exp.functions.processing import build_processing
from rpn_exp.functions.remainder import Remainder, ZeroRemainder
from rpn_exp.functions.shapes import check_positive_int
from rpn_exp.nn.describe import count_frozen, count_learnable
from rpn_exp.nn.head import RPNHead, _gather, _mean, _register_state


class RPNLayer(nn.Module):
    """An RPN layer R^m → R^n: H heads averaged, plus remainder π(x), optional bias and output processing."""

    def __init__(
        self,
        m: int,
        n: int,
        *,
        remainder: Remainder | None = None,
        heads: int = 1,
        bias: bool = False,
        output_processing=None,
        name: str = "layer",
        index: int = 0,
        remainder_width: int | None = None,
        **head_options,
    ):
        """``head_options`` are :class:`~rpn_exp.nn.head.RPNHead`'s keyword arguments (``expansion`` and
        ``reconciliation`` required; ``interdependence``, ``channels``, ``materialize``, ``chunk_elements``,
        ``init``), shared by the H heads; each head draws its frozen state from its own seed. π reads x itself
        (R^m → R^n), or an input of its own of ``remainder_width`` features passed to :meth:`forward`."""
        super().__init__()
        self.m, self.n, self.name = m, n, name
        self.remainder_width = m if remainder_width is None else remainder_width
        self.remainder = remainder or ZeroRemainder()
        seed = head_options["reconciliation"].seed + 1000 * index  # each layer and head its own frozen matrices
        try:
            check_positive_int(heads, name="heads")
            check_positive_int(head_options.get("channels", 1), name="channels")
            self.heads = nn.ModuleList(RPNHead(m, n, **head_options, state_seed=seed + head, heads=heads)
                                       for head in range(heads))
            self.remainder.check(self.remainder_width, n)
        except ValueError as error:
            D = _safe_D(head_options["expansion"], head_options.get("interdependence"), m)
            raise ValueError(f"{name} (m={m} -> n={n}, D={D}): {error}") from error
        self._pi_keys = _register_state(self, "pi_", self.remainder.create_state(self.remainder_width, n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None
        self.output_processing = build_processing(output_processing, n)

    @property
    def D(self) -> int:
        return self.heads[0].D

    @property
    def l(self) -> int:
        return self.heads[0].l

    @property
    def path(self) -> str:
        return self.heads[0].path

    @property
    def rank_bound(self) -> int:
        """An upper bound on the rank of the layer's map into R^n, from its structure alone:
        min(n, H·C·rank_bound(ψ) + rank_bound(π)), since an average of H·C matrices of rank ≤ k has rank ≤ H·C·k.

        When the output layer's bound is below classes − 1, some classes can never be predicted (the logits lie in
        a subspace that cannot order every class first).
        """
        head = self.heads[0]
        structured = len(self.heads) * head.channels * head.reconciliation.rank_bound(self.n, self.D)
        return min(self.n, structured + self.remainder.rank_bound(self.remainder_width, self.n))

    @property
    def outputs_per_sample(self) -> int:
        """The head-channel outputs one sample makes (what a step holds for the backward pass): n · H · C."""
        return self.n * len(self.heads) * self.heads[0].channels

    @property
    def carries_members(self) -> bool:
        """Whether :meth:`forward` also takes a stacked group's member dimension without ``vmap`` (parameters
        (K, ...), x (K, b, m)): every head does (``RPNHead.carries_members``), π declares ``leading_dims``, and there
        is no output processing (a bias (K, n) is added to each member's rows)."""
        return (all(head.carries_members for head in self.heads) and self.remainder.leading_dims
                and not len(self.output_processing))

    def forward(self, x: torch.Tensor, remainder_input: torch.Tensor | None = None) -> torch.Tensor:
        """(b, m) -> (b, n); π reads ``remainder_input`` (b, remainder_width) when given, else x."""
        return self.finish(_mean([head(x) for head in self.heads]), x if remainder_input is None else remainder_input)

    def finish(self, y: torch.Tensor, remainder_input: torch.Tensor) -> torch.Tensor:
        """The heads' mean y (b, n) plus π(remainder_input), the bias, then output processing."""
        rest = self.remainder(remainder_input, self.n, _gather(self, "pi_", self._pi_keys))
        if rest is not None:
            y = y + rest
        if self.bias is not None:  # (n,), or (K, n) for a stacked group's members (carries_members)
            y = y + (self.bias.unsqueeze(-2) if self.bias.dim() == 2 else self.bias)
        return self.output_processing(y)

    def describe(self) -> dict:
        """m, n, D, l, parameter counts, compute path and the reconciliation's resolved hyper-parameters."""
        head = self.heads[0]
        return {
            "layer": self.name,
            "m": self.m,
            "n": self.n,
            "D": self.D,
            "l": self.l,
            "heads": len(self.heads),
            "channels": head.channels,
            "learnable": count_learnable(self),
            "frozen": count_frozen(self),
            "path": self.path,
            "rank_bound": self.rank_bound,
            "reconciliation": head.reconciliation.name,
            **head.reconciliation.hparams(self.n, self.D),
        }

    def identity_learnable(self) -> int:
        """Learnable parameters this layer would have with identity reconciliation (l = nD per channel)."""
        structured = sum(
            p.numel()
            for head in self.heads
            for name, p in head.named_parameters()
            if p.requires_grad and (name == "w" or name.startswith("psi_"))
        )
        dense = sum(head.channels * self.n * head.D for head in self.heads)
        return count_learnable(self) - structured + dense

    def extra_repr(self) -> str:
        d = self.describe()
        return ", ".join(f"{k}={d[k]}" for k in ("m", "n", "D", "l", "learnable", "frozen", "path"))


def _safe_D(expansion: Expansion, interdependence: Interdependence | None, m: int):
    try:
        return expansion.calculate_D((interdependence or NoInterdependence()).output_dim(m))
    except Exception:  # the width itself may be what is invalid
        return "?"
