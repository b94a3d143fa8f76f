"""RPN 2's grid layers: an RPN layer applied at every patch of a grid (a convolution whose weight W = ψ(w) comes from
the reconciliation), grid compression (pooling), and the grid network that stacks them before RPN perceptron layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from rpn_exp.functions import patches
from rpn_exp.functions.geometry import Grid, Patch
from rpn_exp.functions.processing import build_processing
from rpn_exp.functions.shapes import check_positive_int
from rpn_exp.nn.head import _gather
from rpn_exp.nn.layer import RPNLayer

#: Output processing modules that act per channel (dim 1) or per entry, so they take (b, n, P) as (b·P, n).
CHANNEL_FIRST = (nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Identity)
#: A processing spec (:func:`~rpn_exp.functions.processing.build_processing`): a name, a mapping, a list, or None.
Spec = str | Mapping | Sequence | None


class GridLayer(RPNLayer):
    """An RPN layer shared by every patch of a grid: x (b, grid.size) -> (b, n · P), the output grid has n channels.

        y_p = mean_h head_h(κ(ξ_p(x))) + π(x_p) (+ b)   for each centre p of the lattice with centre distance cd

    ξ_p(x) is the patch around centre p (:func:`rpn_exp.functions.patches.interdependence`: c · |patch| features in
    ``padding`` mode, c in ``aggregation`` mode), so the layer's m is that width and one W = ψ(w) ∈ R^{n × D} serves
    every patch: with identity κ and ψ and a cuboid patch it is ``conv2d`` with stride cd and zero padding p_h, p_h′,
    p_w, p_w′. Where κ and ξ declare themselves the identity (``padding`` mode, not ``materialize``), W is applied by
    ``conv2d``/``conv3d`` itself, its kernel the heads' and channels' mean W laid on the patch's box (path
    ``convolution``); otherwise every patch is unfolded and the heads take their own paths. π reads the centre
    cell's c channels (``linear``: a 1×1 convolution). Output processing (batch norm, ReLU, dropout) acts on each
    position's n channels, so a batch norm normalizes each channel over batch and
    positions, as ``BatchNorm2d`` does. Parameter counts and rank bounds are those of the RPN layer R^m → R^n.

    Shape: (b, grid.size) -> (b, n · P), channel first; :attr:`grid_out` is its grid.
    """

    def __init__(self, grid: Grid, n: int, *, patch: Patch, cd: tuple[int, int, int], mode: str = "padding",
                 **layer_options):
        if mode not in patches.MODES:
            raise ValueError(f"mode={mode!r} is invalid; valid choices: {', '.join(patches.MODES)}")
        patch.check_fits(grid, f"patch of {layer_options.get('name', 'layer')}")
        super().__init__(patches.features(grid, patch, mode), n, remainder_width=grid.channels, **layer_options)
        self.grid_in, self.patch, self.cd, self.mode = grid, patch, cd, mode
        self.grid_out = grid.packed(cd, channels=n)
        self.convolves = mode == "padding" and not layer_options.get("materialize", False) and all(
            head.kappa.identity and head.interdependence.identity for head in self.heads)
        # output processing that acts per channel or per entry also takes (b, n, P) as it comes from the convolution
        self.channel_first = all(isinstance(module, CHANNEL_FIRST) for module in self.output_processing)

    @property
    def path(self) -> str:
        return "convolution" if self.convolves else super().path

    @property
    def positions(self) -> int:
        """P: the centres of the lattice."""
        return self.grid_out.h * self.grid_out.w * self.grid_out.d

    @property
    def outputs_per_sample(self) -> int:
        return super().outputs_per_sample * self.positions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        centre = patches.centres(x, self.grid_in, self.cd).reshape(-1, self.remainder_width)
        if not self.convolves:
            xi = patches.interdependence(x, self.grid_in, self.patch, self.cd, self.mode).reshape(-1, self.m)
            return patches.to_grid(super().forward(xi, centre), b)
        W = torch.stack([head.weight().mean(0) for head in self.heads]).mean(0)  # (n, c·|patch|)
        y = patches.convolve(x, self.grid_in, self.patch, self.cd, W)  # (b, n, P)
        if not self.channel_first:
            return patches.to_grid(self.finish(y.transpose(1, 2).reshape(-1, self.n), centre), b)
        rest = self.remainder(centre, self.n, _gather(self, "pi_", self._pi_keys))
        if rest is not None:
            y = y + rest.reshape(b, -1, self.n).transpose(1, 2)
        if self.bias is not None:
            y = y + self.bias[:, None]
        return self.output_processing(y).reshape(b, -1)

    def describe(self) -> dict:
        """:meth:`RPNLayer.describe` with the grids in and out, the patch, its mode and the centre distance."""
        return {**super().describe(), "grid": f"{self.grid_in}->{self.grid_out}", "patch": self.patch.describe(),
                "cd": "×".join(map(str, self.cd[: 3 if self.grid_in.d > 1 else 2])), "xi_mode": self.mode}


class GridPooling(nn.Module):
    """Grid compression: max, mean or min of each channel over the patch's cells at every centre (no parameters).

    Shape: (b, grid.size) -> (b, grid_out.size).
    """

    def __init__(self, grid: Grid, *, patch: Patch, cd: tuple[int, int, int], mode: str = "max",
                 name: str = "pooling"):
        super().__init__()
        if mode not in patches.POOLINGS:
            raise ValueError(f"mode={mode!r} is invalid; valid choices: {', '.join(patches.POOLINGS)}")
        patch.check_fits(grid, f"patch of the {name}", pooling=True)
        self.grid_in, self.patch, self.cd, self.mode = grid, patch, cd, mode
        self.grid_out = grid.packed(cd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return patches.pool(x, self.grid_in, self.patch, self.cd, self.mode)

    def extra_repr(self) -> str:
        return f"{self.mode}, {self.patch.describe()}, cd={self.cd}, {self.grid_in} -> {self.grid_out}"


class GridNetwork(nn.Module):
    """Grid layers (pooling after every ``pool_every``-th), then RPN perceptron layers on the flattened grid.

    Args:
        grid: the input grid (the dataset's, e.g. 1×28×28).
        out_channels: n of each grid layer (its output channels), e.g. [16, 32].
        widths: the perceptron layers' widths after the grid: [*hidden, classes].
        patch: every grid layer's patch.
        cd: every grid layer's centre distance (cd_h, cd_w, cd_d).
        mode: every grid layer's ξ mode (``padding`` or ``aggregation``).
        pooling: :class:`GridPooling`'s ``patch``, ``cd`` and ``mode`` (None: no pooling).
        pool_every: g, pooling after every g-th grid layer.
        grid_processing: the grid layers' output processing (e.g. ``[batch_norm, relu]``).
        pooling_processing: follows each pooling and acts on the flattened grid (e.g. ``{name: dropout, p: 0.25}``).
        activation: between perceptron layers, as for :class:`~rpn_exp.nn.network.RPNNetwork`.
        output_processing: the perceptron layers' output processing.
        layer_overrides: per-layer arguments by index, grid layers first.
        **shared: :class:`~rpn_exp.nn.layer.RPNLayer`'s arguments shared by every layer (functions, heads, ...).

    Shape: (b, grid.size) -> (b, classes).
    """

    def __init__(self, grid: Grid, out_channels: Sequence[int], widths: Sequence[int], *, patch: Patch,
                 cd: tuple[int, int, int], mode: str = "padding", pooling: Mapping | None = None, pool_every: int = 1,
                 grid_processing: Spec = None, pooling_processing: Spec = None, activation: Spec = None,
                 output_processing: Spec = None, layer_overrides: Mapping[int, Mapping] | None = None, **shared: Any):
        super().__init__()
        check_positive_int(pool_every, name="pool_every")
        if not out_channels or not all(isinstance(c, int) and c >= 1 for c in out_channels):
            raise ValueError(f"out_channels={list(out_channels)} is invalid; give one positive integer per grid "
                             "layer, e.g. [16, 32]")
        overrides = {int(k): dict(v) for k, v in (layer_overrides or {}).items()}
        count = len(out_channels) + len(widths)
        bad = sorted(set(overrides) - set(range(count)))
        if bad:
            raise ValueError(f"layer_overrides names layers {bad}, but the network has layers 0..{count - 1}")
        layers, pools, sizes = [], [], [grid.size]
        for i, n in enumerate(out_channels):
            options = {**shared, "output_processing": grid_processing, **overrides.get(i, {})}
            layers.append(GridLayer(grid, n, patch=patch, cd=cd, mode=mode, name=f"layer {i}", index=i, **options))
            grid = layers[-1].grid_out
            if pooling is not None and (i + 1) % pool_every == 0:
                pooling_layer = GridPooling(grid, **pooling, name=f"pooling after layer {i}")
                grid = pooling_layer.grid_out
                pools.append(nn.Sequential(pooling_layer, build_processing(pooling_processing, grid.size)))
            else:
                pools.append(nn.Identity())
            sizes.append(grid.size)
        self.grid_out = grid
        self.widths = [*sizes, *widths]  # what each layer passes on (after its pooling)
        for i, (m, n) in enumerate(zip([grid.size, *widths[:-1]], widths), start=len(layers)):
            options = {**shared, "output_processing": output_processing, **overrides.get(i, {})}
            layers.append(RPNLayer(m, n, name=f"layer {i}", index=i, **options))
        self.layers = nn.ModuleList(layers)
        self.pools = nn.ModuleList(pools)
        self.activations = nn.ModuleList(build_processing(activation, n) for n in widths[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid_layers = len(self.pools)
        for layer, pool in zip(self.layers[:grid_layers], self.pools):
            x = pool(layer(x))
        for layer, activation in zip(self.layers[grid_layers:], [*self.activations, None]):
            x = layer(x)
            if activation is not None:
                x = activation(x)
        return x

    def describe(self) -> list[dict]:
        """One row per layer (:meth:`GridLayer.describe`, then :meth:`RPNLayer.describe`); a grid layer followed by
        pooling says so (``pool``) and shows the grid the pooling leaves."""
        rows = []
        for i, layer in enumerate(self.layers):
            row = layer.describe()
            if i < len(self.pools) and isinstance(self.pools[i], nn.Sequential):
                pooling = self.pools[i][0]
                row["pool"] = f"{pooling.mode} {'×'.join(map(str, pooling.patch.box[:2]))}->{pooling.grid_out}"
            rows.append(row)
        return rows
