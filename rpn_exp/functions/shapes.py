"""Shape arithmetic shared by the structured functions: divisors, the automatic choice of p and q, and the rule
that fits a requested p or q to a layer."""

from __future__ import annotations

import functools
import math


@functools.lru_cache(maxsize=1024)
def divisors(k: int) -> tuple[int, ...]:
    """All positive divisors of ``k`` in increasing order (cached: layers ask for them on every call)."""
    if k < 1:
        raise ValueError(f"cannot take divisors of {k}: a dimension must be a positive integer")
    small = [d for d in range(1, math.isqrt(k) + 1) if k % d == 0]
    return tuple(sorted(set(small + [k // d for d in small])))


def auto_factor(k: int) -> int:
    """The largest divisor of ``k`` that is at most ``isqrt(k)`` (1 for primes).

    Examples: ``auto_factor(6) == 2``, ``auto_factor(12) == 3``, ``auto_factor(784 * 785) == 784``.
    """
    root = math.isqrt(k)
    return max(d for d in divisors(k) if d <= root)


def fit_factor(value: int, k: int) -> int:
    """The factor a requested ``value`` gives a dimension ``k``: ``value`` itself where it divides ``k``, else the
    largest divisor of ``k`` below it (the p/q rule, docs/guide/sweeps.md "p and q on every layer").

    Examples: ``fit_factor(4, 64) == 4``, ``fit_factor(4, 10) == 2``, ``fit_factor(16, 10) == 10``.
    """
    return max(d for d in divisors(k) if d <= value)


def resolve_factor(value: int | None, k: int, *, factor: str, owner: str, dim: str = "") -> int:
    """The factor in force for a dimension ``k`` (named ``dim``, e.g. ``"n"``): the automatic factor of ``k`` if
    ``value`` is None, else :func:`fit_factor` (``value`` where it divides ``k``, the largest divisor of ``k`` below
    it elsewhere).

    Raises:
        ValueError: naming the function and the factor when ``value`` is not an integer >= 1.
    """
    if value is None:
        return auto_factor(k)
    return fit_factor(check_positive_int(value, name=factor, owner=owner), k)


def is_positive_int(value) -> bool:
    """Whether ``value`` is an integer >= 1 (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_positive_int(value, *, name: str, owner: str | None = None) -> int:
    """Reject anything but an integer >= 1 with a message naming the hyper-parameter (and its owner, if given)."""
    if not is_positive_int(value):
        raise ValueError(f"{owner + ': ' if owner else ''}{name}={value!r} is invalid; it must be an integer >= 1")
    return value
