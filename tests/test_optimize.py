"""The outer optimizer's checks of its end point (optimize.py)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from _simulate import simulated_model
from conftest import REFERENCE_DIR, load_reference
from hypothesis import given, settings
from hypothesis import strategies as st

from glmm_binomial import datasets
from glmm_binomial import fit as g_fit
from glmm_binomial.family import make_family
from glmm_binomial.methods.agq import fit_agq
from glmm_binomial.methods.laplace import LaplaceObjective, fit_laplace
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import build_model
from glmm_binomial.numerics import optimize
from glmm_binomial.numerics.optimize import (
    LOGIT_ATTENUATION,
    MAX_ATTENUATED_SHARE,
    MIRRORED_RESTART,
    MOMENT_START_SD,
    OTHER_BASIN,
    RANGE_END,
    REWRITTEN_END,
    RUNNING_TO_END,
    SINGULAR_RESTART,
    EndChecks,
    Estimates,
    OptimizerControl,
    OptSummary,
    SearchCoordinates,
    StartPoint,
    attenuation,
    boundary_points,
    flat_direction,
    glm_start,
    glm_value_information_score,
    held_check,
    in_known_basin,
    known_ends,
    level_scores,
    minimize_deviance,
    moment_theta,
    nearly_singular,
    newton_search,
    off_zero,
    optimum_check,
    positive_definite,
    start_curvature,
    start_point,
    zero_sd_fall,
)
from glmm_binomial.numerics.pirls import PirlsControl
from glmm_binomial.numerics.polar import PolarRows

CONTROL = OptimizerControl()


def test_optimum_check_accepts_a_minimum():
    assert optimum_check(10.0, np.array([1e-6, -1e-6]), np.diag([2.0, 3.0]), CONTROL) == ""
    assert optimum_check(10.0, np.zeros(0), np.zeros((0, 0)), CONTROL) == ""


def test_optimum_check_names_what_failed():
    hessian = np.diag([2.0, 3.0])
    assert "not finite" in optimum_check(float("inf"), np.zeros(2), hessian, CONTROL)
    assert "not finite" in optimum_check(1.0, np.array([np.nan, 0.0]), hessian, CONTROL)
    saddle = optimum_check(1.0, np.zeros(2), np.diag([2.0, -1.0]), CONTROL)
    assert "not positive definite" in saddle
    # Deviance 2 * 1 / 2 = 1 still to gain along the first axis: not a minimum.
    short = optimum_check(1.0, np.array([2.0, 0.0]), hessian, CONTROL)
    assert "Newton decrement" in short and "decrement_tol" in short


def test_decrement_is_invariant_under_rescaling_parameters():
    grad, hessian = np.array([1e-3, 2e-4]), np.array([[2.0, 0.3], [0.3, 1.0]])
    scale = np.diag([1e6, 1e-6])  # p = scale q: g_q = scale g_p, H_q = scale H_p scale
    tight = OptimizerControl(decrement_tol=1e-7)
    a = optimum_check(1.0, grad, hessian, tight)
    b = optimum_check(1.0, scale @ grad, scale @ hessian @ scale, tight)
    assert a and a.split("Newton decrement ")[1][:8] == b.split("Newton decrement ")[1][:8]


def test_non_finite_deviance_is_not_converged():
    data = simulated_model(0)
    objective = LaplaceObjective(data)
    estimates = minimize_deviance(
        data,
        lambda theta, beta: (float("nan"), np.zeros_like(theta), np.zeros_like(beta)),
        CONTROL,
        objective.counters,
        "laplace",
        start_point(data, CONTROL),
    )
    assert not estimates.summary.converged
    assert "not finite" in estimates.summary.message


def test_agq_beyond_its_accuracy_is_not_converged():
    # Issue 9 item 4 in the core (the api refuses n_agq > 100 before getting here).
    model, _ = build_model(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", datasets.load("cbpp")
    )
    # From lme4's start (Lambda = I) the 500-point rule overflows; the moment start is near
    # enough to the optimum that it does not.
    with np.errstate(all="ignore"):
        output = fit_agq(model, 500, OptimizerControl(moment_start=False))
    assert not output.converged
    assert any("not finite" in w for w in output.warnings)


def test_tolerances_are_recorded():
    output = fit_laplace(simulated_model(1))
    tolerances = output.opt_summary.tolerances
    for name in (
        "decrement_tol",
        "user_gradient_tol",
        "deviance_match_tol",
        "fixed_scale_limit",
        "random_scale_limit",
        "fixed_center_limit",
        "random_center_limit",
        "gtol",
        "armijo",
        "max_backtracks",
    ):
        assert tolerances[name] == getattr(CONTROL, name)
    assert output.converged


def test_the_line_search_takes_its_settings_from_the_control():
    """armijo and max_backtracks reach the quasi-Newton search (a fit without the exact
    Hessian): with no backtracking allowed its first rejected step ends it."""
    model = simulated_model(1)
    quasi_newton = OptimizerControl(exact_hessian=False)
    output = fit_laplace(model, quasi_newton)
    assert "line search" not in output.opt_summary.message
    none = fit_laplace(model, dataclasses.replace(quasi_newton, max_backtracks=0))
    assert none.opt_summary.tolerances["max_backtracks"] == 0
    assert none.opt_summary.message.startswith("the line search found no decrease")


def test_a_given_start_is_whitened_by_the_glm_information_there_without_a_glm_fit():
    data = datasets.load("cbpp")
    model, _ = build_model("cbind(incidence, size - incidence) ~ period + (1 | herd)", data)
    control = OptimizerControl()
    theta, beta = np.array([0.6]), np.array([-1.4, -1.0, -1.1, -1.6])
    begin = start_point(model, control, theta, beta)
    np.testing.assert_array_equal(begin.beta, beta)
    np.testing.assert_array_equal(begin.theta, theta)
    _, information, _ = glm_value_information_score(model, beta)
    np.testing.assert_allclose(begin.info_factor.T @ begin.info_factor, information, atol=1e-9)
    # Without a start: beta from the GLM fit, and lme4's Lambda = I, or (the default) the
    # moment estimate of the SD at the GLM fit, with the GLM's beta scaled by the same
    # attenuation factor (towards the conditional model's coefficients).
    fresh = start_point(model, OptimizerControl(moment_start=False))
    np.testing.assert_array_equal(fresh.theta, [1.0])
    assert not np.allclose(fresh.beta, beta)
    moments = start_point(model, control)
    _, factor = moment_theta(model, level_scores(model, fresh.beta), model.theta_start())
    assert factor > 1.0
    np.testing.assert_array_equal(moments.beta, fresh.beta * factor)
    assert 0.1 < moments.theta[0] < 1.0


def test_moment_start_estimates_the_sd_of_simulated_effects():
    # 400 groups of 50 Bernoulli rows with SD 0.8: the moment estimate at the GLM fit is near
    # it (the GLM's beta absorbs none of the group effects' spread).
    rng = np.random.default_rng(3)
    codes = np.repeat(np.arange(400), 50)
    x = rng.normal(size=codes.size)
    eta = -0.5 + 0.7 * x + 0.8 * rng.normal(size=400)[codes]
    frame = pd.DataFrame(
        {"y": (rng.random(codes.size) < 1 / (1 + np.exp(-eta))).astype(int), "x": x, "g": codes}
    )
    model, _ = build_model("y ~ x + (1 | g)", frame)
    start = start_point(model, CONTROL)
    assert abs(start.theta[0] - 0.8) < 0.15
    # No group effect at all: the lower bound, never zero (where the deviance is flat).
    flat = frame.assign(y=(rng.random(codes.size) < 0.4).astype(int))
    model, _ = build_model("y ~ x + (1 | g)", flat)
    assert start_point(model, CONTROL).theta[0] == pytest.approx(0.1, abs=0.1)
    assert start_point(model, CONTROL).theta[0] >= 0.1


def convex(z: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """sum cosh(a_j z_j) + (z_1 - z_2)^2: value, gradient, Hessian; minimum at 0."""
    a = np.array([1.0, 0.5])
    value = float(np.sum(np.cosh(a * z)) + (z[0] - z[1]) ** 2)
    grad = a * np.sinh(a * z) + 2.0 * (z[0] - z[1]) * np.array([1.0, -1.0])
    hessian = np.diag(a * a * np.cosh(a * z)) + 2.0 * np.array([[1.0, -1.0], [-1.0, 1.0]])
    return value, grad, hessian


def search_from(z0, noise=0.0, max_steps=10, control=CONTROL):
    rng = np.random.default_rng(0)
    calls = {"fun": 0, "hessian": 0}

    def fun(z):
        calls["fun"] += 1
        value, grad, _ = convex(z)
        return value + noise * rng.uniform(-1.0, 1.0), grad

    def hessian_at(z, grad):
        calls["hessian"] += 1
        return convex(z)[2]

    value, grad, hessian = convex(np.asarray(z0, dtype=float))
    result = newton_search(
        fun, np.asarray(z0, dtype=float), value, grad, hessian, hessian_at, control, max_steps
    )
    return result, calls


def test_newton_search_converges_quadratically_and_keeps_the_last_hessian():
    result, calls = search_from([1.5, -1.0])
    assert result.verified, result.message
    assert np.max(np.abs(result.z)) < 1e-8
    assert result.steps <= 6
    # A Hessian after each step: the one returned is the end point's.
    assert calls["hessian"] == result.steps
    assert np.array_equal(result.hessian, convex(result.z)[2])
    assert calls["fun"] == result.steps
    assert optimum_check(result.value, result.grad, result.hessian, CONTROL) == ""


def test_newton_search_lengthens_its_steps_from_far_out():
    # log cosh(z) + z^2 / 100 from z = 30: flat far out (as a deviance in a large theta), so
    # the Newton steps are far too long and cut to the radius; at max_step = 2 alone the way
    # to 0 would take 15 steps, the doubling radius takes a few.
    def fun(z):
        return float(np.sum(np.log(np.cosh(z)) + 0.01 * z * z)), np.tanh(z) + 0.02 * z

    def hessian_at(z, grad):
        return np.diag(1.0 / np.cosh(z) ** 2 + 0.02)

    z = np.array([30.0, -30.0])
    result = newton_search(fun, z, *fun(z), hessian_at(z, None), hessian_at, CONTROL, 40)
    assert result.verified, result.message
    assert np.max(np.abs(result.z)) < 1e-8
    assert result.steps < 12


def test_newton_search_takes_steps_that_rounding_of_the_value_hides():
    # The value known to 1e-7 only (as a deviance whose modes are found to a tolerance): the
    # last whole steps cannot show a decrease, the gradient still leads to the optimum.
    result, _ = search_from([1.5, -1.0], noise=1e-7)
    assert result.verified, result.message
    assert np.max(np.abs(result.z)) < 1e-6


def test_newton_search_hands_over_where_the_hessian_is_not_positive_definite():
    def fun(z):
        return float(-z @ z), -2.0 * z

    z = np.array([0.5, 0.1])
    result = newton_search(
        fun, z, *fun(z), -2.0 * np.eye(2), lambda z, g: -2.0 * np.eye(2), CONTROL, 10
    )
    assert not result.verified
    assert result.steps == 0
    assert "not positive definite" in result.message


def test_scalar_fits_use_newton_and_reach_the_quasi_newton_optimum():
    data = datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    newton = g_fit(formula, data)
    quasi = g_fit(formula, data, control=OptimizerControl(newton_max_steps=0))
    assert newton.opt_summary.optimizer == "Newton, whitened, exact Hessian"
    assert quasi.opt_summary.optimizer == "BFGS, whitened, + Newton polish"
    assert newton.converged and quasi.converged
    assert newton.opt_summary.evaluations < quasi.opt_summary.evaluations
    # The same optimum: the deviance at both end points, each mode found afresh to a tight
    # tolerance, agrees to 1e-10. The reported values agree to about 1e-7 only: each is the
    # deviance at the last mode of its own search, found to PIRLS's tolerance on the Newton
    # decrement (1e-14), which holds the log-determinant to about its square root.
    model, _ = build_model(formula, data)
    tight = LaplaceObjective(model, PirlsControl(tol=1e-20))
    at_newton = tight.deviance(np.asarray(newton.theta), newton.params.to_numpy())
    tight = LaplaceObjective(model, PirlsControl(tol=1e-20))
    at_quasi = tight.deviance(np.asarray(quasi.theta), quasi.params.to_numpy())
    assert at_newton == pytest.approx(at_quasi, abs=1e-10)
    assert newton.llf == pytest.approx(quasi.llf, abs=1e-7)
    assert np.allclose(newton.params, quasi.params, rtol=0, atol=1e-6)
    assert np.allclose(newton.bse, quasi.bse, rtol=1e-5)
    assert newton.opt_summary.tolerances["newton_max_steps"] == 10


def test_newton_steps_count_against_max_iter():
    data = datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    capped = g_fit(formula, data, control=OptimizerControl(max_iter=1, polish_max_steps=0))
    assert not capped.converged
    assert capped.opt_summary.iterations <= 1


def test_attenuation_undoes_the_logistic_normal_shrinkage():
    """sqrt(1 + c^2 S) with S the conditional variance whose marginal version was estimated:
    S_m = S / (1 + c^2 S); only for the binomial logit; at most 1 / sqrt(1 - 0.75) = 2."""
    model, _ = build_model(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", datasets.load("cbpp")
    )
    c2 = LOGIT_ATTENUATION**2
    conditional = 1.3
    marginal = conditional / (1.0 + c2 * conditional)
    assert attenuation(model, marginal) == pytest.approx(np.sqrt(1.0 + c2 * conditional))
    assert attenuation(model, 0.0) == 1.0
    assert attenuation(model, 1e6) == pytest.approx(1.0 / np.sqrt(1.0 - MAX_ATTENUATED_SHARE))
    # The probit: exact with c = 1; other links are not scaled.
    probit = dataclasses.replace(model, family=make_family("binomial", "probit"))
    assert attenuation(probit, 0.5) == pytest.approx(np.sqrt(1.0 + 0.5 / (1.0 - 0.5)))
    cloglog = dataclasses.replace(model, family=make_family("binomial", "cloglog"))
    assert attenuation(cloglog, marginal) == 1.0


def test_structured_sds_start_at_moment_estimates_but_cs():
    """diag and ar1 terms start their log SDs at the moment estimates (with_sds: ar1's one SD
    at their root mean square, its correlation as it was); cs keeps SDs 1 (level_scores gives
    it no sums), its optimum too sensitive to the start."""
    data = pd.read_csv(REFERENCE_DIR / "ar1_range_end.csv")
    for formula, expected in (
        ("y ~ x + diag(0 + tf | g)", 3),
        ("y ~ x + ar1(0 + tf | g)", 1),
        ("y ~ x + cs(0 + tf | g)", 0),
    ):
        model, _ = build_model(formula, data)
        beta, _ = glm_start(model, CONTROL)
        scores = level_scores(model, beta)
        start = model.theta_start()
        theta, factor = moment_theta(model, scores, start)
        moved = np.flatnonzero(theta != start)
        assert len(moved) == expected
        if expected:
            score, information = scores[0]
            sds = np.sqrt(
                np.maximum((score**2 - information).sum(0), 0.0) / (information**2).sum(0)
            )
            sds = np.clip(sds * factor, *MOMENT_START_SD)
            shared = np.sqrt(np.mean(sds**2))
            want = np.log(sds) if expected == 3 else [np.log(shared), start[1]]
            np.testing.assert_allclose(theta, want, rtol=1e-12)
        else:
            assert scores[0] is None


def test_a_diag_fit_from_moment_sds_reaches_the_optimum_of_its_double_bar_form():
    """y ~ x + diag(1 + x | g) (bench/metamorphic.py's diag:33, 1,131 rows, 39 groups, x not
    centred): from SDs 1 the search in log SDs ended at a local optimum (-735.2517662, as
    glmmTMB's -735.2517662 and glmer's (1 + x || g) -735.2530477), below the GLM's own
    -735.1255810; the maximum has the intercept's SD at zero and the slope's 0.137 (glmer's
    (0 + x | g): -732.5962145; R 4.2.2, lme4 1.1-31, glmmTMB 1.1.5), where our (1 + x || g)
    fit, from moment SDs, ends. From moment SDs the diag fit ends there too."""
    data = pd.read_csv(REFERENCE_DIR / "diag_moment_start.csv")
    diag = g_fit("y ~ x + diag(1 + x | g)", data)
    double_bar = g_fit("y ~ x + (1 + x || g)", data)
    assert diag.converged and double_bar.converged
    assert diag.llf == pytest.approx(double_bar.llf, abs=1e-6)
    assert diag.llf > -732.5962145068 - 1e-6
    # Left at about 3e-4 by the log-SD search (the deviance flat in it), put at zero by
    # range_end: a boundary fit, as the || form's.
    assert diag.varcorr["std_dev"].iloc[0] < 1e-4
    assert diag.singular and double_bar.singular
    assert diag.varcorr["std_dev"].iloc[1] == pytest.approx(0.1365, abs=1e-3)


def test_moment_start_scales_the_sds_and_reports_the_factor():
    model, _ = build_model(
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", datasets.load("verbagg")
    )
    beta, _ = glm_start(model, CONTROL)
    scores = level_scores(model, beta)
    theta, factor = moment_theta(model, scores, model.theta_start())
    assert factor > 1.0
    cloglog = dataclasses.replace(model, family=make_family("binomial", "cloglog"))
    plain, one = moment_theta(cloglog, scores, model.theta_start())
    assert one == 1.0
    np.testing.assert_allclose(theta, plain * factor)
    # The start scales the GLM's coefficients by the same factor (towards the conditional
    # model's), and starts closer to the optimum than the plain moments did (the fit: SDs
    # 1.340 and 0.495).
    start = start_point(model, CONTROL)
    np.testing.assert_allclose(start.beta, beta * factor)
    np.testing.assert_allclose(start.theta, theta)
    assert np.all(np.abs(theta - [1.340, 0.495]) < np.abs(plain - [1.340, 0.495]))


def test_start_curvature_approximates_the_deviance_curvature_in_each_sd():
    """start_curvature's sum_j 4 s^2 I_j^2 / (1 + s^2 I_j)^2 for the SD s of a one-column term
    (NaN elsewhere), near the forward difference of the exact gradient that it replaces."""
    model, _ = build_model(
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", datasets.load("verbagg")
    )
    start = start_point(model, CONTROL)
    scores = level_scores(model, glm_start(model, CONTROL)[0])
    curvature = start_curvature(model, scores, start.theta)
    for t, sums in enumerate(scores):
        assert sums is not None
        info = sums[1][:, 0]
        s2 = start.theta[t] ** 2
        assert curvature[t] == pytest.approx(float((4 * s2 * info**2 / (1 + s2 * info) ** 2).sum()))
    np.testing.assert_array_equal(start.theta_curvature, curvature)
    objective = LaplaceObjective(model)
    _, g0, _ = objective.deviance_and_gradient(start.theta, start.beta)
    for t in range(2):
        step = np.zeros(2)
        step[t] = 1e-4
        _, g1, _ = objective.deviance_and_gradient(start.theta + step, start.beta)
        difference = (g1[t] - g0[t]) / 1e-4
        assert 0.5 < curvature[t] / difference < 2.0
    # A vector term's SDs (the diagonal of its Lambda) have one, each column on its own; its
    # off-diagonal entry and a structured covariance's parameters have none; without the
    # moment start or with approximate_theta_scale off there is none at all.
    vector, _ = build_model(
        "use ~ age + (1 + urban | district) + (1 | livch)", datasets.load("contraception")
    )
    vector_start = start_point(vector, CONTROL)
    approx = vector_start.theta_curvature
    assert approx is not None
    assert np.isnan(approx[1]) and (approx[[0, 2, 3]] > 0).all()
    vector_scores = level_scores(vector, glm_start(vector, CONTROL)[0])
    slope_sums = vector_scores[0]
    assert slope_sums is not None
    info = slope_sums[1][:, 1]
    s2 = vector_start.theta[2] ** 2
    assert approx[2] == pytest.approx(float((4 * s2 * info**2 / (1 + s2 * info) ** 2).sum()))
    structured, _ = build_model(
        "use ~ age + cs(0 + livch | district)", datasets.load("contraception")
    )
    approx = start_point(structured, CONTROL).theta_curvature
    assert approx is not None and np.isnan(approx).all()
    off = OptimizerControl(approximate_theta_scale=False)
    assert start_point(model, off).theta_curvature is None
    assert start_point(model, OptimizerControl(moment_start=False)).theta_curvature is None
    assert "approximate_theta_scale" in off.tolerances()


def test_approximate_theta_scale_saves_the_start_evaluations_at_the_same_optimum():
    """Without an exact Hessian (crossed effects) the search's scale in each SD costs an
    evaluation by differences; the approximation costs none and reaches the same optimum."""
    data = datasets.load("verbagg")
    formula = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"
    approximate = g_fit(formula, data)
    differenced = g_fit(formula, data, control=OptimizerControl(approximate_theta_scale=False))
    assert approximate.converged and differenced.converged
    assert approximate.llf == pytest.approx(differenced.llf, abs=1e-7)
    np.testing.assert_allclose(approximate.params, differenced.params, atol=1e-5)
    assert approximate.opt_summary.evaluations <= differenced.opt_summary.evaluations - 2
    assert approximate.opt_summary.tolerances["approximate_theta_scale"] is True


def test_the_dask_start_sums_the_same_curvature():
    """distributed.start.theta_start (the levels' scores summed over partitions) gives the
    in-memory start's theta and curvature: one partition holding every level."""
    from glmm_binomial.distributed.start import theta_start

    model, _ = build_model(
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", datasets.load("verbagg")
    )
    beta, _ = glm_start(model, CONTROL)

    class OnePartition:
        def read(self, method: str, **shared: object) -> list[object]:
            assert method == "level_scores"
            keys = [np.arange(b.n_levels) for b in model.blocks]
            return [(keys, level_scores(model, shared["beta"]))]

    theta, factor, curvature = theta_start(OnePartition(), model, beta, CONTROL)  # type: ignore[arg-type]
    start = start_point(model, CONTROL)
    np.testing.assert_allclose(theta, start.theta, rtol=1e-14)
    np.testing.assert_allclose(beta * factor, start.beta, rtol=1e-14)
    assert start.theta_curvature is not None and curvature is not None
    np.testing.assert_allclose(curvature, start.theta_curvature, rtol=1e-14)
    off = OptimizerControl(approximate_theta_scale=False)
    assert theta_start(OnePartition(), model, beta, off)[2] is None  # type: ignore[arg-type]


@pytest.mark.parametrize("case", load_reference("polar_valley")["cases"], ids=["k2", "k3"])
def test_polar_search_crosses_a_curved_valley_to_the_best_optimum(case):
    """Nearly singular random slopes (intercept SD near 0: the correlations hardly identified)
    leave the deviance a valley curved in Lambda's entries, which the quasi-Newton search in
    them crept along (94 and 342 evaluations); in polar coordinates of Lambda's rows it is
    straight. The same optimum, at or above glmer's and glmmTMB's logLik."""
    data = pd.read_csv(REFERENCE_DIR / case["data"])
    polar = g_fit(case["model"], data)
    cartesian = g_fit(case["model"], data, control=OptimizerControl(polar_after_iter=0))
    assert "polar" in polar.opt_summary.optimizer
    assert "polar" not in cartesian.opt_summary.optimizer
    assert polar.converged and cartesian.converged
    assert polar.singular and cartesian.singular
    assert polar.llf == pytest.approx(cartesian.llf, abs=1e-8)
    assert polar.opt_summary.evaluations <= 0.75 * cartesian.opt_summary.evaluations
    for peer in ("glmer", "glmmTMB"):
        if case[peer]["loglik"] is not None:
            assert polar.llf >= case[peer]["loglik"] - 1e-8
    assert polar.opt_summary.tolerances["polar_after_iter"] == CONTROL.polar_after_iter


def test_boundary_points_zero_one_near_boundary_entry_at_a_time():
    """Each diagonal entry of Lambda within snap_tol of zero (not already below boundary_tol)
    set to zero on its own, the smallest first; off-diagonal entries and beta untouched."""
    data = datasets.load("contraception")
    model, _ = build_model("use ~ age + (1 + urban | district)", data)
    theta = np.array([0.005, -0.3, 0.0002])  # l11, l21, l22
    x = np.concatenate([theta, [0.1, 0.2]])
    x0 = x + np.array([0.1, 0.0, -0.2, 0.3, 0.0])
    scale = np.diag([0.5, 2.0, 0.25, 1.0, 1.0])
    z = np.linalg.solve(scale, x - x0)

    def natural(zz):
        xx = x0 + scale @ zz
        return xx[:3], xx[3:]

    points = boundary_points(model, natural, scale, x0, z, CONTROL)
    assert len(points) == 2
    np.testing.assert_allclose(natural(points[0])[0], [0.005, -0.3, 0.0], atol=1e-15)
    np.testing.assert_allclose(natural(points[1])[0], [0.0, -0.3, 0.0002], atol=1e-15)
    for point in points:
        np.testing.assert_array_equal(point[3:], z[3:])
    assert boundary_points(model, natural, scale, x0, z, OptimizerControl(snap_tol=1e-4)) == []


def test_a_vanishing_variance_is_held_at_zero_when_the_deviance_is_flat_there():
    """A probit slope model whose search ends with a diagonal entry of Lambda at 1.2e-4 (just
    above boundary_tol) where the finite-difference Hessian is indefinite: the polish takes the
    point with it at zero (no worse), which verifies as a singular fit. Without the snap the
    point is only accepted as flat (no trial along the direction falls: flat_direction), not
    singular."""
    data = pd.read_csv(REFERENCE_DIR / "probit_vanishing_slope.csv")
    formula = "cbind(y, f) ~ x + x2 + (1 + x | g)"
    snapped = g_fit(formula, data, link="probit")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # snap_tol = 0 (no snap) compares no SD with log(0) (numpy's divide-by-zero warning).
        kept = g_fit(formula, data, link="probit", control=OptimizerControl(snap_tol=0.0))
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert kept.converged and "flat direction" in kept.opt_summary.message
    assert not kept.singular and 1e-4 < kept.theta[2] < 1e-3
    assert snapped.converged and snapped.singular and snapped.theta[2] == 0.0
    assert snapped.llf >= kept.llf - 1e-8


def test_search_coordinates_carry_the_gradient_and_the_inverse_hessian():
    """In the polar coordinates about z_at: p = 0 is z_at itself, the gradient is the chain
    rule's (central differences), and at a minimum of a quadratic in z the carried B^{-1} is
    the inverse of the Hessian in p."""
    rng = np.random.default_rng(7)
    n = 5  # theta (l11, l21, l22), two betas
    a = rng.normal(size=(n, n))
    hessian = a @ a.T + n * np.eye(n)
    theta0 = np.array([0.4, 0.1, 0.3])
    theta_scale = np.array([0.2, 0.5, 0.1])
    z_at = rng.normal(size=n)

    def fun(z):
        d = z - z_at
        return 0.5 * float(d @ hessian @ d), hessian @ d

    search = SearchCoordinates(PolarRows((np.array([1, 2]),)), z_at, theta0, theta_scale, fun)
    np.testing.assert_array_equal(search.to_z(np.zeros(n)), z_at)
    p = rng.normal(size=n) * 0.1
    _, grad = search.fun(p)
    step = 1e-6
    for j in range(n):
        e = np.zeros(n)
        e[j] = step
        numeric = (search.fun(p + e)[0] - search.fun(p - e)[0]) / (2 * step)
        assert grad[j] == pytest.approx(numeric, rel=1e-6, abs=1e-8)
    numeric_hessian = np.column_stack(
        [
            (search.fun(np.eye(n)[j] * step)[1] - search.fun(-np.eye(n)[j] * step)[1]) / (2 * step)
            for j in range(n)
        ]
    )
    carried = search.inverse_hessian(np.linalg.inv(hessian))
    np.testing.assert_allclose(carried, np.linalg.inv(numeric_hessian), rtol=1e-5, atol=1e-8)


def test_off_zero_lifts_only_exact_zeros_of_bounded_entries():
    data = datasets.load("contraception")
    model, _ = build_model("use ~ age + (1 + urban | district)", data)
    theta = np.array([0.0, 0.0, 1e-9])  # l11, l21 (unbounded), l22
    np.testing.assert_array_equal(off_zero(model, theta, 1e-3), [1e-3, 0.0, 1e-9])
    np.testing.assert_array_equal(theta, [0.0, 0.0, 1e-9])  # the caller's array untouched


PROBIT_SLOPE = "cbind(y, f) ~ x + x2 + (1 + x | g)"


def probit_slope_data_with_slope_variance() -> tuple[pd.DataFrame, np.ndarray]:
    """The probit slope set and a response simulated on it with clear random intercepts and
    slopes (SD 0.8 each)."""
    data = pd.read_csv(REFERENCE_DIR / "probit_vanishing_slope.csv")
    rng = np.random.default_rng(1)
    n_groups = int(data["g"].max()) + 1
    b0, b1 = rng.normal(scale=0.8, size=(2, n_groups))
    trials = (data["y"] + data["f"]).to_numpy()
    g = data["g"].to_numpy()
    x = data["x"].to_numpy()
    eta = -0.5 + 0.8 * x + b0[g] + b1[g] * x
    return data, rng.binomial(trials, make_family(link="probit").inverse_link(eta))


def test_a_refit_from_a_variance_at_exactly_zero_leaves_it():
    """The snapped probit fit holds a diagonal entry of Lambda at exactly zero; a refit to data
    with a clear slope variance starts from those estimates. The deviance is even in that
    entry there (zero gradient): started at it, the search cannot leave it (logLik 49 lower,
    now reported as a saddle, not converged); started at zero_start it reaches the fresh
    fit's optimum."""
    data, y = probit_slope_data_with_slope_variance()
    trials = (data["y"] + data["f"]).to_numpy()
    fresh = g_fit(PROBIT_SLOPE, data.assign(y=y, f=trials - y), link="probit")
    for control, reaches in ((CONTROL, True), (OptimizerControl(zero_start=0.0), False)):
        fitted = g_fit(PROBIT_SLOPE, data, link="probit", control=control)
        assert fitted.theta[2] == 0.0
        refitted = fitted.refit(y)
        assert refitted.converged == reaches
        assert (abs(refitted.llf - fresh.llf) < 1e-7) == reaches
        assert (refitted.theta[2] > 0.1) == reaches
        if not reaches:
            assert "saddle point" in refitted.opt_summary.message


def test_a_saddle_on_the_boundary_is_left_once():
    """A search started at exactly zero in a variance (a start that bypasses start_point's
    lift) ends on the boundary where the deviance falls away from it: held_check sends the
    search on from zero_start, to the fresh fit's optimum."""
    data, y = probit_slope_data_with_slope_variance()
    trials = (data["y"] + data["f"]).to_numpy()
    frame = data.assign(y=y, f=trials - y)
    fresh = g_fit(PROBIT_SLOPE, frame, link="probit")
    model, _ = build_model(PROBIT_SLOPE, frame, family=make_family(link="probit"))
    begin = start_point(model, CONTROL)
    stuck = StartPoint(np.array([0.18, 0.56, 0.0]), begin.beta, begin.info_factor)
    for control in (CONTROL, OptimizerControl(zero_start=0.0)):
        objective = LaplaceObjective(model, PirlsControl())
        found = minimize_deviance(
            model, objective.deviance_and_gradient, control, objective.counters, "laplace", stuck
        )
        escaped = control.zero_start > 0.0
        assert found.summary.converged == escaped
        assert (found.theta[2] > 0.1) == escaped
        if escaped:
            np.testing.assert_allclose(found.theta, fresh.theta, atol=1e-5)
        else:
            assert "saddle point" in found.summary.message


def test_held_check_reads_the_curvature_and_the_gradient_of_held_entries():
    free = np.array([True, False, True])
    hessian = np.diag([1.0, -0.5, 1.0])
    assert held_check(np.zeros(3), hessian, free, 2, CONTROL)[1] == 1
    hessian[1, 1] = -1e-4  # within saddle_tol: flat, noise
    assert held_check(np.zeros(3), hessian, free, 2, CONTROL)[:2] == ("", None)
    hessian[1, 1] = 1.0
    assert held_check(np.array([0.0, -0.1, 0.0]), hessian, free, 2, CONTROL)[1] == 1
    assert held_check(np.array([0.0, -1e-4, 0.0]), hessian, free, 2, CONTROL)[:2] == ("", None)
    assert held_check(np.zeros(3), -np.eye(3), free, 1, CONTROL)[:2] == ("", None)  # beta ignored
    # A log SD whose deviance falls towards the boundary: flagged as such
    # (the search restarts it at its floor); upwards, or on a bounded entry, as a saddle.
    log_sds = np.array([False, True, False])
    towards = held_check(np.array([0.0, 0.1, 0.0]), hessian, free, 2, CONTROL, True, log_sds)
    assert towards[1:] == (1, True) and "towards the boundary" in towards[0]
    away = held_check(np.array([0.0, -0.1, 0.0]), hessian, free, 2, CONTROL, True, log_sds)
    assert away[1:] == (1, False) and "saddle" in away[0]
    assert held_check(np.array([0.0, 0.1, 0.0]), hessian, free, 2, CONTROL)[1:] == (1, False)


def test_held_check_counts_the_free_coordinates_coupled_to_a_held_entry():
    """A held entry whose own curvature is positive but which is coupled to a free coordinate
    along which the deviance is nearly flat (the entries below a zero diagonal entry of Lambda
    turn freely): the curvature net of the free coordinates (the Schur complement, 1 -
    0.05^2 / 1e-4 < 0) shows the saddle; without the coupling, or with a stiff free
    coordinate, none. The gradient is netted the same way."""
    free = np.array([False, True, True])
    hessian = np.array([[1.0, 0.05, 0.0], [0.05, 1e-4, 0.0], [0.0, 0.0, 2.0]])
    failure, held, _ = held_check(np.zeros(3), hessian, free, 2, CONTROL)
    assert held == 0 and "saddle" in failure
    stiff = hessian.copy()
    stiff[1, 1] = 1.0
    assert held_check(np.zeros(3), stiff, free, 2, CONTROL)[:2] == ("", None)
    uncoupled = np.diag([1.0, 1e-4, 2.0])
    assert held_check(np.zeros(3), uncoupled, free, 2, CONTROL)[:2] == ("", None)
    # The free coordinates' gradient moves the held entry's: g_0 - H_01 g_1 / H_11.
    assert held_check(np.array([0.0, 0.01, 0.0]), stiff, free, 2, CONTROL)[1] is None
    assert held_check(np.array([0.0, 1.0, 0.0]), stiff, free, 2, CONTROL)[1] == 0
    # net=False: the entry alone, as before the coupling counted.
    assert held_check(np.zeros(3), hessian, free, 2, CONTROL, net=False)[:2] == ("", None)


def test_a_saddle_across_a_zero_sd_and_its_column_is_left_for_the_optimum():
    """A random slope on x = 10 x0 + 3: the optimum has the intercept SD small (0.03) and its
    correlation with the slope -1. The search had stopped where the intercept SD is zero and
    the slope's row of Lambda turned to its diagonal: the deviance is flat along the turn and
    the point passed every check of single entries, logLik 0.012 below the optimum, reported
    converged. held_check now nets the free coordinates' coupling and sends the search on: the
    fit reaches the optimum of the same model on x0 (an affine change of a random slope's
    covariate leaves an unstructured fit's likelihood unchanged), at or above glmer's and
    glmmTMB's logLik (R 4.2.2, lme4 1.1-31, glmmTMB 1.1.5; glmmTMB fails on x0)."""
    reference = load_reference("saddle_shifted_slope")
    data = pd.read_csv(REFERENCE_DIR / reference["data"])
    shifted = g_fit("y ~ x + f + (1 + x | g)", data)
    unshifted = g_fit("y ~ x0 + f + (1 + x0 | g)", data.assign(x0=(data["x"] - 3.0) / 10.0))
    assert shifted.converged and unshifted.converged
    assert shifted.llf == pytest.approx(unshifted.llf, abs=1e-8)
    for case in (reference["shifted"], reference["unshifted"]):
        for peer in ("glmer", "glmmTMB"):
            if isinstance(case[peer]["loglik"], float):
                assert shifted.llf >= case[peer]["loglik"] - 1e-8
    assert shifted.llf > reference["shifted"]["glmer"]["loglik"] + 1e-4


def test_a_saddle_the_restarted_search_returns_to_is_left_through_a_taken_over_column():
    """The saddle's fall is the quadratic model's, along a direction that bends: restarted
    only 1e-6 off zero, the search came back to the saddle, which was then kept as the
    estimate (-121.5295258, 0.0123 below the optimum). The zero column taking over the
    slope's (taken_over_fall, tried once at such a saddle) shows the fall at first order: the
    search goes on from there to the default fit's optimum."""
    data = pd.read_csv(REFERENCE_DIR / "saddle_shifted_slope.csv")
    formula = "y ~ x + f + (1 + x | g)"
    restarted_near_zero = g_fit(formula, data, control=OptimizerControl(zero_start=1e-6))
    best = g_fit(formula, data)
    assert restarted_near_zero.converged and restarted_near_zero.singular
    assert restarted_near_zero.llf == pytest.approx(best.llf, abs=1e-8)
    assert best.llf > -121.5295258 + 1e-2


@pytest.mark.parametrize("case", ["flat", "crossed_flat"])
def test_a_last_pass_ending_on_an_indefinite_hessian_is_settled(case):
    """Two sets of a metamorphic sweep, x shifted to 10 x + 3, whose last pass ended where the
    free Hessian is not positive definite (not converged, where the same model on x
    converged). "flat": its smallest eigenvalue -8e-5 (whitened) along a diagonal entry of
    Lambda at 0.002, no trial step along it falls (flat_direction): converged, the logLik of
    the fit on x within 1e-7. "crossed_flat": an intercept SD held at zero next to a flat
    direction (its column's other entry turning about it), 1.6e-3 below the optimum: the
    search goes on from off the boundary and reaches the fit on x's optimum. Both at or above
    glmer's and glmmTMB's logLik on the shifted x."""
    reference = load_reference("saddle_shifted_slope")[case]
    data = pd.read_csv(REFERENCE_DIR / reference["data"])
    on_x = g_fit(reference["model"], data)
    shifted = g_fit(reference["model"], data.assign(x=10.0 * data["x"] + 3.0))
    assert on_x.converged and shifted.converged
    assert shifted.llf == pytest.approx(on_x.llf, abs=1e-7)
    for peer in ("glmer", "glmmTMB"):
        assert shifted.llf >= reference[peer]["loglik"] - 1e-8
    if case == "flat":
        assert "flat direction" in shifted.opt_summary.message


@pytest.mark.parametrize("case", ["rotated", "turned"])
def test_three_columns_at_the_boundary_reach_the_optimum(case):
    """Two metamorphic sweep sets of y ~ x + x2 + (1 + x + x2 | g) whose fit on x fell short
    of the fit on 10 x + 3 (the same maximum likelihood). "rotated": the last pass ended
    with x's own SD held at zero and a nearly singular free Hessian (Newton decrement 1.7e-5:
    not converged); the search now goes on from off the boundary. "turned": the intercept SD
    at zero with its column's other entries turned into the second column, every check
    passed, 7.8e-3 below the optimum in logLik, where glmer stops too: folded into the later
    columns (turned_fall) the column shows the fall, and the search goes on from it. Both
    converge within 1e-7 of the fit on 10 x + 3, at or above glmer's and glmmTMB's logLik
    (glmmTMB NA on "turned")."""
    reference = load_reference("saddle_shifted_slope")
    entry = reference[case]
    data = pd.read_csv(REFERENCE_DIR / entry["data"])
    fitted = g_fit(entry["model"], data)
    shifted = g_fit(entry["model"], data.assign(x=10.0 * data["x"] + 3.0))
    assert fitted.converged and shifted.converged
    assert fitted.llf == pytest.approx(shifted.llf, abs=1e-7)
    peers = [entry] + ([reference["turned_shifted"]] if case == "turned" else [])
    for peer_entry in peers:
        for peer in ("glmer", "glmmTMB"):
            if isinstance(peer_entry[peer]["loglik"], float):
                assert fitted.llf >= peer_entry[peer]["loglik"] - 1e-8
    if case == "turned":
        assert fitted.llf > entry["glmer"]["loglik"] + 5e-3


@pytest.mark.parametrize("case", ["probit_flat", "counts_valley"])
def test_three_columns_ending_near_the_optimum_are_verified(case):
    """Two metamorphic sweep sets of three-column terms whose fit ended unverified next to
    the optimum, where the fit on 10 x + 3 converged. "probit_flat": x's own SD held at zero
    and the free Hessian's smallest eigenvalue -2.5e-5; the search from off the boundary came
    back to the same point, which is now weighed as a flat direction (flat_direction: no trial
    step along it falls). "counts_valley": a Newton decrement of 1.6e-5 whose full polish step
    overshoots a curved valley (the Hessian's eigenvalues 1e-6 to 9e3); a step cut to a tenth or
    a hundredth is now tried. Both converge, within 2e-5 of the fit on 10 x + 3 in logLik, at
    or above glmer's (0.19 below on "probit_flat"; glmmTMB NA on both)."""
    entry = load_reference("saddle_shifted_slope")[case]
    data = pd.read_csv(REFERENCE_DIR / entry["data"])
    fitted = g_fit(entry["model"], data, link=entry["link"])
    shifted = g_fit(entry["model"], data.assign(x=10.0 * data["x"] + 3.0), link=entry["link"])
    assert fitted.converged and shifted.converged
    assert fitted.llf == pytest.approx(shifted.llf, abs=2e-5)
    assert fitted.llf >= entry["glmer"]["loglik"] - 1e-8


@pytest.mark.parametrize("x", ["10 x + 3", "10 x", "x / 10"])
def test_a_zero_column_takes_over_a_later_one_to_show_the_fall(x):
    """A metamorphic sweep set (slope3_probit:607) of y ~ x + x2 + (1 + x + x2 | g), probit:
    the fits on 10 x + 3, 10 x and x / 10 ended with x's own SD at zero and x2's share in the
    third column, on a flat direction (the second column turning into the third), 3.2e-4
    below the fit on x in logLik, reported converged. Moved into the zero column (the same
    covariance), x2's entries let x's diagonal entry move the covariance of x and x2 at first
    order (taken_over_fall): the search goes on from the fall and reaches the fit on x's
    optimum, above glmer's (by 0.245) and glmmTMB's (by 3.3e-5) logLik on both x and 10 x + 3
    (R 4.2.2, lme4 1.1-31, glmmTMB 1.1.5)."""
    reference = load_reference("slope3_probit_taken_over")
    data = pd.read_csv(REFERENCE_DIR / "slope3_probit_taken_over.csv")
    changed = {
        "10 x + 3": 10.0 * data["x"] + 3.0,
        "10 x": 10.0 * data["x"],
        "x / 10": data["x"] / 10,
    }
    on_x = g_fit(reference["model"], data, link="probit")
    fitted = g_fit(reference["model"], data.assign(x=changed[x]), link="probit")
    assert on_x.converged and fitted.converged
    assert fitted.llf == pytest.approx(on_x.llf, abs=1e-7)
    for case in (reference["x"], reference["shifted_x"]):
        for peer in ("glmer", "glmmTMB"):
            assert fitted.llf >= case[peer]["loglik"] - 1e-8


def test_an_intercept_column_near_zero_takes_over_the_slope():
    """A random slope whose optimum is rank one (intercept SD 0.004 and slope SD 0.066 on 5 x -
    10, correlation -1): the fit on 5 x - 10 ended on a flat direction with the intercept SD at
    1.7e-4 (above boundary_tol) and the slope in its own column, 2.7e-5 below the optimum in
    logLik, reported converged. The slope's column moved into the intercept's (within snap_tol
    of zero) shows the fall: the fit reaches the optimum of the fit on x, 3.8e-4 above glmer's
    on both (R 4.2.2, lme4 1.1-31; glmmTMB NA on both)."""
    data = pd.read_csv(REFERENCE_DIR / "slope_taken_over.csv")
    on_x = g_fit("y ~ x + (1 + x | g)", data)
    shifted = g_fit("y ~ x + (1 + x | g)", data.assign(x=5.0 * data["x"] - 10.0))
    assert on_x.converged and shifted.converged
    assert shifted.llf == pytest.approx(on_x.llf, abs=1e-8)
    assert shifted.llf > -88.9532162363 + 3e-4  # glmer's on x (-88.9532318133 on 5 x - 10)


def test_a_nearly_singular_hessian_at_the_end_is_weighed_as_a_flat_direction():
    """A metamorphic sweep set (slope3:596): the last pass on x ended with the free Hessian
    positive definite but its smallest eigenvalue 6e-7 (whitened; x's own SD at 4e-4), whose
    direction alone made a Newton decrement of 3.1e-5: not converged, while the fit on 10 x
    + 3 converged. The polish's step along it and its cuts all raised the deviance. A
    smallest eigenvalue below saddle_tol is now weighed as a flat direction (trial steps
    along it, the decrement with the eigenvalues raised to saddle_tol): both converge at the
    same point, 1.1e-3 above glmer's logLik on x and on 10 x + 3 (R 4.2.2, lme4 1.1-31;
    glmmTMB NA on both)."""
    data = pd.read_csv(REFERENCE_DIR / "slope3_nearly_singular.csv")
    formula = "y ~ x + x2 + (1 + x + x2 | g)"
    on_x = g_fit(formula, data)
    shifted = g_fit(formula, data.assign(x=10.0 * data["x"] + 3.0))
    assert on_x.converged and shifted.converged
    assert on_x.llf == pytest.approx(shifted.llf, abs=1e-7)
    assert on_x.llf > -269.0991000093 + 1e-3  # glmer's on x (-269.0991001789 on 10 x + 3)
    assert nearly_singular(np.diag([1.0, 5e-4]), 1e-3)
    assert nearly_singular(np.diag([1.0, -1.0]), 1e-3)
    assert not nearly_singular(np.eye(2), 1e-3) and not nearly_singular(np.zeros((0, 0)), 1e-3)


def test_flat_direction_steps_along_the_smallest_eigenvalue():
    """A tiny negative eigenvalue with the deviance rising beyond it (quartic): flat, no
    point; a clear negative one: the lowest trial; a negative eigenvalue beyond saddle_tol
    where no trial falls: neither. positive_definite reads the Cholesky factor."""
    free = np.array([True, True])

    def quartic(curvature: float, quartic: float):
        def fun(z):
            value = 0.5 * curvature * z[0] ** 2 + 0.5 * z[1] ** 2 + quartic * z[0] ** 4
            grad = np.array([curvature * z[0] + 4 * quartic * z[0] ** 3, z[1]])
            return value, grad

        return fun

    z, grad = np.zeros(2), np.zeros(2)
    flat = np.diag([-5e-5, 1.0])
    assert flat_direction(quartic(-5e-5, 1.0), z, 0.0, grad, flat, free, CONTROL) == (None, True)
    falls = np.diag([-0.1, 1.0])
    point, is_flat = flat_direction(quartic(-0.1, 1e-4), z, 0.0, grad, falls, free, CONTROL)
    assert point is not None and not is_flat and abs(point[0]) == 3.0 and point[1] == 0.0
    steep = np.diag([-5e-3, 1.0])
    assert flat_direction(quartic(-5e-3, 10.0), z, 0.0, grad, steep, free, CONTROL) == (
        None,
        False,
    )
    assert positive_definite(np.eye(2)) and not positive_definite(flat)
    assert positive_definite(np.zeros((0, 0)))


def test_a_flat_saddle_next_to_a_tiny_sd_is_left_for_the_optimum():
    """Crossed random slopes whose intercept SD is 4e-4 at the optimum: the search stopped at
    the saddle with the SD at zero, 1e-5 (deviance) above it, where glmer stops too (glmmTMB
    gives NA). The search restarted off it reaches the optimum of the same model on 5 x - 2."""
    case = load_reference("saddle_shifted_slope")["crossed"]
    data = pd.read_csv(REFERENCE_DIR / case["data"])
    fitted = g_fit(case["model"], data)
    affine = g_fit(case["model"], data.assign(x=5.0 * data["x"] - 2.0))
    assert fitted.converged and affine.converged
    assert fitted.llf == pytest.approx(affine.llf, abs=1e-8)
    assert fitted.llf > case["glmer"]["loglik"] + 4e-6


def test_a_correlation_held_at_one_is_tried_inside_its_range():
    """A metamorphic sweep set compared with glmmTMB (bench/against_r.py, cs:72): y ~ x +
    cs(0 + tf | g), the SD of visit t1 at zero. The search ended with the common correlation
    at 1 (its parameter phi at 16.9, where d rho / d phi vanishes and the deviance is flat in
    phi), reported converged at -77.10899, while the deviance falls as rho moves inwards:
    glmmTMB's optimum (rho 0.68) is 0.046 higher. saturated_fall tries the correlation
    saturation_start inside its range; the search goes on from there to glmmTMB's optimum
    (-77.0627804202; R 4.2.2, glmmTMB 1.1.5, cs() heterogeneous as ours)."""
    data = pd.read_csv(REFERENCE_DIR / "cs_saturated.csv")
    fitted = g_fit("y ~ x + cs(0 + tf | g)", data)
    assert fitted.converged
    assert fitted.llf == pytest.approx(-77.0627804202, abs=1e-6)
    assert fitted.varcorr["corr_1"].iloc[1] == pytest.approx(0.6823, abs=1e-3)  # glmmTMB's


def test_a_log_sd_whose_deviance_falls_towards_zero_restarts_at_its_floor():
    """y ~ x + cs(0 + tf | g) (bench/metamorphic.py's cs:146): the correlation ended at its
    lower end (-1/2) with visit t1's SD at zero; tried inside its range it falls 3.7e-4 in
    logLik, and there the SD of t1 (1e-6, a log SD held near the boundary) still falls
    towards zero: its covariances with the other visits are linear in the SD, which the log
    reaches only in the limit. The search restarts it at its floor (LOG_SD_DROP below
    log(boundary_tol)) instead of off the boundary, and converges at the point refits from
    SD 0.01, 0.1 and 0.3 reach (-158.9268285); glmmTMB's logLik is NA here. (A face start,
    t2's SD near zero, finds a higher optimum on that face: -158.6651132, rho 1.)"""
    data = pd.read_csv(REFERENCE_DIR / "cs_towards_boundary.csv")
    formula = "y ~ x + cs(0 + tf | g)"
    fitted = g_fit(formula, data, control=OptimizerControl(basin_starts=False))
    assert fitted.converged
    assert fitted.llf == pytest.approx(-158.9268285, abs=1e-6)
    assert fitted.varcorr["std_dev"].iloc[1] < 1e-10
    best = g_fit(formula, data)
    assert best.converged
    assert best.llf == pytest.approx(-158.6651132, abs=1e-6)
    assert best.varcorr["std_dev"].iloc[2] < 1e-10


def test_an_unverified_end_on_a_turning_zero_column_is_rewritten():
    """y ~ x + (1 + x | a/b) on 10 x + 3 (bench/metamorphic.py's nested_slope:1528, data
    stored with x already changed): at the optimum on x the covariance of a has correlation 1
    and an intercept SD that 10 x + 3 takes to about 1e-5, so the search ended with that
    diagonal entry held at zero and the entries below it turning with the slope's column on a
    nearly flat circle whose Hessian is indefinite by 0.003 (whitened units): not converged,
    at the logLik of the fit on x. The same covariance with the column folded
    (rewritten_end) verifies, at the logLik on x (-94.3206427427; glmer -94.3206834035 on
    these data, -94.3206829329 on x; glmmTMB NA on both)."""
    data = pd.read_csv(REFERENCE_DIR / "nested_slope_rewritten.csv")
    fitted = g_fit("y ~ x + (1 + x | a/b)", data)
    assert fitted.converged
    assert fitted.llf == pytest.approx(-94.3206427427, abs=1e-8)
    assert fitted.opt_summary.message.endswith(REWRITTEN_END)
    on_x = g_fit("y ~ x + (1 + x | a/b)", data.assign(x=(data["x"] - 3.0) / 10.0))
    assert on_x.converged
    assert fitted.llf == pytest.approx(on_x.llf, rel=1e-10)


def test_a_structured_sd_run_down_past_its_optimum_is_probed():
    """y ~ x + diag(1 + x | g) (bench/against_r.py's diag:552, 936 rows, 36 groups): the
    search in log SDs ran the intercept's SD from 1 down past its optimum (0.095) to 3e-4,
    where the gradient in the log SD (the SD times the slope) is below gtol, and the polish
    held it at zero: converged at the GLM's logLik (-628.1196852), 0.027 below glmmTMB's. The
    deviance falls away from SD 0 (a saddle only an SD scale shows); zero_sd_fall's trial SDs
    see it and the search goes on to glmmTMB's optimum (-628.0929467, intercept SD 0.0949,
    slope SD at zero; glmer with (1 + x || g) the same; R 4.2.2, glmmTMB 1.1.5, lme4
    1.1-31)."""
    data = pd.read_csv(REFERENCE_DIR / "diag_zero_sd.csv")
    fitted = g_fit("y ~ x + diag(1 + x | g)", data)
    assert fitted.converged
    assert fitted.llf == pytest.approx(-628.0929467, abs=1e-6)
    assert fitted.varcorr["std_dev"].iloc[0] == pytest.approx(0.0949, abs=1e-3)
    assert fitted.varcorr["std_dev"].iloc[1] < 1e-4


def test_a_correlation_run_out_towards_its_end_is_put_at_the_end():
    """y ~ x + ar1(0 + tf | g) (bench/metamorphic.py's ar1:2063, 350 rows, 14 groups): the
    maximum is at rho -> 1, where the deviance falls ever more slowly in glmmTMB's phi. The
    search stopped where its gradient in phi was below gtol, at a phi that depended on the
    path: with the groups relabelled, converged at rho = 1 - 4e-6, 3.7e-5 below the fit on the
    labels as they are (871 evaluations, rho closer to 1) and 3.4e-5 below glmmTMB's
    (-198.5010116683 at phi 1359, "singular convergence"; glmmTMB 1.1.5). range_end puts
    the correlation at the end (1 - 1e-12) and polishes: both labellings at the same optimum,
    no lower than glmmTMB's, flagged as a boundary fit. It is tried as soon as a pass ends
    unverified with the correlation saturated, so the search no longer crawls out in phi
    (877 evaluations before on the relabelled groups, 80 now)."""
    data = pd.read_csv(REFERENCE_DIR / "ar1_range_end.csv")
    formula = "y ~ x + ar1(0 + tf | g)"
    fitted = g_fit(formula, data)
    relabelled = g_fit(formula, data.assign(g=data["g"].map(lambda v: f"L{v}")))
    for result in (fitted, relabelled):
        assert result.converged
        assert result.singular
        assert result.opt_summary.message.endswith(RANGE_END)
        assert result.llf >= -198.5010116683
        assert float(result.varcorr["corr_1"].iloc[1]) == pytest.approx(1.0, abs=1e-11)
    assert relabelled.llf == pytest.approx(fitted.llf, abs=1e-9)
    assert max(fitted.opt_summary.evaluations, relabelled.opt_summary.evaluations) < 200


def test_a_cs_end_at_one_end_of_rho_is_searched_from_the_other():
    """y ~ x + cs(0 + tf | g) (bench/against_r.py's cs:1600, 660 rows, 33 groups): the search
    ended with rho at -1/2 and visit t1's SD at zero (-430.9978947), 0.673 below glmmTMB's
    optimum at the other end, rho = 1 with visit t0's SD at zero (-430.3244559721, SDs 0.319 and
    0.544; glmmTMB 1.1.5). better_of_basins searches again from SDs 1 and rho 5/6 of the way
    up its range, and takes that end (lower deviance, converged)."""
    data = pd.read_csv(REFERENCE_DIR / "cs_other_basin.csv")
    fitted = g_fit("y ~ x + cs(0 + tf | g)", data)
    assert fitted.converged
    assert fitted.llf >= -430.3244559721 - 1e-7
    assert fitted.opt_summary.message.endswith(OTHER_BASIN)
    varcorr = fitted.varcorr
    assert varcorr["std_dev"].iloc[0] < 1e-4
    np.testing.assert_allclose(varcorr["std_dev"].iloc[1:], [0.3186, 0.5442], atol=2e-3)


def test_a_second_structured_sd_held_at_zero_is_probed_too():
    """y ~ x + cs(0 + tf | g) (bench/against_r.py's cs:1987, 153 rows): from SDs near zero,
    zero_sd_fall released visit t2's SD and the search ended at rho = 1 with t0's and t1's SDs
    at zero (-94.6887690), 0.0063 below glmmTMB (-94.6824609411: t1's SD 0.085, t2's 0.237;
    glmmTMB 1.1.5). With rho at 1, t1's SD moves t1's covariance with t2 at first order, so
    its release lowers the deviance: zero_sd_fall is tried again after a search it started
    (each structured SD's worth of times)."""
    data = pd.read_csv(REFERENCE_DIR / "cs_second_sd.csv")
    fitted = g_fit("y ~ x + cs(0 + tf | g)", data)
    assert fitted.converged
    assert fitted.llf >= -94.6824609411 - 1e-7
    np.testing.assert_allclose(fitted.varcorr["std_dev"].iloc[1:], [0.0851, 0.2366], atol=2e-3)


def test_a_saddle_the_search_returns_to_is_left_through_a_taken_over_column():
    """y ~ x + (1 + x | g) + (1 + x | h) (bench/metamorphic.py's chain1:2590, 65 rows, 5 x 10
    groups): the search ended with g's intercept SD at zero (2e-5) and its slope's in the
    second column of Lambda; held_check saw a saddle (the intercept's entry and the turn of
    its column falling together), but the search from off it came back to it: converged at
    -40.9992244, 1.9e-4 below the submodel with (1 | h) (-40.9990358: correlation 1,
    intercept SD 0.0078). The maximum lies where the zero column has turned into the slope's
    (a flat circle at zero SD), and there the intercept's entry lowers the deviance at first
    order; taken_over_fall, tried at such a saddle once, finds it. glmer (lme4 1.1-31) stops
    at the saddle on both models (-40.9992466 and -40.9992435); glmmTMB 1.1.5 gives NA."""
    data = pd.read_csv(REFERENCE_DIR / "saddle_taken_over.csv")
    fitted = g_fit("y ~ x + (1 + x | g) + (1 + x | h)", data)
    submodel = g_fit("y ~ x + (1 + x | g) + (1 | h)", data)
    assert fitted.converged and submodel.converged
    assert fitted.llf >= submodel.llf - 1e-9
    assert fitted.llf > -40.9992244 + 1e-4
    assert float(fitted.varcorr["corr_1"].iloc[1]) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("csv", "formula", "link", "reference", "without"),
    [
        # bench/against_r.py's diag:3098 (299 rows, 13 groups): glmmTMB 1.1.5 -204.489835183
        # (SDs 2.27 and 1.15); glmer on (1 | g) + (0 + x | g) -204.4899827. The moment start
        # ends at a singular optimum (the intercept's SD 0, x's 0.14), -205.5347.
        ("diag_singular_restart.csv", "y ~ x + diag(1 + x | g)", "logit", -204.489835183, -205.5),
        # cloglog_slope:3111 (60 rows, 15 groups): glmmTMB -35.6913995577 (SDs 0.86 and 1.05,
        # correlation 0.72); both starts of the first search end at correlation +1, -35.7497.
        ("cloglog_singular_restart.csv", "y ~ x + (1 + x | g)", "cloglog", -35.6913995577, -35.74),
        # us:3275 (40 rows, 3 occasions): glmer (0 + tf | g) -24.2237789148, singular
        # (glmmTMB NA); the moment start's end -24.6089, lme4's start's -24.2088645, above
        # glmer's; the mirror's from the GLM's fixed effects -23.9984 further on (tft2 has one
        # row per group: its SD, 92.6 there, runs out with a slowly rising likelihood, short
        # of OptimizerControl.column_runaway_screen).
        ("us_singular_restart.csv", "y ~ x + us(0 + tf | g)", "logit", -24.2237789148, -24.6),
        # crossed_vector:921 (80 rows, 20 x 10 groups): glmer -43.95930071 (glmmTMB NA); the
        # first end -43.9622 has h's correlation at -1 and g's at 0.995: the second search
        # starts both terms at lme4's start (from h's alone it comes back to -43.9622).
        (
            "crossed_vector_lme4_start.csv",
            "y ~ x + (1 + x | g) + (1 + x | h)",
            "logit",
            -43.95930071,
            -43.961,
        ),
    ],
)
def test_a_singular_end_is_searched_again_from_lme4s_start(
    csv: str, formula: str, link: str, reference: float, without: float
) -> None:
    """A search from the moment start that ends singular in a vector term (an SD at zero or
    a correlation at +-1) is followed by one from lme4's start (Lambda = I, the end's beta),
    and the lower converged end is kept: on these three sets it reaches R's optimum, which
    the first end is below (as with OptimizerControl(singular_restart=False))."""
    data = pd.read_csv(REFERENCE_DIR / csv)
    fitted = g_fit(formula, data, link=link)
    assert fitted.converged
    assert fitted.llf >= reference - 1e-7
    assert fitted.opt_summary.message.endswith((SINGULAR_RESTART, MIRRORED_RESTART))
    first = g_fit(formula, data, link=link, control=OptimizerControl(singular_restart=False))
    assert first.converged and first.singular
    assert first.llf < without
    assert fitted.opt_summary.evaluations > first.opt_summary.evaluations


def other_basin_fits(csv: str, formula: str, reference: float) -> tuple:
    """The fit of `formula` on a reference CSV, converged at or above the reference logLik
    (glmmTMB's) through a search from another basin, and the fit with basin_starts off."""
    data = pd.read_csv(REFERENCE_DIR / csv)
    fitted = g_fit(formula, data)
    assert fitted.converged
    assert fitted.llf >= reference - 1e-7
    assert fitted.opt_summary.message.endswith(OTHER_BASIN)
    return fitted, g_fit(formula, data, control=OptimizerControl(basin_starts=False))


def test_a_cs_optimum_on_another_face_is_found_from_a_face_start():
    """y ~ x + cs(0 + tf | g) (bench/against_r.py's cs:2023, 348 rows, 29 groups): from
    SDs 1 the search (and the twin search from the other end of rho) ended with visit t0's
    SD at zero and rho at -1/2 (-227.5560874), 0.28 below glmmTMB's optimum on another face
    of the parameter space, t1's SD at zero and rho 0.888 (-227.2757089938; glmmTMB 1.1.5).
    better_of_basins also searches from each face start (one term's SD near zero) and keeps
    the lowest converged end; control.basin_starts=False leaves the first search's end."""
    fitted, first_only = other_basin_fits(
        "cs_face_start.csv", "y ~ x + cs(0 + tf | g)", -227.2757089938
    )
    varcorr = fitted.varcorr
    assert varcorr["std_dev"].iloc[1] < 1e-4
    np.testing.assert_allclose(varcorr["std_dev"].iloc[[0, 2]], [0.4252, 0.6835], atol=2e-3)
    assert float(varcorr["corr_1"].iloc[2]) == pytest.approx(0.888, abs=2e-3)
    assert first_only.llf < fitted.llf - 0.2
    assert first_only.opt_summary.tolerances["basin_starts"] is False


def test_a_saddle_the_restart_came_back_to_is_left_from_farther_off():
    """y ~ x + x2 + (1 + x + x2 | g) on 10 x + 3 (bench/metamorphic.py's slope3:3012, 551
    rows, 19 groups; stored with x changed): the search ended at a rank-1 covariance with x's
    diagonal entry of Lambda at zero, a saddle (held_check's curvature -0.0158); the search
    from the entry at zero_start came back to it, and no zero column takes over a later one:
    the saddle was kept, converged at -347.1341987, 7.6e-4 below the fit on x. From the entry
    at saddle_far_start (1, lme4's start) the search reaches the fit on x's optimum. glmer
    (lme4 1.1-31) stops at the saddle (-347.1342629; -347.1335422 on x), glmmTMB 1.1.5 NA
    (-347.1341961 on x). The search from the end with a correlation's sign turned
    (singular_restart's mirror start) reaches it too: without both the saddle is kept."""
    data = pd.read_csv(REFERENCE_DIR / "saddle_far_start.csv")
    formula = "y ~ x + x2 + (1 + x + x2 | g)"
    fitted = g_fit(formula, data)
    on_x = g_fit(formula, data.assign(x=(data["x"] - 3.0) / 10.0))
    assert fitted.converged and on_x.converged
    assert fitted.llf == pytest.approx(on_x.llf, abs=1e-7)
    assert fitted.llf > -347.1335422
    near = g_fit(
        formula, data, control=OptimizerControl(saddle_far_start=1e-3, singular_restart=False)
    )
    assert near.llf < fitted.llf - 5e-4
    mirrored = g_fit(formula, data, control=OptimizerControl(saddle_far_start=1e-3))
    assert mirrored.llf == pytest.approx(fitted.llf, abs=1e-7)


def test_a_zero_sd_is_probed_with_its_free_correlation_near_each_end():
    """y ~ x + ar1(0 + tf | g) (bench/against_r.py's ar1:2285, 120 rows, 10 groups): the
    search ran the SD to zero with rho left at 0.86, where it no longer enters the model, and
    the trial SDs there all rise (-78.9187430), 0.0057 below glmmTMB (SD 0.1346, rho -> 1:
    -78.9130646874; glmmTMB 1.1.5, "singular convergence"). With rho near the upper end of
    its range the trial SD 0.1 falls: the search goes on from there to glmmTMB's optimum."""
    data = pd.read_csv(REFERENCE_DIR / "ar1_zero_sd_correlation.csv")
    fitted = g_fit("y ~ x + ar1(0 + tf | g)", data)
    assert fitted.converged
    assert fitted.llf >= -78.9130646874 - 1e-7
    assert fitted.varcorr["std_dev"].iloc[0] == pytest.approx(0.1346, abs=2e-3)


def test_zero_sd_fall_is_none_without_a_held_structured_sd():
    data = pd.read_csv(REFERENCE_DIR / "diag_zero_sd.csv")
    model, _ = build_model("y ~ x + diag(1 + x | g)", data)
    fitted = g_fit("y ~ x + diag(1 + x | g)", data)
    # At the optimum the slope's SD is held at zero and its trial SDs rise: no fall.
    objective = LaplaceObjective(model)
    theta, beta = np.asarray(fitted.theta), np.asarray(fitted.fixef())

    def fun(z):
        value, g_theta, g_beta = objective.deviance_and_gradient(z[:2], z[2:])
        return value, np.concatenate([g_theta, g_beta])

    x0 = np.concatenate([theta, beta])
    checks = EndChecks(
        model, fun, lambda z: (z[:2], z[2:]), np.eye(4), np.zeros(4), None, None, CONTROL
    )
    value = fun(x0)[0]
    assert zero_sd_fall(checks, x0, value, model.theta_log_sds()) is None
    # With the intercept's SD held at zero too, the trials find the fall.
    start = x0.copy()
    start[0] = np.log(1e-8)
    lower = zero_sd_fall(checks, start, fun(start)[0], model.theta_log_sds())
    assert lower is not None
    assert fun(lower)[0] < fun(start)[0] - CONTROL.decrement_tol


def double_well(x: float) -> tuple[float, np.ndarray]:
    """(x^2 - 1)^2: minima at -1 and 1 (second derivative 8 there), a maximum at 0."""
    return (x * x - 1.0) ** 2, np.array([4.0 * x * (x * x - 1.0)])


def scalar_model() -> ModelData:
    """theta: one SD (y ~ 0 + (1 | g): no fixed effects)."""
    frame = pd.DataFrame({"y": [0, 1, 1, 0, 1, 0], "g": ["a", "a", "b", "b", "c", "c"]})
    return build_model("y ~ 0 + (1 | g)", frame)[0]


def an_end(theta: list[float], beta: list[float], hessian: np.ndarray) -> Estimates:
    summary = OptSummary("BFGS", "test", True, "", 0, 0, 0, 0, 0, 0.0, False, {}, 0.0)
    return Estimates(np.array(theta), np.array(beta), 0.0, hessian, summary)


def test_a_point_is_in_a_known_basin_where_the_ends_quadratic_model_holds():
    """in_known_basin on (x^2 - 1)^2 in theta with the end at 1: near it (q = 0.01) the
    deviance and gradient match the model 8 d^2 / 2 to within 10%: in the basin; at 0.6
    (q = 0.64, the deviance 36% off) and across the maximum (q above basin_merge_decrement)
    not; with a looser tolerance 0.6 is in. known_ends keeps converged ends with a positive
    definite Hessian only, and works in a search's whitened coordinates."""
    control = OptimizerControl()
    data = scalar_model()
    end = an_end([1.0], [], np.array([[8.0]]))
    unconverged = dataclasses.replace(
        end, summary=dataclasses.replace(end.summary, converged=False)
    )
    indefinite = dataclasses.replace(end, hessian=np.array([[-1.0]]))
    ends = known_ends(data, control, [unconverged, indefinite, end], np.eye(1), np.zeros(1))
    assert len(ends) == 1

    def inside(x: float, ctl: OptimizerControl = control) -> bool:
        return in_known_basin(data, ends, np.array([x]), np.array([x]), *double_well(x), ctl)

    assert inside(0.95) and inside(1.0) and inside(1.02)
    assert not inside(0.6)
    assert not inside(-0.95)
    assert inside(0.6, OptimizerControl(basin_merge_tol=0.6))
    # In the whitened coordinates of another search: x = x0 + scale z.
    scaled = known_ends(data, control, [end], np.array([[0.5]]), np.array([0.2]))
    value, grad = double_well(0.95)
    z = np.array([(0.95 - 0.2) / 0.5])
    assert in_known_basin(data, scaled, z, np.array([0.95]), value, 0.5 * grad, control)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 100_000))
def test_an_exact_quadratic_is_in_its_ends_basin_up_to_the_decrement(seed):
    """On a deviance that is exactly the end's quadratic model (theta one SD away from zero,
    beta 1-3 entries, a random positive definite Hessian and whitening), a point is in the
    basin when its excess q is at most basin_merge_decrement and not when it is above (the
    end holds nothing, so the point's theta is not checked against a boundary)."""
    rng = np.random.default_rng(seed)
    control = OptimizerControl()
    frame = pd.DataFrame(
        {"y": [0, 1, 1, 0, 1, 0], "x": np.arange(6.0), "g": ["a", "a", "b", "b", "c", "c"]}
    )
    data = build_model("y ~ x + (1 | g)", frame)[0]
    n = 1 + data.n_fixed
    root = rng.standard_normal((n, n))
    hessian = root @ root.T + 0.1 * np.eye(n)
    centre = np.concatenate([[rng.uniform(0.5, 2.0)], rng.standard_normal(n - 1)])
    end = an_end([centre[0]], list(centre[1:]), hessian)
    scale = np.diag(rng.uniform(0.5, 2.0, n))
    x0 = centre + rng.standard_normal(n)
    ends = known_ends(data, control, [end], scale, x0)
    direction = rng.standard_normal(n)
    direction /= np.sqrt(0.5 * direction @ hessian @ direction)  # q = 1 at unit length
    for q in (0.01, 0.5, 0.99, 1.5, 4.0):
        x = centre + np.sqrt(q) * direction
        d = x - centre
        excess = 0.5 * float(d @ hessian @ d)
        z = np.linalg.solve(scale, x - x0)
        grad_z = scale.T @ (hessian @ d)
        inside = in_known_basin(data, ends, z, x[:1], excess, grad_z, control)
        assert inside == (excess <= control.basin_merge_decrement)


def test_a_known_end_with_a_zero_variance_holds_it_at_the_point_too():
    """An end with its SD at zero (held): the quadratic model is over the other coordinates
    (beta, deviance (beta - 1)^2), and a point is in its basin only with its SD below
    boundary_tol as well."""
    control = OptimizerControl()
    frame = pd.DataFrame({"y": [0, 1, 1, 0, 1, 0], "g": ["a", "a", "b", "b", "c", "c"]})
    data = build_model("y ~ 1 + (1 | g)", frame)[0]
    end = an_end([0.0], [1.0], np.diag([0.0, 2.0]))
    ends = known_ends(data, control, [end], np.eye(2), np.zeros(2))
    assert len(ends) == 1 and ends[0].free.tolist() == [False, True]

    def inside(sd: float, beta: float) -> bool:
        value, grad = (beta - 1.0) ** 2, np.array([0.0, 2.0 * (beta - 1.0)])
        point = np.array([sd, beta])
        return in_known_basin(data, ends, point, point[:1], value, grad, control)

    assert inside(1e-6, 1.1) and inside(0.0, 0.5)
    assert not inside(0.3, 1.1)
    assert not inside(1e-6, 3.0)  # q = 4 > basin_merge_decrement


def test_searches_from_the_face_starts_stop_in_a_known_basin():
    """better_of_basins gives each search the ends so far: on cs:2023 (cs_face_start.csv) the
    face searches that would come back to an end stop early, with the same estimate as
    when every search runs to its end (basin_merge_tol 0) and fewer evaluations."""
    data = pd.read_csv(REFERENCE_DIR / "cs_face_start.csv")
    formula = "y ~ x + cs(0 + tf | g)"
    merged = g_fit(formula, data)
    every = g_fit(formula, data, control=OptimizerControl(basin_merge_tol=0.0))
    assert merged.converged and every.converged
    assert merged.llf == pytest.approx(every.llf, abs=1e-9)
    np.testing.assert_allclose(merged.theta, every.theta, atol=1e-5)
    assert merged.opt_summary.evaluations < every.opt_summary.evaluations
    assert merged.opt_summary.tolerances["basin_merge_tol"] == 0.1


def test_a_structured_sd_falling_to_zero_is_put_there_instead_of_crawled_to():
    """cbpp with diag(0 + period | herd): period 4's SD goes to zero, where the deviance in its
    log SD s goes as c e^{2s} and the quasi-Newton steps shorten s by about 1/2 each. The pass
    stops once that SD is below snap_tol and still falling with the rest near its optimum
    (end_gtol), and range_end puts it at zero: the same optimum as the crawl
    (end_gtol=0) in fewer evaluations."""
    data = datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + diag(0 + period | herd)"
    jumped = g_fit(formula, data)
    crawled = g_fit(formula, data, control=OptimizerControl(end_gtol=0.0))
    assert jumped.converged and crawled.converged
    assert jumped.llf == pytest.approx(crawled.llf, abs=1e-9)
    assert jumped.opt_summary.message.startswith(RUNNING_TO_END)
    assert RANGE_END in jumped.opt_summary.message
    assert RUNNING_TO_END not in crawled.opt_summary.message
    assert jumped.theta[3] < np.log(1e-4) and crawled.theta[3] < np.log(1e-4)
    np.testing.assert_allclose(jumped.theta[:3], crawled.theta[:3], atol=1e-4)
    assert jumped.opt_summary.evaluations < crawled.opt_summary.evaluations
    assert jumped.opt_summary.tolerances["end_gtol"] == 1e-2


def test_an_end_tried_early_that_does_not_verify_lets_the_search_go_on(monkeypatch):
    """end_gtol so large that a pass stops as soon as an SD or rho runs towards its end,
    the rest far from its optimum (cs:2023, cs_face_start.csv): range_end's end then fails
    the checks, the pass goes on from where it stopped, and the fit reaches the default's
    optimum."""
    outcomes: list[tuple[bool, bool]] = []
    original = optimize.range_end

    def counted(*args, **kwargs):
        end = original(*args, **kwargs)
        early = len(args) > 5 and args[5] == OptimizerControl().snap_tol
        outcomes.append((early, end is not None))
        return end

    monkeypatch.setattr(optimize, "range_end", counted)
    data = pd.read_csv(REFERENCE_DIR / "cs_face_start.csv")
    formula = "y ~ x + cs(0 + tf | g)"
    eager = g_fit(formula, data, control=OptimizerControl(end_gtol=1e6))
    assert (True, False) in outcomes
    default = g_fit(formula, data)
    assert eager.converged and default.converged
    assert eager.llf == pytest.approx(default.llf, abs=1e-9)


def test_an_ar1_end_at_one_end_of_rho_is_searched_from_the_other():
    """y ~ x + ar1(0 + tf | g) on 800 rows, 100 groups, 4 occasions (bench/cs_basins.py's
    data, ar1:393 of the larger-data sweep; ar1_other_end.csv): the search ended at rho -1
    (SD 0.149, -506.9138920), 0.499 below glmmTMB's optimum at rho 1 (SD 0.303,
    -506.4148224892; glmmTMB 1.1.5, "singular convergence"). Ar1.other_basin starts a second
    search at SD 1 and rho 2/3 of the way to the other end, which reaches it."""
    fitted, first_only = other_basin_fits(
        "ar1_other_end.csv", "y ~ x + ar1(0 + tf | g)", -506.4148224892
    )
    assert fitted.varcorr["std_dev"].iloc[0] == pytest.approx(0.3029, abs=2e-3)
    assert float(fitted.varcorr["corr_1"].iloc[1]) == pytest.approx(1.0, abs=1e-6)
    assert first_only.llf < fitted.llf - 0.4


def test_glm_start_halves_steps_that_overshoot():
    # An offset of 40 on every fifth row (all successes there): from the least-squares start
    # the full Newton steps of the GLM start overshoot and diverge (beta 1e13); halving each
    # step after which the log-likelihood fell reaches the GLM fit.
    rng = np.random.default_rng(7)
    n = 160
    x = rng.normal(size=n)
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(0.3 - 0.6 * x))).astype(float)
    pushed = np.arange(n) % 5 == 0
    y[pushed] = 1.0
    frame = pd.DataFrame({"y": y, "x": x, "g": (np.arange(n) % 8).astype(str)})
    model, _ = build_model("y ~ x + (1 | g)", frame, offset=np.where(pushed, 40.0, 0.0))
    beta, _ = glm_start(model, OptimizerControl())
    _, _, score = glm_value_information_score(model, beta)
    assert np.abs(beta).max() < 5 and np.abs(score).max() < 1e-3
    undamped, _ = glm_start(model, OptimizerControl(glm_max_halvings=0))
    assert np.abs(undamped).max() > 1e6


def test_glm_start_of_the_log_link_with_widely_varying_offsets():
    """log_link_offsets.csv: offsets -10 and 0 pull the least-squares intercept up until rows
    with offset 0 have eta > 0, where the log link has no probability (the fit was refused);
    the intercept alone, lowered inside the bound, is a feasible start. glmmTMB 1.1.5 stops at
    its own start there; started at beta (-2, 0) it reaches the same optimum."""
    data = pd.read_csv(REFERENCE_DIR / "log_link_offsets.csv")
    formula = "y ~ x + offset(o) + (1 | g)"
    model, _ = build_model(formula, data, family=make_family("binomial", "log"))
    beta, _ = glm_start(model, OptimizerControl())
    assert float((model.x @ beta + model.offset).max()) < 0.0
    fitted = g_fit(formula, data, link="log")
    assert fitted.converged
    assert fitted.llf >= -117.1795303776 - 1e-7
    np.testing.assert_allclose(fitted.params, [-1.70512797, 0.31506669], atol=2e-5)
    assert fitted.varcorr["std_dev"].iloc[0] == pytest.approx(0.28872372, abs=2e-4)
    # Without an intercept there is no such fallback: a clear refusal that names the offset.
    with pytest.raises(ValueError, match="no starting values.*check the offset"):
        g_fit("y ~ 0 + x + offset(p) + (1 | g)", data.assign(p=1.0), link="log")


def test_start_moves_with_a_known_effect_moved_into_the_offset():
    """A known effect c x moved into the offset moves the fit's coefficient of x by -c; the
    moment start's beta (the GLM's scaled towards the conditional scale) moves the same way,
    so the search runs the same course. slope3_counts_offset.csv (15 rows, several optima):
    the start used to move by -a c (the attenuation factor a = 1.37), and the fit with the
    offset ended 0.98 lower."""
    data = pd.read_csv(REFERENCE_DIR / "slope3_counts_offset.csv")
    formula = "cbind(y, m - y) ~ x + x2 + (1 + x + x2 | g)"
    shift = 1.5 * data["x"].to_numpy()
    plain, _ = build_model(formula, data)
    offset, _ = build_model(formula, data, offset=shift)
    first = start_point(plain, OptimizerControl())
    second = start_point(offset, OptimizerControl())
    np.testing.assert_allclose(first.theta, second.theta, rtol=1e-12)
    np.testing.assert_allclose(second.beta, first.beta - [0.0, 1.5, 0.0], atol=1e-9)
    base, moved = g_fit(formula, data), g_fit(formula, data, offset=shift)
    assert base.converged and moved.converged
    assert moved.llf == pytest.approx(base.llf, abs=1e-7)
    np.testing.assert_allclose(moved.params, base.params - [0.0, 1.5, 0.0], atol=1e-4)


def test_an_evaluation_that_overflows_is_no_deviance():
    """cs_overflow.csv: a polish step took occasion t2's SD near e^700, where the mode search
    overflowed; its finite value with a non-finite gradient was taken as a deviance (-9.42,
    far above the fit's), numpy warned on every evaluation, and the search ended in a
    LinAlgError from eigh. Such an evaluation now counts as no deviance, without warnings."""
    data = pd.read_csv(REFERENCE_DIR / "cs_overflow.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fitted = g_fit("y ~ x + cs(0 + tf | g)", data)
    assert np.isfinite(fitted.llf) and fitted.llf < -30.0
    assert np.isfinite(np.asarray(fitted.varcorr["std_dev"], dtype=float)).all()


def test_flat_direction_without_a_finite_hessian():
    hessian = np.array([[1.0, np.nan], [np.nan, 1.0]])
    free = np.ones(2, dtype=bool)
    z, grad = np.zeros(2), np.zeros(2)

    def fun(point):
        raise AssertionError("no trial steps without a direction")

    assert flat_direction(fun, z, 0.0, grad, hessian, free, OptimizerControl()) == (None, False)


def test_a_fit_stopped_at_a_saddle_reports_no_correlation_beyond_one():
    """cs_saddle.csv (cs_overflow.csv's rows in their first order) ended unconverged with
    occasion t2's SD near 1.5e6, where the information is indefinite but its inverse gave both
    coefficients a positive variance: the summary showed standard errors of 0.003 and 0.0007
    and a correlation of fixed effects of 6.29. Whatever the end, what is shown is a
    covariance."""
    data = pd.read_csv(REFERENCE_DIR / "cs_saddle.csv")
    fitted = g_fit("y ~ x + cs(0 + tf | g)", data)
    vcov = np.asarray(fitted.vcov, dtype=float)
    shown = np.flatnonzero(np.isfinite(np.diagonal(vcov)))
    block = vcov[np.ix_(shown, shown)]
    sd = np.sqrt(np.diagonal(block))
    if shown.size:
        assert np.linalg.eigvalsh(block / np.outer(sd, sd)).min() > -1e-9
    # t2's SD has no finite estimate (its rows separated by the groups: test_separation).
    assert not fitted.converged and fitted.fit_output.separation.columns == ((0, 2),)


def test_a_search_that_ends_where_the_deviance_is_not_finite_reports_its_lowest_point():
    """cs_runaway_end.csv (metamorphic's cs:3982 with successes and failures swapped): the
    search ran occasion t2's SD out to 1e10, where the mode search, warm started from
    another point than during the search, fails: the fit raised "the fit failed". It now
    ends unconverged at the lowest finite deviance the search evaluated, where the groups'
    separation of t2's rows is reported."""
    data = pd.read_csv(REFERENCE_DIR / "cs_runaway_end.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = g_fit("y ~ x + cs(0 + tf | g)", data)
    assert not fitted.converged and np.isfinite(fitted.llf)
    assert np.isfinite(fitted.params).all()


def test_a_correlation_at_one_end_is_searched_from_the_other():
    """y ~ f*k + (1 + x1 | g) (bench/fuzz_formula.py's 10:4, 184 rows, 8 groups): the search
    from the moment start and the one from lme4's start both end singular with the
    correlation at -1 (-110.7395607); the mirror of that end (the correlation's sign turned,
    the SDs kept) leads to the end at +1, 0.87 higher (-109.8743435). glmer (lme4 1.1-31):
    -109.8743917 at +1 with a convergence warning (max|grad| 0.0072); glmmTMB 1.1.5 NA."""
    data = pd.read_csv(REFERENCE_DIR / "mirror_correlation.csv")
    formula = "y ~ f*k + (1 + x1 | g)"
    fitted = g_fit(formula, data)
    assert fitted.converged and fitted.llf > -109.8743917
    assert fitted.varcorr["corr_1"].iloc[1] == pytest.approx(1.0, abs=1e-6)
    assert "sign turned" in fitted.opt_summary.message
    first = g_fit(formula, data, control=OptimizerControl(singular_restart=False))
    assert first.llf == pytest.approx(-110.7395607, abs=1e-6)


def test_a_mirrored_start_takes_the_glm_fixed_effects():
    """as.numeric(s > 1) ~ log(x2, 2) + (1 + x1 | g) (bench/fuzz_formula.py's 51:169, 176
    rows, 6 groups): the first search ends singular with the correlation at +1 and the
    intercept at -1.57 (-103.2890084); from its mirror with that end's fixed effects the
    search returns to it, from the mirror with the GLM's it reaches the end at -1 with the
    intercept at 0.69 (-102.8320665), as glmer (-102.8320868; glmmTMB -102.8320694, singular
    convergence warning)."""
    data = pd.read_csv(REFERENCE_DIR / "mirror_intercept.csv")
    fitted = g_fit("as.numeric(s > 1) ~ log(x2, 2) + (1 + x1 | g)", data)
    assert fitted.converged and fitted.llf > -102.8320694
    assert fitted.varcorr["corr_1"].iloc[1] == pytest.approx(-1.0, abs=1e-6)
    assert "sign turned" in fitted.opt_summary.message


def test_a_random_intercept_at_zero_without_a_fixed_intercept_is_searched_again():
    """as.numeric(s > 1) ~ exp(x1 / 3) - 1 + (1 | g) + (1 | h) (bench/fuzz_formula.py's
    11:49, 163 rows, 13 and 3 groups): without a fixed intercept the random intercepts carry
    the overall level; the first search ends with h's SD at zero (-101.0175515), 1.33 below
    glmer's -99.6922185 (glmmTMB 1.1.5: an error). The search from lme4's theta at that
    end's beta reaches both SDs positive, above glmer."""
    data = pd.read_csv(REFERENCE_DIR / "no_fixed_intercept.csv")
    formula = "as.numeric(s > 1) ~ exp(x1 / 3) - 1 + (1 | g) + (1 | h)"
    fitted = g_fit(formula, data)
    assert fitted.converged and fitted.llf > -99.6922185
    assert (fitted.theta > 1.0).all()
    assert "lme4's start" in fitted.opt_summary.message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = g_fit(formula, data, control=OptimizerControl(singular_restart=False))
    assert first.llf == pytest.approx(-101.0175515, abs=1e-6)


def test_a_split_term_at_zero_gets_the_restart_of_its_diag_twin():
    """y ~ I(x1^2) + x2 + cut(x1, c(-Inf, 0, Inf)) + (1 + x1 || g) (bench/fuzz_formula.py's
    5:109, 214 rows, 6 groups): lme4's || splits the term into (1 | g) + (0 + x1 | g); the
    first search ends with x1's SD at zero (-111.9849993, glmer's -111.9850000), 0.0084 below
    glmmTMB 1.1.5's -111.9765866, which the same model written diag(1 + x1 | g) reached by
    its restart from lme4's start. The split term now gets that restart too."""
    data = pd.read_csv(REFERENCE_DIR / "split_term_restart.csv")
    fixed = "y ~ I(x1^2) + x2 + cut(x1, c(-Inf, 0, Inf))"
    split = g_fit(fixed + " + (1 + x1 || g)", data)
    assert split.converged and split.llf == pytest.approx(-111.9765866, abs=1e-6)
    assert "lme4's start" in split.opt_summary.message
    diag = g_fit(fixed + " + diag(1 + x1 | g)", data)
    assert split.llf == pytest.approx(diag.llf, abs=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = g_fit(fixed + " + (1 + x1 || g)", data, control=SINGLE_SEARCH)
    assert first.llf == pytest.approx(-111.9849993, abs=1e-6)


SINGLE_SEARCH = OptimizerControl(singular_restart=False)


@pytest.mark.parametrize(
    ("columns", "spans"),
    [
        (["(Intercept)", "x"], True),
        (["fa", "fb"], True),  # a factor in full
        (["x"], False),
        ([], False),
    ],
)
def test_fixed_spans_constant(columns: list[str], spans: bool) -> None:
    """ModelData.fixed_spans_constant: an intercept or a factor in full spans the constant,
    a covariate alone or no column does not."""
    rng = np.random.default_rng(5)
    n = 12
    level = np.arange(n) % 2
    values = {
        "(Intercept)": np.ones(n),
        "x": rng.normal(size=n),
        "fa": (level == 0).astype(float),
        "fb": (level == 1).astype(float),
    }
    x = np.column_stack([values[c] for c in columns]) if columns else np.zeros((n, 0))
    model = ModelData(
        successes=np.ones(n),
        trials=np.full(n, 2.0),
        x=x,
        offset=np.zeros(n),
        fixed_names=tuple(columns),
        blocks=(),
    )
    assert model.fixed_spans_constant is spans
