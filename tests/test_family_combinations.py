"""Families and links combined with the other model features: priors (posterior-mode fits),
structured covariances (ar1, cs), the simulated residuals, and the methods that refuse them
(both variational methods).

The penalty of a prior is added to the deviance whatever the family, and a covariance
structure changes only Lambda, so both combine with every family and link under Laplace and
AGQ; the tests check that the combined objective's gradient is exact (against fourth-order
central differences) and that the fits reach an optimum of the combined objective."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmm_binomial as g
from glmm_binomial.family import make_family
from glmm_binomial.methods.agq import Agq
from glmm_binomial.methods.laplace import Laplace
from glmm_binomial.model.design import build_model
from glmm_binomial.numerics.pirls import PirlsControl
from glmm_binomial.results.simulated_residuals import (
    simulate_residuals,
    simulate_successes_matrix,
)

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
LONGITUDINAL = "cbind(k, n - k) ~ time + trt + {}"
REFERENCE = Path(__file__).parent / "reference"


def _cbpp() -> pd.DataFrame:
    return g.datasets.load("cbpp")


def _longitudinal(ids: int) -> pd.DataFrame:
    """The first ids // 2 ids of each arm of tests/reference/longitudinal.csv; timef a factor
    (categorical: the reader policy reads a column of numbers as numbers)."""
    data = pd.read_csv(REFERENCE / "longitudinal.csv")
    data = data[(data["id"] - 1) % 200 < ids // 2].reset_index(drop=True)
    data["timef"] = data["timef"].astype(str).astype("category")
    data["id"] = data["id"].astype(str)
    return data


def _fit(formula: str, data: pd.DataFrame, **arguments: object) -> g.GLMMResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return g.fit(formula, data, **arguments)


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
    scale = max(1.0, float(np.max(np.abs(analytic))))
    np.testing.assert_allclose(analytic, numeric, rtol=tolerance, atol=tolerance * scale)


def _point(model, seed):
    rng = np.random.default_rng(seed)
    theta = model.theta_start() + 0.1 * rng.normal(size=model.n_theta)
    if model.family.n_parameters:
        theta[model.family_slice] = np.log(6.0)
    beta = np.full(model.n_fixed, 0.1)
    beta[0] = -0.8
    return theta, beta


# --- priors -----------------------------------------------------------------------------------

PRIORS = {"fixef": "normal(sd = 3)", "cov": "wishart"}


@pytest.mark.parametrize(
    "family, method",
    [("binomial(link = 'probit')", Laplace), ("betabinomial", Laplace), ("cloglog", Agq)],
)
def test_penalized_objective_gradient_is_exact_with_other_families(family, method):
    chosen = make_family(link="cloglog") if family == "cloglog" else make_family(family)
    model, _ = build_model(CBPP, _cbpp(), family=chosen)
    settings = {"pirls_control": PirlsControl(tol=1e-22), "priors": PRIORS}
    if method is Agq:
        settings["n_agq"] = 5
    objective = method(**settings).objective(model)
    assert type(objective).__name__ == "PenalizedObjective"
    _check_gradient(objective, *_point(model, 3))


@pytest.mark.parametrize(
    "arguments",
    [
        {"link": "probit"},
        {"family": "betabinomial"},
        {"link": "cloglog", "method": "agq", "n_agq": 9},
    ],
)
def test_priors_combine_with_links_and_the_beta_binomial(arguments):
    plain = _fit(CBPP, _cbpp(), **arguments)
    penalized = _fit(CBPP, _cbpp(), priors=PRIORS, **arguments)
    assert penalized.converged and penalized.penalized
    assert (penalized.family, penalized.link) == (plain.family, plain.link)
    assert penalized.prior_deviance > 0.0
    # The posterior mode minimizes deviance + prior deviance: below that objective at the
    # maximum-likelihood estimates, and its deviance is above the ML one.
    objective = penalized.method_object.objective(penalized.model)
    at_ml = objective.deviance(plain.fit_output.theta, plain.fit_output.beta)
    assert penalized.penalized_objective <= at_ml + 1e-6
    assert penalized.loglik <= plain.loglik + 1e-8
    if arguments.get("family") == "betabinomial":
        assert penalized.phi is not None and np.isfinite(penalized.phi)


# --- structured covariances -------------------------------------------------------------------


@pytest.mark.parametrize(
    "term, family",
    [
        ("ar1(timef + 0 | id)", make_family(link="probit")),
        ("ar1(timef + 0 | id)", make_family("betabinomial")),
        ("cs(timef + 0 | id)", make_family(link="cloglog")),
        ("cs(timef + 0 | id)", make_family("betabinomial")),
    ],
)
def test_structured_covariance_gradient_is_exact_with_other_families(term, family):
    model, _ = build_model(LONGITUDINAL.format(term), _longitudinal(60), family=family)
    objective = Laplace(pirls_control=PirlsControl(tol=1e-22)).objective(model)
    _check_gradient(objective, *_point(model, 5))


def test_ar1_fit_with_the_probit_link():
    data = _longitudinal(200)
    logit = _fit(LONGITUDINAL.format("ar1(timef + 0 | id)"), data)
    probit = _fit(LONGITUDINAL.format("ar1(timef + 0 | id)"), data, link="probit")
    assert probit.converged and probit.link == "probit"
    # The same correlation structure on the probit's latent scale: rho nearly the logit's,
    # the SD and the coefficients about 0.6 times the logit's.
    rho = probit.varcorr["corr_1"].iloc[1]
    assert rho == pytest.approx(logit.varcorr["corr_1"].iloc[1], abs=0.05)
    ratio = probit.params["time"] / logit.params["time"]
    assert 0.5 < ratio < 0.7


# --- the variational methods refuse other families and links ----------------------------------


@pytest.mark.parametrize("method", ["vb", "vb_meanfield"])
def test_variational_methods_refuse_other_links_and_the_beta_binomial(method):
    with pytest.raises(ValueError, match=f"method '{method}' fits .* logit link only.*'probit'"):
        _fit(CBPP, _cbpp(), method=method, link="probit")
    with pytest.raises(ValueError, match="family 'betabinomial'"):
        _fit(CBPP, _cbpp(), method=method, family="betabinomial")


def test_spreadsheet_refuses_links_for_vb_meanfield():
    y = [[0], [1], [1], [0], [1], [1], [0], [0], [1], [1], [0], [1]]
    x = [[1], [2], [1.5], [2.5], [3], [1.2], [0.5], [2.2], [1.1], [2.9], [0.7], [1.9]]
    groups = [[1], [1], [1], [2], [2], [2], [3], [3], [3], [4], [4], [4]]
    message = g.glmm_binomial(y, x, groups, None, True, 0.05, "vb_meanfield", "cloglog")
    assert message == (
        'Invalid input: link "cloglog" is fitted by methods "laplace" and "agq"; method '
        '"vb_meanfield" fits the logit link only.'
    )


# --- simulated residuals through the family ---------------------------------------------------


def test_simulated_residuals_draw_from_the_beta_binomial():
    result = _fit(CBPP, _cbpp(), family="betabinomial")
    model, fit = result.model, result.fit_output
    draws = simulate_successes_matrix(
        model, fit.theta, fit.beta, 400, np.random.default_rng(1), fit.ranef
    ).astype(np.float64)
    mu = np.asarray(result.fitted())
    m = model.trials
    binomial_variance = m * mu * (1.0 - mu)
    # Var k = m mu (1 - mu) (1 + (m - 1) / (phi + 1)) (the effects held at their modes).
    expected = binomial_variance * (1.0 + (m - 1.0) / (result.phi + 1.0))
    ratio = np.sum(np.var(draws, axis=0)) / np.sum(expected)
    assert ratio == pytest.approx(1.0, abs=0.1)
    assert np.sum(np.var(draws, axis=0)) > 1.3 * np.sum(binomial_variance)
    first = simulate_residuals(result, n_sim=50, seed=4)
    again = simulate_residuals(result, n_sim=50, seed=4)
    np.testing.assert_array_equal(first.residuals, again.residuals)


def test_simulated_residuals_posterior_draw_with_a_link():
    result = _fit(CBPP, _cbpp(), link="cloglog")
    residuals = simulate_residuals(result, n_sim=50, seed=2)
    assert residuals.acceptance_rate is not None and residuals.acceptance_rate > 0.9
    assert np.all((residuals.residuals >= 0.0) & (residuals.residuals <= 1.0))


def test_spreadsheet_shifted_arguments_carry_the_link_and_the_prior():
    y = [[0], [1], [1], [0], [1], [1], [0], [0], [1], [1], [0], [1]]
    x = [[1], [2], [1.5], [2.5], [3], [1.2], [0.5], [2.2], [1.1], [2.9], [0.7], [1.9]]
    groups = [[1], [1], [1], [2], [2], [2], [3], [3], [3], [4], [4], [4]]
    # TRUE in x_random's place is fit_intercept; every later argument moves one place left.
    shifted = g.glmm_binomial(y, x, groups, True, 0.1, "laplace", "probit", "blme")
    direct = g.glmm_binomial(y, x, groups, None, True, 0.1, "laplace", "probit", "blme")
    assert not isinstance(shifted, str)
    assert shifted == direct
    rows = {row[0]: row[1] for row in shifted if row[0]}
    assert rows["link"] == "probit" and "prior_deviance" in rows
