"""The family object (src/glmm_binomial/family.py): the row likelihood and its derivatives that
PIRLS, the exact gradients and AGQ take from it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import special

import glmm_binomial.family as family_module
from glmm_binomial.family import (
    BINOMIAL_LOGIT,
    CHUNK_ROWS,
    LINKS,
    BetaBinomial,
    Binomial,
    log_binomial_coefficient,
    loglik_kernel,
    make_family,
    parse_family,
)

ETA = st.floats(min_value=-30.0, max_value=30.0)


@settings(max_examples=60, deadline=None)
@given(eta=ETA, trials=st.integers(1, 40), share=st.floats(0.0, 1.0))
@example(eta=29.999999999999996, trials=5, share=1.0)  # the second difference's rounding
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
    # The second difference divides rounding of the row loglik (terms of size trials * |eta|,
    # whose difference is taken) by step^2: far out that error outgrows a fixed atol.
    rounding = 8.0 * np.finfo(float).eps * trials * (abs(eta) + 1.0) / step**2
    assert np.isclose(w[0], -second, rtol=1e-3, atol=1e-4 * trials + rounding)
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


# --- the other links and the beta-binomial ---------------------------------------------------


SYMMETRIC_ETA = st.floats(min_value=-40.0, max_value=40.0)
LOG_ETA = st.floats(min_value=-40.0, max_value=-1e-3)


def _family(link):
    return make_family(link=link)


def _derivative(function, eta, step):
    """Central difference of a row function at eta (one row)."""
    return (function(eta + step) - function(eta - step)) / (2.0 * step)


def _check_chain(family, eta, k, m, rtol):
    """l' against differences of l, w against differences of l', dw/deta against differences
    of w: each analytic derivative against the one before it."""
    k_, m_ = np.array([k]), np.array([m])

    def loglik(x):
        return float(family.loglik_rows(np.array([x]), k_, m_)[0])

    def residual(x):
        return float(family.residual(np.array([x]), k_, m_)[0])

    def weight(x):
        e = np.array([x])
        return float(family.weights_and_residual(e, family.inverse_link(e), k_, m_)[0][0])

    e = np.array([eta])
    w, r = family.weights_and_residual(e, family.inverse_link(e), k_, m_)
    slope = family.weight_slope(e, family.inverse_link(e), w, k_, m_)
    step = 1e-5 * max(1.0, abs(eta))
    if np.isfinite(family.eta_upper):  # the differences stay below the bound
        step = min(step, 1e-3 * (family.eta_upper - eta))
    scale = max(1.0, m)
    assert np.isfinite([loglik(eta), r[0], w[0], slope[0]]).all()
    assert r[0] == pytest.approx(_derivative(loglik, eta, step), rel=rtol, abs=rtol * scale)
    assert r[0] == pytest.approx(residual(eta), rel=1e-12, abs=1e-14)
    assert -w[0] == pytest.approx(_derivative(residual, eta, step), rel=rtol, abs=rtol * scale)
    assert slope[0] == pytest.approx(_derivative(weight, eta, step), rel=rtol, abs=rtol * scale)


@settings(max_examples=60, deadline=None)
@given(
    link=st.sampled_from(["probit", "cloglog", "cauchit"]),
    eta=SYMMETRIC_ETA,
    trials=st.integers(1, 30),
    share=st.floats(0.0, 1.0),
)
def test_each_links_derivatives_are_exact_over_eta_with_extremes(link, eta, trials, share):
    k = float(np.floor(share * trials))
    _check_chain(_family(link), eta, k, float(trials), 1e-5)


@settings(max_examples=40, deadline=None)
@given(eta=LOG_ETA, trials=st.integers(1, 30), share=st.floats(0.0, 1.0))
def test_log_link_derivatives_are_exact_below_zero(eta, trials, share):
    k = float(np.floor(share * trials))
    _check_chain(_family("log"), eta, k, float(trials), 1e-5)


@settings(max_examples=40, deadline=None)
@given(
    link=st.sampled_from(list(LINKS)),
    eta=st.floats(min_value=-6.0, max_value=4.0),
    trials=st.integers(2, 30),
    share=st.floats(0.0, 1.0),
    log_phi=st.floats(min_value=-2.0, max_value=7.0),
)
def test_beta_binomial_derivatives_in_eta_and_log_phi(link, eta, trials, share, log_phi):
    if link == "log":
        eta = -abs(eta) - 0.05
    family = BetaBinomial(link, float(np.exp(log_phi)))
    k = float(np.floor(share * trials))
    _check_chain(family, eta, k, float(trials), 1e-5)
    e, k_, m_ = np.array([eta]), np.array([k]), np.array([float(trials)])
    step = 1e-5
    up = family.with_parameters(np.array([log_phi + step]))
    down = family.with_parameters(np.array([log_phi - step]))
    loglik_p, residual_p, weights_p = family.parameter_rows(e, k_, m_)

    def weights(f):
        return f.weights_and_residual(e, f.inverse_link(e), k_, m_)

    numeric = [
        (up.loglik_rows(e, k_, m_) - down.loglik_rows(e, k_, m_)) / (2 * step),
        (weights(up)[1] - weights(down)[1]) / (2 * step),
        (weights(up)[0] - weights(down)[0]) / (2 * step),
    ]
    for analytic, difference in zip((loglik_p, residual_p, weights_p), numeric, strict=True):
        assert analytic[0] == pytest.approx(difference[0], rel=1e-5, abs=1e-6)
    assert family.parameter_loglik_rows(e, k_, m_)[0] == pytest.approx(loglik_p[0], rel=1e-13)


def test_extreme_linear_predictors_stay_finite_and_exact():
    """cloglog at eta = 40 and probit at eta = -40 (and beyond): exact log-likelihoods, finite
    derivatives."""
    probit, cloglog = _family("probit"), _family("cloglog")
    one = np.array([1.0])
    for eta in (-40.0, -1e4):
        value = probit.loglik_rows(np.array([eta]), one, one)[0]
        assert value == pytest.approx(special.log_ndtr(eta), rel=1e-13)
    # log(1 - mu) = -e^eta exactly; log mu = 0 to double precision.
    assert cloglog.loglik_rows(np.array([40.0]), np.zeros(1), one)[0] == -np.exp(40.0)
    assert cloglog.loglik_rows(np.array([40.0]), one, one)[0] == 0.0
    # Far below: log mu = eta (mu = e^eta to first order).
    assert cloglog.loglik_rows(np.array([-40.0]), one, one)[0] == pytest.approx(-40.0, rel=1e-15)
    for family in (probit, cloglog, _family("cauchit")):
        eta = np.array([-1e4, -40.0, -8.0, 8.0, 40.0, 1e4])
        k = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
        m = np.full(6, 3.0)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            mu, loglik = family.mean_and_loglik(eta, k, m)
            w, r = family.weights_and_residual(eta, mu, k, m)
            slope = family.weight_slope(eta, mu, w, k, m)
        assert np.isfinite([loglik, *w, *r, *slope]).all()
        # Rows x quadrature nodes (AGQ): the same values column by column.
        nodes = np.column_stack([eta, eta[::-1]])
        by_node = family.loglik_rows(nodes, k[:, None], m[:, None])
        np.testing.assert_array_equal(by_node[:, 0], family.loglik_rows(eta, k, m))
        residual = family.residual(nodes, k[:, None], m[:, None])
        np.testing.assert_array_equal(residual[:, 1], family.residual(eta[::-1], k, m))
    # The log link: zero likelihood above eta = 0, finite derivatives at its edge.
    log = _family("log")
    assert log.loglik_rows(np.array([0.1]), one, 2 * one)[0] == -np.inf
    assert log.loglik_rows(np.array([0.0]), one, one)[0] == 0.0  # mu = 1, one success
    assert np.isfinite(log.weights_and_residual(np.zeros(1), one, one, 2 * one)).all()


def test_the_beta_binomials_likelihood_is_zero_past_the_log_links_bound():
    """Past eta = 0 (mu > 1) no probability, as the binomial's; it was carried on flat at its
    value on the bound (0 for a row of all successes), so mode searches crawled past it."""
    family = BetaBinomial("log", phi=3.0)
    eta = np.array([-0.5, 0.0, 1e-9, 0.3])
    k, m = np.full(4, 4.0), np.full(4, 4.0)
    rows = family.loglik_rows(eta, k, m)
    assert np.isfinite(rows[:2]).all() and rows[1] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(rows[2:], [-np.inf, -np.inf])
    assert family.mean_and_loglik(eta, k, m)[1] == -np.inf
    # Rows x quadrature nodes (AGQ) alike.
    nodes = family.loglik_rows(np.column_stack([eta, eta[::-1]]), k[:, None], m[:, None])
    np.testing.assert_array_equal(nodes[:, 0], rows)


def test_cloglog_weights_are_exact_where_e_eta_is_tiny():
    """1 - q - t from its series: with k = 2 of m = 4, w = 2 t + t - t^2 / 3 + O(t^4) as
    t = e^eta -> 0 (q = 1 - t / 2 + t^2 / 12 - ..., -q (1 - q - t) = t / 2 - t^2 / 6 + ...)."""
    family = _family("cloglog")
    k, m = np.array([2.0]), np.array([4.0])
    for eta in (-40.0, -20.0, -10.0):
        t = np.exp(eta)
        w, _ = family.weights_and_residual(np.array([eta]), None, k, m)
        assert w[0] == pytest.approx(3.0 * t - t * t / 3.0, rel=1e-12)


@pytest.mark.parametrize("link", ["probit", "cloglog", "cauchit", "log"])
def test_long_arrays_in_pieces_equal_the_row_functions(link):
    """mean_and_loglik (pieces of CHUNK_ROWS rows, weights kept for the same eta; the probit's
    0/1-row kernels) against the plain row functions."""
    family = _family(link)
    rng = np.random.default_rng(3)
    n = 3 * CHUNK_ROWS + 17
    eta = rng.normal(-0.5, 2.0, n)
    if link == "log":
        eta = -np.abs(eta) - 1e-3
    for m in (np.ones(n), rng.integers(1, 9, n).astype(float)):
        k = np.floor(rng.random(n) * (m + 1))
        mu, loglik = family.mean_and_loglik(eta, k, m)
        w, r = family.weights_and_residual(eta, mu, k, m)
        slope = family.weight_slope(eta, mu, w, k, m)
        r0, w0, slope0 = family.functions.binomial_derivatives(eta, k, m, True)
        assert loglik == pytest.approx(float(np.sum(family.loglik_rows(eta, k, m))), rel=1e-13)
        np.testing.assert_allclose(mu, family.inverse_link(eta), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(r, r0, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(w, w0, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(slope, slope0, rtol=1e-10, atol=1e-14)
        # A fresh array at the same values is not the kept one: the weights are computed anew.
        w_again, _ = family.weights_and_residual(eta.copy(), mu, k, m)
        np.testing.assert_allclose(w_again, w0, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("link", LINKS)
def test_inverse_link_derivative_and_link_function(link):
    family = make_family(link=link)
    # (The cloglog's mu = 1 - exp(-e^eta) rounds towards 1 above eta = 1.5.)
    eta = np.linspace(-3.0, {"log": -0.1, "cloglog": 1.5}.get(link, 3.0), 25)
    mu = family.inverse_link(eta)
    np.testing.assert_allclose(family.link_values(mu), eta, rtol=1e-10, atol=1e-12)
    step = 1e-6
    numeric = (family.inverse_link(eta + step) - family.inverse_link(eta - step)) / (2 * step)
    np.testing.assert_allclose(family.mu_eta(eta), numeric, rtol=1e-7, atol=1e-10)
    assert family.link_function(0.25) == pytest.approx(float(family.link_values(0.25)))


def test_families_by_name_as_r_writes_them():
    assert make_family() is BINOMIAL_LOGIT
    assert make_family("binomial", "logit") is BINOMIAL_LOGIT
    assert make_family("binomial(link = 'cloglog')") == Binomial("cloglog")
    assert make_family('binomial("probit")') == Binomial("probit")
    assert make_family("binomial(link=cauchit)") == Binomial("cauchit")
    assert make_family(link="probit") == Binomial("probit")
    assert make_family("betabinomial") == BetaBinomial("logit")
    assert make_family("betabinomial", link="probit").link == "probit"
    assert make_family(Binomial("log")) == Binomial("log")
    assert parse_family(" binomial ( link = 'log' ) ") == ("binomial", "log")
    # Links in any letter case, as family names.
    assert make_family(link="Probit") == Binomial("probit")
    assert make_family("Binomial(link = 'CLogLog')") == Binomial("cloglog")
    assert make_family(link="LOGIT") is BINOMIAL_LOGIT
    with pytest.raises(ValueError, match="link must be one of"):
        make_family(link="identity")
    with pytest.raises(ValueError, match="names the link 'probit', but link='cloglog'"):
        make_family("binomial(link = 'probit')", link="cloglog")
    with pytest.raises(ValueError, match="family must be one of"):
        make_family("poisson")
    with pytest.raises(ValueError, match=r"glmer refuses quasi families too: .*betabinomial"):
        make_family("quasibinomial(link = 'logit')")
    with pytest.raises(ValueError, match="differs from the link of the family object"):
        make_family(Binomial("probit"), link="logit")
    with pytest.raises(ValueError, match="link must be one of"):
        make_family("binomial(link = 'identity')")


def test_latent_variances_as_performance_uses_them():
    assert make_family(link="probit").latent_variance == 1.0
    assert make_family(link="cloglog").latent_variance == pytest.approx(np.pi**2 / 6.0)
    assert np.isnan(make_family(link="cauchit").latent_variance)
    assert np.isnan(BetaBinomial().latent_variance)


def test_simulate_draws_from_each_family():
    rng = np.random.default_rng(4)
    eta = np.full(40000, -0.7)
    trials = np.full(40000, 6.0)
    for link in ("probit", "cloglog", "cauchit", "log"):
        family = make_family(link=link)
        draws = family.simulate(eta, trials, rng)
        mu = family.inverse_link(eta[:1])[0]
        assert draws.mean() / 6.0 == pytest.approx(mu, abs=0.01)
    family = BetaBinomial("logit", 4.0)
    draws = family.simulate(eta, trials, rng)
    mu = family.inverse_link(eta[:1])[0]
    variance = 6.0 * mu * (1.0 - mu) * (1.0 + 5.0 / 5.0)
    assert draws.mean() == pytest.approx(6.0 * mu, abs=0.03)
    assert draws.var() == pytest.approx(variance, rel=0.03)
    with pytest.raises(ValueError, match="at a value of phi"):
        BetaBinomial().simulate(eta[:2], trials[:2], rng)
    with pytest.raises(ValueError, match="whole numbers"):
        family.simulate(eta[:2], np.array([1.5, 2.0]), rng)


def test_beta_binomial_needs_rows_with_several_trials():
    with pytest.raises(ValueError, match="Bernoulli"):
        BetaBinomial().check_data(np.array([0.0, 1.0]), np.ones(2))
    BetaBinomial().check_data(np.array([0.0, 1.0]), np.array([1.0, 3.0]))
    family = dataclasses.replace(BetaBinomial(), phi=2.5)
    assert family.with_parameters(family.parameters()).phi == pytest.approx(2.5)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 600), st.integers(0, 600)), min_size=1, max_size=300))
def test_log_binomial_constant_is_the_same_by_each_route(pairs):
    """Looked up (whole counts), taken argument by argument (small data) or through the table
    of distinct arguments: the same sum bit for bit, and equal to scipy's gammaln."""
    k = np.array([float(a) for a, _ in pairs])
    m = k + np.array([float(b) for _, b in pairs])
    looked_up = log_binomial_coefficient(k, m)
    limits = family_module.SMALL_LGAMMA_LIMIT, family_module.LGAMMA_DIRECT_LIMIT
    try:
        family_module.SMALL_LGAMMA_LIMIT = 0
        direct = log_binomial_coefficient(k, m)
        family_module.LGAMMA_DIRECT_LIMIT = 0
        tabled = log_binomial_coefficient(k, m)
    finally:
        family_module.SMALL_LGAMMA_LIMIT, family_module.LGAMMA_DIRECT_LIMIT = limits
    assert looked_up == direct
    assert direct == tabled
    exact = float(
        np.sum(special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1))
    )
    assert direct == pytest.approx(exact, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("x", [0.5, 7.0, 999.0, 1000.0, 3e3, 1e6, 1e12, 1e20])
@pytest.mark.parametrize("n", [0, 1, 4, 60])
def test_gamma_function_rises_equal_their_finite_sums(x, n):
    """For a whole n, lgamma(x + n) - lgamma(x) = sum log(x + i), and the polygamma
    differences sum 1 / (x + i), -1 / (x + i)^2 and 2 / (x + i)^3 (i = 0, ..., n - 1): exact
    references on both sides of RISE_ASYMPTOTIC, where the functions' own difference loses
    everything at x = 1e20."""
    import math

    terms = [x + i for i in range(n)]
    exact = (
        math.fsum(math.log(t) for t in terms),
        math.fsum(1.0 / t for t in terms),
        -math.fsum(1.0 / t**2 for t in terms),
        math.fsum(2.0 / t**3 for t in terms),
    )
    found = [
        family_module.lgamma_rise(np.array([x]), np.array([float(n)])),
        *family_module.polygamma_rises(np.array([x]), np.array([float(n)]), 3),
    ]
    for value, reference in zip(found, exact, strict=True):
        assert value[0] == pytest.approx(reference, rel=1e-11, abs=1e-300)


def test_beta_binomial_tends_to_the_binomial_as_phi_grows():
    """The beta-binomial's log-likelihood, residual and weights tend to the binomial's (its
    coefficient excluded) as phi grows, not to rounding noise (at log phi 40 the plain lgamma
    differences were 3,000 off)."""
    rng = np.random.default_rng(0)
    trials = rng.integers(1, 6, 500).astype(float)
    eta = rng.normal(size=500) * 0.5
    mu = 1.0 / (1.0 + np.exp(-eta))
    successes = rng.binomial(trials.astype(int), mu).astype(float)
    binomial = float((successes * np.log(mu) + (trials - successes) * np.log1p(-mu)).sum())
    for log_phi in (30.0, 40.0, 60.0):
        beta_binomial = BetaBinomial(phi=float(np.exp(log_phi)))
        _, loglik = beta_binomial.mean_and_loglik(eta, successes, trials)
        assert loglik == pytest.approx(binomial, abs=1e-9)
        weights, residual = beta_binomial.weights_and_residual(eta, mu, successes, trials)
        np.testing.assert_allclose(residual, successes - trials * mu, atol=1e-10)
        np.testing.assert_allclose(weights, trials * mu * (1 - mu), atol=1e-10)
        score = beta_binomial.parameter_loglik_rows(eta, successes, trials)
        assert abs(float(score.sum())) < 1e-9
