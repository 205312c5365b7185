"""Autocorrelation tests of residuals (glmm_binomial.results.autocorrelation) against lmtest's
dwtest and ape's Moran.I, and as methods of SimulatedResiduals."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference

import glmm_binomial as g
from glmm_binomial.results import autocorrelation
from glmm_binomial.results.autocorrelation import durbin_watson, moran_i

CASES = load_reference("autocorrelation")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c['n']}")
def test_durbin_watson_matches_lmtest(case):
    """dwtest(r ~ 1, order.by = time): the statistic to rounding; p to 1e-10 with the normal
    approximation (100 values on) and to 1e-5 with the exact distribution (below 100: lmtest's
    pan algorithm, 15 iterations, against Imhof's integral here)."""
    values, time = np.array(case["residuals"]), np.array(case["time"])
    for expected in case["temporal"]:
        statistic, p = durbin_watson(values, time, expected["alternative"])
        assert statistic == pytest.approx(expected["statistic"], rel=1e-12)
        rtol = 1e-10 if case["n"] >= 100 else 1e-5
        assert p == pytest.approx(expected["p"], rel=rtol)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c['n']}")
def test_moran_matches_ape(case):
    values = np.array(case["residuals"])
    for expected in case["spatial"]:
        observed, mean, sd, p = moran_i(values, case["x"], case["y"], expected["alternative"])
        assert observed == pytest.approx(expected["observed"], rel=1e-10, abs=1e-14)
        assert mean == pytest.approx(expected["expected"], rel=1e-12)
        assert sd == pytest.approx(expected["sd"], rel=1e-10)
        assert p == pytest.approx(expected["p"], rel=1e-9, abs=1e-14)


def test_moran_in_blocks_is_the_same(monkeypatch):
    case = CASES[-1]
    whole = moran_i(np.array(case["residuals"]), case["x"], case["y"])
    monkeypatch.setattr(autocorrelation, "MORAN_BLOCK", 7)
    blocks = moran_i(np.array(case["residuals"]), case["x"], case["y"])
    np.testing.assert_allclose(blocks, whole, rtol=1e-12)


@pytest.fixture(scope="module")
def residuals():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit(
            "cbind(incidence, size - incidence) ~ period + (1 | herd)", g.datasets.load("cbpp")
        )
    return g.simulate_residuals(result, n_sim=200, seed=5)


def test_methods_test_the_residuals(residuals):
    n = residuals.n_units
    time = np.arange(n)[::-1].astype(float)
    test = residuals.test_temporal_autocorrelation(time, alternative="greater")
    expected = durbin_watson(residuals.residuals, time, "greater")
    assert (test.statistic, test.p_value) == pytest.approx(expected)
    assert test.alternative == "greater" and "Durbin-Watson" in test.name
    rng = np.random.default_rng(2)
    x, y = rng.random(n), rng.random(n)
    spatial = residuals.test_spatial_autocorrelation(x, y)
    assert (spatial.statistic, spatial.p_value) == pytest.approx(
        np.array(moran_i(residuals.residuals, x, y))[[0, 3]]
    )


def test_groups_take_values_aligned_by_label(residuals):
    grouped = residuals.grouped("herd")
    labels = list(grouped.labels)
    rng = np.random.default_rng(3)
    x = pd.Series(rng.random(len(labels)), index=labels)
    y = pd.Series(rng.random(len(labels)), index=labels)
    shuffled = x.sample(frac=1, random_state=1), y.sample(frac=1, random_state=2)
    aligned = grouped.test_spatial_autocorrelation(x.to_numpy(), y.to_numpy())
    assert grouped.test_spatial_autocorrelation(*shuffled).statistic == aligned.statistic
    with pytest.raises(ValueError, match="x has no value for the group"):
        grouped.test_spatial_autocorrelation(x.iloc[1:], y)


def test_a_trend_is_found():
    """Residuals that drift along time and space are flagged; shuffled ones are not."""
    rng = np.random.default_rng(4)
    n = 300
    t = np.arange(n, dtype=float)
    drift = np.clip(rng.random(n) * 0.5 + 0.5 * (np.sin(t / 15) + 1) / 2, 0, 1)
    assert durbin_watson(drift, t, "greater")[1] < 1e-6
    assert durbin_watson(rng.permutation(drift), t, "greater")[1] > 1e-3
    x, y = rng.random(n) * 10, rng.random(n) * 10
    patchy = np.clip(rng.random(n) * 0.6 + 0.04 * x, 0, 1)
    assert moran_i(patchy, x, y, "greater")[3] < 1e-6


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.test_temporal_autocorrelation(np.zeros(r.n_units)), "one unit per time"),
        (lambda r: r.test_temporal_autocorrelation(np.arange(3)), "one value per unit"),
        (lambda r: r.test_temporal_autocorrelation(["a"] * r.n_units), "time must be numbers"),
        (
            lambda r: r.test_temporal_autocorrelation(np.r_[np.nan, np.arange(r.n_units - 1)]),
            "missing or infinite",
        ),
        (
            lambda r: r.test_temporal_autocorrelation(np.arange(r.n_units), alternative="up"),
            "alternative must be one of",
        ),
        (
            lambda r: r.test_spatial_autocorrelation(np.ones(r.n_units), np.ones(r.n_units)),
            "one unit per location",
        ),
    ],
)
def test_refusals(residuals, call, message):
    with pytest.raises(ValueError, match=message):
        call(residuals)
