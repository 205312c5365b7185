"""The outer optimizer's checks of its end point (optimize.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _simulate import simulated_model

from glmm_binomial import datasets
from glmm_binomial.methods.agq import fit_agq
from glmm_binomial.methods.laplace import LaplaceObjective, fit_laplace
from glmm_binomial.model.design import build_model
from glmm_binomial.numerics.optimize import (
    OptimizerControl,
    glm_information_and_score,
    minimize_deviance,
    optimum_check,
    start_point,
)

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
    ):
        assert tolerances[name] == getattr(CONTROL, name)
    assert output.converged


def test_a_given_start_is_whitened_by_the_glm_information_there_without_a_glm_fit():
    data = datasets.load("cbpp")
    model, _ = build_model("cbind(incidence, size - incidence) ~ period + (1 | herd)", data)
    control = OptimizerControl()
    theta, beta = np.array([0.6]), np.array([-1.4, -1.0, -1.1, -1.6])
    begin = start_point(model, control, theta, beta)
    np.testing.assert_array_equal(begin.beta, beta)
    np.testing.assert_array_equal(begin.theta, theta)
    information, _ = glm_information_and_score(model, beta)
    np.testing.assert_allclose(begin.info_factor.T @ begin.info_factor, information, atol=1e-9)
    # Without a start: beta from the GLM fit, and lme4's Lambda = I, or (the default) the
    # moment estimate of the SD at the GLM fit.
    fresh = start_point(model, OptimizerControl(moment_start=False))
    np.testing.assert_array_equal(fresh.theta, [1.0])
    assert not np.allclose(fresh.beta, beta)
    moments = start_point(model, control)
    np.testing.assert_array_equal(moments.beta, fresh.beta)
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
