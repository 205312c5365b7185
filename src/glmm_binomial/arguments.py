"""Checks of the numbers users pass as arguments, one message per kind, naming the argument.

A bool is refused where a number is asked for (True is an int in Python, never meant as 1),
and so are text ("0.95": a spreadsheet's or CLI's text is converted by its front end, not
here), NaN and infinities.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

__all__ = ["fraction", "non_negative", "positive", "positive_int", "real"]


def real(value: Any) -> float | None:
    """value as a finite float when it is a real number (Python's or numpy's), else None."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def positive(value: Any, name: str) -> float:
    """value as a finite float above 0 (a scale, a resolution); ValueError naming `name`
    otherwise."""
    number = real(value)
    if number is None or number <= 0.0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number


def positive_int(value: Any, name: str) -> int:
    """value as an int of at least 1 (a count: simulations, replicates, workers, nodes), from
    Python's or numpy's integers; ValueError naming `name` otherwise (2.0 included: a count
    given as a float is a mistake somewhere)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def fraction(value: Any, name: str) -> float:
    """value as a float strictly between 0 and 1 (a confidence level, alpha); ValueError
    naming `name` otherwise."""
    number = real(value)
    if number is None or not 0.0 < number < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return number


def non_negative(value: Any, name: str) -> float:
    """value as a finite float of at least 0 (a tolerance, an SD); ValueError naming `name`
    otherwise."""
    number = real(value)
    if number is None or number < 0.0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return number
