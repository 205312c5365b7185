"""The results API of both camps, against lme4 (tests/reference/cbpp_after_fit.json)."""

import numpy as np
import pandas as pd
import pytest
from conftest import CBPP, load_reference

import glmm_binomial as g

SLOPE = "use ~ age + urban + livch + (1 + urban | district)"


@pytest.fixture(scope="module")
def ref():
    return load_reference("cbpp_after_fit")


@pytest.fixture(scope="module")
def cbpp_fit():
    return g.fit(CBPP, g.datasets.load("cbpp"))


@pytest.mark.parametrize("kind", ["deviance", "pearson", "response", "working"])
def test_residuals_match_lme4(cbpp_fit, ref, kind):
    # Working residuals divide by mu (1 - mu): relative agreement there.
    np.testing.assert_allclose(cbpp_fit.resid(kind), ref["resid"][kind], atol=1e-3, rtol=2e-3)


def test_fitted_and_scaled_residuals_match_lme4(cbpp_fit, ref):
    np.testing.assert_allclose(cbpp_fit.fitted(), ref["fitted"], atol=1e-4)
    np.testing.assert_allclose(cbpp_fit.fittedvalues, cbpp_fit.predict())
    summary = cbpp_fit.summary()
    np.testing.assert_allclose(summary.scaled_residuals, ref["scaled_residuals"], atol=1e-3)
    # From vcov: glmer's finite-difference Hessian is the cruder one (see test_intervals.py).
    np.testing.assert_allclose(summary.correlation, ref["fixef_correlation"], atol=2e-3)


def test_coef_is_fixed_plus_random_per_level(cbpp_fit, ref):
    coef = cbpp_fit.coef()["herd"]
    for row in ref["coef_herd"]:
        level = row.pop("level")
        for name, value in row.items():
            assert coef.loc[level, name] == pytest.approx(value, abs=1e-3)


def test_statsmodels_names(cbpp_fit):
    fe = cbpp_fit.fixed_effects
    pd.testing.assert_series_equal(cbpp_fit.fixef(), cbpp_fit.params)
    np.testing.assert_array_equal(cbpp_fit.pvalues, fe["p"])
    np.testing.assert_array_equal(cbpp_fit.tvalues, fe["z"])
    assert cbpp_fit.llf == cbpp_fit.loglik == cbpp_fit.logLik()
    assert cbpp_fit.df_resid == cbpp_fit.nobs - 5 == 51
    ci = cbpp_fit.conf_int(alpha=0.1)
    pd.testing.assert_frame_equal(ci, cbpp_fit.conf_int(conf_level=0.9))
    assert ci.loc["period2", "ci_lower"] > cbpp_fit.conf_int().loc["period2", "ci_lower"]
    with pytest.raises(ValueError, match="alpha"):
        cbpp_fit.conf_int(alpha=5)
    with pytest.raises(ValueError, match="type must be"):
        cbpp_fit.resid("raw")
    assert cbpp_fit.VarCorr.equals(cbpp_fit.varcorr)


def test_conditional_covariance_of_vector_effects_matches_lme4(ref):
    result = g.fit(SLOPE, g.datasets.load("contraception"))
    assert result.loglik >= ref["slope_logLik"] - 1e-6
    modes = result.ranef(condvar=True)["district"]
    np.testing.assert_allclose(
        modes[["(Intercept)", "urbanY"]].to_numpy()[:3], ref["slope_modes_first3"], atol=2e-3
    )
    covs = result.ranef_cov()["district"]
    assert covs.shape == (60, 2, 2)
    np.testing.assert_array_equal(modes.attrs["condvar"], covs)
    np.testing.assert_allclose(covs[:3], ref["slope_postvar_first3"], atol=2e-3, rtol=1e-2)
    np.testing.assert_allclose(np.sqrt(covs[:, 1, 1]), modes["urbanY_sd"])
    coef = result.coef()["district"]
    np.testing.assert_allclose(coef["urbanY"], result.params["urbanY"] + modes["urbanY"])
    np.testing.assert_allclose(coef["age"], result.params["age"])


def test_cbpp_inference_values_within_1e3(cbpp_fit):
    """cbpp_inference.json within 1e-3: population predictions and the LRT; its conditional
    modes were taken after lme4's profile() had moved the fitted object (see
    make_cbpp_ranef.R), so modes, their SDs and conditional predictions are checked against a
    fresh glmer fit (cbpp_ranef.json) instead. Profile intervals: test_profile.py (1e-4)."""
    inference = load_reference("cbpp_inference")
    fresh = load_reference("cbpp_ranef")
    np.testing.assert_allclose(
        cbpp_fit.predict(re="exclude", type="link")[:5],
        inference["predict_first5"]["link_population"],
        atol=1e-3,
    )
    modes = cbpp_fit.ranef(condvar=True)["herd"]
    for row in fresh["modes"]:
        assert modes.loc[row["level"], "(Intercept)"] == pytest.approx(row["mode"], abs=1e-3)
        assert modes.loc[row["level"], "(Intercept)_sd"] == pytest.approx(row["sd"], abs=1e-3)
    np.testing.assert_allclose(
        cbpp_fit.predict(type="link")[:5], fresh["link_conditional"], atol=1e-3
    )
    np.testing.assert_allclose(cbpp_fit.predict()[:5], fresh["response_conditional"], atol=1e-3)
    reduced = g.fit(inference["reduced"], g.datasets.load("cbpp"))
    table = g.anova(cbpp_fit, reduced)
    assert table["chisq"].iloc[1] == pytest.approx(inference["lrt"]["chisq"], abs=1e-3)
    assert table["p"].iloc[1] == pytest.approx(inference["lrt"]["p"], abs=1e-3)
    assert cbpp_fit.loglik == pytest.approx(inference["lrt"]["logLik_full"], abs=1e-3)


def test_ranef_condvar_is_a_boolean(cbpp_fit):
    with pytest.raises(ValueError, match="condvar must be True or False, got 'yes'"):
        cbpp_fit.ranef(condvar="yes")
    assert set(cbpp_fit.ranef(condvar=np.True_)) == {"herd"}
