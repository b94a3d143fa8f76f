"""How long each unit of a stacked sweep will train, measured before any starts: the order its workers take them in.

With ``hydra.launcher.n_jobs`` > 1 the stacked launcher (``launcher=stacked``) hands its units (stacked groups and
solo jobs) to its workers in the order that ends soonest by their estimated lengths, so that no worker trains alone
for long at the end (:func:`launch_order`: a search over the orders of a few units, longest first for many).
A unit's length is estimated as

    cost = t_step · epochs · ⌈K / max_members⌉ / batch_size

with t_step the median time of a few training steps of the unit's stack (forward, backward, its optimizer's step):
its largest member (the shape every member trains in, padded) K' = min(K, max_members) times, on random inputs of
the unit's batch size, with a worker's threads. That is the time per training sample of the whole unit; the units
of one sweep read their data's training split once an epoch. Member counts mislead: the paper's model in the
reference layout, 3 members, trains longer than 15 MLPs of width 4 to 64 (``BENCHMARKS.md``, the first study
stacked).
"""

from __future__ import annotations

import copy
import heapq
import itertools
import logging
import math
import statistics
import time
from collections.abc import Sequence

import torch
from omegaconf import DictConfig

from rpn_exp.config.build import build_datamodule, build_network, instantiate_node
from rpn_exp.config.settings import run_settings
from rpn_exp.nn.stack import MemberStack, member_losses
from rpn_exp.run.stacked.optimizer import group_optimizer

log = logging.getLogger(__name__)

#: Training steps timed per unit (after one untimed): the median is its t_step.
PROBE_STEPS = 10
#: Units ordered by a search over every order (7! = 5,040 of them); more go longest first.
SEARCHED = 7


def largest(cfgs: Sequence[DictConfig]) -> DictConfig:
    """The config whose network has the most parameters (the shape a padded group trains in); built on the meta
    device, nothing allocated."""
    def size(cfg: DictConfig) -> int:
        data = build_datamodule(cfg)
        net = build_network(cfg, data.num_features, data.num_classes, shapes_only=True, grid=data.grid)
        return sum(p.numel() for p in net.parameters())

    return max(cfgs, key=size)


def step_ms(cfg: DictConfig, members: int, threads: int, steps: int = PROBE_STEPS) -> float:
    """Median milliseconds of a training step (forward, backward, the optimizer's step) of ``members`` copies of
    ``cfg``'s network stacked, on ``dataset.batch_size`` random inputs each, computed with ``threads`` threads."""
    data, settings = build_datamodule(cfg), run_settings(cfg)
    batch = settings.batch_size or 64
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = build_network(cfg, data.num_features, data.num_classes, grid=data.grid)
            nets = [net, *(copy.deepcopy(net) for _ in range(members - 1))]
            stack = MemberStack(nets)
            factory = instantiate_node(settings.optimizer, "optimizer")
            optimizer = group_optimizer([factory] * members, [list(n.parameters()) for n in nets])
            x = torch.randn(members, batch, data.num_features)
            y = torch.randint(0, data.num_classes, (members, batch))
            times = []
            for _ in range(steps + 1):
                start = time.perf_counter()
                stack.zero_grad()
                member_losses(stack(x), y).sum().backward()
                stack.member_grads()
                optimizer.step()
                times.append((time.perf_counter() - start) * 1e3)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(times[1:])


def unit_cost(cfgs: Sequence[DictConfig], max_members: int, threads: int) -> float:
    """The estimated length of a unit (see the module): t_step · epochs · ⌈K / max_members⌉ / batch_size, in
    milliseconds per training sample; infinite where its network cannot be built (it fails first, quickly)."""
    quiet = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the networks' own warnings come when they train
    try:
        cfg = largest(cfgs)
        ms = step_ms(cfg, min(len(cfgs), max_members), threads)
    except Exception as error:  # noqa: BLE001 - the run itself reports it, with its key
        log.debug("no cost estimate for a unit: %s", error)
        return math.inf
    finally:
        logging.disable(quiet)
    epochs = max(run_settings(c).max_epochs for c in cfgs)
    return ms * epochs * math.ceil(len(cfgs) / max_members) / (run_settings(cfg).batch_size or 64)


def makespan(costs: Sequence[float], order: Sequence[int], workers: int) -> float:
    """When the last unit ends if the units go, in ``order``, each to the first worker free (list scheduling)."""
    free = [0.0] * workers  # a heap of the times the workers come free
    for i in order:
        heapq.heapreplace(free, free[0] + costs[i])
    return max(free)


def launch_order(costs: Sequence[float], configurations: Sequence[int], workers: int, pruning: bool) -> list[int]:
    """The units' indices in the order the workers take them: the order that ends soonest by the estimates
    (:func:`makespan`), searched over every order of up to :data:`SEARCHED` units, else longest first; of equal
    orders the one nearest longest first (ties in their given order).

    With a pruner the ``workers − 1`` units holding the most configurations start first and the search orders the
    others: a configuration is stopped only against others at the same rung, so the units that report the most rungs
    go early (the first study's MLPs, last, would report theirs after the units they dominate ended).
    """
    longest = sorted(range(len(costs)), key=lambda i: -costs[i])
    if len(longest) <= workers:  # all start at once
        return longest
    first = sorted(longest, key=lambda i: -configurations[i])[:workers - 1] if pruning else []
    rest = [i for i in longest if i not in first]
    if len(rest) > SEARCHED:
        return first + rest
    def ends(order: tuple[int, ...]) -> float:
        return round(makespan(costs, first + list(order), workers), 9)  # sums in another order tie

    return first + list(min(itertools.permutations(rest), key=ends))
