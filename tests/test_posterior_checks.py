"""Separation diagnostics of the Bayesian methods (issue 18): a posterior that rests on its
priors is said so, and ordinary fits pay nothing and warn nothing."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import CBPP

import glmm_binomial as g
from glmm_binomial.datasets import load
from glmm_binomial.diagnostics import SeparationWarning
from glmm_binomial.methods.posterior_checks import in_prior_tail, loose_log_sds

BAYES = ("vb", "vb_meanfield")


def frame(kind: str) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    group = rng.integers(0, 10, 200)
    y = (x > 0) if kind == "fixed" else (group % 2 == 1)
    return pd.DataFrame({"y": y.astype(int), "x": x, "g": group})


@pytest.mark.parametrize("method", BAYES)
def test_separation_by_the_fixed_effects_is_said(method: str) -> None:
    with pytest.warns(SeparationWarning, match="complete separation.*N\\(0, 2\\^2\\) prior"):
        result = g.fit("y ~ x + (1 | g)", frame("fixed"), method=method)
    assert np.all(np.isfinite(result.params))  # posterior means exist; the warning says why


def test_separation_within_groups_is_said_by_the_mean_field() -> None:
    with pytest.warns(SeparationWarning, match="separation within groups: in every group of g"):
        g.fit("y ~ x + (1 | g)", frame("groups"), method="vb_meanfield")


@pytest.mark.parametrize("method", BAYES)
def test_ordinary_fits_do_not_warn(method: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g.fit(CBPP, load("cbpp"), method=method)


def test_the_screens() -> None:
    assert in_prior_tail(np.array([0.1, -3.5]), 2.0, 1.5)
    assert not in_prior_tail(np.array([0.1, -2.9]), 2.0, 1.5)
    # wide and above 0, or far in the prior's tail; not a narrow posterior near 0
    assert loose_log_sds(
        np.array([0.3, 2.0, 0.3, -2.0]), np.array([0.6, 0.1, 0.1, 0.9]), 1.0, 1.5
    ) == [0, 1]


def test_the_screen_is_a_recorded_setting() -> None:
    result = g.fit(CBPP, load("cbpp"), method="vb_meanfield")
    assert result.opt_summary.tolerances["separation_prior_sds"] == 1.5


@pytest.mark.parametrize("method", BAYES)
def test_a_variance_the_data_put_at_zero_is_said(method: str) -> None:
    """No group effect in the data: Laplace is singular (BoundaryWarning), and the Bayesian
    fits say that the likelihood favours a zero variance, whose posterior the prior holds up."""
    from glmm_binomial.diagnostics import BoundaryWarning

    rng = np.random.default_rng(3)
    x = rng.normal(size=400)
    y = rng.random(400) < 1 / (1 + np.exp(-(0.3 + 0.8 * x)))
    data = pd.DataFrame({"y": y.astype(int), "x": x, "g": rng.integers(0, 20, 400)})
    with pytest.warns(BoundaryWarning, match=r"covariance of \(1 \| g\) at zero"):
        result = g.fit("y ~ x + (1 | g)", data, method=method)
    assert result.converged
