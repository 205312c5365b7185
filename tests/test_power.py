"""Power by simulation (glmm_binomial.power.simulation and power.model): calibration against
the nominal level and a normal-theory power, determinism across processes, argument errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from _simulate import all_successes_group_frame
from scipy import stats

import glmm_binomial as g
from glmm_binomial.power.model import clopper_pearson

FORMULA = "y ~ x + (1 | g)"
SD = 0.5


@pytest.fixture(scope="module")
def design() -> pd.DataFrame:
    """30 groups of 20 rows, a row-level covariate; no response (make_model simulates it)."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({"g": np.repeat(np.arange(30), 20), "x": rng.standard_normal(600)})


@pytest.fixture(scope="module")
def null_model(design):
    return g.make_model(FORMULA, design, fixef={"(Intercept)": 0.0, "x": 0.0}, varcorr={"g": SD})


@pytest.fixture(scope="module")
def cbpp_fit():
    return g.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", g.datasets.load("cbpp")
    )


def binomial_band(n: int, p: float, level: float = 0.999) -> tuple[int, int]:
    """The central `level` range of Binomial(n, p) counts."""
    tail = (1 - level) / 2
    return int(stats.binom.ppf(tail, n, p)), int(stats.binom.isf(tail, n, p))


def test_wald_type_one_error_is_near_alpha_when_the_effect_is_zero(null_model):
    result = g.power_sim(null_model, test="x", nsim=200, alpha=0.05, seed=3)
    low, high = binomial_band(result.n_valid, 0.05)
    assert result.n_failed == 0
    assert low <= result.n_significant <= high
    # The p-values are uniform under the null (a Kolmogorov-Smirnov check on all 200).
    assert stats.kstest(result.p_values, "uniform").pvalue > 0.001
    assert result.effect["x"] == 0.0


def test_power_matches_the_normal_approximation_for_a_row_level_effect(design, null_model):
    beta_x = 0.25
    # Expected information of (intercept, x) with the random intercept averaged out of the
    # weights (Gauss-Hermite): the Wald z the refits see on average, and its power.
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    x = design["x"].to_numpy()
    mu = 1 / (1 + np.exp(-(beta_x * x[:, None] + SD * nodes[None, :])))
    w = (mu * (1 - mu)) @ weights
    xx = np.column_stack([np.ones_like(x), x])
    se = math.sqrt(np.linalg.inv(xx.T @ (w[:, None] * xx))[1, 1])
    z = beta_x / se
    expected = stats.norm.cdf(z - 1.959964) + stats.norm.cdf(-z - 1.959964)  # about 0.83
    result = g.power_sim(null_model, test="x", nsim=200, seed=4, effect={"x": beta_x})
    assert abs(result.power - expected) < 0.08  # 3 binomial SDs of 200 simulations
    assert result.ci_lower < result.power < result.ci_upper
    assert (result.ci_lower, result.ci_upper) == clopper_pearson(
        result.n_significant, result.n_valid, 0.95
    )


def test_likelihood_ratio_and_wald_agree_on_most_simulations(null_model):
    wald = g.power_sim(null_model, test="x", nsim=40, seed=8, effect={"x": 0.2})
    lrt = g.power_sim(null_model, test="x", nsim=40, seed=8, effect={"x": 0.2}, method="lrt")
    # The same seeds give the same responses: the two tests see the same data.
    assert np.corrcoef(wald.p_values, lrt.p_values)[0, 1] > 0.99
    assert lrt.method == "lrt" and wald.method == "wald"


def test_same_seed_same_result_with_one_and_two_workers(cbpp_fit):
    one = g.power_sim(cbpp_fit, test="period", nsim=12, seed=5, n_jobs=1)
    two = g.power_sim(cbpp_fit, test="period", nsim=12, seed=5, n_jobs=2)
    np.testing.assert_array_equal(one.p_values, two.p_values)
    assert one.test == "period" and len(one.effect) == 3  # a term of three columns, jointly
    assert one.summary() == two.summary()
    again = g.power_sim(cbpp_fit, test="period", nsim=12, seed=np.random.SeedSequence(5))
    np.testing.assert_array_equal(one.p_values, again.p_values)
    other = g.power_sim(cbpp_fit, test="period", nsim=12, seed=6)
    assert not np.array_equal(one.p_values, other.p_values)


def test_the_result_reports_counts_effect_and_warnings(cbpp_fit):
    result = g.power_sim(cbpp_fit, test="period2", nsim=20, seed=1)
    assert result.nsim == 20 == result.n_valid + result.n_failed
    assert len(result.p_values) == 20
    assert result.effect.index.tolist() == ["period2"]
    assert result.effect["period2"] == pytest.approx(cbpp_fit.params["period2"])
    assert 0.0 <= result.power <= 1.0
    assert result.n_singular == result.warnings.get("boundary", 0)
    assert "Power for period2" in str(result) and "PowerResult" in repr(result)
    assert result.ngroups == {"herd": 15} and result.n_obs == 56


def test_default_test_is_the_first_term_after_the_intercept(cbpp_fit):
    result = g.power_sim(cbpp_fit, nsim=2, seed=1)
    assert result.test == "period"


def test_a_failed_refit_is_counted_not_raised(design):
    # A huge effect of a 0/1 covariate separates the response (every row with d = 1 is a
    # success): those refits fail and are counted with the reason.
    data = design.assign(d=(design["x"] > 0).astype(float))
    model = g.make_model("y ~ d + (1 | g)", data, fixef=[0.0, 40.0], varcorr={"g": SD})
    result = g.power_sim(model, test="d", nsim=4, seed=1)
    assert result.n_failed == 4 and math.isnan(result.power)
    assert all("separation" in reason for _, reason in result.failures)
    assert result.warnings["separation"] == 4
    assert "no valid simulation" in result.summary()


def test_a_separated_refit_still_tests_what_stays_finite(design):
    # d separates every refit (its rows all successes), x stays mixed: the Wald test of x uses
    # the limit's covariance (as the refit's fixed-effects table), the likelihood-ratio test
    # of d the log-likelihood's limit, its supremum (as anova); neither counts as a failure.
    data = design.assign(d=(design["x"] > 1.0).astype(float))
    model = g.make_model("y ~ d + x + (1 | g)", data, fixef=[0.0, 40.0, 0.3], varcorr={"g": SD})
    wald = g.power_sim(model, test="x", nsim=4, seed=1)
    assert wald.n_failed == 0 and wald.warnings["separation"] == 4
    assert np.isfinite(wald.p_values).all() and (wald.p_values > 0).all()
    lrt = g.power_sim(model, test="d", method="lrt", nsim=4, seed=1)
    assert lrt.n_failed == 0 and lrt.power == 1.0
    assert (lrt.p_values < 1e-10).all()
    # The Wald test of d itself has no estimate to test.
    diverging = g.power_sim(model, test="d", nsim=4, seed=1)
    assert diverging.n_failed == 4
    assert all("no finite estimate for the tested" in reason for _, reason in diverging.failures)


def test_make_model_sets_the_parameters(design):
    model = g.make_model(FORMULA, design, fixef={"(Intercept)": -1.0, "x": 0.3}, varcorr={"g": 0.7})
    np.testing.assert_allclose(model.beta, [-1.0, 0.3])
    np.testing.assert_allclose(model.theta, [0.7])
    assert model.ngroups == {"g": 30} and model.n_obs == 600
    slope = g.make_model(
        "y ~ x + (1 + x | g)", design, fixef=[0.0, 0.3], varcorr={"g": [[0.5, 0.1], [0.1, 0.3]]}
    )
    lam = np.linalg.cholesky(np.array([[0.5, 0.1], [0.1, 0.3]]))
    np.testing.assert_allclose(slope.theta, [lam[0, 0], lam[1, 0], lam[1, 1]])
    assert "y" not in design.columns  # the caller's frame is not modified


def test_a_fit_can_change_its_effect(cbpp_fit):
    model = g.power_model(cbpp_fit, effect={"period": [0.0, -0.5, -1.0]})
    np.testing.assert_allclose(model.beta[1:], [0.0, -0.5, -1.0])
    assert model.beta[0] == cbpp_fit.params.iloc[0]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"nsim": 0}, "nsim"),
        ({"nsim": 2.5}, "nsim"),
        ({"alpha": 1.5}, "alpha"),
        ({"method": "score"}, "method"),
        ({"test": "nope"}, "test 'nope'"),
        ({"test": 3}, "test"),
        ({"effect": {"nope": 1.0}}, "effect 'nope'"),
        ({"effect": {"period": 1.0}}, r"effect\['period'\]"),
        ({"effect": [1.0]}, "effect"),
        ({"effect": {"period2": "big"}}, r"effect\['period2'\] must be 1 finite number"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"seed": "x"}, "seed must be"),
        ({"seed": -1}, "seed must be"),
        ({"conf_level": 1.0}, "conf_level"),
    ],
)
def test_bad_arguments_are_value_errors_naming_them(cbpp_fit, arguments, message):
    with pytest.raises(ValueError, match=message):
        g.power_sim(cbpp_fit, **{"test": "period2", "nsim": 2, **arguments})


def test_models_it_cannot_simulate_from_are_refused(design):
    with pytest.raises(ValueError, match="model must be"):
        g.power_sim("y ~ x", nsim=2)
    data = design.assign(y=(np.arange(600) % 3 == 0).astype(int))
    vb = g.fit(FORMULA, data, method="vb")
    with pytest.raises(ValueError, match="maximum likelihood"):
        g.power_sim(vb, nsim=2)
    # The log link's maximum on its bound (a group all successes: mu = 1 there): no estimate
    # to simulate from (its refits failed every time, power NaN).
    at_bound = log_link_bound_fit()
    assert at_bound.fit_output.link_bound_rows > 0
    with pytest.raises(ValueError, match="reaches the log link's bound"):
        g.power_sim(at_bound, test="x", nsim=2, seed=1)


def log_link_bound_fit() -> g.GLMMResult:
    """test_family_fits' data with a group whose every trial is a success, fitted with the log
    link: its maximum lies on the bound mu = 1."""
    frame = all_successes_group_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return g.fit("y ~ x + (1 | g)", frame, link="log")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"fixef": {"x": 0.1}}, r"no value for \(Intercept\)"),
        ({"fixef": [0.1]}, "fixef"),
        ({"fixef": ["a", "b"]}, "fixef must be"),
        ({"varcorr": {"g": "wide"}}, r"varcorr\['g'\]"),
        ({"theta": "one", "varcorr": None}, "theta must be"),
        ({"varcorr": {"h": 1.0}}, "'h'"),
        ({"varcorr": {"g": -1.0}}, r"varcorr\['g'\]"),
        ({"varcorr": None}, "varcorr= or theta="),
        ({"theta": [1.0, 2.0], "varcorr": None}, "theta"),
        ({"method": "vb"}, "maximum-likelihood"),
    ],
)
def test_make_model_errors_name_the_argument(design, arguments, message):
    given = {"fixef": [0.0, 0.1], "varcorr": {"g": 0.5}, **arguments}
    with pytest.raises(ValueError, match=message):
        g.make_model(FORMULA, design, **given)


def test_clopper_pearson_matches_the_beta_quantiles():
    lower, upper = clopper_pearson(7, 20, 0.95)
    assert lower == pytest.approx(stats.beta.ppf(0.025, 7, 14))
    assert upper == pytest.approx(stats.beta.ppf(0.975, 8, 13))
    assert clopper_pearson(0, 10, 0.95)[0] == 0.0
    assert clopper_pearson(10, 10, 0.95)[1] == 1.0
    assert all(math.isnan(v) for v in clopper_pearson(0, 0, 0.95))


def test_what_cannot_be_simulated_or_refitted_is_refused_before_simulating():
    cbpp = g.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    # A prior with one SD per coefficient has none for the model without the tested column.
    prior = {"fixef": "normal(sd = c(10, 2.5, 2.5, 2.5))"}
    fit = g.fit(formula, cbpp, priors=prior)
    with pytest.raises(ValueError, match="method='lrt' refits the model without period2"):
        g.power_sim(fit, test="period2", nsim=2, method="lrt")
    assert g.power_sim(fit, test="period2", nsim=2, seed=1).nsim == 2  # Wald needs no refit
    shares = cbpp.assign(p=cbpp["incidence"] / cbpp["size"], w=1.5 * cbpp["size"])
    with pytest.warns(g.GLMMWarning):
        fractional = g.fit("p ~ period + (1 | herd)", shares, weights="w")
    with pytest.raises(ValueError, match="whole numbers"):
        g.power_sim(fractional, nsim=2)


def test_other_families_and_links_are_simulated_and_refitted_as_fitted(cbpp_fit):
    cbpp = g.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    for arguments in ({"link": "probit"}, {"family": "betabinomial"}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", g.BoundaryWarning)  # the beta-binomial's herd SD
            fit = g.fit(formula, cbpp, **arguments)
        model = g.power_model(fit)
        assert model.model.family == fit.model.family
        np.testing.assert_array_equal(model.theta, fit.theta)  # the beta-binomial's phi too
        result = g.power_sim(fit, test="period", nsim=4, seed=1)
        assert result.nsim == 4 and result.n_valid >= 2
    probit = g.make_model(
        FORMULA_CBPP, cbpp, fixef=[-0.8, -0.5, -0.6, -0.9], varcorr={"herd": 0.3}, link="probit"
    )
    assert probit.model.family.link == "probit"
    with pytest.raises(ValueError, match="theta="):
        g.make_model(
            FORMULA_CBPP,
            cbpp,
            fixef=[-1.4, -1, -1, -1.5],
            varcorr={"herd": 0.6},
            family="betabinomial",
        )
    with pytest.raises(ValueError, match="maximum-likelihood method"):
        g.make_model(
            FORMULA_CBPP,
            cbpp,
            fixef=[-1.4, -1, -1, -1.5],
            varcorr={"herd": 0.6},
            link="probit",
            method="vb",
        )


FORMULA_CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _separated_by(kind: str) -> pd.DataFrame:
    """30 groups of 10 rows: "quasi" y = 1 wherever z = 1 (z's coefficient diverges),
    "groups" every group all 0 or all 1 (the variance runs away), "complete" y = 1 exactly
    where x > 0."""
    rng = np.random.default_rng(0)
    grp = np.repeat(np.arange(30), 10)
    z = (rng.random(300) < 0.3).astype(int)
    x = rng.normal(size=300)
    eta = 0.5 * x + rng.normal(size=30)[grp]
    y = (rng.random(300) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    y = {"quasi": np.where(z == 1, 1, y), "groups": grp % 2, "complete": (x > 0).astype(int)}
    return pd.DataFrame({"y": y[kind], "x": x, "z": z, "g": grp.astype(str)})


@pytest.mark.filterwarnings("ignore::glmm_binomial.SeparationWarning")
@pytest.mark.filterwarnings("ignore::glmm_binomial.BoundaryWarning")
@pytest.mark.filterwarnings("ignore::glmm_binomial.ConvergenceWarning")
def test_a_fit_without_finite_estimates_is_no_model_to_simulate_from():
    quasi = g.fit("y ~ x + z + (1 | g)", _separated_by("quasi"))
    with pytest.raises(ValueError, match=r"no finite estimate for z .*effect=\{'z': \.\.\.\}"):
        g.power_sim(quasi, test="x", nsim=2, seed=1)
    # Set by effect=, the diverging coefficient is a model again.
    assert g.power_sim(quasi, test="x", nsim=2, seed=1, effect={"z": 2.0}).nsim == 2
    groups = g.fit("y ~ x + (1 | g)", _separated_by("groups"))
    with pytest.raises(ValueError, match="random-effect covariance of g .*make_model"):
        g.power_sim(groups, test="x", nsim=2, seed=1)
    complete = g.fit("y ~ x + (1 | g)", _separated_by("complete"))
    with pytest.raises(ValueError, match="complete separation"):
        g.power_sim(complete, test="x", nsim=2, seed=1, effect={"x": 1.0})
