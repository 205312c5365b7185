"""Laplace fits against lme4 (glmer) and glmmTMB reference values."""

import dataclasses

import numpy as np
import pytest
from conftest import load_reference

import glmm_binomial as g
from glmm_binomial.diagnostics import ConvergenceWarning
from glmm_binomial.model.design import build_model

CASES = {
    "cbpp": "cbpp",
    "contraception_intercept": "contraception",
    "contraception_slope": "contraception",
    "verbagg_crossed": "verbagg",
}


@pytest.fixture(scope="module")
def fits():
    out = {}
    for name, dataset in CASES.items():
        ref = load_reference(name)
        out[name] = (ref, g.fit(ref["formula"], g.datasets.load(dataset)))
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_loglik_reaches_best_reference(fits, name):
    ref, result = fits[name]
    assert result.loglik >= ref["best_laplace_logLik"] - 1e-4
    assert result.converged
    assert not result.warnings


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixed_effects_and_standard_errors_match_glmmtmb(fits, name):
    ref, result = fits[name]
    tmb = ref["fits"]["glmmTMB_laplace"]
    assert list(result.params.index) == list(tmb["fixef"])
    np.testing.assert_allclose(result.params.to_numpy(), list(tmb["fixef"].values()), atol=1e-3)
    np.testing.assert_allclose(result.bse.to_numpy(), list(tmb["se"].values()), rtol=1e-2)


@pytest.mark.parametrize("name", sorted(CASES))
def test_random_effect_sds_match(fits, name):
    ref, result = fits[name]
    tmb = ref["fits"]["glmmTMB_laplace"]
    expected = [row["sdcor"] for row in tmb["varcorr"]]
    np.testing.assert_allclose(result.varcorr["std_dev"].to_numpy(), expected, atol=1e-3)


def test_correlation_matches_glmer(fits):
    ref, result = fits["contraception_slope"]
    corr = [r for r in ref["fits"]["glmer_laplace"]["varcorr"] if r["var2"]][0]["sdcor"]
    assert result.varcorr["corr_1"].iloc[1] == pytest.approx(corr, abs=2e-3)


@pytest.mark.parametrize("name", sorted(CASES))
def test_information_criteria_match(fits, name):
    ref, result = fits[name]
    tmb = ref["fits"]["glmmTMB_laplace"]
    assert result.nobs == tmb["nobs"]
    assert result.df_model == tmb["df"]
    assert result.aic == pytest.approx(tmb["AIC"], abs=1e-3)
    assert result.bic == pytest.approx(tmb["BIC"], abs=1e-3)
    assert result.deviance == pytest.approx(-2 * result.loglik)


def test_cbpp_conditional_modes_and_predictions_match_glmer(fits):
    # cbpp_ranef.json: a fresh glmer fit (see make_cbpp_ranef.R for why not cbpp_inference.json).
    ref = load_reference("cbpp_ranef")
    _, result = fits["cbpp"]
    modes = result.ranef(condvar=True)["herd"]
    for row in ref["modes"]:
        assert modes.loc[row["level"], "(Intercept)"] == pytest.approx(row["mode"], abs=2e-3)
        assert modes.loc[row["level"], "(Intercept)_sd"] == pytest.approx(row["sd"], rel=1e-2)
    np.testing.assert_allclose(result.predict(type="link")[:5], ref["link_conditional"], atol=2e-3)
    np.testing.assert_allclose(
        result.predict(re="exclude", type="link")[:5], ref["link_population"], atol=2e-3
    )
    np.testing.assert_allclose(result.predict()[:5], ref["response_conditional"], atol=5e-4)


def test_cbpp_wald_intervals(fits):
    inf = load_reference("cbpp_inference")
    _, result = fits["cbpp"]
    ci = result.conf_int()
    for row in inf["wald"]:
        if "lower" not in row:
            continue
        # glmer's Wald intervals use its own standard errors (up to 1% smaller than glmmTMB's).
        assert ci.loc[row["parameter"], "ci_lower"] == pytest.approx(row["lower"], abs=0.02)
        assert ci.loc[row["parameter"], "ci_upper"] == pytest.approx(row["upper"], abs=0.02)


def _extra_models():
    import json
    from pathlib import Path

    path = Path(__file__).parent / "reference" / "extra_models.json"
    return json.loads(path.read_text())


@pytest.mark.parametrize("record", _extra_models(), ids=lambda r: r["formula"])
def test_extra_model_shapes_reach_the_best_reference(record):
    """Slopes on a crossed factor, ||, nested /, a slope on a 3-level factor: at least the
    better of glmer's and glmmTMB's logLik (glmmTMB reads || differently, so it is skipped
    there), and the fixed effects of the engine with the higher logLik."""
    result = g.fit(record["formula"], g.datasets.load(record["dataset"]))
    fits = dict(record["fits"])
    if "||" in record["formula"]:
        fits.pop("glmmTMB")
    best = max(fits.values(), key=lambda fit: fit["logLik"])
    assert result.converged
    assert not result.warnings
    assert result.loglik >= best["logLik"] - 1e-4
    assert result.df_model == best["df"]
    np.testing.assert_allclose(result.params.to_numpy(), list(best["fixef"].values()), atol=1e-3)


@pytest.mark.parametrize("n_agq", [101, 500])
def test_n_agq_beyond_lme4s_bound_is_refused(n_agq):
    # Issue 9 item 4: n_agq=500 gave logLik -inf, NaN estimates and converged=True.
    data = g.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    with pytest.raises(ValueError, match="n_agq must be at most 100"):
        g.fit(formula, data, method="agq", n_agq=n_agq)
    model, _ = build_model(formula, data)
    with pytest.raises(ValueError, match="n_agq"):
        g.fit_model(model, method="agq", n_agq=n_agq)
    assert g.fit(formula, data, method="agq", n_agq=100).converged


def _broken(output, **changes):
    return dataclasses.replace(output, **changes)


@pytest.mark.parametrize(
    ("method", "changes"),
    [
        ("laplace", {"loglik": float("-inf")}),
        ("laplace", {"theta": np.array([np.inf])}),
        ("agq", {"beta": np.array([np.nan, 0.0, 0.0, 0.0])}),
        ("vb", {"vcov_beta": np.full((4, 4), np.nan)}),
        ("vb_meanfield", {"vcov_beta": np.full((4, 4), np.nan)}),
    ],
    ids=["laplace-loglik", "laplace-theta", "agq-beta", "vb-se", "vb_meanfield-se"],
)
def test_a_non_finite_fit_is_never_reported_converged(monkeypatch, method, changes):
    import glmm_binomial.methods.agq as quadrature
    import glmm_binomial.methods.laplace as laplace
    import glmm_binomial.methods.structured_vb as structured_vb
    import glmm_binomial.methods.variational as variational

    targets = {
        "laplace": (laplace, "fit_laplace"),
        "agq": (quadrature, "fit_agq"),
        "vb": (structured_vb, "fit_structured_vb"),
        "vb_meanfield": (variational, "fit_vb"),
    }
    module, name = targets[method]
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: _broken(real(*a, **k), **changes))
    data = g.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    model, _ = build_model(formula, data)
    for result in (g.fit(formula, data, method=method), g.fit_model(model, method=method)):
        assert not result.converged
        assert not result.opt_summary.converged
        assert any(w.category is ConvergenceWarning and "non-finite" in w for w in result.warnings)


def test_update_refits_with_the_formula_updated_or_other_arguments():
    """lme4's update(): ". ~ . - age:urban" is the explicit formula's fit (and anova tests it
    against the first); other arguments replace the fit's; the data the fit was given is used
    unless data= is given; a result without its call needs data=."""
    import pickle
    import warnings

    data = g.datasets.load("contraception")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = g.fit("use ~ age * urban + livch + (1 | district)", data)
        smaller = g.update(full, ". ~ . - age:urban")
        explicit = g.fit("use ~ age + urban + livch + (1 | district)", data)
        assert smaller.loglik == pytest.approx(explicit.loglik, abs=1e-9)
        assert list(smaller.fixef().index) == list(explicit.fixef().index)
        assert g.anova(smaller, full)["p"].iloc[1] == pytest.approx(0.3589, abs=1e-3)
        agq = g.update(full, method="agq", n_agq=5)
        assert (agq.method, agq.n_agq, agq.formula) == ("agq", 5, full.formula)
        subset = g.update(full, data=data[data["age"] > -10])
        assert subset.nobs == int((data["age"] > -10).sum())
        with pytest.raises(ValueError, match="fit\\(\\) has no argument 'bogus'"):
            g.update(full, bogus=1)
        refitted = full.refit(full.model.successes)
        with pytest.raises(ValueError, match="update needs data="):
            g.update(refitted, ". ~ . - livch")
        assert g.update(refitted, ". ~ . - livch", data=data).formula == (
            "use ~ age * urban + (1 | district)"
        )
        assert pickle.loads(pickle.dumps(full)).call is None  # the data stays behind
        with pytest.raises(ValueError, match="update takes a GLMMResult"):
            g.update("m", ". ~ .")


SLOPE = "use ~ age + urban + livch + (1 + urban | district)"


@pytest.fixture(scope="module")
def slope_fit():
    return g.fit(SLOPE, g.datasets.load("contraception"))


@pytest.mark.parametrize(
    "make_start",
    [
        lambda fit: fit,
        lambda fit: {"theta": [1.0, 0.0, 1.0]},
        lambda fit: [0.5, -0.5, 0.5],
        lambda fit: {"fixef": fit.params.to_dict()},
        lambda fit: {"theta": fit.theta, "fixef": list(fit.params)},
    ],
    ids=["a fit", "theta", "theta alone", "fixef by name", "both"],
)
def test_start_reaches_the_same_optimum(slope_fit, make_start):
    """glmer's start= (lme4's names and layouts, or an earlier fit): the same optimum; from
    the optimum itself the search takes fewer evaluations."""
    start = make_start(slope_fit)
    result = g.fit(SLOPE, g.datasets.load("contraception"), start=start)
    assert result.converged
    assert result.loglik == pytest.approx(slope_fit.loglik, abs=1e-6)
    np.testing.assert_allclose(result.params, slope_fit.params, atol=1e-4)
    if start is slope_fit:
        assert result.opt_summary.evaluations < slope_fit.opt_summary.evaluations
        again = g.update(slope_fit, start=slope_fit)  # lme4's update(m, start = ...)
        assert again.loglik == pytest.approx(slope_fit.loglik, abs=1e-9)


def test_start_of_agq_and_betabinomial_fits():
    data = g.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    for options in ({"method": "agq", "n_agq": 9}, {"family": "betabinomial"}):
        first = g.fit(formula, data, **options)
        again = g.fit(formula, data, start=first, **options)
        assert again.loglik == pytest.approx(first.loglik, abs=1e-8)
        assert len(first.theta) == (2 if "family" in options else 1)


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ({"theta": [1.0, 0.0]}, r"start\['theta'\] must have 3 values"),
        ({"theta": [-1.0, 0.0, 1.0]}, "below 0"),
        ({"theta": [np.nan, 0.0, 1.0]}, "missing or infinite"),
        ("abc", r"start\['theta'\] must be numbers"),
        ({"fixef": {"age": 1.0}}, r"start\['fixef'\] must name each fixed effect once"),
        ({"fixef": [0.0, 1.0]}, r"start\['fixef'\] must have 6 values"),
        ({"phi": 1.0}, "start takes 'theta' and 'fixef'"),
    ],
)
def test_bad_starts_are_named(start, message):
    with pytest.raises(ValueError, match=message):
        g.fit(SLOPE, g.datasets.load("contraception"), start=start)


def test_start_is_refused_where_it_does_not_apply(slope_fit):
    data = g.datasets.load("contraception")
    with pytest.raises(ValueError, match="start= is for the maximum-likelihood methods"):
        g.fit(SLOPE, data, method="vb", start=slope_fit)
    dd = pytest.importorskip("dask.dataframe")
    with pytest.raises(ValueError, match="start= is not available for a Dask DataFrame"):
        g.fit(SLOPE, dd.from_pandas(data, npartitions=2), start=slope_fit)
