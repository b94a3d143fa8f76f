"""A network of rank r inside a network of rank r′ > r, or an MLP inside a wider one: jobs that differ only in r, or
in the hidden widths of an MLP, stack by zero-padding.

For a ψ with ``rank_pads`` (lorr, lphm, dual_lphm) the pieces of w at rank r are the leading corners of its pieces
at r′, and the entries outside them, set to zero, add rank components with zero factors: the padded network
computes exactly what the small one does. The gradient with respect to a padded entry is a product with its zero
partner factor, so it is zero as well; the stack multiplies it by the padding mask besides (``masks``), and a
per-parameter optimizer (Adam, AdamW, SGD, ...) then never moves it from zero, weight decay included. A padded
member therefore trains as its solo run does, and :class:`RankPadding` converts its weights and optimizer state
between the two shapes, so its checkpoints hold the solo network's shapes.

For the MLP (ψ with ``width_pads``: W = reshape(w), identity κ) a hidden layer of width h sits in one of width h′:
its W (h × m) and bias are the leading rows of the wider one's, the next layer's W (n × h) the leading columns.
The extra units get zero weights and bias, so whatever the activation makes of them, the next layer reads them
with zero weights, which the masks keep at zero.
"""

from __future__ import annotations

import torch
from torch import nn

from rpn_exp.nn.head import RPNHead
from rpn_exp.nn.layer import RPNLayer


def rank_embeddings(small: nn.Module, large: nn.Module) -> dict[str, torch.Tensor]:
    """For each parameter of ``small`` whose shape differs from its namesake in ``large``: the positions of its
    entries along the last dimension of the larger one (a head's w, (C, l) in (C, l′)). Parameters of equal shapes
    are left out; buffers must have equal shapes. Raises ValueError for anything else."""
    larger = dict(large.named_parameters())
    if list(larger) != [name for name, _ in small.named_parameters()]:
        raise ValueError("the networks differ in their parameters, not only in a rank or a width")
    positions = {}
    for name, parameter in small.named_parameters():
        outer = larger[name]
        if outer.shape == parameter.shape:
            continue
        owner, _, leaf = name.rpartition(".")
        module, big = small.get_submodule(owner), large.get_submodule(owner)
        if isinstance(module, RPNHead) and leaf == "w" and parameter.shape[:-1] == outer.shape[:-1]:
            positions[name] = module.reconciliation.rank_positions(module.n, module.D, big.reconciliation,
                                                                   (big.n, big.D))
        elif isinstance(module, RPNLayer) and leaf == "bias" and module.heads[0].reconciliation.width_pads:
            positions[name] = torch.arange(parameter.shape[0])  # the leading units of a wider layer's
        else:
            raise ValueError(f"{name}: shapes {tuple(parameter.shape)} and {tuple(outer.shape)} differ in more than "
                             f"a rank or an MLP's width")
    buffers = dict(large.named_buffers())
    for name, buffer in small.named_buffers():
        if name not in buffers or buffers[name].shape != buffer.shape:
            raise ValueError(f"buffer {name} differs between the networks")
    return positions


def pad(tensor: torch.Tensor, positions: torch.Tensor, size: int) -> torch.Tensor:
    """(..., l) -> (..., size): the entries at ``positions``, zeros elsewhere."""
    out = tensor.new_zeros(*tensor.shape[:-1], size)
    out[..., positions] = tensor
    return out


def unpad(tensor: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(..., size) -> (..., l): the entries at ``positions`` (a copy)."""
    return tensor.index_select(-1, positions)


class RankPadding:
    """How the network ``small`` sits in ``large`` (same family, ranks r ≤ r′): weights, optimizer states and
    gradient masks between the two shapes. Without a differing shape every conversion is the identity and
    ``bool(padding)`` is False."""

    def __init__(self, small: nn.Module, large: nn.Module):
        self.positions = rank_embeddings(small, large)
        self.shapes = {name: tuple(large.get_parameter(name).shape) for name in self.positions}
        self.names = [name for name, _ in small.named_parameters()]  # the optimizer's parameter order

    def __bool__(self) -> bool:
        return bool(self.positions)

    def pad(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state dict of the small network as the large one's (padded entries zero)."""
        return {name: self._pad(name, value) for name, value in state.items()}

    def unpad(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state dict of the large network as the small one's."""
        return {name: self._unpad(name, value) for name, value in state.items()}

    def pad_optimizer(self, state: dict) -> dict:
        """An optimizer ``state_dict()`` over the small network's parameters as one over the large network's."""
        return self._optimizer(state, self._pad)

    def unpad_optimizer(self, state: dict) -> dict:
        """An optimizer ``state_dict()`` over the large network's parameters as one over the small network's."""
        return self._optimizer(state, self._unpad)

    def masks(self) -> dict[str, torch.Tensor]:
        """For each padded parameter: ones at the small network's entries, zeros at the padding (large shape)."""
        return {name: pad(torch.ones(*self.shapes[name][:-1], len(positions)), positions, self.shapes[name][-1])
                for name, positions in self.positions.items()}

    def _pad(self, name: str, value):
        if name not in self.positions or not torch.is_tensor(value) or value.dim() == 0:
            return value
        return pad(value, self.positions[name], self.shapes[name][-1])

    def _unpad(self, name: str, value):
        if name not in self.positions or not torch.is_tensor(value) or value.dim() == 0:
            return value
        return unpad(value, self.positions[name])

    def _optimizer(self, state: dict, convert) -> dict:
        per_parameter = {index: {key: convert(self.names[int(index)], value) for key, value in values.items()}
                         for index, values in state["state"].items()}
        return {**state, "state": per_parameter}
