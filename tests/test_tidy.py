"""tidy, glance and augment against broom.mixed 0.2.9.4 (tests/reference/broom.json,
make_broom.R).

glmmTMB's fits reach our optimum (logLik within 1e-9): the fixed effects, their SEs, z, p and
Wald intervals, the SDs, correlations, variances and covariances, the conditional modes and the
fit statistics are checked against broom on them. broom gives glmmTMB no ran_coefs, profile
intervals or augment, and glmmTMB's conditional SDs of the random effects include the
uncertainty in beta (lme4's, and ours, are conditional on it): those are checked against broom
on the glmer fits, whose optimum is 2e-4 to 3e-4 short in logLik (estimates within 1e-3).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference

import glmm_binomial as g

REFERENCE = load_reference("broom")
CASES = [pytest.param(case, id=case["formula"]) for case in REFERENCE]

TMB_ATOL = 1e-5  # estimates against glmmTMB's (same optimum)
TMB_RTOL = 1e-4  # SEs and p-values against glmmTMB's
GLMER_ATOL = 2e-3  # against glmer's, whose optimum is a little short


def _fit(case: dict[str, Any]) -> g.GLMMResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return g.fit(case["formula"], g.datasets.load(case["data"]))


@pytest.fixture(scope="module", params=CASES)
def case_fit(request: pytest.FixtureRequest) -> tuple[dict[str, Any], g.GLMMResult]:
    return request.param, _fit(request.param)


def _numbers(values: Any) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in np.atleast_1d(values)], dtype=float)


def _by_term(table: pd.DataFrame, reference: dict[str, Any], column: str) -> np.ndarray:
    terms = list(np.atleast_1d(reference["term"]))
    return table.set_index("term").loc[terms, column].to_numpy(dtype=float)


def test_tidy_default(case_fit: tuple[dict[str, Any], g.GLMMResult]) -> None:
    case, fit = case_fit
    assert fit.loglik == pytest.approx(case["loglik"]["glmmTMB"], abs=1e-6)
    out = g.tidy(fit)
    reference = case["glmer"]["default"]
    # glmer's row order and labels (glmmTMB lists the SDs before the correlations).
    assert list(out["effect"]) == reference["effect"]
    assert list(out["term"]) == reference["term"]
    groups = [None if v is None or v != v else v for v in out["group"]]
    assert groups == reference["group"]
    tmb = case["glmmTMB"]["default"]
    np.testing.assert_allclose(_by_term(out, tmb, "estimate"), tmb["estimate"], atol=TMB_ATOL)
    fixed = np.array(tmb["effect"]) == "fixed"
    for column, name in (("std_error", "std.error"), ("statistic", "statistic")):
        ours = _by_term(out, tmb, column)
        np.testing.assert_allclose(ours[fixed], _numbers(tmb[name])[fixed], rtol=TMB_RTOL)
        assert np.isnan(ours[~fixed]).all()  # broom gives a glmer fit's SDs no SE
    ours_p = _by_term(out, tmb, "p_value")[fixed]
    np.testing.assert_allclose(ours_p, _numbers(tmb["p.value"])[fixed], rtol=1e-3)


def test_tidy_intervals_and_exponentiate(case_fit: tuple[dict[str, Any], g.GLMMResult]) -> None:
    case, fit = case_fit
    tmb = case["glmmTMB"]
    wald = g.tidy(fit, conf_int=True, conf_level=0.9)
    fixed = np.array(tmb["wald"]["effect"]) == "fixed"
    for column, name in (("conf_low", "conf.low"), ("conf_high", "conf.high")):
        ours = _by_term(wald, tmb["wald"], column)
        np.testing.assert_allclose(ours[fixed], _numbers(tmb["wald"][name])[fixed], atol=1e-4)
        assert np.isnan(ours[~fixed]).all()  # Wald intervals of SDs: none, as broom on glmer
    exp = g.tidy(fit, "fixed", conf_int=True, exponentiate=True)
    assert "group" not in exp.columns and "level" not in exp.columns
    reference = tmb["exponentiated"]
    for column, name in (
        ("estimate", "estimate"),
        ("std_error", "std.error"),
        ("conf_low", "conf.low"),
        ("conf_high", "conf.high"),
    ):
        ours = _by_term(exp, reference, column)
        np.testing.assert_allclose(ours, reference[name], rtol=1e-4)


def test_tidy_vcov_scale(case_fit: tuple[dict[str, Any], g.GLMMResult]) -> None:
    case, fit = case_fit
    out = g.tidy(fit, "ran_pars", scales="vcov")
    reference = case["glmmTMB"]["vcov"]
    np.testing.assert_allclose(
        _by_term(out, reference, "estimate"), reference["estimate"], atol=TMB_ATOL
    )
    assert list(out["term"]) == list(np.atleast_1d(case["glmer"]["vcov"]["term"]))


def test_tidy_random_effects(case_fit: tuple[dict[str, Any], g.GLMMResult]) -> None:
    case, fit = case_fit
    values = g.tidy(fit, "ran_vals")
    tmb, mer = case["glmmTMB"]["ran_vals"], case["glmer"]["ran_vals"]
    assert list(values["level"]) == mer["level"] and list(values["term"]) == mer["term"]
    np.testing.assert_allclose(values["estimate"], tmb["estimate"], atol=TMB_ATOL)
    np.testing.assert_allclose(values["std_error"], mer["std.error"], rtol=1e-3)
    coefs = g.tidy(fit, "ran_coefs")
    mer = case["glmer"]["ran_coefs"]
    assert list(coefs["level"]) == mer["level"] and list(coefs["term"]) == mer["term"]
    np.testing.assert_allclose(coefs["estimate"], mer["estimate"], atol=GLMER_ATOL)
    assert coefs["std_error"].isna().all()


def test_tidy_profile_intervals(case_fit: tuple[dict[str, Any], g.GLMMResult]) -> None:
    """The profile intervals are confint(method="profile")'s, on the rows they belong to."""
    case, fit = case_fit
    out = g.tidy(fit, conf_int=True, conf_method="profile")
    intervals = fit.confint("profile")
    names = [*fit.params.index, *[n for n in intervals.index if n not in fit.params.index]]
    np.testing.assert_array_equal(
        np.sort(out["conf_low"].to_numpy()), np.sort(intervals.loc[names, "lower"].to_numpy())
    )
    # Against lme4's (which interpolates its profiles; on the slope model it is 8e-3 off
    # glmmTMB's and ours at livch2's lower end): row by row within 1e-2.
    reference = case["glmer"]["profile"]
    for column, name in (("conf_low", "conf.low"), ("conf_high", "conf.high")):
        ours = _by_term(out, reference, column)
        np.testing.assert_allclose(ours, reference[name], atol=1e-2)


def test_glance_and_augment(case_fit: tuple[dict[str, Any], g.GLMMResult]) -> None:
    case, fit = case_fit
    out = g.glance(fit)
    assert list(out.columns) == ["nobs", "logLik", "AIC", "BIC", "deviance", "df_residual"]
    tmb = case["glmmTMB"]["glance"]
    for column in ("nobs", "logLik", "AIC", "BIC"):
        assert out[column].iloc[0] == pytest.approx(tmb[column], abs=1e-6)
    assert out["df_residual"].iloc[0] == tmb["df.residual"]
    # lme4's deviance at glmer's optimum (3e-4 short in logLik): 4e-5 apart on cbpp.
    deviance = case["glmer"]["glance"]["deviance"]
    assert out["deviance"].iloc[0] == pytest.approx(deviance, rel=1e-4)
    augmented = g.augment(fit)
    reference = case["glmer"]["augment"]
    assert len(augmented) == fit.nobs
    for column, values in reference.items():
        np.testing.assert_allclose(augmented[column], values, atol=GLMER_ATOL)


def test_augment_keeps_the_fitted_rows_and_the_data() -> None:
    data = g.datasets.load("contraception")
    data.loc[[0, 5], "age"] = np.nan
    before = data.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = g.fit("use ~ age + urban + (1 | district)", data, subset="livch != '0'")
    out = g.augment(fit)
    kept = data[data["age"].notna() & (data["livch"] != "0")]
    assert list(out.index) == list(kept.index)
    np.testing.assert_allclose(out[".mu"], fit.fitted())
    pd.testing.assert_frame_equal(data, before)
    with pytest.raises(ValueError, match="does not keep the data"):
        g.augment(g.fit_model(fit.model))


def test_separation_shows_no_number() -> None:
    """A coefficient with no finite estimate is NaN in tidy (as in the summary), never inf."""
    rng = np.random.default_rng(3)
    n = 240
    data = pd.DataFrame(
        {"f": np.repeat(["a", "b", "c"], n // 3), "g": np.tile(np.arange(12), n // 12)}
    )
    data["y"] = np.where(data["f"] == "c", 1, rng.integers(0, 2, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = g.fit("y ~ f + (1 | g)", data)
    out = g.tidy(fit, "fixed", conf_int=True, exponentiate=True).set_index("term")
    assert np.isnan(out.loc["fc", ["estimate", "std_error", "conf_low"]].to_numpy(float)).all()
    assert np.isfinite(out.loc["fb", "estimate"])
    assert not np.isinf(out.select_dtypes("number").to_numpy()).any()


def test_beta_binomial_dispersion_row() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = g.fit(
            "cbind(incidence, size - incidence) ~ period + (1 | herd)",
            g.datasets.load("cbpp"),
            family="betabinomial",
        )
    out = g.tidy(fit, conf_int=True, conf_method="profile").set_index("term")
    assert out.loc["phi", "effect"] == "dispersion"
    assert out.loc["phi", "estimate"] == pytest.approx(fit.phi)
    interval = fit.confint("profile").loc["phi"]
    assert out.loc["phi", "conf_low"] == pytest.approx(interval["lower"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"effects": "random"}, "effects must be some of"),
        ({"effects": []}, "effects must be some of"),
        ({"scales": "sd"}, "scales must be"),
        ({"conf_int": "yes"}, "conf_int must be True or False"),
        ({"exponentiate": 1}, "exponentiate must be True or False"),
        ({"conf_method": "exact", "conf_int": True}, "conf_method must be one of"),
        ({"conf_level": 1.5, "conf_int": True}, "conf_level"),
        ({"n_boot": 10}, "pass conf_int=True"),
        ({"conf_int": True, "n_boot": 10}, "'wald' takes no options"),
        (
            {"conf_int": True, "conf_method": "profile", "scales": "vcov"},
            "intervals of variances",
        ),
    ],
)
def test_bad_arguments(arguments: dict[str, Any], message: str) -> None:
    fit = _fit(REFERENCE[0])
    with pytest.raises(ValueError, match=message):
        g.tidy(fit, **arguments)
    with pytest.raises(ValueError, match="needs a fit"):
        g.glance("not a fit")


def test_a_sampled_posterior_gets_its_credible_intervals() -> None:
    """method="mcmc": the default intervals are the draws' (confint "posterior"), Wald's on
    request (posterior mean -+ z posterior SD)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = g.fit(
            "cbind(incidence, size - incidence) ~ period + (1 | herd)",
            g.datasets.load("cbpp"),
            method="mcmc",
            draws=200,
            warmup=200,
            chains=2,
            seed=1,
        )
    out = g.tidy(fit, conf_int=True)
    intervals = fit.confint("posterior")
    fixed = out["effect"] == "fixed"
    np.testing.assert_allclose(
        out.loc[fixed, "conf_low"], intervals.loc[list(fit.params.index), "lower"]
    )
    assert np.isfinite(out.loc[~fixed, "conf_low"]).all()
    wald = g.tidy(fit, "fixed", conf_int=True, conf_method="wald", conf_level=0.9)
    z = 1.6448536269514722
    np.testing.assert_allclose(wald["conf_high"], wald["estimate"] + z * wald["std_error"])
