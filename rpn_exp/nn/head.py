"""An RPN head: ``y = mean_c ψ(w_c) κ(ξ(x))`` over its C channels (w has shape (C, l)), x (b, m) -> (b, n).

Every tensor a head needs (parameter vectors, frozen random matrices, masks, hypernet weights, norms)
is a registered parameter or buffer, so ``state_dict``, ``.to()`` and ``.train()``/``.eval()`` cover it.

Compute paths (``RPNHead.path``), chosen from what ψ declares of W (``ψ.structure(n, D)``) and κ of κ(x)
(``κ.structure(m)``: a product layout and the normalisation over it), no weights or inputs needed:

* ``product`` — κ(x) = u ⊗ [1, t] (a declared ``ProductLayout``, e.g. Taylor's) and a ``kronecker`` W = A ⊗ B
  with A's width equal to u's: the head
  computes (A u) ⊗ (B v), and a non-affine layer norm over κ from Σu, Σu², Σv, Σv²; a sum W = Σᵢ Aᵢ ⊗ Bᵢ gives
  Σᵢ (Aᵢ u) ⊗ (Bᵢ v) (the norm is linear in W, so it folds into each term). Neither κ nor W is built.
* ``bilinear`` — κ(x) = left ⊗ right as above and W is ``dense`` (identity, masking, hypernets), ``low_rank`` (W = U Vᵀ:
  lorr, random_matrix_adaption) or ``outer`` (the reference layout): κ is not built; y_k = uᵀ W_k v with W
  viewed as (n, m, D/m), or U (Vᵀ (u ⊗ v)) with V viewed as (m, D/m·k), the layer norm folded in the same way.
  A dense W takes this path only when κ is wide (D ≥ 65,536); below that building κ is cheaper.
* ``structured`` — κ is built and ψ applies W in its declared form (``ψ.linear``: low rank, Kronecker, ...).
* ``materialized`` — κ and W are built and multiplied densely (the fallback; forced by ``materialize=True``).

The dense paths (``bilinear``, ``structured``, ``materialized``) split a batch into row chunks when its
intermediate would exceed ``chunk_elements`` and recompute each chunk in the backward pass, so their memory
stays bounded whatever the batch size (in a stacked run, under ``vmap``, the chunks are kept, not recomputed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial

import torch
from torch import nn
from torch.func import vmap
from torch.utils.checkpoint import checkpoint

from rpn_exp.functions.expansion import Expansion
from rpn_exp.functions.factors import (
    as_form,
    batched,
    bilinear,
    bilinear_columns,
    dense,
    kron_moments,
    kron_taylor,
    kron_terms,
    sum_terms,
)
from rpn_exp.functions.interdependence import Interdependence, NoInterdependence
from rpn_exp.functions.linear import linear
from rpn_exp.functions.outer import outer_bilinear, outer_bilinear_plan
from rpn_exp.functions.reconciliation import KRONECKER, LOW_RANK, OUTER, Reconciliation, dense_variance
from rpn_exp.functions.shapes import check_positive_int

PATHS = ("product", "bilinear", "structured", "materialized")
#: A dense W multiplies κ through the bilinear form (never building κ) from this width of κ up (benchmarks/layers.py).
BILINEAR_MIN_D = 2**16
#: Initializations of the parameter vectors w (``init``): see :class:`RPNHead`.
INITS = ("variance", "reference")
#: Default bound on the largest per-batch intermediate of the dense paths (elements; 64 MB in float32).
CHUNK_ELEMENTS = 2**24


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


def _channels(w: torch.Tensor) -> list[torch.Tensor]:
    """Each channel's parameter vector, w (..., C, l) -> C tensors (..., l); one channel as a view of w, whose gradient
    lands in w's as it is (iterating w unbinds it, and unbind's backward stacks the gradients into a new tensor)."""
    return [w.squeeze(-2)] if w.shape[-2] == 1 else list(w.unbind(-2))


def _mean(outputs: list[torch.Tensor]) -> torch.Tensor:
    """The average over channels or heads (the tensor itself when there is one)."""
    return outputs[0] if len(outputs) == 1 else torch.stack(outputs).mean(0)


class RPNHead(nn.Module):
    """One head: y = mean_c ψ(w_c) post(κ(ξ(x))), x (b, m) -> (b, n).

    ``chunk_elements`` bounds the largest per-batch intermediate of the dense paths (κ on ``structured`` and
    ``materialized``, the (b, n·m) product on ``bilinear``): larger batches are computed in row chunks whose
    intermediates are recomputed in the backward pass (activation checkpointing) instead of being kept.
    ψ's frozen state (random matrices, masks) is drawn from ``state_seed`` (default: ``reconciliation.seed``), so
    the same seed gives the same matrices whatever the global RNG did before.

    ``init`` draws w:

    * ``variance`` (default): each channel's W gets Var(W_ij) = C·H/(3D) with normalized factors (``ψ.init_w``).
      The head averages C channels and the layer H heads (``heads``): averaging k independent W's divides the
      output variance by k, so each is drawn k times wider and the layer starts with the output variance of a
      dense ``nn.Linear(D, n)`` whatever C, H and the family.
    * ``reference``: the reference implementation's draw, Xavier-uniform over w as one (C, l) tensor,
      U(±√(6/(C + l))) (whatever the family; reproduces published numbers).
    """

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
        chunk_elements: int = CHUNK_ELEMENTS,
        state_seed: int | None = None,
        init: str = "variance",
        heads: int = 1,
    ):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init={init!r} is invalid; valid choices: {', '.join(INITS)}")
        self.expansion, self.reconciliation = expansion, reconciliation
        self.interdependence = interdependence or NoInterdependence()
        self.m, self.n = m, n
        self.m_prime = self.interdependence.output_dim(m)
        self.D = expansion.calculate_D(self.m_prime)
        self.l = reconciliation.calculate_l(n, self.D)
        self.channels = channels
        self.chunk_elements = check_positive_int(chunk_elements, name="chunk_elements")

        variance = channels * heads * dense_variance(self.D) if init == "variance" else None
        if torch.empty(0).is_meta:  # shapes only (a dry run, the config checks): no draws, whatever the size
            w = torch.empty(channels, self.l)
        elif init == "variance":
            w = reconciliation.init_w(n, self.D, channels, variance=variance)
        else:
            bound = math.sqrt(6.0 / (channels + self.l))
            w = (torch.rand(channels, self.l) * 2 - 1) * bound
        # frozen random matrices and masks come from the reconciliation's own seed, not from the global RNG
        generator = torch.Generator().manual_seed(reconciliation.seed if state_seed is None else state_seed)
        state = reconciliation.create_state(n, self.D, generator, variance=variance)
        if init == "variance" and not w.is_meta and w.numel():  # the channel average: the variance of 1 of H heads
            w, state = reconciliation.calibrate(w, n, self.D, heads * dense_variance(self.D), state)
        self.w = nn.Parameter(w)
        self._psi_keys = _register_state(self, "psi_", state)
        l_xi = self.interdependence.calculate_l(m)
        self.xi_w = nn.Parameter(self.interdependence.init_w(m)) if l_xi else None
        self._xi_keys = _register_state(self, "xi_", self.interdependence.create_state(m))
        self.postprocess = expansion.build_postprocess(self.D)
        # batch norm over κ couples the rows of a batch: such a κ is never split into row chunks
        self._rowwise = not any(isinstance(mod, nn.modules.batchnorm._BatchNorm) for mod in self.postprocess)
        #: ψ's declared form of W for this head's (n, D) and κ's of κ(x): what the compute path is chosen from
        self.structure = reconciliation.structure(n, self.D)
        self.kappa = expansion.structure(self.m_prime)
        self.path = "materialized" if materialize else self._fast_path()

    def _fast_path(self) -> str:
        """The compute path from ψ's and κ's declarations alone (``ψ.structure``, ``κ.structure``; no weights)."""
        psi, kappa = self.structure, self.kappa
        if kappa.fused and psi.kind == KRONECKER and not kappa.product.ones_first and (
                psi.blocks[1] == kappa.product.u_width):
            return "product"
        if kappa.fused and (psi.kind in (LOW_RANK, OUTER) or (not psi.structured and self.D >= BILINEAR_MIN_D)):
            return "bilinear"
        return "structured" if psi.structured else "materialized"

    @property
    def psi_state(self) -> dict[str, torch.Tensor]:
        return _gather(self, "psi_", self._psi_keys)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.interdependence(x, self.xi_w, _gather(self, "xi_", self._xi_keys))
        if self.path == "product":
            return self._product(x)
        if self.path == "bilinear":
            operators, width = self._bilinear_operators()
            return self._in_chunks(lambda rows: self._bilinear(rows, operators), x, width * self.m_prime)
        if self.path == "structured":
            state = self.psi_state
            linears = [lambda kappa, w=w: self.reconciliation.linear(kappa, w, self.n, self.D, state)
                       for w in _channels(self.w)]
        else:
            linears = [lambda kappa, W=W: linear(kappa, W) for W in self._weights()]

        def expand_and_apply(rows: torch.Tensor) -> torch.Tensor:
            kappa = self.postprocess(self.expansion(rows))
            return _mean([linear(kappa) for linear in linears])

        if self.w.dim() == 3:  # w (K, C, l): a stacked group's members (carries_members), κ(x) = x: no chunks
            return expand_and_apply(x)
        return self._in_chunks(expand_and_apply, x, self.D if self._rowwise else None)

    def _weights(self) -> list[torch.Tensor]:
        state = self._state_for_mode()
        return [self.reconciliation(w, self.n, self.D, state) for w in _channels(self.w)]

    def _state_for_mode(self) -> dict[str, torch.Tensor]:
        """ψ's state; in evaluation a stochastic ψ (masking without a fixed mask) gets its expected state."""
        if self.reconciliation.stochastic and not self.training:
            return self.reconciliation.expected_state(self.n, self.D, self.w)
        return self.psi_state

    def _in_chunks(self, fn, x: torch.Tensor, per_row: int | None) -> torch.Tensor:
        """``fn(x)`` computed on row chunks of at most ``chunk_elements // per_row`` rows (None: whole)."""
        rows = max(1, self.chunk_elements // per_row) if per_row else x.shape[0]
        if x.shape[0] <= rows:
            return fn(x)
        if not torch.is_grad_enabled() or batched(x):  # activation checkpointing does not run under vmap
            return torch.cat([fn(part) for part in x.split(rows)])
        return torch.cat([checkpoint(fn, part, use_reentrant=False) for part in x.split(rows)])

    @property
    def carries_members(self) -> bool:
        """Whether :meth:`forward` also takes a stacked group's member dimension without ``vmap``: w (K, C, l), ψ's
        state (K, ...) and x (K, b, m) -> (K, b, n), behind an identity ξ. The product path does, behind a κ whose
        layout declares ``leading_dims``: ψ's factors are computed per member under ``vmap`` (small tensors), the
        fused node takes the members' (K, ...) factors and rows as they are (``benchmarks/vmap_node.py``: through
        ``vmap`` the node costs more than its own work). So does W = reshape(w) (ψ declares ``leading_dims``) on
        κ(x) = x, a dense layer: W (K, n, m) applied to x (K, b, m) in one batched product, where ``vmap`` costs a
        small network's step more than its arithmetic."""
        if not self.interdependence.identity:
            return False
        if self.path == "product":
            return self.kappa.product.leading_dims
        return self.path == "materialized" and self.kappa.identity and self.reconciliation.leading_dims

    def _product(self, x: torch.Tensor) -> torch.Tensor:
        """(A ⊗ B)(u ⊗ [1, t]) = (A u) ⊗ (B [1, t]) per channel and term, the layer norm over κ folded in
        (``kron_taylor``); with a member dimension (w (K, C, l): ``carries_members``) for all members at once."""
        u, t = self.expansion.product_factors(x)
        eps, state = self.kappa.norm_eps, self.psi_state

        def terms(w: torch.Tensor, state: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
            form = self.reconciliation.factors(w, self.n, self.D, state)
            return [(dense(A), dense(B)) for A, B in kron_terms(form)]

        members = self.w.dim() == 3
        channels = [vmap(terms)(w, state) if members else terms(w, state) for w in _channels(self.w)]
        return _mean([sum_terms(kron_taylor(u, t, A, B, eps) for A, B in channel) for channel in channels])

    def _bilinear_operators(self):
        """Per channel, (left, right) ↦ W (left ⊗ right): through W itself, U (Vᵀ (left ⊗ right)) for a thin
        W = U Vᵀ, or the pieces of a reference-layout W (``outer_bilinear``).

        Also returns the width of the largest (b, width·m) intermediate, for chunking.
        """
        psi, state, n, D = self.reconciliation, self.psi_state, self.n, self.D
        kind = self.structure.kind
        if kind == OUTER:
            outer = [psi.factors(w, n, D, state) for w in _channels(self.w)]
            a, b = outer[0]
            left_width = self.kappa.product.left_width(D)
            pieces = outer_bilinear_plan(n, D, a.numel(), b.numel(), left_width, str(a.device)).a_index.shape[1]
            return [partial(outer_bilinear, a=a, b=b, n=n) for a, b in outer], max(1, pieces // self.m_prime)
        if kind != LOW_RANK:
            return [partial(bilinear, W=W) for W in self._weights()], n
        thin = [psi.factors(w, n, D, state) for w in _channels(self.w)]
        return [lambda u, v, U=U, V=V: bilinear_columns(u, v, V) @ U.T for U, V in thin], thin[0].V.shape[1]

    def _bilinear(self, x: torch.Tensor, operators) -> torch.Tensor:
        """W κ(x) for κ(x) = left ⊗ right (``ProductLayout.factors``) through the bilinear form, per channel.

        A non-affine layer norm over κ is folded in: its mean and variance come from u and t (``kron_moments``),
        and W (κ − μ)/σ = (W κ − μ W 1)/σ, where the row sums W 1 = W (1 ⊗ 1) come out of the same product as one
        more row of ones.
        """
        u, t = self.expansion.product_factors(x)
        left, right = self.kappa.product.factors(u, t)
        if self.kappa.norm_eps is None:
            return _mean([apply(left, right) for apply in operators])
        mean, var = kron_moments(u, t)
        inv_std = torch.rsqrt(var + self.kappa.norm_eps)
        left = torch.cat([left, left.new_ones(1, left.shape[1])])
        right = torch.cat([right, right.new_ones(1, right.shape[1])])
        outputs = []
        for apply in operators:
            y = apply(left, right)
            outputs.append((y[:-1] - mean * y[-1]) * inv_std)
        return _mean(outputs)

    def weight(self) -> torch.Tensor:
        """The fabricated W of each channel, shape (C, n, D) (for inspection and plots)."""
        return torch.stack(self._weights())

    @torch.no_grad()
    def weight_window(self, rows: int = 128, cols: int = 512) -> torch.Tensor:
        """Channel 0's W[:rows, :cols] at full resolution (one entry per weight), shape (min(n, rows), min(D, cols)).

        Built from the factors where ψ has them, so the paper's 64 × 615,440 first-layer W is never made:
        W = A ⊗ B gives W[i, j] = A[i // s, j // t] · B[i % s, j % t] (B of shape s × t), and W = U Vᵀ gives
        U[:rows] V[:cols]ᵀ. A leading window keeps the structure visible (a Kronecker W shows its s × t blocks),
        where pooling the whole W down to a picture would average them away.
        """
        rows, cols = min(rows, self.n), min(cols, self.D)
        w = self.w[0]
        form = as_form(self.reconciliation.factors(w, self.n, self.D, self.psi_state))
        i, j = torch.arange(rows, device=w.device), torch.arange(cols, device=w.device)
        return form.window(i, j, self.n, self.D)
