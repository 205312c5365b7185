"""numerics.step_length: the backtracking rule of the mode search and the outer searches."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glmm_binomial.numerics.step_length import SHRINK_BOUNDS, backtracked


def test_minimum_of_the_quadratic_when_it_lies_within_the_bounds():
    # f(t) = (t - 0.3)^2 - 0.09: f(0) = 0, f'(0) = -0.6, f(1) = 0.4; minimum at 0.3.
    assert backtracked(1.0, 0.0, 0.4, -0.6) == pytest.approx(0.3)
    # The same on a step of 2: f(2) = 2.8; the minimum still at 0.3 (0.15 of the step).
    assert backtracked(2.0, 0.0, 2.8, -0.6) == pytest.approx(0.3)
    # A far overshoot: the quadratic's minimum below a tenth of the step, kept at a tenth.
    assert backtracked(1.0, 0.0, 1e6, -0.6) == pytest.approx(SHRINK_BOUNDS[0])


def test_non_finite_trial_and_no_curvature():
    low, high = SHRINK_BOUNDS
    assert backtracked(1.0, 5.0, math.inf, -1.0) == low
    assert backtracked(0.5, 5.0, math.nan, -1.0) == 0.5 * low
    # The trial lies below the tangent: no positive curvature, half the step.
    assert backtracked(1.0, 5.0, 3.0, -1.0) == high


@given(
    step=st.floats(1e-8, 1e3),
    value=st.floats(-1e6, 1e6),
    rise=st.floats(0.0, 1e6),
    slope=st.floats(-1e6, -1e-12),
)
def test_always_within_the_bounds_of_the_failed_step(step, value, rise, slope):
    low, high = SHRINK_BOUNDS
    shorter = backtracked(step, value, value + rise, slope)
    assert low * step * (1 - 1e-12) <= shorter <= high * step * (1 + 1e-12)


def test_the_radius_doubles_while_cut_steps_are_taken_whole_and_as_the_model_expects():
    from glmm_binomial.numerics.step_length import (
        RADIUS_GROWTH,
        RADIUS_PATIENCE,
        model_change,
        next_radius,
    )

    radius, streak = 2.0, 0
    sizes = []
    for _ in range(8):
        radius, streak = next_radius(radius, 2.0, streak, True, True, 0.9)
        sizes.append(radius)
    assert sizes[: RADIUS_PATIENCE - 1] == [2.0] * (RADIUS_PATIENCE - 1)
    assert sizes[RADIUS_PATIENCE - 1] == 4.0
    assert max(sizes) == RADIUS_GROWTH * 2.0
    # A shortened, an uncut or a badly predicted step: back to max_step, the streak restarts.
    for capped, whole, agreement in ((True, False, 0.9), (False, True, 0.9), (True, True, 0.5)):
        assert next_radius(radius, 2.0, streak, capped, whole, agreement) == (2.0, 0)
    # The model's change along a whole Newton step is half its slope; along a cut one more.
    assert model_change(-4.0, 1.0) == -2.0
    assert model_change(-1.0, 0.1) == pytest.approx(-0.95)
