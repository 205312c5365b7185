"""The step-length rules that the mode search, the quasi-Newton search and Newton's method on
the outer problem share: after a trial step that did not decrease the objective enough, the next
trial length (backtracked); and the longest step the outer searches take (StepRadius, by
next_radius)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

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

RADIUS_AGREEMENT = 0.75
"""The longest step grows only after a step whose actual change of the objective was at least
this fraction of the quadratic model's (the trust-region rule)."""


def model_change(slope: float, fraction: float) -> float:
    """The quadratic model's change of the objective along a (quasi-)Newton step d (B d = -g)
    cut to `fraction` of its length, slope being the cut step's g'd: c g'd0 + c^2 d0'B d0 / 2 =
    slope (1 - c / 2), with c the fraction and d0 the whole step (d0'B d0 = -g'd0)."""
    return slope * (1.0 - 0.5 * fraction)


RADIUS_PATIENCE = 2
"""The longest step grows from this many such steps in a row on (one alone is common on small
fits, whose next step is then no longer cut)."""


def next_radius(
    radius: float, max_step: float, streak: int, capped: bool, whole: bool, agreement: float
) -> tuple[float, int]:
    """The longest step of the next iteration of an outer search whose steps start at most
    max_step long, and the new streak of steps cut to the radius, taken whole and changing the
    objective by at least RADIUS_AGREEMENT of the quadratic model's change (`agreement`, the
    trust-region rule). From RADIUS_PATIENCE such steps in a row the radius doubles (up to
    RADIUS_GROWTH times max_step: a start many standard errors out, as on large data, where
    every step is cut and accepted); any other step returns it to max_step."""
    if not (capped and whole and agreement >= RADIUS_AGREEMENT):
        return max_step, 0
    streak += 1
    if streak >= RADIUS_PATIENCE:
        return min(2.0 * radius, RADIUS_GROWTH * max_step), streak
    return radius, streak


class StepRadius:
    """The longest step of an outer search (Euclidean, whitened units), starting at max_step:
    cut() shortens each (quasi-)Newton direction to it and remembers how; taken() then moves
    it by next_radius from the change of the objective the step made."""

    def __init__(self, max_step: float) -> None:
        self.max_step = max_step
        self.radius = max_step
        self.streak = 0
        self.length = 0.0
        self.capped = False
        self.fraction = 1.0
        self.slope = 0.0

    def cut(
        self, direction: NDArray[np.float64], slope: float
    ) -> tuple[NDArray[np.float64], float]:
        """The direction (g'd = slope) shortened to the radius when longer (in place), and its
        slope; `length` is its length before, `capped` whether it was cut."""
        self.length = float(np.sqrt(direction @ direction))
        self.capped = self.length > self.radius
        self.fraction = self.radius / self.length if self.capped else 1.0
        direction *= self.fraction
        self.slope = slope * self.fraction
        return direction, self.slope

    def taken(self, whole: bool, change: float) -> None:
        """The cut step was taken (whole: at its full length) and changed the objective by
        `change`."""
        agreement = change / model_change(self.slope, self.fraction)
        self.radius, self.streak = next_radius(
            self.radius, self.max_step, self.streak, self.capped, whole, agreement
        )
