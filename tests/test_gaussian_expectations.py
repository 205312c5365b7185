"""Gauss-Hermite expectations of structured variational Bayes against adaptive quadrature."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate
import scipy.special

from glmm_binomial.numerics.gaussian_expectations import expected_log1pexp, expected_log_cosh


def _normal_expectation(f, m: float, s: float) -> float:
    """E[f(m + s Z)], Z ~ N(0, 1), by adaptive quadrature."""
    return scipy.integrate.quad(
        lambda z: f(m + s * z) * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi), -40, 40
    )[0]


def test_expected_log1pexp_against_adaptive_quadrature():
    means = np.array([-6.0, -1.3, 0.0, 0.4, 2.5, 7.0, -0.2, 1.1])
    sds = np.array([0.05, 0.2, 0.35, 0.6, 0.8, 1.1, 1.4, 1.8])
    value, d_mean, d_var = expected_log1pexp(means, sds**2)
    for m, s, v, dm, dv in zip(means, sds, value, d_mean, d_var, strict=True):
        softplus = _normal_expectation(lambda e: np.logaddexp(0, e), m, s)
        slope = _normal_expectation(scipy.special.expit, m, s)
        curve = _normal_expectation(
            lambda e: 0.5 * scipy.special.expit(e) * scipy.special.expit(-e), m, s
        )
        assert v == pytest.approx(softplus, abs=1e-10)
        assert dm == pytest.approx(slope, abs=1e-9)
        assert dv == pytest.approx(curve, abs=1e-8)


def test_expected_log_cosh():
    for m, s in ((-0.8, 0.1), (0.3, 0.5), (1.2, 1.0)):
        value, d_mean, d_var = expected_log_cosh(np.array([m]), np.array([s * s]))
        exact = _normal_expectation(lambda y: np.log(np.cosh(y)), m, s)
        assert value[0] == pytest.approx(exact, abs=1e-10)
        assert d_mean[0] == pytest.approx(_normal_expectation(np.tanh, m, s), abs=1e-9)


def test_many_rows_take_each_its_own_rule():
    """Above the single-rule size, rows with larger SDs get more nodes: the result equals the
    row-by-row evaluation."""
    rng = np.random.default_rng(2)
    n = 5000
    mean = rng.normal(scale=2.0, size=n)
    sd = np.where(rng.random(n) < 0.9, 0.2, 1.4)
    value, d_mean, d_var = expected_log1pexp(mean, sd * sd)
    for i in range(0, n, 499):
        v, dm, dv = expected_log1pexp(mean[i : i + 1], sd[i : i + 1] ** 2)
        assert value[i] == pytest.approx(v[0], abs=1e-10)
        assert d_mean[i] == pytest.approx(dm[0], abs=1e-9)
        assert d_var[i] == pytest.approx(dv[0], abs=1e-8)
