"""The family object (src/glmm_binomial/family.py): the row likelihood and its derivatives that
PIRLS, the exact gradients and AGQ take from it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from glmm_binomial.family import BINOMIAL_LOGIT, loglik_kernel

ETA = st.floats(min_value=-30.0, max_value=30.0)


@settings(max_examples=60, deadline=None)
@given(eta=ETA, trials=st.integers(1, 40), share=st.floats(0.0, 1.0))
def test_weights_residual_and_slope_are_the_derivatives_of_the_row_loglik(eta, trials, share):
    family = BINOMIAL_LOGIT
    k = np.array([np.floor(share * trials)])
    m = np.array([float(trials)])
    e = np.array([eta])
    step = 1e-5

    def loglik(x):
        return float(family.loglik_rows(np.array([x]), k, m)[0])

    mu = family.inverse_link(e)
    w, r = family.weights_and_residual(e, mu, k, m)
    first = (loglik(eta + step) - loglik(eta - step)) / (2 * step)
    second = (loglik(eta + step) - 2 * loglik(eta) + loglik(eta - step)) / step**2
    assert np.isclose(r[0], first, rtol=1e-5, atol=1e-6 * trials)
    assert np.isclose(w[0], -second, rtol=1e-3, atol=1e-4 * trials)
    w_up, _ = family.weights_and_residual(e + step, family.inverse_link(e + step), k, m)
    w_down, _ = family.weights_and_residual(e - step, family.inverse_link(e - step), k, m)
    slope = family.weight_slope(e, mu, w)
    assert np.isclose(slope[0], (w_up[0] - w_down[0]) / (2 * step), rtol=1e-4, atol=1e-7 * trials)
    assert np.isclose(family.residual(e, k, m)[0], r[0])


def test_loglik_and_residual_rows_in_place_equal_the_plain_ones():
    rng = np.random.default_rng(1)
    eta = rng.normal(0, 5, size=(50, 7))
    m = rng.integers(1, 10, size=50).astype(float)[:, None]
    k = np.floor(rng.random((50, 1)) * (m + 1))
    plain = loglik_kernel(eta, k, m)
    residual = BINOMIAL_LOGIT.residual(eta, k, m)
    work = eta.copy()
    loglik, r = BINOMIAL_LOGIT.loglik_and_residual_rows(
        work, k, m, (np.empty_like(eta), np.empty_like(eta))
    )
    np.testing.assert_allclose(loglik, plain, rtol=1e-14, atol=1e-12)
    np.testing.assert_allclose(r, residual, rtol=1e-14, atol=1e-14)


def test_simulate_uses_the_inverse_link_and_needs_whole_trials():
    rng = np.random.default_rng(2)
    eta = np.full(20000, 0.4)
    draws = BINOMIAL_LOGIT.simulate(eta, np.full(20000, 3.0), rng)
    assert abs(draws.mean() / 3.0 - BINOMIAL_LOGIT.inverse_link(np.array([0.4]))[0]) < 0.01
    try:
        BINOMIAL_LOGIT.simulate(eta[:2], np.array([1.5, 2.0]), rng)
    except ValueError as error:
        assert "whole numbers" in str(error)
    else:
        raise AssertionError("fractional trials were simulated")
