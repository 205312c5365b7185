"""numerics/hessian.py: the one finite-difference Hessian of an exact gradient.

Its three callers (the optimizer's polish and standard errors, the bootstrap's whitening and
the marginal coefficients' covariance, the profile's scaling) each had their own loop; the
loops are kept here verbatim as references, and the shared function must give the same
numbers bit for bit on the callers' own objectives (which warm-start from their last
evaluation, so the order of the evaluations matters too).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from conftest import CBPP

import glmm_binomial as g
from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.numerics.hessian import gradient_hessian
from glmm_binomial.results.profile import ProfileControl, _Coordinates
from glmm_binomial.results.simulate import deviance_hessian

# --- the three loops as they were (references) ------------------------------------------------


def optimizer_loop(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    z: np.ndarray,
    grad: np.ndarray,
    step: float,
    scheme: str,
) -> np.ndarray:
    """numerics/optimize.py's _fd_hessian (absolute steps)."""
    n = len(z)
    hess = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = step
        if scheme == "central":
            hess[:, j] = (fun(z + e)[1] - fun(z - e)[1]) / (2.0 * step)
        else:
            hess[:, j] = (fun(z + e)[1] - grad) / step
    return 0.5 * (hess + hess.T)


def simulate_loop(
    gradient: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, step: float, central: bool
) -> np.ndarray:
    """results/simulate.py's deviance_hessian loop (relative steps)."""
    g0 = gradient(x0)
    n = len(x0)
    hess = np.empty((n, n))
    for j in range(n):
        h = step * max(1.0, abs(x0[j]))
        up = x0.copy()
        up[j] += h
        if central:
            down = x0.copy()
            down[j] -= h
            hess[:, j] = (gradient(up) - gradient(down)) / (2.0 * h)
        else:
            hess[:, j] = (gradient(up) - g0) / h
    return 0.5 * (hess + hess.T)


def profile_loop(coords: _Coordinates, p: np.ndarray, step: float) -> np.ndarray:
    """results/profile.py's _Coordinates.hessian loop (relative steps inside the bounds)."""
    n = len(p)
    hess = np.zeros((n, n))
    for j in range(n):
        h = step * max(1.0, abs(p[j]))
        up = min(p[j] + h, coords.upper[j])
        down = max(p[j] - h, coords.lower[j])
        if up <= down:
            continue
        a, b = p.copy(), p.copy()
        a[j], b[j] = up, down
        hess[:, j] = (coords.deviance_and_gradient(a)[1] - coords.deviance_and_gradient(b)[1]) / (
            up - down
        )
    return 0.5 * (hess + hess.T)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cbpp_fit():
    return g.fit(CBPP, g.datasets.load("cbpp"))


@pytest.fixture(scope="module")
def boundary_fit():
    """A fit with a random-effect SD at zero: the profile's lower bound cuts the step."""
    rng = np.random.default_rng(11)
    n = 120
    frame = pd.DataFrame(
        {
            "y": (rng.random(n) < 0.4).astype(float),
            "x": rng.normal(size=n),
            "g": np.arange(n) % 8,
            "h": np.arange(n) % 5,
        }
    )
    with pytest.warns(g.BoundaryWarning):
        result = g.fit("y ~ x + (1 | g) + (1 | h)", frame)
    assert result.singular
    return result


def laplace_gradient(result) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """A fresh Laplace objective's gradient in (theta, beta), and the estimates."""
    objective = LaplaceObjective(result.model)
    n_theta = result.model.n_theta

    def gradient(x: np.ndarray) -> np.ndarray:
        _, g_theta, g_beta = objective.deviance_and_gradient(x[:n_theta], x[n_theta:])
        return np.concatenate([g_theta, g_beta])

    return gradient, np.concatenate([result.fit_output.theta, result.fit_output.beta])


# --- the function itself ----------------------------------------------------------------------


def quadratic() -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    a = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, -0.2], [0.5, -0.2, 2.0]])
    return a, lambda x: a @ x + 0.1 * x**3


@pytest.mark.parametrize("scheme", ["forward", "central"])
@pytest.mark.parametrize("relative", [False, True])
def test_hessian_of_a_known_function(scheme, relative):
    a, gradient = quadratic()
    x = np.array([0.3, -2.0, 5.0])
    exact = a + np.diag(0.3 * x**2)
    hess = gradient_hessian(gradient, x, 1e-5, scheme=scheme, relative=relative)
    assert np.array_equal(hess, hess.T)
    np.testing.assert_allclose(hess, exact, rtol=1e-4 if scheme == "forward" else 1e-8)


@pytest.mark.parametrize("scheme", ["forward", "central"])
def test_one_column_gives_the_full_hessians_diagonal_entry(scheme):
    # taken_over_fall's curvature without an exact Hessian: one column, the same value.
    _, gradient = quadratic()
    x = np.array([0.3, -2.0, 5.0])
    full = gradient_hessian(gradient, x, 1e-5, scheme=scheme)
    for j in range(3):
        one = gradient_hessian(gradient, x, 1e-5, scheme=scheme, columns=(j,))
        assert one[j, j] == full[j, j]


def test_bounds_keep_the_points_inside_and_divide_by_the_distance_used():
    a, gradient = quadratic()
    x = np.array([0.0, 1.0, 2.0])
    seen = []

    def recorded(point: np.ndarray) -> np.ndarray:
        seen.append(point.copy())
        return gradient(point)

    lower = np.array([0.0, -np.inf, 2.0])
    upper = np.array([np.inf, np.inf, 2.0])  # the last coordinate cannot move at all
    hess = gradient_hessian(
        recorded, x, 1e-3, scheme="central", relative=True, lower=lower, upper=upper
    )
    assert all(np.all(p >= lower) and np.all(p <= upper) for p in seen)
    assert len(seen) == 4  # no evaluation for the pinned coordinate
    assert hess[2, 2] == 0.0
    # One-sided at the lower bound: (g(h) - g(0)) / h, exact for the quadratic part.
    assert hess[0, 0] == pytest.approx(a[0, 0], rel=1e-6)


def test_scheme_and_bounds_are_checked():
    _, gradient = quadratic()
    x = np.zeros(3)
    with pytest.raises(ValueError, match="scheme must be one of"):
        gradient_hessian(gradient, x, 1e-4, scheme="backward")
    with pytest.raises(ValueError, match="central differences only"):
        gradient_hessian(gradient, x, 1e-4, lower=np.zeros(3))


# --- the same numbers as each caller's own loop -----------------------------------------------


@pytest.mark.parametrize("scheme", ["forward", "central"])
def test_optimizer_hessian_as_before(cbpp_fit, scheme):
    # The optimizer differentiates fun(z) -> (deviance, gradient) in whitened coordinates with
    # an absolute step; here z are the natural coordinates shifted to the estimates.
    def make_fun() -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        gradient, x0 = laplace_gradient(cbpp_fit)
        return lambda z: (0.0, gradient(x0 + z))

    z = np.zeros(cbpp_fit.model.n_theta + cbpp_fit.model.n_fixed)
    old_fun, new_fun = make_fun(), make_fun()
    grad_old, grad_new = old_fun(z)[1], new_fun(z)[1]
    old = optimizer_loop(old_fun, z, grad_old, 1e-4, scheme)
    new = gradient_hessian(lambda v: new_fun(v)[1], z, 1e-4, scheme=scheme, gradient_at_x=grad_new)
    assert np.array_equal(old, new)


@pytest.mark.parametrize("central", [False, True])
@pytest.mark.parametrize("which", ["cbpp_fit", "boundary_fit"])
def test_deviance_hessian_as_before(request, which, central):
    result = request.getfixturevalue(which)
    gradient, x0 = laplace_gradient(result)
    old = simulate_loop(gradient, x0, 1e-4, central)
    assert np.array_equal(deviance_hessian(result, central=central), old)


@pytest.mark.parametrize("which", ["cbpp_fit", "boundary_fit"])
def test_profile_hessian_as_before(request, which):
    result = request.getfixturevalue(which)
    control = ProfileControl()
    old_coords = _Coordinates.build(result.model, control.correlation_limit, LaplaceObjective)
    new_coords = _Coordinates.build(result.model, control.correlation_limit, LaplaceObjective)
    p = old_coords.from_theta_beta(result.fit_output.theta, result.fit_output.beta)
    old = profile_loop(old_coords, p, control.hessian_step)
    assert np.array_equal(new_coords.hessian(p, control.hessian_step), old)
    if which == "boundary_fit":
        # An SD within one step of 0: its lower point is cut at the bound.
        assert np.any(p[: old_coords.n_var] < control.hessian_step)
