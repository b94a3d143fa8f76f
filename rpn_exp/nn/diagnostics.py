"""How hot a layer starts: its initial output variance over seeds, and how much that varies from seed to seed.

The initialization of every reconciliation family aims at the output variance of a dense ``nn.Linear`` layer
(``rpn_exp.functions.reconciliation``, ``rpn_exp.nn.head.RPNHead``). These helpers measure it; the tests hold
every family to it and ``benchmarks/init_variance.py`` prints the table.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable

import torch
from torch import nn


def initial_output_variances(build: Callable[[int], nn.Module], x: torch.Tensor, seeds: Iterable[int]) -> list[float]:
    """E[y²] over the entries of y = layer(x) at initialization, one value per seed.

    ``build(seed)`` makes the layer; the global RNG is seeded with ``seed`` first, so w is drawn from it.
    """
    values = []
    for seed in seeds:
        torch.manual_seed(seed)
        layer = build(seed).to(x.dtype)
        with torch.no_grad():
            values.append(layer(x).square().mean().item())
    return values


def spread(values: Iterable[float]) -> float:
    """Coefficient of variation across seeds: standard deviation / mean."""
    values = list(values)
    return statistics.stdev(values) / statistics.fmean(values)


def quantiles(values: Iterable[float]) -> tuple[float, float, float]:
    """(min, median, max)."""
    values = list(values)
    return min(values), statistics.median(values), max(values)


def layer_statistics(make_reconciliation: Callable[[int], object], *, channels: int = 1, heads: int = 1,
                     init: str = "variance", m: int = 16, n: int = 16, seeds: int = 20, batch: int = 256,
                     interdependence=None) -> list[float]:
    """The initial output variances over ``seeds`` of an RPN layer R^m → R^n with the default expansion (Taylor
    d = 2 + layer norm) and the reconciliation ``make_reconciliation(seed)`` (whose own seed draws its frozen
    matrices; offset from the global seed so the two streams differ), in float64, on x ~ N(0, 1) (batch × m)."""
    from rpn_exp.functions.expansion import TaylorExpansion
    from rpn_exp.nn.layer import RPNLayer

    x = torch.randn(batch, m, generator=torch.Generator().manual_seed(1234), dtype=torch.float64)

    def build(seed: int) -> nn.Module:
        return RPNLayer(m, n, expansion=TaylorExpansion(d=2, postprocess=["layer_norm"]),
                        reconciliation=make_reconciliation(10_000 + seed), interdependence=interdependence,
                        channels=channels, heads=heads, init=init)

    return initial_output_variances(build, x, range(seeds))
