"""Expansions made of others: side by side (extended) or one after the other (nested)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rpn_exp.functions.expansion.base import Expansion


class _CompositeExpansion(Expansion):
    def __init__(self, expansions: Sequence[Expansion], postprocess=None):
        super().__init__(postprocess)
        if not expansions:
            raise ValueError(f"{self.name} expansion: needs at least one expansion in 'expansions'")
        self.expansions = list(expansions)


class ExtendedExpansion(_CompositeExpansion):
    """κ(x) = [κ_1(x), κ_2(x), …] (concatenation); D = Σ D_i."""

    name = "extended"

    def calculate_D(self, m):
        return sum(e.calculate_D(m) for e in self.expansions)

    def forward(self, x):
        return torch.cat([e(x) for e in self.expansions], dim=-1)


class NestedExpansion(_CompositeExpansion):
    """κ(x) = κ_k(…κ_2(κ_1(x))) (composition, first listed applied first); D from chaining calculate_D."""

    name = "nested"

    def calculate_D(self, m):
        for e in self.expansions:
            m = e.calculate_D(m)
        return m

    def forward(self, x):
        for e in self.expansions:
            x = e(x)
        return x
