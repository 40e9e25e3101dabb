"""Checks of the numbers the API functions take (counts, timesteps, rates, seeds, arrays): each
refuses a bad value with a ValueError that starts with the field's name, so the message names
what the caller typed (``T``, ``samples``, ``--random-input`` ...). NaN and inf never pass a
check: every comparison with NaN is false, and each check is written as the condition a good
value meets."""

from __future__ import annotations

import math
import numbers

import numpy as np


def check_count(name: str, v: object, *, minimum: int = 1) -> int:
    """``v`` as an int, or ValueError unless it is an integer (not a bool) >= ``minimum``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def check_optional_count(name: str, v: object, *, minimum: int = 1) -> int | None:
    """:func:`check_count`, with ``None`` (meaning "all" or "the default") passed through."""
    return None if v is None else check_count(name, v, minimum=minimum)


def _real(v: object) -> float:
    """``v`` as a float when it is a real number (not a bool), else NaN (which no check admits)."""
    return float(v) if isinstance(v, numbers.Real) and not isinstance(v, bool) else math.nan


def check_nonnegative(name: str, v: object) -> float:
    """``v`` as a float, or ValueError unless it is a finite real number >= 0."""
    x = _real(v)
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return x


def nonfinite_counts(a: np.ndarray) -> tuple[int, int]:
    """(number of NaN, number of +-inf) values in ``a`` (0, 0 for an integer array)."""
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.inexact):
        return 0, 0
    return int(np.isnan(a).sum()), int(np.isinf(a).sum())


def describe_nonfinite(a: np.ndarray) -> str | None:
    """``"2 NaN and 1 inf value(s) of 60 (first at index (0, 3))"``, or None when ``a`` is
    finite."""
    a = np.asarray(a)
    nan, inf = nonfinite_counts(a)
    if not nan and not inf:
        return None
    first = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
    return f"{nan} NaN and {inf} inf value(s) of {a.size} (first at index {first})"
