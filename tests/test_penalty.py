"""Posterior-mode (penalized) fits (methods/penalty.py) against blme's bglmer (tests/reference/
priors_structured.json; blme 1.0-5): MAP fixed effects and SDs within 1e-3; the separation
case ended by a t prior; a boundary fit moved inside by the Wishart prior; the penalty's exact
gradient, also through the internal rescaling of the columns, which must not change the
model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CBPP

import glmm_binomial as g
from glmm_binomial.methods.laplace import Laplace, LaplaceObjective
from glmm_binomial.methods.penalty import PenalizedObjective, bind_priors
from glmm_binomial.methods.scaling import choose_scaling, to_internal
from glmm_binomial.model.design import build_model
from glmm_binomial.model.priors import parse_priors
from glmm_binomial.numerics.optimize import OptimizerControl

REFERENCE_DIR = Path(__file__).parent / "reference"
REFERENCE = json.loads((REFERENCE_DIR / "priors_structured.json").read_text())
BGLMER = REFERENCE["bglmer"]
SEPARATION = REFERENCE["separation"]["fits"]
CONTRACEPTION = "use ~ age + urban + livch + (1 + urban | district)"
INDICATOR = "y ~ I(x > 1) + z + (1 | g)"


@pytest.fixture(scope="module")
def separation() -> pd.DataFrame:
    return pd.read_csv(REFERENCE_DIR / "separation.csv")


def sds_and_correlation(result: g.GLMMResult) -> tuple[np.ndarray, np.ndarray]:
    sigma = result.covariance_matrices()[0]
    sd = np.sqrt(np.diag(sigma))
    return sd, sigma / np.outer(sd, sd)


def check_against_bglmer(result: g.GLMMResult, reference: dict) -> None:
    assert result.converged and result.penalized
    np.testing.assert_allclose(
        result.params.to_numpy(), list(reference["fixef"].values()), atol=1e-3
    )
    ((group, sds),) = reference["sd"].items()
    sd, corr = sds_and_correlation(result)
    np.testing.assert_allclose(sd, list(sds.values()), atol=1e-3)
    if reference["cor"]:
        expected = np.array([list(r.values()) for r in reference["cor"][group].values()])
        np.testing.assert_allclose(corr, expected, atol=1e-3)
    # Our optimum is at least as good as bglmer's point in our own penalized objective (blme
    # evaluates its own deviance about 6e-4 higher at its point; see the README).
    objective = result.method_object.objective(result.model)
    theirs = objective.deviance(
        np.array(list(reference["theta"].values())), np.array(list(reference["fixef"].values()))
    )
    assert result.penalized_objective <= theirs + 1e-8
    assert result.penalized_objective == pytest.approx(reference["penalized_objective"], abs=1e-3)
    assert result.loglik == pytest.approx(reference["logLik"], abs=1e-3)
    assert result.prior_deviance == pytest.approx(reference["prior_deviance"], abs=1e-3)


def test_cbpp_blme_default() -> None:
    result = g.fit(CBPP, g.datasets.load("cbpp"), priors="blme")
    check_against_bglmer(result, BGLMER["cbpp_default"])
    assert result.priors == ("cov (herd: (Intercept)): wishart(df = 3.5, scale = Inf)",)
    # Standard errors from the curvature of the penalized objective, as bglmer's vcov().
    np.testing.assert_allclose(
        result.bse.to_numpy(), list(BGLMER["cbpp_default"]["se"].values()), rtol=2e-2
    )


def test_contraception_normal_and_wishart() -> None:
    priors = {"fixef": "normal(sd = c(3, 3))", "cov": "wishart"}
    result = g.fit(CONTRACEPTION, g.datasets.load("contraception"), priors=priors)
    check_against_bglmer(result, BGLMER["contraception_normal3"])
    np.testing.assert_allclose(
        result.bse.to_numpy(), list(BGLMER["contraception_normal3"]["se"].values()), rtol=1e-2
    )


@pytest.mark.parametrize(
    ("name", "formula", "prior"),
    [
        ("bglmer_indicator_t7_scale2.5", INDICATOR, "t(df = 7, scale = 2.5)"),
        ("bglmer_indicator_t7_scale2.5sq", INDICATOR, "t(df = 7, scale = 2.5^2)"),
        ("bglmer_t7_scale2.5", "y ~ x + z + (1 | g)", "t(df = 7, scale = 2.5)"),
        ("bglmer_t7_scale2.5sq", "y ~ x + z + (1 | g)", "t(df = 7, scale = 2.5^2)"),
    ],
)
def test_separation_data_with_a_t_prior(
    name: str, formula: str, prior: str, separation: pd.DataFrame
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no SeparationWarning (nor any other) under the prior
        result = g.fit(formula, separation, priors={"fixef": prior, "cov": "wishart"})
    check_against_bglmer(result, SEPARATION[name])
    assert np.all(np.isfinite(result.bse))


def test_separation_without_a_prior_still_warns(separation: pd.DataFrame) -> None:
    with pytest.warns(g.SeparationWarning):
        result = g.fit(INDICATOR, separation)
    assert not result.converged and not result.penalized
    # glmer's 19.8 (SE 724) is a point on the diverging path; the prior's estimate is 3.10.
    assert SEPARATION["glmer_indicator"]["fixef"]["I(x > 1)TRUE"] > 15


def test_a_coefficient_without_prior_is_still_screened(separation: pd.DataFrame) -> None:
    """An Inf prior SD leaves that coefficient unpenalized: separated, it still diverges."""
    with pytest.warns(g.SeparationWarning):
        result = g.fit(INDICATOR, separation, priors={"fixef": "normal(sd = c(3, Inf, 3))"})
    assert not result.converged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        covered = g.fit(INDICATOR, separation, priors={"fixef": "normal(sd = c(Inf, 3, 3))"})
    assert covered.converged and abs(covered.params.iloc[1]) < 10


def test_boundary_fit_is_moved_inside_by_the_wishart_prior() -> None:
    """Four cbpp herds: the ML herd variance is 0 (a boundary fit, lme4's too); bglmer's
    Wishart prior (-(df - q - 1) log det Sigma) keeps it positive."""
    data = g.datasets.load("cbpp")
    data = data[data["herd"].isin(["2", "3", "4", "5"])]
    with pytest.warns(g.BoundaryWarning):
        plain = g.fit(CBPP, data)
    assert plain.singular and plain.theta[0] < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        penalized = g.fit(CBPP, data, priors="blme")
    assert penalized.converged and not penalized.singular
    assert penalized.theta[0] > 0.3
    # The posterior mode: the prior's push (d/dsd of -1.5 log sd^2 = -3 / sd) balances the
    # deviance's slope there.
    objective = LaplaceObjective(penalized.model)
    _, grad, _ = objective.deviance_and_gradient(penalized.theta, penalized.params.to_numpy())
    assert grad[0] == pytest.approx(3.0 / penalized.theta[0], rel=1e-3)


def scaled_model(separation: pd.DataFrame):
    """A design the fit rescales and centres internally (x in large units, off zero, and a
    random slope on it), with its penalty in the user's units."""
    frame = separation.assign(x=separation["x"] * 1000 + 5000)
    model, _ = build_model("y ~ x + z + (1 + x | g)", frame)
    return frame, model


def test_penalty_gradient_through_the_column_maps(separation: pd.DataFrame) -> None:
    _, model = scaled_model(separation)
    scaling = choose_scaling(model, OptimizerControl())
    assert not scaling.is_identity
    internal = to_internal(model, scaling)
    priors = parse_priors({"fixef": "t(df = 3, scale = c(100, 1e-5, 4))", "cov": "wishart"})
    penalty = bind_priors(priors, internal, scaling.fixed, scaling.blocks)
    assert penalty is not None
    theta = np.array([0.9, -0.3, 0.5])
    beta = np.array([0.2, 0.4, 0.6])
    value, g_theta, g_beta = penalty.value_and_gradient(theta, beta)
    # The same prior in the user's units at the same point.
    user = bind_priors(priors, model)
    assert user is not None
    c = scaling.blocks[0]
    lam = internal.lambdas(theta)[0]
    user_lambda = np.linalg.cholesky(c @ lam @ lam.T @ c.T)
    user_theta = np.array([user_lambda[0, 0], user_lambda[1, 0], user_lambda[1, 1]])
    assert value == pytest.approx(user.value_and_gradient(user_theta, scaling.fixed @ beta)[0])
    step = 1e-6
    x = np.concatenate([theta, beta])
    numeric = []
    for e in np.eye(len(x)):
        plus = penalty.value_and_gradient((x + step * e)[:3], (x + step * e)[3:])[0]
        minus = penalty.value_and_gradient((x - step * e)[:3], (x - step * e)[3:])[0]
        numeric.append((plus - minus) / (2 * step))
    np.testing.assert_allclose(np.concatenate([g_theta, g_beta]), numeric, rtol=1e-6, atol=1e-6)


def test_internal_rescaling_does_not_change_the_posterior_mode(separation: pd.DataFrame) -> None:
    frame, _ = scaled_model(separation)
    priors = {"fixef": "normal(sd = c(100, 0.01, 3))", "cov": "wishart"}
    rescaled = g.fit("y ~ x + z + (1 + x | g)", frame, priors=priors)
    off = OptimizerControl(
        fixed_scale_limit=np.inf,
        fixed_center_limit=np.inf,
        random_scale_limit=np.inf,
        random_center_limit=np.inf,
    )
    as_given = g.fit("y ~ x + z + (1 + x | g)", frame, priors=priors, control=off)
    assert rescaled.converged
    assert rescaled.penalized_objective == pytest.approx(as_given.penalized_objective, abs=1e-6)
    np.testing.assert_allclose(rescaled.params, as_given.params, rtol=1e-4, atol=1e-7)


def test_penalized_objective_gradient(separation: pd.DataFrame) -> None:
    model, _ = build_model("y ~ x + z + (1 + z | g)", separation)
    priors = parse_priors({"fixef": "cauchy", "cov": ["gamma(shape = 2, rate = 1)", "lkj(3)"]})
    penalty = bind_priors(priors, model)
    assert penalty is not None
    objective = PenalizedObjective(LaplaceObjective(model), penalty)
    theta = np.array([0.7, 0.2, 0.4])
    beta = np.array([0.3, 0.4, 0.5])
    _, g_theta, g_beta = objective.deviance_and_gradient(theta, beta)
    step = 1e-5
    x = np.concatenate([theta, beta])
    numeric = []
    for e in np.eye(len(x)):
        plus = objective.deviance((x + step * e)[:3], (x + step * e)[3:])
        minus = objective.deviance((x - step * e)[:3], (x - step * e)[3:])
        numeric.append((plus - minus) / (2 * step))
    np.testing.assert_allclose(np.concatenate([g_theta, g_beta]), numeric, rtol=1e-5, atol=1e-5)


def test_priors_on_a_structured_term_and_with_agq() -> None:
    data = pd.read_csv(REFERENCE_DIR / "longitudinal.csv")
    data = data[data["id"] % 4 == 0].assign(
        timef=lambda d: d["timef"].astype(str).astype("category")
    )
    formula = "cbind(k, n - k) ~ time + trt + ar1(timef + 0 | id)"
    plain = g.fit(formula, data)
    penalized = g.fit(formula, data, priors={"cov": ["wishart", "lkj(2)"]})
    assert penalized.converged and penalized.prior_deviance != 0.0
    assert penalized.loglik < plain.loglik  # the mode of another objective
    cbpp = g.datasets.load("cbpp")
    agq = g.fit(CBPP, cbpp, method="agq", n_agq=7, priors="blme")
    laplace = g.fit(CBPP, cbpp, priors="blme")
    assert agq.converged and agq.penalized
    assert agq.method_object.title.startswith("maximum a posteriori")
    np.testing.assert_allclose(agq.params, laplace.params, atol=0.05)


def test_result_says_it_is_penalized(separation: pd.DataFrame) -> None:
    result = g.fit(INDICATOR, separation, priors={"fixef": "t(df = 7, scale = 2.5)"})
    text = str(result.summary())
    assert "maximum a posteriori" in text
    assert " Priors: fixef: t(df = 7, scale = 2.5)" in text
    assert "Prior dev:" in text
    assert result.penalized_objective == pytest.approx(result.deviance + result.prior_deviance)
    from glmm_binomial.frontends.output import report

    document = report(result, "separation.csv")
    assert document["penalized"] is True
    assert document["priors"] == ["fixef: t(df = 7, scale = 2.5)"]
    assert document["prior_deviance"] == pytest.approx(result.prior_deviance)
    plain = report(g.fit(CBPP, g.datasets.load("cbpp")), "cbpp")
    assert plain["penalized"] is False and plain["priors"] == []


def test_profile_is_of_the_penalized_objective() -> None:
    result = g.fit(CBPP, g.datasets.load("cbpp"), priors="blme")
    profile = result.profile(which=["sd_(Intercept)|herd", "period2"])
    sd = profile.parameters["sd_(Intercept)|herd"]
    # Under the prior the SD's profile rises towards 0 (no density there): a positive lower end.
    assert 0.2 < sd.lower < result.theta[0] < sd.upper
    # zeta^2 is the rise of the penalized objective.
    objective = result.method_object.objective(result.model)
    assert profile.deviance == pytest.approx(result.penalized_objective, abs=1e-6)
    assert objective.deviance(result.theta, result.params.to_numpy()) == pytest.approx(
        profile.deviance, abs=1e-6
    )


def test_refits_and_bootstrap_keep_the_priors() -> None:
    result = g.fit(CBPP, g.datasets.load("cbpp"), priors="blme")
    refit = result.refit(result.model.successes)
    assert refit.penalized and refit.method_object.priors == result.method_object.priors
    np.testing.assert_allclose(refit.params, result.params, atol=1e-5)
    from glmm_binomial.results.simulate import fast_refit, prepare_fast_refit

    plan = prepare_fast_refit(result)
    theta, beta, value, ok, _ = fast_refit(plan, plan.model.successes)
    assert ok and value == pytest.approx(result.penalized_objective, abs=1e-5)


def test_methods_that_keep_their_own_priors_refuse_them() -> None:
    with pytest.raises(ValueError, match="priors= applies to .*'laplace' and 'agq'"):
        g.fit(CBPP, g.datasets.load("cbpp"), method="vb", priors="blme")
    with pytest.raises(ValueError, match="grouping factor"):
        g.fit(CBPP, g.datasets.load("cbpp"), priors={"cov": {"farm": "wishart"}})
    with pytest.raises(ValueError, match="2 values|3 values"):
        g.fit(CBPP, g.datasets.load("cbpp"), priors={"fixef": "normal(sd = c(1, 2, 3))"})
    from glmm_binomial.api import refuse_on_dask

    # A Dask fit takes priors (tests/test_distributed.py).
    refuse_on_dask(Laplace(priors="blme"))
    # A fixed-effect prior for a model without fixed effects (an IndexError from inside).
    with pytest.raises(ValueError, match="fixef gives a prior for the fixed effects"):
        g.fit(
            "cbind(incidence, size - incidence) ~ 0 + (1 | herd)",
            g.datasets.load("cbpp"),
            priors={"fixef": "normal(sd = 3)"},
        )


def test_a_prior_that_outweighs_the_likelihood_gives_no_posterior_mode() -> None:
    """metamorphic blme3:5095: 15 groups of 5 rows that the random slopes come close to
    separating. blme's default Wishart prior (scale = Inf, -(df - q - 1) log det Sigma) rewards
    large variances more than the likelihood penalizes them: the penalized deviance keeps
    falling as the SDs grow (the search stopped in a local dip at SDs near 1e3; bglmer does
    not converge either). No posterior mode: not converged, and the warning says why."""
    data = pd.read_csv(REFERENCE_DIR / "blme_no_posterior_mode.csv")
    formula = "y ~ x + x2 + (1 + x + x2 | g)"
    with pytest.warns(g.ConvergenceWarning, match="no finite posterior mode") as caught:
        fit = g.fit(formula, data, priors="blme")
    assert not fit.converged
    message = next(str(w.message) for w in caught if "posterior mode" in str(w.message))
    assert "(1 + x + x2 | g)" in message and "wishart(df = 5.5, scale = Inf)" in message
    # The same data with the successes swapped stop in another dip: no mode either.
    with pytest.warns(g.ConvergenceWarning, match="no finite posterior mode"):
        swapped = g.fit(formula, data.assign(y=1 - data["y"]), priors="blme")
    assert not swapped.converged
    # A proper prior (a finite Wishart scale) keeps the SDs finite: a converged mode.
    with warnings.catch_warnings():
        warnings.simplefilter("error", g.ConvergenceWarning)
        proper = g.fit(formula, data, priors={"cov": "wishart(scale = 1)"})
    assert proper.converged
    assert proper.fit_output.opt_summary.tolerances["prior_runaway_factor"] == 10.0
