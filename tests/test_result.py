"""GLMMResult: properties that need no reference, and the result's own behaviour."""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import CBPP

import glmm_binomial as g


@pytest.fixture(scope="module")
def cbpp():
    return g.datasets.load("cbpp")


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    return g.fit(CBPP, cbpp)


def bernoulli_rows(cbpp):
    rows = []
    for rec in cbpp.itertuples():
        rows += [(rec.herd, rec.period, 1)] * rec.incidence
        rows += [(rec.herd, rec.period, 0)] * (rec.size - rec.incidence)
    frame = pd.DataFrame(rows, columns=["herd", "period", "y"])
    return frame.astype({"herd": cbpp.herd.dtype, "period": cbpp.period.dtype})


def test_binomial_rows_equal_bernoulli_rows(cbpp, cbpp_fit):
    expanded = bernoulli_rows(cbpp)
    bern = g.fit("y ~ period + (1 | herd)", expanded)
    np.testing.assert_allclose(bern.params, cbpp_fit.params, atol=1e-5)
    np.testing.assert_allclose(bern.theta, cbpp_fit.theta, atol=1e-5)
    constant = cbpp_fit.model.log_binomial_constant
    assert bern.loglik + constant == pytest.approx(cbpp_fit.loglik, abs=1e-6)


def test_relabelling_and_reordering_change_nothing(cbpp, cbpp_fit):
    rng = np.random.default_rng(5)
    shuffled = cbpp.iloc[rng.permutation(len(cbpp))].reset_index(drop=True)
    relabelled = shuffled.assign(herd=shuffled.herd.astype(str).map(lambda s: f"herd-{s}"))
    other = g.fit(CBPP, relabelled)
    assert other.loglik == pytest.approx(cbpp_fit.loglik, abs=1e-8)
    np.testing.assert_allclose(other.params, cbpp_fit.params, atol=1e-6)
    np.testing.assert_allclose(other.theta, cbpp_fit.theta, atol=1e-6)
    modes = other.ranef()["herd"]
    original = cbpp_fit.ranef()["herd"]
    for level in original.index:
        assert modes.loc[f"herd-{level}"].iloc[0] == pytest.approx(
            original.loc[level].iloc[0], abs=1e-6
        )


def test_same_call_twice_is_bit_identical(cbpp):
    a, b = g.fit(CBPP, cbpp), g.fit(CBPP, cbpp)
    assert a.loglik == b.loglik
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.vcov, b.vcov)
    np.testing.assert_array_equal(a.theta, b.theta)


def test_duplicated_rows_equal_weights(cbpp):
    frame = cbpp.assign(p=cbpp.incidence / cbpp["size"])
    twice = pd.concat([frame, frame], ignore_index=True)
    a = g.fit("p ~ period + (1 | herd)", twice, weights="size")
    b = g.fit("p ~ period + (1 | herd)", frame, weights=2 * frame["size"])
    np.testing.assert_allclose(a.params, b.params, atol=1e-6)
    assert a.loglik == pytest.approx(
        b.loglik - b.model.log_binomial_constant + a.model.log_binomial_constant, abs=1e-6
    )


def test_result_is_read_only_and_returns_copies(cbpp_fit):
    with pytest.raises(AttributeError):
        cbpp_fit.conf_level = 0.9
    theta = cbpp_fit.theta
    theta[0] = 99.0
    assert cbpp_fit.theta[0] != 99.0


def test_fixed_effects_table(cbpp_fit):
    table = cbpp_fit.fixed_effects
    assert list(table.columns) == [
        "estimate",
        "std_error",
        "z",
        "p",
        "ci_lower",
        "ci_upper",
        "odds_ratio",
    ]
    np.testing.assert_allclose(table["odds_ratio"], np.exp(table["estimate"]))
    wide = cbpp_fit.fixed_effects_table(conf_level=0.99)
    assert (wide["ci_upper"] - wide["ci_lower"] > table["ci_upper"] - table["ci_lower"]).all()


def test_predict_newdata_with_unseen_level(cbpp, cbpp_fit):
    new = cbpp.head(3).assign(herd=["1", "2", "unseen"])
    with pytest.warns(g.diagnostics.NewLevelsWarning, match="'herd'"):
        link = cbpp_fit.predict(new, type="link")
    population = cbpp_fit.predict(new, re="exclude", type="link")
    modes = cbpp_fit.ranef()["herd"]["(Intercept)"]
    np.testing.assert_allclose(link[:2], population[:2] + modes.loc[["1", "2"]].to_numpy())
    assert link[2] == population[2]
    np.testing.assert_allclose(cbpp_fit.predict(cbpp, type="link"), cbpp_fit.predict(type="link"))


def test_summary_and_html(cbpp_fit):
    text = cbpp_fit.summary()
    for fragment in ["Laplace", "Random effects:", "herd", "Fixed effects:", "period4", "AIC"]:
        assert fragment in text
    assert "<table" in cbpp_fit._repr_html_()
    assert cbpp_fit.opt_summary.converged and cbpp_fit.opt_summary.evaluations > 0
    assert set(cbpp_fit.opt_summary.tolerances) >= {"ftol", "gtol", "max_iter"}


def test_singular_fit_is_flagged():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {"y": rng.integers(0, 2, 300), "x": rng.normal(size=300), "g": rng.integers(0, 10, 300)}
    )
    # No group effect in the data: the variance estimate is on the boundary, as glmer finds.
    result = g.fit("y ~ x + (1 | g)", frame)
    assert result.theta[0] < 1e-4
    assert result.singular and result.converged
    assert any("singular" in w for w in result.warnings)
    assert np.all(np.isfinite(result.bse))


def test_constant_offset_shifts_the_intercept(cbpp, cbpp_fit):
    shifted = g.fit(CBPP, cbpp, offset=np.full(len(cbpp), 0.7))
    assert shifted.params.iloc[0] == pytest.approx(cbpp_fit.params.iloc[0] - 0.7, abs=1e-5)
    np.testing.assert_allclose(shifted.params.iloc[1:], cbpp_fit.params.iloc[1:], atol=1e-5)
    assert shifted.loglik == pytest.approx(cbpp_fit.loglik, abs=1e-8)


def test_predict_newdata_with_interaction_grouping(cbpp):
    nested = g.fit("cbind(incidence, size - incidence) ~ period + (1 | herd/period)", cbpp)
    np.testing.assert_allclose(nested.predict(cbpp), nested.predict(), rtol=0, atol=1e-12)
    unseen = cbpp.head(2).assign(herd=["1", "new"])
    with pytest.warns(g.diagnostics.NewLevelsWarning, match="'period:herd'"):
        link = nested.predict(unseen, type="link")
    population = nested.predict(unseen, re="exclude", type="link")
    assert link[1] == population[1]  # neither herd "new" nor "new:period" was seen
    assert link[0] != population[0]


def test_a_refit_is_a_result_of_the_same_class(cbpp_fit):
    # Post-fit modules make new results through ResultBase.with_fit, never naming GLMMResult.
    class Mine(g.GLMMResult):
        pass

    mine = Mine(
        cbpp_fit.model,
        cbpp_fit.fit_output,
        design=cbpp_fit.design,
        conf_level=0.9,
        data_name="cbpp",
        method_object=cbpp_fit.method_object,
    )
    again = mine.refit(cbpp_fit.model.successes)
    assert type(again) is Mine
    assert (again.conf_level, again.data_name, again.design) == (0.9, "cbpp", cbpp_fit.design)
    assert again.method_object is cbpp_fit.method_object
    assert again.loglik == pytest.approx(cbpp_fit.loglik, abs=1e-8)


def test_profile_is_the_function_and_the_method():
    import glmm_binomial.results.profile as module

    assert g.profile is module.profile and g.profile_confint is module.profile_confint
    assert callable(g.profile) and g.confint is g.results.intervals.confint
    assert g.GLMMResult.profile.__qualname__ == "GLMMResult.profile"


def test_diverging_names_the_columns_the_fit_found(cbpp_fit):
    assert cbpp_fit.diverging == []


def test_model_without_fixed_effects(cbpp):
    """y ~ 0 + offset(o) + (1 | herd): no fixed-effect column (lme4 and glmmTMB fit it). R
    4.2.2: glmmTMB logLik -104.849568183311, SD 0.809691191468 (glmer -104.849568183350,
    theta 0.809692900129); glmer nAGQ = 5 theta 0.815718290754; glmer's profile interval of
    the SD is NA, NA."""
    data = cbpp.assign(o=-2.0)
    formula = "cbind(incidence, size - incidence) ~ 0 + offset(o) + (1 | herd)"
    fitted = g.fit(formula, data)
    assert fitted.converged and fitted.params.size == 0 and fitted.vcov.shape == (0, 0)
    assert fitted.llf == pytest.approx(-104.849568183311, abs=1e-9)
    assert fitted.theta[0] == pytest.approx(0.809691191468, abs=1e-5)
    agq = g.fit(formula, data, method="agq", n_agq=5)
    assert agq.theta[0] == pytest.approx(0.815718290754, abs=1e-5)
    lower, upper = fitted.confint().loc["sd_(Intercept)|herd"]
    assert 0.3 < lower < fitted.theta[0] < upper < 2.0
    np.testing.assert_allclose(fitted.predict(data), fitted.predict(), rtol=1e-12)
    for method in ("vb", "vb_meanfield"):
        assert np.isfinite(g.fit(formula, data, method=method).llf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", g.ConvergenceWarning)  # few draws
        sampled = g.fit(formula, data, method="mcmc", draws=40, warmup=20, seed=1)
    assert sampled.params.size == 0 and np.isfinite(sampled.theta).all()
