"""The tables' numbers without pandas (glmm_binomial.results.facts): the same as scipy.stats
gives and as the result object reports."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import glmm_binomial as g
from glmm_binomial.results.facts import (
    information_criteria,
    normal_quantile,
    variance_components,
    wald_statistics,
)


@pytest.fixture(scope="module")
def slope_fit():
    return g.fit("use ~ age + urban + (1 + urban | district)", g.datasets.load("contraception"))


def test_wald_statistics_are_scipy_stats_normal_ones():
    # The tails and quantiles come from the standard library (numerics.normal), not scipy: the
    # same numbers to the last bits or so.
    estimate = np.array([0.5, -2.0, 40.0, 1.0])
    vcov = np.diag([0.04, 1.0, 0.25, np.nan])
    columns = wald_statistics(estimate, vcov, 0.9)
    se = np.sqrt(np.diag(vcov))
    z = estimate / se
    np.testing.assert_allclose(columns["p"], 2.0 * stats.norm.sf(np.abs(z)), rtol=1e-12)
    q = stats.norm.ppf(0.95)
    np.testing.assert_allclose(columns["ci_lower"], estimate - q * se, rtol=1e-14)
    np.testing.assert_array_equal(columns["odds_ratio"], np.exp(estimate))
    assert np.isnan(columns["z"][3]) and np.isnan(columns["p"][3])
    assert np.all(np.isnan(wald_statistics(estimate, vcov, 0.9, odds_ratios=False)["odds_ratio"]))
    for tail in (0.025, 1e-300, 0.5):
        assert normal_quantile(tail) == pytest.approx(stats.norm.isf(tail), rel=1e-14, abs=1e-15)


def test_variance_components_and_criteria_are_the_results(slope_fit):
    components = variance_components(slope_fit.model, slope_fit.fit_output.theta)
    table = slope_fit.varcorr
    assert [c.term for c in components] == list(table["term"])
    np.testing.assert_array_equal([c.variance for c in components], table["variance"])
    np.testing.assert_array_equal([c.std_dev for c in components], table["std_dev"])
    assert components[1].correlations == (table["corr_1"].iloc[1],)
    assert components[0].correlations == ()
    deviance, aic, bic = information_criteria(slope_fit.loglik, slope_fit.df_model, slope_fit.nobs)
    assert (deviance, aic, bic) == (slope_fit.deviance, slope_fit.aic, slope_fit.bic)
