"""Residuals where a fitted probability rounds to 0 or 1 (results/residuals.py).

Rows pushed far out on the link scale (here by an offset of 45: mu = 1 - 3e-20, which rounds
to 1) must give the residuals' small limits, not 0 / 0; and since mu and 1 - mu are each
computed on their own, swapping successes and failures (with the offset negated) negates every
residual, whichever side the rows are pushed to."""

import numpy as np
import pandas as pd
import pytest

import glmm_binomial as g


def pushed_data(flip: bool) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 160
    group = rng.integers(0, 8, n)
    x = rng.normal(size=n)
    eta = -0.3 + 0.6 * x + rng.normal(size=8)[group]
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    pushed = np.arange(n) % 5 == 0
    y[pushed] = 1.0
    offset = np.where(pushed, 45.0, 0.0)
    if flip:
        y, offset = 1.0 - y, -offset
    return pd.DataFrame({"y": y, "x": x, "g": group.astype(str)}), offset


@pytest.fixture(scope="module")
def fits():
    out = []
    for flip in (False, True):
        data, offset = pushed_data(flip)
        out.append(g.fit("y ~ x + (1 | g)", data, offset=offset))
    return out


@pytest.mark.parametrize("kind", ["deviance", "pearson", "response", "working"])
def test_residuals_finite_and_mirrored(fits, kind):
    plain, flipped = fits
    assert plain.converged and flipped.converged
    assert plain.llf == pytest.approx(flipped.llf, abs=1e-8)
    assert np.all(plain.fitted()[::5] == 1.0)  # mu rounds to 1 on the pushed rows
    first, second = plain.resid(kind), flipped.resid(kind)
    assert np.isfinite(first).all() and np.isfinite(second).all()
    np.testing.assert_allclose(first, -second, rtol=1e-6, atol=1e-12)


def test_limits_on_the_pushed_rows(fits):
    plain = fits[0]
    eta = plain.predict(type="link")[::5]
    # y = 1: (1 - mu) / sqrt(mu (1 - mu)) = exp(-eta / 2); (y - mu) / (mu (1 - mu)) = 1 / mu.
    np.testing.assert_allclose(plain.resid("pearson")[::5], np.exp(-eta / 2), rtol=1e-12)
    np.testing.assert_allclose(plain.resid("working")[::5], 1.0 + np.exp(-eta), rtol=1e-12)
    # Deviance: sqrt(-2 log mu) = sqrt(2 log1p(exp(-eta))).
    np.testing.assert_allclose(
        plain.resid("deviance")[::5], np.sqrt(2 * np.log1p(np.exp(-eta))), rtol=1e-12
    )
    assert (plain.resid("pearson")[::5] > 0).all()
    assert np.isfinite(plain.summary().scaled_residuals).all()
