"""RPN heads, layers and networks as ``torch.nn.Module``s.

A head computes ``y = ψ(w) κ(ξ(x))`` averaged over its C channels (w has shape (C, l)); a layer averages
H heads and adds the remainder π(x) and an optional bias, then applies its output processing:

    y = mean_h mean_c  ψ(w_{h,c}) κ(ξ_h(x))  + π(x) (+ b)

Every tensor a layer needs (parameter vectors, frozen random matrices, masks, hypernet weights, norms)
is a registered parameter or buffer, so ``state_dict``, ``.to()`` and ``.train()``/``.eval()`` cover it.

Compute paths of a head (``RPNHead.path``):

* ``product`` — κ(x) = u ⊗ v (Taylor layout) and W = A ⊗ B with A's width equal to u's: the head
  computes (A u) ⊗ (B v), and a non-affine layer norm over κ from Σu, Σu², Σv, Σv². Neither κ nor W
  is built.
* ``structured`` — κ is built and ψ applies W in factored form (``ψ.linear``).
* ``materialized`` — κ and W are built and multiplied densely (forced by ``materialize=True``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .functions.expansion import Expansion, TaylorExpansion
from .functions.factors import kron_outer
from .functions.interdependence import Interdependence, NoInterdependence
from .functions.processing import build_processing, is_plain_layer_norm
from .functions.reconciliation import Reconciliation
from .functions.remainder import Remainder, ZeroRemainder

PATHS = ("product", "structured", "materialized")


def _register_state(module: nn.Module, prefix: str, state: Mapping[str, torch.Tensor]) -> tuple[str, ...]:
    """Register each tensor as a parameter (if an nn.Parameter) or a buffer; return the keys."""
    for key, value in state.items():
        if isinstance(value, nn.Parameter):
            module.register_parameter(f"{prefix}{key}", value)
        else:
            module.register_buffer(f"{prefix}{key}", value)
    return tuple(state)


def _gather(module: nn.Module, prefix: str, keys: Sequence[str]) -> dict[str, torch.Tensor]:
    return {key: getattr(module, f"{prefix}{key}") for key in keys}


class RPNHead(nn.Module):
    """One head: y = mean_c ψ(w_c) post(κ(ξ(x))), x (b, m) -> (b, n)."""

    def __init__(
        self,
        m: int,
        n: int,
        *,
        expansion: Expansion,
        reconciliation: Reconciliation,
        interdependence: Interdependence | None = None,
        channels: int = 1,
        materialize: bool = False,
    ):
        super().__init__()
        self.expansion, self.reconciliation = expansion, reconciliation
        self.interdependence = interdependence or NoInterdependence()
        self.m, self.n = m, n
        self.m_prime = self.interdependence.output_dim(m)
        self.D = expansion.calculate_D(self.m_prime)
        self.l = reconciliation.calculate_l(n, self.D)
        self.channels = channels

        self.w = nn.Parameter(reconciliation.init_w(n, self.D, channels))
        self._psi_keys = _register_state(self, "psi_", reconciliation.create_state(n, self.D))
        l_xi = self.interdependence.calculate_l(m)
        self.xi_w = nn.Parameter(self.interdependence.init_w(m)) if l_xi else None
        self._xi_keys = _register_state(self, "xi_", self.interdependence.create_state(m))
        self.postprocess = expansion.build_postprocess(self.D)
        self.path = "materialized" if materialize else self._fast_path()

    def _fast_path(self) -> str:
        if not isinstance(self.expansion, TaylorExpansion):
            return "structured"
        if len(self.postprocess) and not is_plain_layer_norm(self.postprocess):
            return "structured"
        if type(self.reconciliation).kron is Reconciliation.kron:
            return "structured"
        return "product" if self.reconciliation.dims(self.n, self.D)[1] == self.m_prime else "structured"

    @property
    def psi_state(self) -> dict[str, torch.Tensor]:
        return _gather(self, "psi_", self._psi_keys)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.interdependence(x, self.xi_w, **_gather(self, "xi_", self._xi_keys))
        if self.path == "product":
            outputs = self._product(x)
        else:
            kappa = self.postprocess(self.expansion(x))
            linear = self.reconciliation.materialized_linear if self.path == "materialized" else self.reconciliation.linear
            state = self.psi_state
            outputs = [linear(kappa, w, self.n, self.D, **state) for w in self.w]
        return outputs[0] if self.channels == 1 else torch.stack(outputs).mean(0)

    def _product(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(A ⊗ B)(u ⊗ v) = (A u) ⊗ (B v), with the non-affine layer norm over κ = u ⊗ v folded in."""
        u, v = self.expansion.product_factors(x)
        norm = self.postprocess[0] if len(self.postprocess) else None
        if norm is not None:
            mean = u.sum(1, keepdim=True) * v.sum(1, keepdim=True) / self.D
            second = u.square().sum(1, keepdim=True) * v.square().sum(1, keepdim=True) / self.D
            inv_std = torch.rsqrt((second - mean.square()).clamp_min(0) + norm.eps)
        outputs = []
        for w in self.w:
            A, B = self.reconciliation.kron(w, self.n, self.D)
            y = kron_outer(u, v, A, B)
            if norm is not None:
                row_sums = kron_outer(u.new_ones(1, u.shape[1]), v.new_ones(1, v.shape[1]), A, B)
                y = (y - mean * row_sums) * inv_std
            outputs.append(y)
        return outputs

    def weight(self) -> torch.Tensor:
        """The fabricated W of each channel, shape (C, n, D) (for inspection and plots)."""
        return torch.stack([self.reconciliation(w, self.n, self.D, **self.psi_state) for w in self.w])


class RPNLayer(nn.Module):
    """An RPN layer R^m → R^n: H heads averaged, plus remainder π(x), optional bias and output processing."""

    def __init__(
        self,
        m: int,
        n: int,
        *,
        expansion: Expansion,
        reconciliation: Reconciliation,
        remainder: Remainder | None = None,
        interdependence: Interdependence | None = None,
        heads: int = 1,
        channels: int = 1,
        bias: bool = False,
        output_processing=None,
        materialize: bool = False,
        name: str = "layer",
    ):
        super().__init__()
        self.m, self.n, self.name = m, n, name
        self.remainder = remainder or ZeroRemainder()
        try:
            for key, value in (("heads", heads), ("channels", channels)):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{key}={value!r} is invalid; it must be an integer >= 1")
            self.heads = nn.ModuleList(
                RPNHead(
                    m,
                    n,
                    expansion=expansion,
                    reconciliation=reconciliation,
                    interdependence=interdependence,
                    channels=channels,
                    materialize=materialize,
                )
                for _ in range(heads)
            )
            self.remainder.check(m, n)
        except ValueError as error:
            D = _safe_D(expansion, interdependence, m)
            raise ValueError(f"{name} (m={m} -> n={n}, D={D}): {error}") from error
        self._pi_keys = _register_state(self, "pi_", self.remainder.create_state(m, n))
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.heads[0](x)
        for head in self.heads[1:]:
            y = y + head(x)
        if len(self.heads) > 1:
            y = y / len(self.heads)
        rest = self.remainder(x, self.n, **_gather(self, "pi_", self._pi_keys))
        if rest is not None:
            y = y + rest
        if self.bias is not None:
            y = y + self.bias
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
            "learnable": count_learnable(self),
            "frozen": count_frozen(self),
            "path": self.path,
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


def count_learnable(module: nn.Module) -> int:
    """Parameters that receive gradients."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_frozen(module: nn.Module) -> int:
    """Buffers plus parameters that do not receive gradients (random matrices, masks, frozen hypernets)."""
    return sum(b.numel() for b in module.buffers()) + sum(
        p.numel() for p in module.parameters() if not p.requires_grad
    )


class RPNNetwork(nn.Module):
    """A stack of RPN layers over ``widths`` = [m, h_1, ..., n] (e.g. [784, 64, 64, 10]).

    ``layer_overrides`` maps a layer index (0-based) to keyword arguments of :class:`RPNLayer` that
    replace the shared ones for that layer (e.g. ``{2: {"reconciliation": IdentityReconciliation()}}``).
    """

    def __init__(self, widths: Sequence[int], *, layer_overrides: Mapping[int, Mapping] | None = None, **shared):
        super().__init__()
        widths = list(widths)
        if len(widths) < 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in widths):
            raise ValueError(f"widths={widths} is invalid; give at least two positive integers, e.g. [64, 32, 10]")
        overrides = {int(k): dict(v) for k, v in (layer_overrides or {}).items()}
        bad = sorted(set(overrides) - set(range(len(widths) - 1)))
        if bad:
            raise ValueError(
                f"layer_overrides names layers {bad}, but the network has layers 0..{len(widths) - 2}"
            )
        self.widths = widths
        self.layers = nn.ModuleList(
            RPNLayer(m, n, name=f"layer {i}", **{**shared, **overrides.get(i, {})})
            for i, (m, n) in enumerate(zip(widths[:-1], widths[1:]))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def describe(self) -> list[dict]:
        """One row per layer (see :meth:`RPNLayer.describe`)."""
        return [layer.describe() for layer in self.layers]
