"""The step-length rules that the mode search, the quasi-Newton search and Newton's method on
the outer problem share: after a trial step that did not decrease the objective enough, the next
trial length (backtracked); and the longest step the outer searches take next (next_radius)."""

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


RADIUS_GROWTH = 16.0
"""The outer searches' longest step grows to at most this many times its starting length."""


def next_radius(radius: float, max_step: float, capped: bool, whole: bool) -> float:
    """The longest step of the next iteration of an outer search whose steps start at most
    max_step long: doubled (up to RADIUS_GROWTH times max_step) after a step cut to `radius`
    and taken whole (a start many standard errors out, as on large data, where every step is
    cut and accepted), back to max_step otherwise (a shortened or uncut step: the model is
    trusted no further than the first step)."""
    if capped and whole:
        return min(2.0 * radius, RADIUS_GROWTH * max_step)
    return max_step
