"""Fits with the other links and the beta-binomial family, through every entry point, against
glmmTMB 1.1.5 and glmer (lme4 1.1-31) (tests/reference/families.json).

Tolerances, per statistic, with what was measured when they were set:
- Laplace logLik within 1e-5 of glmmTMB's (measured <= 1.2e-8) and fixed effects within 1e-3
  (measured <= 3.3e-6): glmmTMB's Laplace approximation takes the exact Hessian, as ours does.
  glmer's Laplace uses the expected information for links other than the logit (another
  approximation), and our logLik at glmer's estimates is 1e-3 to 2e-2 below ours.
- Beta-binomial phi within 1e-4 relative (measured 1e-8), SE(log phi) within 1e-3 relative
  (measured 8e-6).
- AGQ, n_agq = 25, against glmer's nAGQ = 25: logit estimates within 1e-4 (measured 1.0e-5);
  probit, cloglog and cauchit within 1e-2 (measured <= 6.3e-5), and our AGQ log-likelihood
  at our estimates at least as high as at glmer's.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from _simulate import all_successes_group_frame, simulated_model
from _simulate_nested import nested_model
from conftest import REFERENCE_DIR, load_reference
from scipy import special

import glmm_binomial as g
from glmm_binomial.diagnostics import BoundaryWarning
from glmm_binomial.family import (
    BINOMIAL_LOGIT,
    LOG_PHI_LIMIT,
    BetaBinomial,
    Binomial,
    make_family,
)
from glmm_binomial.methods.agq import AgqObjective
from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.model.design import build_model
from glmm_binomial.numerics.optimize import RUNNING_TO_END
from glmm_binomial.numerics.pirls import PirlsControl

REFERENCE = load_reference("families")["fits"]
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
CONTRACEPTION = "use ~ age + I(age^2) + urban + livch + (1 + urban | district)"
FORMULAS = {"cbpp": CBPP, "contraception": CONTRACEPTION}


def _data(name):
    return g.datasets.load(name)


def _fit(model, **arguments):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return g.fit(FORMULAS[model], _data(model), **arguments)


def _fixef(record, names):
    return np.array([record["fixef"][name] for name in names])


# --- Laplace against glmmTMB -----------------------------------------------------------------


@pytest.mark.parametrize("model", ["cbpp", "contraception"])
@pytest.mark.parametrize("link", ["probit", "cloglog"])
def test_laplace_reaches_glmmtmb_with_each_link(model, link):
    result = _fit(model, link=link)
    reference = REFERENCE[f"{model}_{link}_glmmTMB"]
    assert result.converged
    assert result.family == "binomial" and result.link == link and result.phi is None
    assert result.loglik == pytest.approx(reference["logLik"], abs=1e-5)
    np.testing.assert_allclose(
        result.params.to_numpy(), _fixef(reference, result.fixed_names), atol=1e-3
    )
    se = np.array([reference["se"][name] for name in result.fixed_names])
    np.testing.assert_allclose(result.bse.to_numpy(), se, rtol=1e-2)
    sds = result.varcorr["std_dev"].to_numpy()
    expected = list(reference["sd"][result.varcorr["group"].iloc[0]].values())
    np.testing.assert_allclose(sds, expected, rtol=1e-3, atol=1e-4)
    # glmer stops short of this optimum (its own Laplace takes the expected information).
    glmer = REFERENCE[f"{model}_{link}_glmer_laplace"]
    theta = np.array(list(glmer["theta"].values()))
    at_glmer = -0.5 * LaplaceObjective(result.model).deviance(
        theta, _fixef(glmer, result.fixed_names)
    )
    assert at_glmer < result.loglik - 1e-4


def test_logit_is_the_default_and_unchanged():
    default, named = _fit("cbpp"), _fit("cbpp", family="binomial", link="logit")
    assert default.model.family is BINOMIAL_LOGIT and named.model.family is BINOMIAL_LOGIT
    assert default.loglik == named.loglik
    np.testing.assert_array_equal(default.params, named.params)
    reference = REFERENCE["cbpp_logit_glmmTMB"]
    assert default.loglik == pytest.approx(reference["logLik"], abs=1e-5)


def test_r_spelling_of_the_family():
    spelled = _fit("cbpp", family="binomial(link = 'cloglog')")
    assert spelled.link == "cloglog"
    assert spelled.loglik == _fit("cbpp", link="cloglog").loglik
    with pytest.raises(ValueError, match="link"):
        _fit("cbpp", family="binomial(link = 'probit')", link="cloglog")
    with pytest.raises(ValueError, match="link must be one of"):
        _fit("cbpp", link="identity")


def test_beta_binomial_reaches_glmmtmb():
    result = _fit("cbpp", family="betabinomial")
    reference = REFERENCE["cbpp_betabinomial_logit_glmmTMB"]
    assert result.family == "betabinomial" and result.link == "logit"
    assert result.loglik == pytest.approx(reference["logLik"], abs=1e-5)
    np.testing.assert_allclose(
        result.params.to_numpy(), _fixef(reference, result.fixed_names), atol=1e-3
    )
    assert result.phi == pytest.approx(reference["phi"], rel=1e-4)
    assert result.phi_se / result.phi == pytest.approx(reference["se_log_phi"], rel=1e-3)
    # The herd SD is ~0 (glmmTMB: 1.4e-4): a boundary fit, the variance held at zero.
    assert result.singular
    assert result.varcorr["std_dev"].iloc[0] < 1e-3
    assert result.df_model == reference["df"]
    assert result.aic == pytest.approx(-2 * reference["logLik"] + 2 * reference["df"], abs=1e-4)
    text = result.summary()
    assert " Family: betabinomial  ( logit )" in text
    assert "Dispersion parameter for betabinomial family (): 10.8" in text


def _no_overdispersion(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(25), 12)
    x = rng.normal(size=groups.size)
    trials = rng.integers(2, 8, groups.size)
    eta = -0.3 + 0.6 * x + 0.5 * rng.normal(size=25)[groups]
    y = rng.binomial(trials, 1.0 / (1.0 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "f": trials - y, "x": x, "g": groups})


def _mild_overdispersion() -> pd.DataFrame:
    """phi = 100 drawn, 30 groups of 5 rows, 2-14 trials: the maximum is still at phi -> inf
    (a set whose search stopped at phi 1e7, 5.6e-7 short of the limit in logLik)."""
    rng = np.random.default_rng([29, 77])
    n_groups, per = int(rng.integers(8, 40)), int(rng.integers(3, 20))
    groups = np.repeat(np.arange(n_groups), per)
    x = rng.standard_normal(groups.size)
    sd = float(rng.choice([0.0, 0.3, 0.8]))
    phi = float(rng.choice([10.0, 30.0, 100.0, 300.0, np.inf]))
    eta = -0.5 + 0.6 * x + sd * rng.standard_normal(n_groups)[groups]
    p = 1.0 / (1.0 + np.exp(-eta))
    p = rng.beta(p * phi, (1.0 - p) * phi)
    trials = rng.integers(2, 15, groups.size)
    y = rng.binomial(trials, p)
    return pd.DataFrame({"y": y, "f": trials - y, "x": x, "g": groups})


@pytest.mark.parametrize("case", ["seed0", "seed2", "mild"])
def test_beta_binomial_without_overdispersion_is_the_binomial_fit_at_phi_inf(case):
    """Binomial data (no overdispersion): the beta-binomial's maximum is at phi -> infinity,
    where it is the binomial. The search goes far out in log phi (the likelihood there is the
    binomial's, not rounding noise: before, not converged at log phi 15.6 and logLik -inf at
    log phi 39) and stops where its gradient is below gtol; the end is then tried at the limit
    (LOG_PHI_LIMIT), held there: phi is reported as inf (not where the search stopped), with
    a BoundaryWarning and no standard error, and the logLik and estimates are the binomial
    fit's (before: phi 1e7 to 1e13, up to 5.6e-7 below the binomial's logLik)."""
    data = _mild_overdispersion() if case == "mild" else _no_overdispersion(int(case[-1]))
    formula = "cbind(y, f) ~ x + (1 | g)"
    with pytest.warns(BoundaryWarning, match="dispersion is at its limit"):
        beta_binomial = g.fit(formula, data, family="betabinomial")
    binomial = g.fit(formula, data)
    assert beta_binomial.converged
    assert beta_binomial.phi == np.inf
    assert np.isnan(beta_binomial.phi_se)
    assert not beta_binomial.singular
    assert beta_binomial.loglik == pytest.approx(binomial.loglik, abs=1e-9)
    np.testing.assert_allclose(beta_binomial.params, binomial.params, atol=1e-6)
    assert "(): Inf (at its limit" in str(beta_binomial.summary())


@pytest.mark.parametrize("case", ["seed0", "seed2"])
def test_phi_running_to_its_limit_is_put_there_instead_of_crawled_to(case):
    """The deviance falls as c / phi towards the binomial: the search moved log phi by about
    1 an iteration to where its gradient was below gtol. A pass now stops once 1 / phi is
    below boundary_tol with the deviance still falling and the rest near its optimum
    (end_gtol), and limit_end tries the limit there: the same fit as the crawl
    (end_gtol 0) in fewer evaluations."""
    data = _no_overdispersion(int(case[-1]))
    formula = "cbind(y, f) ~ x + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        early = g.fit(formula, data, family="betabinomial")
        crawled = g.fit(
            formula, data, family="betabinomial", control=g.OptimizerControl(end_gtol=0.0)
        )
    assert early.converged and crawled.converged
    assert early.phi == np.inf and crawled.phi == np.inf
    assert early.loglik == pytest.approx(crawled.loglik, abs=1e-9)
    assert early.opt_summary.evaluations < crawled.opt_summary.evaluations
    assert early.opt_summary.message.startswith(RUNNING_TO_END)


def test_model_data_puts_the_family_parameter_at_its_limit_and_off_it():
    data = _no_overdispersion(0)
    model, _ = build_model("cbind(y, f) ~ x + (1 | g)", data, family=make_family("betabinomial"))
    theta = np.array([0.5, 3.0])
    assert not model.family_at_limit(theta).any()
    at = model.theta_at_limit(theta)
    assert at is not None
    np.testing.assert_array_equal(at, [0.5, LOG_PHI_LIMIT])
    # Within LIMIT_TOL (the search's coordinates round it) is at it; the variance is not.
    assert model.family_at_limit(at - [0.0, 1e-9]).all()
    np.testing.assert_array_equal(model.theta_at_boundary(at, 1e-4), [False, True])
    np.testing.assert_allclose(model.theta_off_limit(at), [0.5, np.log(1e4)])
    np.testing.assert_array_equal(model.theta_off_limit(theta), theta)
    binomial, _ = build_model("cbind(y, f) ~ x + (1 | g)", data)
    assert binomial.theta_at_limit(np.array([0.5])) is None
    assert binomial.family_at_limit(np.array([0.5])).size == 0


def test_a_refit_from_phi_at_its_limit_leaves_it():
    """A refit (bootstrap, power simulation) from estimates with phi at its limit starts log
    phi at the moment start's upper end (out at the limit the deviance is flat in it): on
    overdispersed data it reaches the fresh fit's optimum."""
    data = _no_overdispersion(0)
    formula = "cbind(y, f) ~ x + (1 | g)"
    with pytest.warns(BoundaryWarning):
        at_limit = g.fit(formula, data, family="betabinomial")
    rng = np.random.default_rng(5)
    trials = (data["y"] + data["f"]).to_numpy()
    overdispersed = rng.binomial(trials, rng.beta(2.0, 3.0, len(data)))
    refit = at_limit.refit(overdispersed)
    fresh = g.fit(
        formula, data.assign(y=overdispersed, f=trials - overdispersed), family="betabinomial"
    )
    assert refit.converged and np.isfinite(refit.phi)
    assert refit.loglik == pytest.approx(fresh.loglik, abs=1e-8)
    assert refit.phi == pytest.approx(fresh.phi, rel=1e-4)


def test_beta_binomial_refuses_bernoulli_rows_and_weighted_counts():
    data = _data("contraception")
    with pytest.raises(ValueError, match="Bernoulli"):
        g.fit("use ~ urban + (1 | district)", data, family="betabinomial")
    cbpp = _data("cbpp")
    with pytest.raises(ValueError, match="weights with a cbind"):
        g.fit(CBPP, cbpp, family="betabinomial", weights=np.full(len(cbpp), 2.0))
    # Proportions with weights= the trials are counts.
    proportions = cbpp.assign(p=cbpp["incidence"] / cbpp["size"])
    as_counts = _fit("cbpp", family="betabinomial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        as_proportions = g.fit(
            "p ~ period + (1 | herd)", proportions, family="betabinomial", weights="size"
        )
    assert as_proportions.loglik == pytest.approx(as_counts.loglik, abs=1e-8)


def test_beta_binomial_intervals_simulate_and_bootstrap():
    result = _fit("cbpp", family="betabinomial")
    wald = result.confint("wald")
    phi, log_se = result.phi, result.phi_se / result.phi
    assert wald.loc["phi", "lower"] == pytest.approx(phi * np.exp(-1.959964 * log_se), rel=1e-6)
    profile = g.profile_confint(result, which=["phi", "period2"])
    lower, upper = profile.loc["phi"]
    assert lower < phi < upper
    # The profile is asymmetric on the phi scale (skewed to the right).
    assert upper - phi > phi - lower
    first = result.simulate(3, seed=5)
    np.testing.assert_array_equal(first, result.simulate(3, seed=5))
    assert np.all(first <= result.model.trials[:, None])
    boot = g.bootstrap(result, n_boot=4, seed=2, progress=False)
    assert "phi" in boot.replicates.columns
    assert boot.replicates["phi"].notna().sum() >= 3


def test_beta_binomial_simulations_are_overdispersed():
    """Many simulations from the fit: the variance of the successes around their mean is the
    beta-binomial's m mu (1 - mu) (1 + (m - 1) / (phi + 1)), not the binomial's."""
    result = _fit("cbpp", family="betabinomial")
    draws = result.simulate(4000, seed=1, use_u=True)
    model = result.model
    mu = result.predict(type="response")
    m = model.trials
    expected = m * mu * (1 - mu) * (1 + (m - 1) / (result.phi + 1))
    np.testing.assert_allclose(draws.mean(axis=1), m * mu, rtol=0.05, atol=0.05)
    np.testing.assert_allclose(draws.var(axis=1), expected, rtol=0.12)


# --- AGQ against glmer's nAGQ = 25 -----------------------------------------------------------


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog", "cauchit"])
def test_agq_with_each_link_against_glmer_nagq25(link):
    result = _fit("cbpp", method="agq", n_agq=25, link=link)
    reference = REFERENCE[f"cbpp_{link}_glmer_agq25"]
    theta = np.array(list(reference["theta"].values()))
    beta = _fixef(reference, result.fixed_names)
    tolerance = 1e-4 if link == "logit" else 1e-2
    assert result.converged
    np.testing.assert_allclose(result.params.to_numpy(), beta, atol=tolerance)
    np.testing.assert_allclose(result.theta, theta, atol=tolerance)
    objective = AgqObjective(result.model, 25)
    at_glmer = -0.5 * objective.deviance(theta, beta)
    assert result.loglik >= at_glmer
    assert result.loglik == pytest.approx(
        -0.5 * objective.deviance(result.theta, result.params.to_numpy()), abs=1e-9
    )


def test_one_point_quadrature_is_the_laplace_fit_for_every_family():
    for family in ("binomial(probit)", "binomial(cauchit)", "betabinomial"):
        laplace = _fit("cbpp", family=family)
        agq = _fit("cbpp", family=family, method="agq", n_agq=1)
        assert agq.loglik == pytest.approx(laplace.loglik, abs=1e-7)


# --- exact gradients -------------------------------------------------------------------------


def _low_rate(data, seed):
    """The same design with successes drawn at low rates (the log link needs mu < 1)."""
    rng = np.random.default_rng(seed)
    eta = -2.5 + 0.3 * data.x[:, 1] + 0.4 * rng.normal(size=data.n_obs)
    k = rng.binomial(data.trials.astype(int), np.exp(eta)).astype(float)
    return dataclasses.replace(data, successes=k, log_binomial_constant=float("nan"))


def _check_gradient(objective, theta, beta, tolerance=2e-6):
    _, g_theta, g_beta = objective.deviance_and_gradient(theta, beta)
    analytic = np.concatenate([g_theta, g_beta])
    step = 1e-5
    numeric = []
    for j in range(len(analytic)):
        e = np.zeros(len(analytic))
        e[j] = step
        values = [
            objective.deviance(theta + c * e[: len(theta)], beta + c * e[len(theta) :])
            for c in (2.0, 1.0, -1.0, -2.0)
        ]
        numeric.append((-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * step))
    np.testing.assert_allclose(analytic, numeric, rtol=tolerance, atol=tolerance)


FAMILIES = {
    "probit": Binomial("probit"),
    "cloglog": Binomial("cloglog"),
    "cauchit": Binomial("cauchit"),
    "log": Binomial("log"),
    "betabinomial": BetaBinomial("logit"),
    "betabinomial_cloglog": BetaBinomial("cloglog"),
}


def _parameters(data, seed):
    rng = np.random.default_rng(seed)
    theta = data.theta_start() * 0.5 + 0.05 * rng.normal(size=data.n_theta)
    if data.family.n_parameters:
        theta[data.family_slice] = np.log(6.0)
    beta = np.full(data.n_fixed, 0.1)
    beta[0] = -2.5 if data.family.link == "log" else -0.6
    return theta, beta


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("levels", [(15,), (12, 5)])
def test_laplace_gradient_is_exact_for_every_family(name, levels):
    data = simulated_model(
        3, levels=levels, slopes=(True,) + (False,) * (len(levels) - 1), trials=4
    )
    if name == "log":
        data = _low_rate(data, 4)
    data = dataclasses.replace(data, family=FAMILIES[name])
    objective = LaplaceObjective(data, PirlsControl(tol=1e-22))
    _check_gradient(objective, *_parameters(data, 1))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_agq_gradient_is_exact_for_every_family(name):
    vector = simulated_model(5, levels=(15,), slopes=(True,), trials=4)
    nested = nested_model(3, branching=(10, 3), trials=4)
    for data, n_agq in ((vector, 4), (nested, 4)):
        if name == "log":
            data = _low_rate(data, 6)
        data = dataclasses.replace(data, family=FAMILIES[name])
        objective = AgqObjective(data, n_agq, PirlsControl(tol=1e-22))
        _check_gradient(objective, *_parameters(data, 2))


# --- the non-concave likelihoods: observed weights below zero --------------------------------


def test_cauchit_mode_search_with_negative_observed_weights():
    """Far from the data the cauchit's observed weights are negative: PIRLS steps with them
    where H stays positive definite (else with them clipped at zero) and factors H with the
    observed ones at the mode (the Laplace approximation's exact Hessian)."""
    result = _fit("cbpp", link="cauchit")
    objective = LaplaceObjective(result.model)
    theta, beta = result.theta, result.params.to_numpy()
    mode = objective.mode(theta, beta * 3.0)  # far off: some observed weights below zero
    assert mode.converged and np.any(mode.weights < 0)
    family = result.model.family
    w, _ = family.weights_and_residual(
        mode.eta, mode.mu, objective.data.successes, objective.data.trials
    )
    np.testing.assert_array_equal(mode.weights, w)
    # The log-determinant is that of the observed-weight H: the gradient is exact there too.
    _check_gradient(LaplaceObjective(result.model, PirlsControl(tol=1e-22)), theta, beta * 3.0)


# --- the log link's constraint ---------------------------------------------------------------


def test_log_link_fits_where_probabilities_stay_below_one():
    result = _fit("cbpp", link="log")
    assert result.converged and result.link == "log"
    assert np.max(result.predict(type="link")) < 0
    assert np.isnan(result.fixed_effects["odds_ratio"]).all()


def test_log_link_says_when_its_constraint_is_active():
    frame = all_successes_group_frame()  # a group with every trial a success
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit("y ~ x + (1 | g)", frame, link="log")
    assert not result.converged
    assert any("constraint mu = exp(eta) <= 1 is active" in str(w) for w in result.warnings)


def test_log_link_singular_end_is_searched_again_from_lme4s_start():
    """Under the log link a scalar term's profile can dip after an SD of zero and rise to a
    higher optimum: the zero end (logLik -31.989) is searched again from lme4's start
    (ModelData.theta_singular_restart), which reaches glmmTMB's optimum."""
    frame = pd.read_csv(REFERENCE_DIR / "log_link_zero_dip.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit("y ~ x + (1 | g/h)", frame, link="log")
    assert result.converged
    assert result.loglik == pytest.approx(-31.5180590889338, abs=1e-6)
    assert result.theta[1] == pytest.approx(np.sqrt(3.08837145953299), rel=1e-3)
    assert "from lme4's start, after a singular end" in result.opt_summary.message


def test_log_link_converged_local_optimum_gives_way_to_a_higher_end():
    """A converged end with both SDs at zero (logLik -12.839) is only a local optimum where the
    search from lme4's start climbs higher, to the log link's bound: the fit reports that
    higher end, not converged, with the bound's warning and the local optimum named
    (optimize.better_of_basins; glmmTMB 1.1.5 stops unconverged at -11.235)."""
    frame = pd.read_csv(REFERENCE_DIR / "log_link_local_optimum.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit("y ~ x + (1 | g/h)", frame, link="log")
        local = g.fit("y ~ x + (1 | g/h)", frame, link="log", start={"theta": [0.0, 0.0]})
    assert local.converged
    assert local.loglik == pytest.approx(-12.8392312533, abs=1e-6)
    assert not result.converged
    assert result.loglik > -11.23483
    assert "is a local optimum only" in result.opt_summary.message
    assert f"{-2.0 * local.loglik:.6g}" in result.opt_summary.message
    assert any("constraint mu = exp(eta) <= 1 is active" in str(w) for w in result.warnings)


def test_log_link_end_where_the_deviance_is_not_finite_reports_the_lowest_finite_one():
    """fuzz_dask_log 50 (tests/reference/log_link_lowest_end.csv): with the mode search started
    at u = 0 where the warm start fails (as before pirls.below_bound_start), the nested fit's
    search ends where the mode search fails (a row's fixed part past the log link's bound),
    and its end is the lowest finite deviance it evaluated; evaluated again there from another
    warm start the mode search failed too, and the fit reported logLik -inf under that
    message. It keeps the value it had there. With the start below the bound, both fits go
    further, to the bound itself (-328.384 and -329.288 before). Neither lets numpy's
    RuntimeWarnings out (finish_fit's mode, the quadrature's count at the bound)."""
    frame = pd.read_csv(REFERENCE_DIR / "log_link_lowest_end.csv")
    nested = "y ~ x + (1 | g/h)"

    def zero_start(structure, eta_fixed, a, upper):
        return np.zeros((structure.n1, 1))

    with mock.patch("glmm_binomial.numerics.pirls.below_bound_start", zero_start):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = g.fit(nested, frame, link="log")
    assert not result.converged and result.loglik == pytest.approx(-328.384, abs=1e-3)
    assert "lowest finite deviance" in result.opt_summary.message
    for formula, options, before in (
        (nested, {}, -328.384),
        ("y ~ x + f + (1 | g)", {"method": "agq", "n_agq": 5}, -329.288),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = g.fit(formula, frame, link="log", **options)
        assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
        assert not result.converged and result.loglik > before
        assert "lowest finite deviance" not in result.opt_summary.message
        assert any("constraint mu = exp(eta) <= 1 is active" in str(w) for w in result.warnings)


def test_log_link_fixed_part_past_the_bound_is_brought_back_by_the_random_effect():
    """fuzz_dask_log 50's counts (and its random slope): the search took the fixed part of a
    row to the log link's bound and stopped there (234 of 273 mode searches failed, logLik
    -605.768, no word of the bound), as every point with that row's fixed part past 0 failed:
    the mode search started at u = 0, where the row's rate is above 1, though its group's
    negative random effect brings it back (the likelihood there finite, its mode unique). The
    mode search now starts those groups below the bound (pirls.below_bound_start): the fit
    goes on to the bound of the fitted eta and says so (Dask's fit of the same data reached
    -600.093 there)."""
    frame = pd.read_csv(REFERENCE_DIR / "log_link_counts_past_bound.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = g.fit("cbind(k, m - k) ~ x + f + (1 | g)", frame, link="log")
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not result.converged and result.loglik > -600.0
    assert any("constraint mu = exp(eta) <= 1 is active" in str(w) for w in result.warnings)
    fixed_part = result.model.x @ result.fit_output.beta
    assert fixed_part.max() > 0.0  # past the bound, brought back by its group's effect
    assert result.fitted().max() <= 1.0
    # A random slope: its groups' random intercepts lowered (pirls.intercept_direction); the
    # search ended where the deviance was not finite, at -330.005.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slope = g.fit("y ~ x + (1 + x | g)", frame, link="log")
    assert not slope.converged and slope.loglik > -329.5
    assert "not finite" not in slope.opt_summary.message
    assert any("constraint mu = exp(eta) <= 1 is active" in str(w) for w in slope.warnings)


def test_log_link_betabinomial_nested_counts():
    """A beta-binomial log-link fit whose mode searches pass near the bound (mu = 1): it once
    ended at logLik -inf. glmmTMB's optimum (tests/reference/README.md)."""
    frame = pd.read_csv(REFERENCE_DIR / "log_link_betabinomial_nested.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit("cbind(k, m - k) ~ x + (1 | g/h)", frame, link="log", family="betabinomial")
    assert result.converged
    assert result.loglik == pytest.approx(-442.1115097702, abs=1e-6)
    np.testing.assert_allclose(result.params.to_numpy(), [-2.2684983, 0.2240186], atol=1e-5)
    assert result.phi == pytest.approx(44.6153, rel=1e-4)


def overdispersed_counts(seed: int, n_groups: int, per: int = 6) -> pd.DataFrame:
    """Counts of 1 to 11 trials, beta-binomial with phi 4 about logit rates near 0.4 (so that
    a log-link fit meets mu = 1 in some groups), x on the scale 10 +- 3."""
    rng = np.random.default_rng(seed)
    g_codes = rng.permutation(np.repeat(np.arange(n_groups), per))
    x = 10.0 + 3.0 * rng.normal(size=g_codes.size)
    eta = -0.3 + 0.2 * (x - 10.0) + rng.normal(scale=0.8, size=n_groups)[g_codes]
    p = special.expit(eta)
    m = rng.integers(1, 12, size=g_codes.size)
    k = rng.binomial(m, rng.beta(4.0 * p, 4.0 * (1.0 - p)))
    return pd.DataFrame({"k": k, "fail": m - k, "x": x, "g": [f"G{v}" for v in g_codes]})


def test_log_link_betabinomial_stays_at_the_bound():
    """The beta-binomial's likelihood past the log link's bound is 0, and its mode search steps
    up to the bound and holds rows there as the binomial's. Before, the likelihood was carried
    on flat past the bound: this fit ended at eta up to 0.035 (mu = 1.04), its mode searches
    mostly took all 100 steps, 6,629 PIRLS iterations in all (468 now)."""
    frame = overdispersed_counts(1, 12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = g.fit("cbind(k, fail) ~ x + (1 | g)", frame, link="log", family="betabinomial")
    eta = result.predict(type="link")
    assert eta.max() <= 0.0 and eta.max() > -1e-8  # held on the bound
    assert np.isfinite(result.loglik) and not result.converged
    assert any("constraint mu = exp(eta) <= 1 is active" in str(w.message) for w in caught)
    assert result.opt_summary.pirls_iterations < 2_000
    # The likelihood there is the family's own: the rows' log-likelihood at the fitted eta
    # is finite (no row past the bound).
    family = BetaBinomial("log", phi=result.phi)
    k, m = frame["k"].to_numpy(float), (frame["k"] + frame["fail"]).to_numpy(float)
    assert np.isfinite(family.loglik_rows(np.asarray(eta), k, m)).all()


# --- results through the family --------------------------------------------------------------


def test_predictions_and_marginal_means_through_the_inverse_link():
    result = _fit("cbpp", link="probit")
    eta = result.predict(type="link")
    np.testing.assert_allclose(result.predict(type="response"), special.ndtr(eta), rtol=1e-14)
    fit_se = result.predict(_data("cbpp").head(), se_fit=True, type="response")
    link_se = result.predict(_data("cbpp").head(), se_fit=True, type="link")
    density = np.exp(-0.5 * link_se["fit"] ** 2) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(fit_se["se_fit"], link_se["se_fit"] * density, rtol=1e-12)
    # E[Phi(eta + s Z)] = Phi(eta / sqrt(1 + s^2)): the marginal mean in closed form.
    fixed = result.predict(type="link", re="exclude")
    sd = result.varcorr["std_dev"].iloc[0]
    np.testing.assert_allclose(
        result.marginal_predict(), special.ndtr(fixed / np.sqrt(1 + sd**2)), rtol=1e-10
    )
    marginal = result.marginal_coefs(std_errors=False)["estimate"]
    np.testing.assert_allclose(marginal, result.params / np.sqrt(1 + sd**2), rtol=1e-8)
    assert np.isnan(result.fixed_effects["odds_ratio"]).all()
    assert " Family: binomial  ( probit )" in result.summary()


def test_residuals_and_r2_with_other_links():
    result = _fit("cbpp", link="cloglog")
    mu = result.fitted()
    y = result.model.successes / result.model.trials
    eta = result.predict(type="link")
    np.testing.assert_allclose(
        result.resid("working"), (y - mu) / result.model.family.mu_eta(eta), rtol=1e-12
    )
    r2 = g.r2_nakagawa(result)
    v = r2.components
    assert v.residual == pytest.approx(np.pi**2 / 6.0)
    assert 0 < r2.marginal < r2.conditional < 1
    cauchit = _fit("cbpp", link="cauchit")
    with pytest.raises(ValueError, match="latent variance"):
        g.r2_nakagawa(cauchit)
    beta_binomial = _fit("cbpp", family="betabinomial")
    pearson = beta_binomial.resid("pearson")
    m, p = beta_binomial.model.trials, beta_binomial.fitted()
    factor = 1 + (m - 1) / (beta_binomial.phi + 1)
    np.testing.assert_allclose(pearson, (y - p) / np.sqrt(p * (1 - p) * factor / m), rtol=1e-12)


def test_profile_interval_with_a_link():
    result = _fit("cbpp", link="probit")
    table = g.profile_confint(result, which=["sd_(Intercept)|herd", "period2"])
    sd = result.varcorr["std_dev"].iloc[0]
    assert (
        table.loc["sd_(Intercept)|herd", "lower"] < sd < table.loc["sd_(Intercept)|herd", "upper"]
    )
    wald = result.confint("wald").loc["period2"]
    # Near the Wald interval for a fixed effect.
    np.testing.assert_allclose(table.loc["period2"], wald, atol=0.05)


def test_refit_and_bootstrap_keep_the_link():
    result = _fit("cbpp", link="cloglog")
    y = result.simulate(1, seed=3)[:, 0]
    refitted = result.refit(y)
    assert refitted.link == "cloglog"
    boot = g.bootstrap(result, n_boot=3, seed=7, progress=False)
    assert boot.n_failed == 0
    again = g.bootstrap(result, n_boot=3, seed=7, progress=False)
    pd.testing.assert_frame_equal(boot.replicates, again.replicates)


# --- methods that fit the logit only ---------------------------------------------------------


def test_variational_bayes_refuses_other_links_and_families():
    with pytest.raises(ValueError, match="method 'vb' fits the binomial family with the logit"):
        _fit("cbpp", method="vb", link="probit")
    with pytest.raises(ValueError, match="'betabinomial'"):
        _fit("cbpp", method="vb", family="betabinomial")


def test_dask_frames_refuse_methods_that_fit_the_logit_only():
    # Every family and link is fitted on Dask by the likelihood methods
    # (tests/test_distributed.py).
    dd = pytest.importorskip("dask.dataframe")
    frame = dd.from_pandas(_data("cbpp"), npartitions=2)
    # Before a client is needed (no pass over the data).
    with pytest.raises(ValueError, match="method 'vb' fits the binomial family with the logit"):
        g.fit(CBPP, frame, link="probit", method="vb")


# --- front ends ------------------------------------------------------------------------------

Y = [[0], [1], [1], [0], [1], [1], [0], [0], [1], [1], [0], [1]]
X = [[1], [2], [1.5], [2.5], [3], [1.2], [0.5], [2.2], [1.1], [2.9], [0.7], [1.9]]
G = [[1], [1], [1], [2], [2], [2], [3], [3], [3], [4], [4], [4]]


def test_spreadsheet_link_argument():
    table = g.glmm_binomial(Y, X, G, None, True, 0.05, "laplace", "probit")
    assert not isinstance(table, str)
    rows = {row[0]: row[1] for row in table if row[0]}
    assert rows["family"] == "binomial" and rows["link"] == "probit"
    fixed = [row for row in table[1:3]]
    assert all(row[8] is None for row in fixed)  # no odds ratio for the probit
    logit = g.glmm_binomial(Y, X, G, None, True, 0.05, "laplace")
    assert {row[0]: row[1] for row in logit if row[0]}["link"] == "logit"
    assert logit[1][8] is not None
    # Case-insensitive, blank means logit, shifted after a boolean x_random.
    upper = g.glmm_binomial(Y, X, G, None, True, 0.05, "laplace", "PROBIT")
    assert upper == table
    assert g.glmm_binomial(Y, X, G, None, True, 0.05, "laplace", "") == logit
    shifted = g.glmm_binomial(Y, X, G, True, 0.05, "laplace", "probit")
    assert shifted == table


def test_spreadsheet_link_messages():
    assert g.glmm_binomial(Y, X, G, None, True, 0.05, "vb", "probit") == (
        'Invalid input: link "probit" is fitted by methods "laplace" and "agq"; method "vb" '
        "fits the logit link only."
    )
    message = g.glmm_binomial(Y, X, G, None, True, 0.05, "laplace", "identity")
    assert message.startswith("Invalid input: link must be one of")
    assert g.glmm_binomial(Y, X, G, None, True, 0.05, "laplace", 3).startswith(
        "Invalid input: link must be text"
    )


def test_command_line_link_and_family(tmp_path, capsys):
    from glmm_binomial.frontends.cli import main

    out = tmp_path / "fit.json"
    code = main(["fit", "cbpp", CBPP, "--link", "cloglog", "-o", str(out), "--no-progress"])
    assert code == 0
    document = json.loads(out.read_text())
    assert document["family"] == "binomial" and document["link"] == "cloglog"
    assert document["phi"] is None
    reference = REFERENCE["cbpp_cloglog_glmmTMB"]
    assert document["loglik"] == pytest.approx(reference["logLik"], abs=1e-5)
    capsys.readouterr()  # the line naming the file written
    code = main(["fit", "cbpp", CBPP, "--family", "betabinomial", "--json", "--no-progress"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["family"] == "betabinomial"
    assert printed["phi"] == pytest.approx(
        REFERENCE["cbpp_betabinomial_logit_glmmTMB"]["phi"], rel=1e-4
    )
    assert main(["fit", "cbpp", CBPP, "--link", "identity", "--no-progress"]) == 2
    summary = tmp_path / "fit.txt"
    main(["fit", "cbpp", CBPP, "--family", "binomial(link = 'probit')", "-o", str(summary)])
    assert " Family: binomial  ( probit )" in summary.read_text()


def test_fit_model_takes_the_family():
    data = simulated_model(2, levels=(12,), slopes=(False,), trials=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit_model(data, link="probit")
        reference = g.fit_model(dataclasses.replace(data, family=make_family(link="probit")))
    assert result.link == "probit"
    assert result.loglik == reference.loglik


def test_anova_gives_no_test_between_families_or_links():
    table = g.anova(_fit("cbpp"), _fit("cbpp", family="betabinomial"))
    assert np.isnan(table["p"].iloc[1]) and "family or link" in table["note"].iloc[1]
    # The log-likelihoods are of the same data: AIC compares them.
    assert table["AIC"].iloc[1] < table["AIC"].iloc[0]


def test_an_unbounded_cauchit_laplace_fit_points_to_agq():
    """cauchit_nested_unbounded.csv: the Laplace approximation with the observed curvature
    rises without bound towards conditional modes where that curvature nearly vanishes (the
    cauchit's likelihood is not log-concave); the fit ends unconverged, says why and points
    to AGQ, whose nested rule has an interior optimum there (tests/reference/README.md)."""
    frame = pd.read_csv(REFERENCE_DIR / "cauchit_nested_unbounded.csv")
    formula = "y ~ x + f + (1 | g) + (1 | g:h)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        laplace = g.fit(formula, frame, link="cauchit")
        agq = g.fit(formula, frame, link="cauchit", method="agq", n_agq=9)
    assert not laplace.converged
    assert any("not log-concave" in w and "method='agq'" in w for w in laplace.warnings)
    assert agq.converged and np.isfinite(agq.bse).all()
    np.testing.assert_allclose(agq.llf, -128.7272, atol=1e-4)
    np.testing.assert_allclose(agq.theta, [1.2142, 0.0], atol=1e-4)
    assert not any("log-concave" in w for w in agq.warnings)
