"""Structured covariances (model/covariance.py: ar1, cs, diag; us = lme4's unstructured):
their Lambda, chain rules and parameters, the deviance's exact gradient through them (Laplace
and vector AGQ), and glmmTMB's fits of the longitudinal data (tests/reference/
priors_structured.json, glmmTMB 1.1.5): logLik within 1e-5, estimates within 1e-3."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.methods.agq import AgqObjective
from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.model.covariance import (
    FACE_LOG_SD,
    Ar1,
    CompoundSymmetry,
    Diagonal,
    Unstructured,
    lower_triangle,
    make_structure,
)
from glmm_binomial.model.design import build_model

REFERENCE = Path(__file__).parent / "reference"
FITS = json.loads((REFERENCE / "priors_structured.json").read_text())["longitudinal"]["fits"]
FORMULA = "cbind(k, n - k) ~ time + trt + {}"
TERMS = {
    "ar1": "ar1(timef + 0 | id)",
    "cs": "cs(timef + 0 | id)",
    "diag": "diag(timef + 0 | id)",
    "us": "us(timef + 0 | id)",
    "intercept": "(1 | id)",
}


def longitudinal(ids: int | None = None, visits: int = 6) -> pd.DataFrame:
    """The stored data; timef as labels (R's factor(timef)); optionally `ids` ids (the first
    half of them from each arm: ids 1-200 are controls, 201-400 treated) and the first
    `visits` visits."""
    data = pd.read_csv(REFERENCE / "longitudinal.csv")
    if ids is not None:
        data = data[(data["id"] - 1) % 200 < ids // 2]
    data["timef"] = data["timef"].astype(str).astype("category")
    data["id"] = data["id"].astype(str)
    return data[data["time"] < visits].reset_index(drop=True)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return longitudinal()


# --- the structures themselves --------------------------------------------------------------


def test_ar1_covariance_is_sd_squared_times_rho_to_the_lag() -> None:
    structure = Ar1(5)
    phi = 1.2
    lam = structure.lambda_matrix(np.array([np.log(1.5), phi]))
    rho = phi / np.sqrt(1 + phi**2)
    lag = np.abs(np.subtract.outer(np.arange(5), np.arange(5)))
    np.testing.assert_allclose(lam @ lam.T, 1.5**2 * rho**lag, rtol=1e-13)
    assert np.allclose(np.triu(lam, 1), 0.0)


def test_cs_covariance_has_one_correlation_and_an_sd_per_term() -> None:
    structure = CompoundSymmetry(4)
    sds = np.array([0.5, 1.0, 1.5, 2.0])
    theta = np.concatenate([np.log(sds), [0.3]])
    a = 1 / 3
    rho = (1 + a) / (1 + np.exp(-0.3)) - a
    lam = structure.lambda_matrix(theta)
    correlation = np.full((4, 4), rho)
    np.fill_diagonal(correlation, 1.0)
    np.testing.assert_allclose(lam @ lam.T, np.outer(sds, sds) * correlation, rtol=1e-13)
    # glmmTMB's scale keeps R positive definite: rho stays above -1 / (k - 1).
    assert structure.rho(-10.0) > -a


def test_diag_covariance_is_diagonal() -> None:
    lam = Diagonal(3).lambda_matrix(np.log([0.5, 1.0, 2.0]))
    np.testing.assert_allclose(lam @ lam.T, np.diag([0.25, 1.0, 4.0]))


@given(
    st.sampled_from(["ar1", "cs", "diag"]),
    st.integers(2, 6),
    st.lists(st.floats(-2.0, 2.0), min_size=7, max_size=7),
)
def test_chain_rule_matches_finite_differences(name: str, k: int, values: list[float]) -> None:
    """theta_gradient(Lambda, G) = d <G, Lambda(theta)> / d theta (G any lower-triangular
    weights), the chain rule every exact gradient uses."""
    structure = make_structure(name, tuple(f"t{j}" for j in range(k)))
    theta = np.array(values[: structure.n_theta])
    weights = np.tril(np.random.default_rng(k).normal(size=(k, k)))

    def inner(t: np.ndarray) -> float:
        return float(np.sum(weights * structure.lambda_matrix(t)))

    step = 1e-6
    numeric = [
        (inner(theta + step * e) - inner(theta - step * e)) / (2 * step)
        for e in np.eye(structure.n_theta)
    ]
    analytic = structure.theta_gradient(structure.lambda_matrix(theta), weights)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


@given(
    st.sampled_from(["ar1", "cs", "diag"]),
    st.integers(2, 6),
    st.lists(st.floats(-2.0, 2.0), min_size=7, max_size=7),
)
def test_entry_derivatives_match_finite_differences(name: str, k: int, values: list[float]) -> None:
    """entry_derivatives: the first and second derivatives in theta of Lambda's lower
    triangle (what the exact Hessian's chain rule uses), against central differences of
    lambda_matrix and of the first derivatives."""
    structure = make_structure(name, tuple(f"t{j}" for j in range(k)))
    theta = np.array(values[: structure.n_theta])
    rows, cols = lower_triangle(k)
    jac, second = structure.entry_derivatives(theta, rows, cols)
    step = 1e-6
    for j, e in enumerate(np.eye(structure.n_theta)):
        up = structure.lambda_matrix(theta + step * e)[rows, cols]
        down = structure.lambda_matrix(theta - step * e)[rows, cols]
        np.testing.assert_allclose(jac[:, j], (up - down) / (2 * step), rtol=1e-6, atol=1e-7)
        jac_up = structure.entry_derivatives(theta + step * e, rows, cols)[0]
        jac_down = structure.entry_derivatives(theta - step * e, rows, cols)[0]
        np.testing.assert_allclose(
            second[:, :, j], (jac_up - jac_down) / (2 * step), rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("name", ["ar1", "cs", "diag"])
def test_parameters_round_trip_and_start_is_identity(name: str) -> None:
    structure = make_structure(name, ("a", "b", "c"))
    np.testing.assert_array_equal(structure.lambda_matrix(structure.start()), np.eye(3))
    theta = np.linspace(-0.4, 0.6, structure.n_theta)
    back, slope = structure.theta_from_parameters(structure.parameters(theta))
    np.testing.assert_allclose(back, theta, atol=1e-13)
    assert np.all(slope > 0)
    # Every SD at the boundary: the correlation (ar1, cs) does not enter the model either.
    at = structure.at_boundary(np.full(structure.n_theta, np.log(1e-6)), 1e-4)
    assert at.all()


@pytest.mark.parametrize("name", ["ar1", "cs", "diag", "us"])
def test_scaled_multiplies_the_covariance_by_the_factor_squared(name: str) -> None:
    structure = make_structure(name, ("a", "b", "c"))
    theta = np.linspace(-0.4, 0.6, structure.n_theta)
    lam = structure.lambda_matrix(theta)
    far = structure.lambda_matrix(structure.scaled(theta, 3.0))
    np.testing.assert_allclose(far @ far.T, 9.0 * lam @ lam.T, rtol=1e-12, atol=1e-14)


def test_structures_refuse_what_they_cannot_describe() -> None:
    with pytest.raises(ValueError, match=r"no intercept.*ar1\(time \+ 0 \| id\)"):
        make_structure("ar1", ("(Intercept)", "t1", "t2"), "ar1(t | id)")
    with pytest.raises(ValueError, match="at least two columns"):
        make_structure("cs", ("x",), "cs(x | id)")
    with pytest.raises(ValueError, match="unknown covariance structure"):
        make_structure("toeplitz", ("a", "b"), "toeplitz(a | id)")
    assert isinstance(make_structure("us", ("a", "b")), Unstructured)


def test_formula_builds_structured_blocks_and_us_is_lme4s(data: pd.DataFrame) -> None:
    model, _ = build_model(FORMULA.format("ar1(timef + 0 | id) + (1 | trt)"), data)
    assert isinstance(model.blocks[0].covariance, Ar1) and model.blocks[0].k == 6
    assert isinstance(model.blocks[1].covariance, Unstructured)
    us, _ = build_model(FORMULA.format("us(timef + 0 | id)"), data)
    lme4, _ = build_model(FORMULA.format("(0 + timef | id)"), data)
    assert us.blocks[0].covariance == lme4.blocks[0].covariance
    np.testing.assert_array_equal(us.blocks[0].z, lme4.blocks[0].z)
    with pytest.raises(ValueError, match="single bar"):
        build_model(FORMULA.format("ar1(timef + 0 || id)"), data)


# --- exact gradients of the deviance through the structures ---------------------------------


def central_differences(objective, theta: np.ndarray, beta: np.ndarray, step: float = 1e-5):
    n = len(theta) + len(beta)
    out = []
    for j in range(n):
        e = np.zeros(n)
        e[j] = step
        plus = objective.deviance(theta + e[: len(theta)], beta + e[len(theta) :])
        minus = objective.deviance(theta - e[: len(theta)], beta - e[len(theta) :])
        out.append((plus - minus) / (2 * step))
    return np.array(out)


@pytest.mark.parametrize("name", ["ar1", "cs", "diag"])
def test_laplace_gradient_through_a_structure(name: str) -> None:
    frame = longitudinal(ids=60)
    frame = frame.assign(site=(frame["id"].astype(int) % 7).astype(str))
    model, _ = build_model(FORMULA.format(f"{name}(timef + 0 | id) + (1 | site)"), frame)
    objective = LaplaceObjective(model)
    rng = np.random.default_rng(5)
    theta = model.theta_start() + 0.3 * rng.normal(size=model.n_theta)
    beta = np.array([-0.4, 0.1, 0.3])
    _, g_theta, g_beta = objective.deviance_and_gradient(theta, beta)
    numeric = central_differences(objective, theta, beta)
    np.testing.assert_allclose(np.concatenate([g_theta, g_beta]), numeric, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["ar1", "cs"])
def test_vector_agq_gradient_through_a_structure(name: str) -> None:
    model, _ = build_model(FORMULA.format(f"{name}(timef + 0 | id)"), longitudinal(40, 3))
    objective = AgqObjective(model, 4)
    theta = np.array([0.2, -0.1, 0.1, 0.5][: model.n_theta - 1] + [0.7])
    beta = np.array([-0.4, 0.1, 0.3])
    _, g_theta, g_beta = objective.deviance_and_gradient(theta, beta)
    numeric = central_differences(objective, theta, beta)
    np.testing.assert_allclose(np.concatenate([g_theta, g_beta]), numeric, rtol=1e-5, atol=1e-4)


def test_agq_with_one_point_is_the_laplace_fit_of_a_structure() -> None:
    frame = longitudinal(80, 4)
    text = FORMULA.format("ar1(timef + 0 | id)")
    laplace = g.fit(text, frame)
    agq = g.fit(text, frame, method="agq", n_agq=1)
    assert agq.loglik == pytest.approx(laplace.loglik, abs=1e-6)
    # The quadrature converges as the rule grows (the Laplace error here is about 3.5, as for
    # the unstructured (0 + timef | id) on the same rows).
    three = g.fit(text, frame, method="agq", n_agq=3)
    five = g.fit(text, frame, method="agq", n_agq=5)
    assert three.converged and five.converged
    assert abs(five.loglik - three.loglik) < 0.5 < abs(three.loglik - laplace.loglik)


# --- glmmTMB's fits ---------------------------------------------------------------------------


def _sds_and_rho(result: g.GLMMResult) -> tuple[np.ndarray, float | None]:
    sigma = result.covariance_matrices()[0]
    sd = np.sqrt(np.diag(sigma))
    rho = sigma[1, 0] / (sd[1] * sd[0]) if len(sd) > 1 else None
    return sd, rho


@pytest.mark.parametrize("name", sorted(TERMS))
def test_matches_glmmtmb(name: str, data: pd.DataFrame) -> None:
    reference = FITS[name]
    result = g.fit(FORMULA.format(TERMS[name]), data)
    assert result.converged
    assert result.loglik == pytest.approx(reference["logLik"], abs=1e-5)
    np.testing.assert_allclose(
        result.params.to_numpy(), list(reference["fixef"].values()), atol=1e-3
    )
    sd, rho = _sds_and_rho(result)
    np.testing.assert_allclose(sd, list(reference["sd"].values()), atol=1e-3)
    if name == "ar1":
        assert rho == pytest.approx(reference["rho"], abs=1e-3)
        # theta is glmmTMB's own: (log SD, phi), rho = phi / sqrt(1 + phi^2).
        np.testing.assert_allclose(result.theta, reference["theta"], atol=1e-3)
    if name == "cs":
        assert rho == pytest.approx(reference["common_cor"], abs=1e-3)
        np.testing.assert_allclose(result.theta, reference["theta"], atol=1e-3)
    if name == "us":
        sigma = result.covariance_matrices()[0]
        corr = sigma / np.outer(sd, sd)
        expected = pd.DataFrame(reference["cor"]).to_numpy()
        np.testing.assert_allclose(corr, expected, atol=1e-3)
    if name in ("ar1", "cs", "diag", "us"):
        np.testing.assert_allclose(result.bse.to_numpy(), list(reference["se"].values()), rtol=1e-2)


def test_summary_prints_the_structure_as_glmmtmb(data: pd.DataFrame) -> None:
    text = str(g.fit(FORMULA.format("ar1(timef + 0 | id)"), data).summary())
    assert "0.75 (ar1)" in text
    table = g.fit(FORMULA.format("diag(timef + 0 | id)"), data).varcorr
    assert list(table["term"]) == [f"timef{j}" for j in range(6)]


def test_profile_and_wald_names_of_a_structure() -> None:
    frame = longitudinal(150, 4)
    result = g.fit(FORMULA.format("ar1(timef + 0 | id)"), frame)
    intervals = result.confint(which="theta_")
    assert list(intervals.index) == ["sd_timef0|id", "cor_timef1.timef0|id"]
    sd, rho = _sds_and_rho(result)
    assert intervals.iloc[0, 0] < sd[0] < intervals.iloc[0, 1]
    assert -1 < intervals.iloc[1, 0] < rho < intervals.iloc[1, 1] < 1
    wald = result.confint(method="wald")
    assert list(wald.index[:2]) == list(intervals.index)


def test_simulate_and_predict_go_through_the_structure(data: pd.DataFrame) -> None:
    from glmm_binomial.results.simulate import linear_predictor

    result = g.fit(FORMULA.format("ar1(timef + 0 | id)"), data)
    model = result.model
    rng = np.random.default_rng(11)
    draws = np.stack(
        [
            linear_predictor(model, result.theta, result.params.to_numpy(), rng, None)
            - model.x @ result.params.to_numpy()
            for _ in range(20)
        ]
    )
    # Each row's effect is b[id, visit]: the visits of one id are correlated rho^lag.
    b = draws.reshape(20, 400, 6).reshape(-1, 6)
    empirical = np.corrcoef(b, rowvar=False)
    _, rho = _sds_and_rho(result)
    assert empirical[1, 0] == pytest.approx(rho, abs=0.05)
    assert empirical[3, 0] == pytest.approx(rho**3, abs=0.05)
    assert np.std(b) == pytest.approx(_sds_and_rho(result)[0][0], rel=0.05)
    first = result.simulate(2, seed=3)
    np.testing.assert_array_equal(first, result.simulate(2, seed=3))
    new = data.iloc[:12]
    np.testing.assert_allclose(result.predict(new).to_numpy(), result.predict()[:12])


def test_a_zero_sd_on_a_wide_column_is_probed_on_that_columns_scale() -> None:
    """A structured term keeps its own columns (no internal scaling): with lme4's start the
    search ran z's SD (z = 3 time + 7, largest 22) to zero with the intercept's SD at 0.14, a
    point flat in z's log SD, and said converged 0.42 below the optimum, since zero_sd_fall's
    trial SDs (0.01, 0.1, 1) were all beyond the fall (between SD 0.001 and 0.01 there). Now
    they are also taken on the column's scale (optimize.zero_sd_probes). And from the moments'
    start the search stopped with the intercept's SD at 1.00002e-4, just above boundary_tol (not
    flagged singular), since range_end put every SD below snap_tol at zero at once, z's 0.0095
    with it; now it tries each such SD alone too."""
    data = longitudinal(60).assign(z=lambda d: 3.0 * d["time"] + 7.0)
    data = data.assign(batch="b" + (data.index % 5).astype(str))
    formula = "cbind(k, n - k) ~ time + trt + (1 | id) + diag(1 + z | batch)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        moments = g.fit(formula, data)
        lme4_start = g.fit(formula, data, control={"moment_start": False})
    assert moments.converged and lme4_start.converged
    assert lme4_start.loglik == pytest.approx(moments.loglik, abs=1e-8)
    # The intercept's SD on batch at zero in both, each saying so.
    assert moments.theta[1] < np.log(1e-10) and lme4_start.theta[1] < np.log(1e-10)
    assert sum(w.category is g.BoundaryWarning for w in caught) == 2
    assert lme4_start.covariance_matrices()[1][1, 1] == pytest.approx(
        moments.covariance_matrices()[1][1, 1], rel=1e-3
    )


def test_vb_refuses_structured_terms(data: pd.DataFrame) -> None:
    with warnings.catch_warnings(), pytest.raises(ValueError, match="structured covariance"):
        warnings.simplefilter("ignore")
        g.fit(FORMULA.format("ar1(timef + 0 | id)"), data, method="vb")
    # A one-column diag() term too: vb's theta holds SDs, not glmmTMB's log SDs.
    for method in ("vb", "vb_meanfield"):
        with warnings.catch_warnings(), pytest.raises(ValueError, match=r"diag\(\.\.\. \| id\)"):
            warnings.simplefilter("ignore")
            g.fit(FORMULA.format("diag(1 | id)"), data, method=method)


def test_nested_agq_through_log_sd_structures() -> None:
    """diag(1 | a/b): one log-SD per level (a structure not linear in theta) in the nested
    quadrature: the exact gradient, and the same fit as lme4's (1 | a/b)."""
    import dataclasses
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _simulate_nested import nested_model

    from glmm_binomial.methods.agq import fit_agq

    plain = nested_model(3)
    blocks = tuple(dataclasses.replace(b, structure=Diagonal(1)) for b in plain.blocks)
    model = dataclasses.replace(plain, blocks=blocks)
    objective = AgqObjective(model, 5)
    theta, beta = np.log([0.8, 1.2]), np.array([-0.4, 0.7])
    _, g_theta, g_beta = objective.deviance_and_gradient(theta, beta)
    numeric = central_differences(objective, theta, beta)
    np.testing.assert_allclose(np.concatenate([g_theta, g_beta]), numeric, rtol=1e-6, atol=1e-6)
    lme4, structured = fit_agq(plain, 5), fit_agq(model, 5)
    assert structured.loglik == pytest.approx(lme4.loglik, abs=1e-7)
    np.testing.assert_allclose(np.exp(structured.theta), np.abs(lme4.theta), rtol=1e-5)


def test_saturated_marks_a_correlation_at_the_end_of_its_range() -> None:
    """ar1's rho in (-1, 1) and cs's in (-1 / (k - 1), 1): the correlation parameter is
    saturated within tol of either end; SDs and diag never are, nor is any unstructured
    entry."""
    ar1, cs = Ar1(4), CompoundSymmetry(4)
    tol = 1e-4
    assert not ar1.saturated(np.array([0.0, ar1.phi(0.5)]), tol).any()
    assert ar1.saturated(np.array([0.0, ar1.phi(-1 + 5e-5)]), tol).tolist() == [False, True]
    assert ar1.saturated(np.array([-30.0, ar1.phi(1 - 5e-5)]), tol).tolist() == [False, True]
    sds = np.zeros(4)
    assert cs.saturated(np.append(sds, cs.phi(1 - 5e-5)), tol)[-1]
    assert cs.saturated(np.append(sds, cs.phi(-1 / 3 + 5e-5)), tol)[-1]
    assert not cs.saturated(np.append(sds, cs.phi(0.9)), tol).any()
    assert not Diagonal(3).saturated(np.full(3, -30.0), tol).any()
    assert not Unstructured(2).saturated(np.array([1.0, 5.0, 0.0]), tol).any()


def test_log_sds_mark_the_structured_sds_only() -> None:
    """The SD entries of ar1, cs and diag are logs (held_check's boundary at -inf); their
    correlation parameter and every unstructured entry are not."""
    assert Ar1(4).log_sds().tolist() == [True, False]
    assert CompoundSymmetry(3).log_sds().tolist() == [True, True, True, False]
    assert Diagonal(2).log_sds().tolist() == [True, True]
    assert not Unstructured(2).log_sds().any()


def test_a_saturated_correlation_is_held_and_the_fit_is_singular() -> None:
    """Counts without any random effect fitted with ar1: the estimate runs to rho = -1, where
    the deviance is flat in its parameter and the Hessian not positive definite. Held there
    by the polish, the fit converges (before: not converged) and is reported singular."""
    frame = pd.read_csv(REFERENCE / "ar1_saturated.csv").assign(t=lambda d: pd.Categorical(d["t"]))
    formula = "cbind(y, f) ~ x + ar1(0 + t | id)"
    with pytest.warns(g.BoundaryWarning, match="correlation at the end of its range"):
        result = g.fit(formula, frame)
    assert result.converged and result.singular
    rho = float(result.varcorr["corr_1"].iloc[1])
    assert rho < -1 + 1e-4
    glm = g.fit(formula.replace("ar1", "diag"), frame)  # an SD at zero: the null model's
    assert result.llf >= glm.llf - 1e-6


@pytest.mark.parametrize("name", ["ar1_near_one", "ar1_near_one_slack"])
def test_a_correlation_run_to_one_past_the_polish_is_held_at_the_end(name: str) -> None:
    """ar1 fits whose correlation runs to +1 (its parameter past 1,000), two cases of a
    metamorphic sweep where the same rows permuted converged and these did not:
    ar1_near_one (ar1:24): the polish's last Hessian still factored, and the final check
    found it not positive definite by rounding (smallest eigenvalue -7e-15); after the last
    pass the correlation is now held at the end, as the polish holds it.
    ar1_near_one_slack (ar1:104): the polish held the correlation on its last allowed step,
    leaving the other coordinates a Newton decrement of 1.1e-6 (> decrement_tol); holding
    it no longer uses up a Newton step (polish_max_steps counts steps taken).
    Both converge, singular, within 1e-7 in logLik of the permuted rows' fit."""
    frame = pd.read_csv(REFERENCE / f"{name}.csv")
    formula = "y ~ x + ar1(0 + tf | g)"
    permuted = frame.iloc[np.random.default_rng(0).permutation(len(frame))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", g.BoundaryWarning)
        result, other = g.fit(formula, frame), g.fit(formula, permuted)
    assert result.converged and other.converged
    assert result.singular and other.singular
    assert float(result.varcorr["corr_1"].iloc[1]) > 1 - 1e-4
    assert result.llf == pytest.approx(other.llf, abs=1e-7)


def test_a_refit_from_a_saturated_correlation_leaves_it() -> None:
    """A refit (bootstrap, power) of the ar1 fit held at rho = -1 to data with rho = 0.6 starts
    the correlation at saturation_start inside its range and reaches the fresh fit's optimum;
    started where the estimate is (its parameter at -2,370, the deviance flat there) it stayed
    at -1, 59 below in logLik."""
    frame = pd.read_csv(REFERENCE / "ar1_saturated.csv").assign(t=lambda d: pd.Categorical(d["t"]))
    formula = "cbind(y, f) ~ x + ar1(0 + t | id)"
    rng = np.random.default_rng(3)
    lags = np.abs(np.subtract.outer(np.arange(4), np.arange(4)))
    b = rng.multivariate_normal(np.zeros(4), 1.5**2 * 0.6**lags, size=int(frame["id"].max()) + 1)
    trials = (frame["y"] + frame["f"]).to_numpy()
    eta = -0.4 + 0.5 * frame["x"].to_numpy() + b[frame["id"], frame["t"].cat.codes]
    y = rng.binomial(trials, 1 / (1 + np.exp(-eta)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", g.BoundaryWarning)
        fresh = g.fit(formula, frame.assign(y=y, f=trials - y))
        for margin, reaches in ((1e-2, True), (0.0, False)):
            fitted = g.fit(formula, frame, control=g.OptimizerControl(saturation_start=margin))
            refitted = fitted.refit(y)
            assert (abs(refitted.llf - fresh.llf) < 1e-6) == reaches
            assert (float(refitted.varcorr["corr_1"].iloc[1]) > 0.5) == reaches


def test_snaps_and_the_correlation_without_two_sds() -> None:
    """snaps: an SD below `near` but not at the boundary goes to its side of tol (log SD to
    log(tol) - 1; a diagonal entry of an unstructured Lambda to zero); the correlation of ar1
    or cs is on the boundary when fewer than two of its terms' SDs are off it."""
    tol, near = 1e-4, 1e-2
    ar1, cs = Ar1(3), CompoundSymmetry(3)
    assert ar1.snaps(np.array([np.log(1e-3), 0.2]), near, tol) == [
        (0, pytest.approx(np.log(tol) - 1.0), pytest.approx(1e-3))
    ]
    assert ar1.snaps(np.array([np.log(1e-5), 0.2]), near, tol) == []  # already there
    assert ar1.snaps(np.array([np.log(0.5), 0.2]), near, tol) == []
    assert ar1.at_boundary(np.array([np.log(1e-5), 0.2]), tol).tolist() == [True, True]
    assert ar1.at_boundary(np.array([np.log(0.5), 0.2]), tol).tolist() == [False, False]
    two_gone = np.array([np.log(1e-5), np.log(1e-6), 0.0, 0.3])
    one_gone = np.array([np.log(1e-5), 0.0, 0.0, 0.3])
    assert cs.at_boundary(two_gone, tol).tolist() == [True, True, False, True]
    assert cs.at_boundary(one_gone, tol).tolist() == [True, False, False, False]
    assert Unstructured(2).snaps(np.array([0.005, 0.3, 2e-3]), near, tol) == [
        (0, 0.0, 0.005),
        (2, 0.0, 2e-3),
    ]


def test_at_end_puts_a_saturated_correlation_and_zero_sds_at_their_ends() -> None:
    """at_end: a correlation within tol of an end of its range goes `gap` from that end (ar1's
    rho near -1 or 1, cs's near -1/(k - 1) or 1), a log SD whose SD is below `near` goes to
    log(gap); the other SDs and an unsaturated correlation stay; Unstructured has neither to
    move (its diagonal entries reach zero themselves)."""
    tol, gap = 1e-4, 1e-12
    ar1, cs = Ar1(3), CompoundSymmetry(3)
    near_one = np.array([0.2, ar1.phi(1.0 - 2e-6)])
    ended = ar1.at_end(near_one, tol, tol, gap)
    assert ended[0] == near_one[0]
    assert ar1.rho(float(ended[1])) == pytest.approx(1.0 - gap, abs=1e-15)
    near_minus_one = np.array([0.2, ar1.phi(-1.0 + 5e-5)])
    assert ar1.rho(float(ar1.at_end(near_minus_one, tol, tol, gap)[1])) == pytest.approx(
        -1.0 + gap, abs=1e-15
    )
    inside = np.array([0.2, ar1.phi(0.99)])
    assert np.array_equal(ar1.at_end(inside, tol, tol, gap), inside)
    low = np.array([0.1, -0.2, 0.3, cs.phi(-0.5 + 3e-5)])
    ended = cs.at_end(low, tol, tol, gap)
    assert np.array_equal(ended[:3], low[:3])
    assert cs.rho(float(ended[3])) == pytest.approx(-0.5 + gap, abs=1e-14)
    assert cs.saturated(ended, tol)[3]
    held = cs.at_end(np.array([0.1, np.log(1e-5), 0.3, cs.phi(0.2)]), tol, tol, gap)
    assert held[1] == pytest.approx(np.log(gap))
    assert np.array_equal(held[[0, 2, 3]], [0.1, 0.3, cs.phi(0.2)])
    zero = Diagonal(3).at_end(np.array([np.log(1e-6), 0.1, 0.4]), tol, tol, gap)
    assert np.array_equal(zero, [np.log(gap), 0.1, 0.4])
    # An SD below `near` but above tol moves only with `near` above it.
    small = np.array([np.log(5e-3), 0.1, 0.4])
    assert np.array_equal(Diagonal(3).at_end(small, tol, 1e-2, gap), [np.log(gap), 0.1, 0.4])
    assert np.array_equal(Diagonal(3).at_end(small, tol, tol, gap), small)
    theta = np.array([0.5, 0.0, 1e-6])
    assert np.array_equal(Unstructured(2).at_end(theta, tol, tol, gap), theta)
    assert np.array_equal(Diagonal(3).at_end(theta, tol, tol, gap), theta)


def test_other_basin_starts_cs_at_the_other_end_of_rho() -> None:
    """CompoundSymmetry.other_basin: only where rho is within tol of an end of its range and
    an SD below tol; then SDs 1 and rho a sixth of the range from the other end. The other
    structures have none."""
    tol = 1e-4
    cs = CompoundSymmetry(3)
    low_end = np.array([0.1, np.log(1e-6), 0.2, cs.phi(-0.5 + 1e-6)])
    start = cs.other_basin(low_end, tol)
    assert start is not None
    assert np.array_equal(start[:3], np.zeros(3))
    assert cs.rho(float(start[3])) == pytest.approx(0.75)
    high_end = np.array([np.log(1e-6), 0.1, 0.2, cs.phi(1.0 - 1e-6)])
    start = cs.other_basin(high_end, tol)
    assert start is not None
    assert cs.rho(float(start[3])) == pytest.approx(-0.25)
    no_zero_sd = np.array([0.1, 0.3, 0.2, cs.phi(1.0 - 1e-6)])
    assert cs.other_basin(no_zero_sd, tol) is None
    inside = np.array([0.1, np.log(1e-6), 0.2, cs.phi(0.3)])
    assert cs.other_basin(inside, tol) is None
    assert Ar1(3).other_basin(np.array([np.log(1e-6), Ar1(3).phi(1.0 - 1e-6)]), tol) is None
    assert Unstructured(2).other_basin(np.array([1.0, 0.0, 0.0]), tol) is None


def test_other_basin_starts_ar1_at_the_other_end_of_rho() -> None:
    """Ar1.other_basin: where rho is within tol of -1 or 1 with the SD off zero, SD 1 and rho
    2/3 towards the other end; none inside the range or with the SD at zero."""
    tol = 1e-4
    ar1 = Ar1(4)
    for end, expected in ((1.0 - 1e-6, -2.0 / 3.0), (-1.0 + 1e-6, 2.0 / 3.0)):
        start = ar1.other_basin(np.array([-1.9, ar1.phi(end)]), tol)
        assert start is not None
        assert start[0] == 0.0
        assert ar1.rho(float(start[1])) == pytest.approx(expected)
    assert ar1.other_basin(np.array([-1.9, ar1.phi(0.9)]), tol) is None
    assert ar1.other_basin(np.array([np.log(1e-6), ar1.phi(1.0 - 1e-6)]), tol) is None


def test_face_starts_put_each_nonzero_cs_sd_near_zero() -> None:
    """CompoundSymmetry.face_starts: one start per term whose SD is not below tol, that SD at
    e^FACE_LOG_SD, the others at 1 and phi 0; none for the other structures."""
    tol = 1e-4
    cs = CompoundSymmetry(3)
    theta = np.array([0.1, np.log(1e-6), -0.2, cs.phi(0.4)])
    starts = cs.face_starts(theta, tol)
    assert len(starts) == 2
    for j, start in zip((0, 2), starts, strict=True):
        expected = np.zeros(4)
        expected[j] = FACE_LOG_SD
        assert np.array_equal(start, expected)
    assert len(cs.face_starts(np.array([0.1, 0.2, -0.2, 0.0]), tol)) == 3
    assert Ar1(3).face_starts(np.array([0.1, 0.5]), tol) == []
    assert Diagonal(2).face_starts(np.array([0.1, 0.5]), tol) == []
    assert Unstructured(2).face_starts(np.array([1.0, 0.0, 1.0]), tol) == []


def test_model_face_starts_replace_one_block_at_a_time() -> None:
    """ModelData.theta_face_starts: each cs block's face starts in its own slice, the other
    blocks' entries as they are."""
    data = pd.read_csv(REFERENCE / "cs_face_start.csv").assign(h=lambda d: d["g"] % 5)
    model, _ = build_model("y ~ x + cs(0 + tf | g) + (1 | h)", data)
    theta = np.array([0.1, np.log(1e-6), 0.2, 0.3, 0.5])
    starts = model.theta_face_starts(theta, 1e-4)
    assert len(starts) == 2
    np.testing.assert_array_equal(starts[0], [FACE_LOG_SD, 0.0, 0.0, 0.0, 0.5])
    np.testing.assert_array_equal(starts[1], [0.0, 0.0, FACE_LOG_SD, 0.0, 0.5])
    unstructured, _ = build_model("y ~ x + (0 + tf | g)", data)
    assert unstructured.theta_face_starts(np.ones(unstructured.n_theta), 1e-4) == []


def test_singular_restart_only_at_a_singular_end_of_a_vector_term() -> None:
    """ends_singular: an unstructured or diag term of two or more SDs with a diagonal entry of
    Lambda (an SD) below tol, which a correlation at +-1 leaves in canonical form; not off the
    boundary, not for a term of one SD, not for cs and ar1 (their own other_basin and
    face_starts). restart_start: lme4's start for unstructured and diag terms only."""
    tol = 1e-4
    us = Unstructured(2)
    # Correlation +1: Lambda's second column is zero on its diagonal.
    assert us.ends_singular(np.array([0.8, 0.5, 0.0]), tol)
    assert us.ends_singular(np.array([0.0, 0.0, 0.7]), tol)
    assert not us.ends_singular(np.array([0.8, 0.5, 0.3]), tol)
    assert not Unstructured(1).ends_singular(np.array([0.0]), tol)
    diag = Diagonal(2)
    assert diag.ends_singular(np.array([0.1, np.log(1e-6)]), tol)
    assert not diag.ends_singular(np.array([0.1, -0.5]), tol)
    assert not Diagonal(1).ends_singular(np.array([np.log(1e-6)]), tol)
    zero = np.log(1e-6)
    assert not CompoundSymmetry(3).ends_singular(np.array([zero, 0.1, 0.2, 0.0]), tol)
    assert not Ar1(3).ends_singular(np.array([zero, 0.5]), tol)
    np.testing.assert_array_equal(us.restart_start(), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(Unstructured(1).restart_start(), [1.0])
    np.testing.assert_array_equal(diag.restart_start(), [0.0, 0.0])
    assert CompoundSymmetry(3).restart_start() is None
    assert Ar1(3).restart_start() is None


def test_mirror_starts_turn_one_columns_correlations_at_a_singular_end() -> None:
    """Unstructured.mirror_starts: at a singular end, Lambda -> D_j Lambda D_j for each
    column j but the first (the covariance's correlations with column j negated, the SDs
    kept); none off the boundary, none where no correlation changes (an SD at zero), none for
    the other structures."""
    tol = 1e-4
    us = Unstructured(2)
    (start,) = us.mirror_starts(np.array([0.8, -0.5, 0.0]), tol)
    np.testing.assert_array_equal(start, [0.8, 0.5, 0.0])
    assert us.mirror_starts(np.array([0.8, 0.5, 0.3]), tol) == []
    assert us.mirror_starts(np.array([0.0, 0.0, 0.7]), tol) == []
    three = Unstructured(3)
    theta = np.array([1.0, 0.5, -0.4, 0.3, 0.2, 0.0])  # Lambda's columns: (1, .5, -.4), ...
    starts = three.mirror_starts(theta, tol)
    assert len(starts) == 2
    for j, flipped in zip((1, 2), starts, strict=True):
        lam = three.lambda_matrix(theta)
        d = np.ones(3)
        d[j] = -1.0
        np.testing.assert_allclose(three.lambda_matrix(flipped), d[:, None] * lam * d[None, :])
        cov, cov_flipped = (
            lam @ lam.T,
            three.lambda_matrix(flipped) @ three.lambda_matrix(flipped).T,
        )
        np.testing.assert_allclose(np.diag(cov_flipped), np.diag(cov))
        np.testing.assert_allclose(cov_flipped, d[:, None] * cov * d[None, :])
    assert Diagonal(2).mirror_starts(np.array([0.1, np.log(1e-6)]), tol) == []


def test_model_singular_restart_puts_every_lme4_term_at_lme4s_start() -> None:
    """ModelData.theta_singular_restart: where one vector block ends singular, every
    unstructured and diag block at lme4's start (the scalar one too), a cs block and the
    other entries as they are; None where no vector block is singular (a scalar term at zero
    is not enough)."""
    data = pd.read_csv(REFERENCE / "cs_face_start.csv").assign(h=lambda d: d["g"] % 5)
    model, _ = build_model("y ~ x + (1 + x | g) + (1 + x | h) + (1 | tf)", data)
    restart = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    theta = np.array([0.5, 0.2, 0.0, 0.7, 0.1, 0.3, 0.4])
    np.testing.assert_array_equal(model.theta_singular_restart(theta, 1e-4), restart)
    theta = np.array([0.5, 0.2, 0.3, 0.7, 0.1, 0.0, 0.4])
    np.testing.assert_array_equal(model.theta_singular_restart(theta, 1e-4), restart)
    assert model.theta_singular_restart(np.array([0.5, 0.2, 0.3, 0.7, 0.1, 0.2, 0.0]), 1e-4) is None
    structured, _ = build_model("y ~ x + cs(0 + tf | g) + (1 + x | h)", data)
    n_cs = structured.blocks[0].covariance.n_theta
    assert structured.blocks[0].covariance.name == "cs"
    theta = np.concatenate([np.full(n_cs, 0.3), [0.5, 0.2, 0.0]])
    np.testing.assert_array_equal(
        structured.theta_singular_restart(theta, 1e-4), [*np.full(n_cs, 0.3), 1.0, 0.0, 1.0]
    )


def test_correlation_trials_only_where_the_correlation_does_not_enter() -> None:
    """correlation_trials: near each end of the range where fewer than two SDs are off the
    boundary; none where it enters the model, and none for diag or an unstructured term."""
    tol = 1e-4
    ar1 = Ar1(3)
    trials = ar1.correlation_trials(np.array([np.log(1e-8), 1.6]), tol)
    assert [round(ar1.rho(float(t[1])), 6) for t in trials] == [-0.9, 0.9]
    assert all(t[0] == np.log(1e-8) for t in trials)
    assert ar1.correlation_trials(np.array([np.log(0.3), 1.6]), tol) == []
    cs = CompoundSymmetry(3)
    one_sd = np.array([np.log(1e-8), np.log(1e-8), 0.2, 0.0])
    rhos = [cs.rho(float(t[3])) for t in cs.correlation_trials(one_sd, tol)]
    np.testing.assert_allclose(rhos, [-0.5 + 0.075, 1.0 - 0.075])
    assert cs.correlation_trials(np.array([0.1, np.log(1e-8), 0.2, 0.0]), tol) == []
    assert Diagonal(2).correlation_trials(np.array([np.log(1e-8), 0.1]), tol) == []
    assert Unstructured(2).correlation_trials(np.array([0.0, 0.0, 0.0]), tol) == []


def test_a_zero_column_takes_over_each_later_column() -> None:
    """Unstructured.taken_over: a column at the boundary (folded first when turned) gets a
    later non-zero column's entries, the later column zero: the same covariance, one point per
    pair, with the index of the zero column's diagonal entry in theta."""
    us = Unstructured(3)
    tol = 1e-4
    theta = np.array([0.3, -0.1, -0.08, 0.0, -2e-3, 0.27])  # column 1 turned, at the boundary
    lam = us.lambda_matrix(theta)
    points = us.taken_over(theta, tol)
    assert [j for _, j in points] == [3]
    moved = us.lambda_matrix(points[0][0])
    np.testing.assert_allclose(moved @ moved.T, lam @ lam.T, atol=1e-15)
    assert moved[1, 1] == 0.0 and moved[2, 1] != 0.0 and not moved[:, 2].any()
    zero_intercept = us.taken_over(np.array([0.0, 0.0, 0.0, 0.5, 0.2, 0.4]), tol)
    assert [j for _, j in zero_intercept] == [0, 0]  # columns 1 and 2 each into column 0
    assert us.taken_over(np.array([0.3, 0.1, 0.2, 0.5, 0.2, 0.0]), tol) == []  # the last column
    assert us.taken_over(np.array([0.3, 0.1, 0.2, 0.0, 0.0, 0.0]), tol) == []  # no later column
    assert Ar1(3).taken_over(np.array([np.log(1e-6), 0.5]), tol) == []


def test_a_turned_column_is_folded_into_the_later_ones() -> None:
    """Unstructured.turned: a column whose diagonal entry is below tol but not the entries
    below it is zeroed and the trailing block refactored: Lambda Lambda' as with that
    diagonal entry at zero, lower triangular with a non-negative diagonal. None without such
    a column (and for the structures without a free column)."""
    tol = 1e-4
    us = Unstructured(3)
    theta = np.array([2.6e-5, 0.097, -0.71, 0.102, -0.747, 0.0])
    folded = us.turned(theta, tol)
    assert folded is not None
    lam, new = us.lambda_matrix(theta), us.lambda_matrix(folded)
    lam[0, 0] = 0.0
    np.testing.assert_allclose(new @ new.T, lam @ lam.T, atol=1e-15)
    assert np.all(new[:, 0] == 0.0) and np.all(np.diag(new) >= 0.0)
    assert np.all(np.triu(new, 1) == 0.0)
    assert new[2, 2] > tol  # the second slope takes the turned share off the boundary
    assert us.turned(np.array([1.0, 0.5, 0.2, 1.0, 0.3, 1.0]), tol) is None
    assert us.turned(np.array([0.0, 1e-6, 0.0, 1.0, 0.3, 1.0]), tol) is None
    assert Ar1(3).turned(np.array([np.log(1e-6), 0.5]), tol) is None
