"""The backtracking rule that the mode search, the quasi-Newton search and Newton's method on
the outer problem share: after a trial step that did not decrease the objective enough, the next
trial length."""

from __future__ import annotations

import math

SHRINK_BOUNDS = (0.1, 0.5)
"""A backtracked step is at least this first fraction and at most this second fraction of the
step that failed."""


def backtracked(step: float, value: float, trial_value: float, slope: float) -> float:
    """The next trial step length after `step` failed: the minimum of the quadratic through
    f(0) = value, f'(0) = slope (< 0, along the direction) and f(step) = trial_value, kept
    within SHRINK_BOUNDS of step (a far overshoot, as saturated fitted probabilities give,
    then shrinks in one go); the smallest fraction when trial_value is not finite."""
    low, high = SHRINK_BOUNDS
    if not math.isfinite(trial_value):
        return step * low
    curvature = trial_value - value - slope * step
    shrink = -slope * step / (2.0 * curvature) if curvature > 0 else high
    return step * min(max(shrink, low), high)
