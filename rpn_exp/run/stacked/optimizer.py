"""The optimizer of a stacked group: one optimizer over every member's parameters, one parameter group per member.

An optimizer of :data:`PER_PARAMETER_OPTIMIZERS` updates each parameter from its own gradient and state and its
group's hyper-parameters, so parameter group k, holding member k's parameters with the hyper-parameters of member
k's own optimizer, is stepped exactly as that optimizer would step them; a member without gradients (one that
diverged) is skipped, as torch's optimizers skip a parameter whose ``.grad`` is None.

While it steps, the parameter groups whose hyper-parameters are equal at that step (members of one configuration and
seeds, whose schedulers move their rates together) are one (:func:`one_group_per_setting`): one call of the
optimizer's (fused) update for them all instead of one per member, each parameter updated as before.

Each member sees its group as an optimizer of its own (:func:`member_share`): what its LR scheduler steps, what
``LearningRateMonitor`` reads, and its state in its solo run's format. Lightning steps the members' schedulers as one
(:class:`MemberSchedulers`), at the point of an epoch where it steps a solo run's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

#: Optimizers that update each parameter from its own gradient and state alone: one of them over several members'
#: parameters, a parameter group each, computes what one per member computes.
PER_PARAMETER_OPTIMIZERS = ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam")


def group_optimizer(factories: Sequence[Callable], params: Sequence[list[torch.nn.Parameter]]) -> torch.optim.Optimizer:
    """One optimizer whose parameter group k is ``factories[k](params[k])`` (member k's solo optimizer): its class,
    shared by every member, and group k's hyper-parameters, member k's."""
    own = [factory(p) for factory, p in zip(factories, params)]
    kinds = {type(optimizer) for optimizer in own}
    if len(kinds) != 1:
        raise ValueError(f"the members' optimizers differ ({sorted(k.__name__ for k in kinds)}); a group shares one")
    kind = kinds.pop()
    if len(own) > 1 and kind.__name__ not in PER_PARAMETER_OPTIMIZERS:
        raise ValueError(f"{kind.__name__} may couple parameters; it cannot be shared by members")
    groups = [{**settings_of(optimizer.param_groups[0]), "params": p} for optimizer, p in zip(own, params)]
    return kind(groups)


def settings_of(group: dict) -> dict:
    """A parameter group's hyper-parameters: everything but its parameters."""
    return {key: value for key, value in group.items() if key != "params"}


@contextmanager
def one_group_per_setting(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """``optimizer`` (a :data:`PER_PARAMETER_OPTIMIZERS` one) with its parameter groups of equal hyper-parameters
    joined into one, until the block ends: stepped inside it, it updates every parameter as it would with its own
    groups, in one call per distinct setting (the per-call work of a fused update is paid once, not once per member).
    Its own groups, which LR schedulers and the members' shares hold, are back when the block ends."""
    groups = optimizer.param_groups
    joined: list[dict] = []
    for group in groups:
        settings = settings_of(group)
        same = next((j for j in joined if settings_of(j) == settings), None)
        if same is None:
            joined.append({**group, "params": list(group["params"])})
        else:
            same["params"] += group["params"]
    if len(joined) == len(groups):
        yield
        return
    optimizer.param_groups = joined
    try:
        yield
    finally:
        optimizer.param_groups = groups


class OptimizerShare(torch.optim.Optimizer):
    """Member ``index``'s parameter group of the group optimizer, seen as the member's own optimizer.

    Its ``param_groups`` is that one group (the same dict: an LR scheduler built on the share sets the member's
    learning rate in the group optimizer); :meth:`state_dict` is what the member's solo optimizer's would be.
    The share is never stepped itself: the group optimizer steps every member at once.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, index: int, params: list[torch.nn.Parameter]):
        # Optimizer.__init__ is not called: the share adds no parameters, it shows one group of ``optimizer``.
        # (Not an ``optimizer`` attribute: LearningRateMonitor would take the share for a wrapper of that one.)
        self.group, self.index, self.params = optimizer, index, list(params)
        self.defaults = optimizer.defaults
        self._opt_called = True  # the group optimizer steps before any scheduler does

    @property
    def param_groups(self) -> list[dict]:
        """The member's parameter group of the group optimizer (looked up each time: loading a state replaces the
        optimizer's group dicts)."""
        return [self.group.param_groups[self.index]]

    @property
    def state(self):
        return self.group.state

    def step(self, closure=None):
        raise RuntimeError("a member's optimizer share is stepped by its group's optimizer")

    def state_dict(self) -> dict:
        """As ``state_dict()`` of the member's own optimizer: its parameters numbered 0.. in their order."""
        return {"state": {i: self.state[p] for i, p in enumerate(self.params) if p in self.state},
                "param_groups": [{**settings_of(self.param_groups[0]), "params": list(range(len(self.params)))}]}


def member_share(optimizer: torch.optim.Optimizer, index: int, params: list[torch.nn.Parameter]) -> OptimizerShare:
    """Member ``index``'s :class:`OptimizerShare`, of a class named as the group optimizer's (``LearningRateMonitor``
    names a series by it: ``lr-AdamW``, as for the member's solo run)."""
    kind = type(type(optimizer).__name__, (OptimizerShare,), {})
    return kind(optimizer, index, params)


def group_optimizer_state(states: Sequence[dict]) -> dict:
    """The group optimizer's ``state_dict()`` made of its members' solo optimizer states, in member order."""
    state, groups, offset = {}, [], 0
    for member in states:
        count = len(member["param_groups"][0]["params"])
        for index, values in member["state"].items():
            state[offset + int(index)] = values
        groups.append({**member["param_groups"][0], "params": list(range(offset, offset + count))})
        offset += count
    return {"state": state, "param_groups": groups}


class MemberSchedulers:
    """Each member's LR scheduler (None for a member without one) as the one scheduler Lightning steps for the group
    at the end of an epoch (``StackedClassifier.lr_scheduler_step``) and saves in its checkpoints."""

    def __init__(self, optimizer: torch.optim.Optimizer, schedulers: Sequence):
        self.optimizer, self.schedulers = optimizer, list(schedulers)

    def step(self, members: Sequence[int]) -> None:
        """One step of the schedulers of ``members``."""
        for k in members:
            if self.schedulers[k] is not None:
                self.schedulers[k].step()

    def state_dict(self) -> dict:
        return {"members": [s.state_dict() if s is not None else None for s in self.schedulers]}

    def load_state_dict(self, state: dict) -> None:
        for scheduler, saved in zip(self.schedulers, state["members"]):
            if scheduler is not None and saved is not None:
                scheduler.load_state_dict(saved)
