"""The posterior draws of a sampling fit (src/glmm_binomial/results/posterior.py): credible
intervals from the draws, the summary table, the refusals for fits without draws, ArviZ as an
optional extra. The sampler itself is tested in test_mcmc.py."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import glmm_binomial as g
from glmm_binomial import datasets
from glmm_binomial.methods.mcmc_diagnostics import equal_tailed_interval
from glmm_binomial.results import posterior

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def fit() -> g.GLMMResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", g.ConvergenceWarning)  # few draws: low ESS
        return g.fit(CBPP, datasets.load("cbpp"), method="mcmc", draws=60, warmup=40, seed=8)


def test_credible_intervals_are_quantiles_of_the_draws(fit: g.GLMMResult) -> None:
    draws = fit.draws
    table = fit.confint(conf_level=0.8)  # "posterior", the default of a fit with draws
    assert table.equals(fit.confint("posterior", conf_level=0.8))
    assert list(table.index) == ["sd_(Intercept)|herd", *fit.fixed_names]
    for name in table.index:
        np.testing.assert_allclose(table.loc[name], np.quantile(draws[name], [0.1, 0.9]))
    fixed = fit.fixed_effects_table(0.8)
    np.testing.assert_allclose(
        fixed[["ci_lower", "ci_upper"]].to_numpy(), table.loc[fit.fixed_names].to_numpy()
    )
    lower, upper = posterior.fixed_effect_intervals(fit, 0.1)  # the tail given directly
    np.testing.assert_allclose(lower, fixed["ci_lower"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(upper, fixed["ci_upper"].to_numpy(), rtol=1e-12)
    # Beyond the draws (tail x 240 draws < 1): no estimate of the quantile, NaN.
    assert fit.confint(conf_level=0.999).isna().all().all()
    with pytest.raises(ValueError, match="method 'posterior' takes no options"):
        fit.confint("posterior", which=["period2"])


def test_equal_tailed_interval_needs_draws_beyond_it() -> None:
    values = np.arange(100.0).reshape(2, 50)
    assert equal_tailed_interval(values, 0.01) == (0.99, 98.01)
    assert np.isnan(equal_tailed_interval(values, 0.009)).all()
    assert np.isnan(equal_tailed_interval(values, 0.0)).all()
    with pytest.raises(ValueError, match="tail must be"):
        equal_tailed_interval(values, 0.5)


def test_summary_table_and_text(fit: g.GLMMResult) -> None:
    table = fit.mcmc_summary
    assert list(table.columns) == ["mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"]
    assert table.index.name == "parameter"
    assert table.loc["period2", "mean"] == pytest.approx(fit.params["period2"], rel=1e-12)
    text = str(fit.summary())
    assert "Posterior draws: 4 chains x 60 (thin 1) after 40 warm-up" in text
    assert "equal-tailed posterior quantiles" in text


def test_fits_without_draws_say_so() -> None:
    laplace = g.fit(CBPP, datasets.load("cbpp"))
    assert laplace.posterior is None
    for attribute in ("draws", "mcmc_summary"):
        with pytest.raises(AttributeError, match="method 'laplace' has no posterior draws"):
            getattr(laplace, attribute)
    with pytest.raises(ValueError, match="method 'posterior' needs posterior draws"):
        laplace.confint("posterior")


def test_inference_data_needs_the_arviz_extra(
    fit: g.GLMMResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "arviz", None)  # as if not installed
    with pytest.raises(ImportError, match=r"glmm-binomial\[arviz\]"):
        fit.to_inference_data()
