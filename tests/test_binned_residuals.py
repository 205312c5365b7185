"""Binned residuals against performance 0.10.2 (tests/reference/effects.json), the binning
rules, and the plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _dask_support import rows_on_cluster
from _simulate import simulated_model
from conftest import load_reference
from scipy import stats

import glmm_binomial as g
from glmm_binomial.family import inverse_link
from glmm_binomial.methods.laplace import LaplaceObjective, conditional_effects
from glmm_binomial.results.binned_residuals import (
    bin_residuals,
    binned_residuals,
    default_bins,
    plot_binned_residuals,
)
from glmm_binomial.results.simulate import linear_predictor

# performance's columns and ours: its `se` is the interval's half-width (1.96 x the standard
# error, its `ci_range`); our `se` is the standard error.
COLUMNS = {
    "xbar": "xbar",
    "ybar": "ybar",
    "x_lo": "x.lo",
    "x_hi": "x.hi",
    "se": "ci_range",
    "ci_lower": "CI_low",
    "ci_upper": "CI_high",
}


@pytest.fixture(scope="module")
def reference() -> dict:
    effects = load_reference("effects")
    return {
        "bins": pd.DataFrame(
            effects["performance"]["binned_residuals_contraception_intercept"]["bins"]
        ),
        "info": effects["performance"]["binned_residuals_contraception_intercept"],
        "fit": effects["fits"]["contraception_intercept"],
    }


@pytest.fixture(scope="module")
def contraception_fit(reference: dict) -> g.GLMMResult:
    return g.fit(reference["fit"]["formula"], g.datasets.load("contraception"))


def _compare(ours: pd.DataFrame, bins: pd.DataFrame, tolerance: float) -> None:
    assert len(ours) == len(bins) == 44
    np.testing.assert_array_equal(ours["n"].to_numpy(), bins["n"].to_numpy())
    for column, theirs in COLUMNS.items():
        np.testing.assert_allclose(
            ours[column].to_numpy(), bins[theirs].to_numpy(), rtol=0, atol=tolerance
        )
    half_width = stats.norm.ppf(0.975) * ours["se"].to_numpy()
    np.testing.assert_allclose(half_width, bins["se"].to_numpy(), rtol=0, atol=tolerance)
    np.testing.assert_array_equal(ours["inside"].to_numpy(), (bins["group"] == "yes").to_numpy())


def test_bins_equal_performance_at_glmer_estimates(
    reference: dict, contraception_fit: g.GLMMResult
) -> None:
    """performance's bins from glmer's fitted values: the fitted probabilities rebuilt from
    glmer's estimates (its conditional modes found at them), then binned: within 1e-6."""
    fit = reference["fit"]["fit"]
    model = contraception_fit.model
    beta = np.array([fit["fixef"][name] for name in model.fixed_names])
    theta = np.array([fit["sd"]["district"]["(Intercept)"]])
    objective = LaplaceObjective(model)
    modes, _ = conditional_effects(objective, objective.mode(theta, beta), theta)
    mu = inverse_link(linear_predictor(model, theta, beta, None, modes))
    table = bin_residuals(mu, model.successes / model.trials)
    _compare(table, reference["bins"], 1e-6)
    assert default_bins(model.n_obs) == reference["info"]["n_bins_requested"] == 44


def test_bins_of_our_fit(reference: dict, contraception_fit: g.GLMMResult) -> None:
    """At our optimum (logLik 4.5e-5 above glmer's: bobyqa stops short) the fitted values move
    by up to 1.3e-5, so the same 44 bins agree to 2e-5."""
    assert contraception_fit.loglik > reference["fit"]["fit"]["logLik"]
    table = binned_residuals(contraception_fit)
    _compare(table, reference["bins"], 2e-5)
    assert table.attrs["resid_ok"] == pytest.approx(reference["info"]["resid_ok"], abs=1e-12)
    assert list(table.columns) == [
        "xbar",
        "ybar",
        "n",
        "x_lo",
        "x_hi",
        "se",
        "ci_lower",
        "ci_upper",
        "inside",
    ]


def _r_binned(mu: np.ndarray, y: np.ndarray, n_bins: int) -> list[tuple[float, float, int]]:
    """performance's loop, one bin at a time (R's 1-based indices and right-closed cut)."""
    n = len(mu)
    index = [int(np.floor(n * i / n_bins)) for i in range(1, n_bins)]
    ordered = np.sort(mu)
    breaks = sorted(set([-np.inf, *[ordered[i - 1] for i in index], np.inf]))
    rows = []
    for b in range(1, n_bins + 1):
        if b >= len(breaks):
            continue
        members = [i for i in range(n) if breaks[b - 1] < mu[i] <= breaks[b]]
        if len(members) < 2:
            continue
        r = y[members] - mu[members]
        rows.append((float(np.mean(mu[members])), float(np.mean(r)), len(members)))
    return rows


@pytest.mark.parametrize("n_bins", [2, 5, 17, 40])
def test_binning_rules_with_ties(n_bins: int) -> None:
    """Tied fitted values (repeated breaks are merged) and bins of one row (dropped)."""
    rng = np.random.default_rng(n_bins)
    mu = np.round(rng.random(120), 1)  # 11 distinct values: many ties
    mu[0] = 0.999  # a bin of one row at the top
    y = (rng.random(120) < mu).astype(float)
    ours = bin_residuals(mu, y, n_bins)
    expected = _r_binned(mu, y, n_bins)
    assert len(ours) == len(expected)
    np.testing.assert_allclose(ours["xbar"], [e[0] for e in expected], rtol=1e-14)
    np.testing.assert_allclose(ours["ybar"], [e[1] for e in expected], atol=1e-15)
    np.testing.assert_array_equal(ours["n"], [e[2] for e in expected])


def test_bad_n_bins(contraception_fit: g.GLMMResult) -> None:
    for bad in (1, 0, 5000):
        with pytest.raises(ValueError, match="n_bins must be between 2 and the number of rows"):
            binned_residuals(contraception_fit, n_bins=bad)
    with pytest.raises(ValueError, match="n_bins must be an integer"):
        binned_residuals(contraception_fit, n_bins=4.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["agq", "vb"])
def test_other_methods_and_no_formula(method: str) -> None:
    model = simulated_model(3, n=400, levels=(20,), trials=4)
    result = g.fit_model(model, method=method, n_agq=5 if method == "agq" else 1)
    assert result.design is None
    table = binned_residuals(result)
    assert len(table) == 20 and table["n"].sum() == 400
    np.testing.assert_allclose(table["n"] * table["xbar"], _bin_sums(result, table), rtol=1e-12)


def _bin_sums(result: g.GLMMResult, table: pd.DataFrame) -> np.ndarray:
    mu = np.sort(result.fitted())
    edges = np.cumsum(table["n"].to_numpy())
    return np.add.reduceat(mu, np.r_[0, edges[:-1]])


def test_dask_result_is_refused(contraception_fit: g.GLMMResult) -> None:
    with pytest.raises(ValueError, match="binned_residuals needs the rows of the fit"):
        binned_residuals(rows_on_cluster(contraception_fit))


def test_plot_renders_to_png(contraception_fit: g.GLMMResult, tmp_path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_binned_residuals(contraception_fit)
    path = tmp_path / "binned.png"
    fig.savefig(path)
    plt.close(fig)
    assert path.stat().st_size > 10_000
    (ax,) = fig.axes
    assert "44 bins" in ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()
