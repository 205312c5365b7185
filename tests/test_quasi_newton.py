"""The outer optimizer's BFGS (numerics/quasi_newton.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glmm_binomial.numerics.quasi_newton import STOPPED, minimize_bfgs


def rosenbrock(x: np.ndarray) -> tuple[float, np.ndarray]:
    a, b = x
    value = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    grad = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
    return float(value), grad


def test_reaches_the_minimum_of_a_curved_valley():
    found = minimize_bfgs(
        rosenbrock, np.array([-1.2, 1.0]), np.eye(2), gtol=1e-8, ftol=0.0, max_iter=500, max_step=1
    )
    assert found.success and found.message == "gradient below gtol"
    np.testing.assert_allclose(found.x, [1.0, 1.0], atol=1e-6)
    assert found.nfev >= found.nit + 1


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_a_quadratic_from_its_exact_inverse_hessian_takes_one_step(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    root = rng.normal(size=(n, n))
    hessian = root @ root.T + n * np.eye(n)
    centre = rng.normal(size=n)

    def quadratic(x):
        d = x - centre
        return 0.5 * float(d @ hessian @ d), hessian @ d

    found = minimize_bfgs(
        quadratic,
        np.zeros(n),
        np.linalg.inv(hessian),
        gtol=1e-9,
        ftol=0.0,
        max_iter=50,
        max_step=math.inf,
    )
    assert found.success and found.nit <= 2
    np.testing.assert_allclose(found.x, centre, atol=1e-8)


def test_the_step_is_capped_and_non_finite_values_shrink_it():
    # f is infinite beyond |x| > 3: the capped step of 2, then shorter ones, stay inside.
    def guarded(x):
        if abs(x[0]) > 3:
            return math.inf, np.zeros(1)
        return float((x[0] - 2.5) ** 2), np.array([2 * (x[0] - 2.5)])

    seen = []

    def recorded(x):
        seen.append(float(x[0]))
        return guarded(x)

    found = minimize_bfgs(
        recorded, np.array([-2.0]), np.eye(1) * 100, gtol=1e-10, ftol=0.0, max_iter=100, max_step=2
    )
    assert found.success
    assert found.x[0] == pytest.approx(2.5, abs=1e-8)
    assert abs(seen[1] - seen[0]) <= 2.0 + 1e-12


def test_what_stops_the_search_is_reported():
    flat_start = minimize_bfgs(
        lambda x: (math.nan, x), np.zeros(2), np.eye(2), gtol=1e-6, ftol=0, max_iter=5, max_step=1
    )
    assert not flat_start.success and "not finite" in flat_start.message
    capped = minimize_bfgs(
        rosenbrock, np.array([-1.2, 1.0]), np.eye(2), gtol=1e-12, ftol=0, max_iter=3, max_step=1
    )
    assert not capped.success and "max_iter=3" in capped.message and capped.nit == 3
    # A function that only rises along every direction the search tries.
    nowhere = minimize_bfgs(
        lambda x: (float(np.sum(x * x)), -np.ones_like(x)),
        np.zeros(2),
        np.eye(2),
        gtol=1e-12,
        ftol=0,
        max_iter=10,
        max_step=1,
        max_backtracks=5,
    )
    assert not nowhere.success and "line search" in nowhere.message
    np.testing.assert_array_equal(nowhere.x, np.zeros(2))
    relative = minimize_bfgs(
        rosenbrock, np.array([-1.2, 1.0]), np.eye(2), gtol=0.0, ftol=1e-3, max_iter=500, max_step=1
    )
    assert relative.success and "ftol" in relative.message


def test_the_callers_stop_test_ends_the_search_where_it_holds():
    """stop(x, f, g) is asked at each point reached, the start included; where it holds the
    search returns that point, not a success, with the message STOPPED."""
    seen: list[float] = []

    def below(x: np.ndarray, value: float, grad: np.ndarray) -> bool:
        seen.append(value)
        return value < 1.0

    args = {"gtol": 1e-10, "ftol": 0.0, "max_iter": 500, "max_step": 1}
    found = minimize_bfgs(rosenbrock, np.array([-1.2, 1.0]), np.eye(2), stop=below, **args)
    assert not found.success and found.message == STOPPED
    assert found.fun == seen[-1] < 1.0 and all(v >= 1.0 for v in seen[:-1])
    assert seen[0] == rosenbrock(np.array([-1.2, 1.0]))[0]
    whole = minimize_bfgs(rosenbrock, np.array([-1.2, 1.0]), np.eye(2), **args)
    assert whole.success and whole.nfev > found.nfev


def test_a_far_start_is_reached_in_lengthening_steps():
    """From 200 units out on a quadratic, steps cut to max_step = 2 would take 100 iterations;
    the doubling radius about a dozen."""
    import numpy as np

    from glmm_binomial.numerics.quasi_newton import minimize_bfgs

    def fun(x):
        return float(x @ x), 2.0 * x

    result = minimize_bfgs(
        fun,
        np.array([200.0, -120.0]),
        0.5 * np.eye(2),
        gtol=1e-8,
        ftol=0.0,
        max_iter=50,
        max_step=2.0,
    )
    assert result.success
    assert np.max(np.abs(result.x)) < 1e-6
    assert result.nit < 20
