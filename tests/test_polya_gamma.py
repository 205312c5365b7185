"""Polya-Gamma draws against the exact distribution: the CDF (by quadrature of the density's
alternating series), the mean and the variance; binomial rows as sums; chains independent."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from glmm_binomial.methods.polya_gamma import (
    SMALL_C_MAX,
    TRUNCATION,
    ChainStreams,
    compiled_sampler,
    draw_polya_gamma,
)

N_DRAWS = 100_000
Z_VALUES = (0.0, 0.4, 1.2, 2 * SMALL_C_MAX - 0.01, 2 * SMALL_C_MAX + 0.01, 5.0, 12.0, 80.0, 400.0)


def pg1_density(x: float, z: float, terms: int = 40) -> float:
    """Density of PG(1, z) at x: cosh(z/2) e^{-z^2 x / 2} times that of PG(1, 0) = J*(1) / 4,
    whose density is the alternating series of Devroye's a_n (left form for 4x <= t)."""
    y = 4.0 * x
    n = np.arange(terms)
    if y <= TRUNCATION:
        a = np.pi * (n + 0.5) * (2.0 / (np.pi * y)) ** 1.5 * np.exp(-2.0 * (n + 0.5) ** 2 / y)
    else:
        a = np.pi * (n + 0.5) * np.exp(-((n + 0.5) ** 2) * np.pi**2 * y / 2.0)
    density_j = float(np.sum((-1.0) ** n * a))
    # cosh(z/2) exp(-z^2 x / 2) in logs: both factors are extreme for large z.
    log_tilt = abs(z) / 2.0 + np.log1p(np.exp(-abs(z))) - np.log(2.0) - z * z * x / 2.0
    return 4.0 * density_j * float(np.exp(log_tilt))


def one_stream(seed: int) -> ChainStreams:
    return ChainStreams([np.random.default_rng(seed)])


@pytest.mark.parametrize("z", Z_VALUES)
def test_pg1_matches_exact_cdf_and_moments(z: float) -> None:
    draws = draw_polya_gamma(one_stream(17), np.full((1, N_DRAWS), z))[0]
    mean = 0.25 if z == 0 else np.tanh(z / 2) / (2 * z)
    variance = 1 / 24 if z == 0 else (np.sinh(z) - z) / (4 * z**3 * np.cosh(z / 2) ** 2)
    assert abs(draws.mean() - mean) < 5 * np.sqrt(variance / N_DRAWS)
    assert draws.var() / variance == pytest.approx(1.0, abs=0.05)
    for probability in (0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
        x = float(np.quantile(draws, probability))
        exact = integrate.quad(pg1_density, 0.0, x, args=(z,), limit=200, epsabs=1e-12)[0]
        assert abs(exact - probability) < 5 * np.sqrt(probability * (1 - probability) / N_DRAWS)


@pytest.mark.parametrize("trials", [3, 34])
def test_binomial_rows_are_sums(trials: int) -> None:
    z = np.array([-2.0, 0.3, 1.5])
    n = 40_000
    draws = draw_polya_gamma(one_stream(3), np.tile(z, (1, n)), np.full(3 * n, trials))
    draws = draws.reshape(n, 3)
    mean = trials * np.tanh(z / 2) / (2 * z)
    variance = trials * (np.sinh(z) - z) / (4 * z**3 * np.cosh(z / 2) ** 2)
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * np.sqrt(variance / n))
    np.testing.assert_allclose(draws.var(axis=0) / variance, 1.0, atol=0.06)


def test_mixed_trials_keep_row_order() -> None:
    trials = np.array([1, 5, 1, 2])
    z = np.array([[0.0, 0.0, 30.0, 0.0]])
    draws = np.array([draw_polya_gamma(one_stream(s), z, trials)[0] for s in range(2000)])
    np.testing.assert_allclose(draws.mean(axis=0), [0.25, 1.25, np.tanh(15) / 60, 0.5], rtol=0.05)


def test_chain_draws_do_not_depend_on_other_chains() -> None:
    z = np.random.default_rng(0).normal(scale=2.0, size=(3, 500))
    seeds = np.random.SeedSequence(9).spawn(3)
    together = draw_polya_gamma(ChainStreams([np.random.default_rng(s) for s in seeds]), z)
    alone = draw_polya_gamma(ChainStreams([np.random.default_rng(seeds[1])]), z[1:2])
    assert np.array_equal(together[1], alone[0])
    again = draw_polya_gamma(ChainStreams([np.random.default_rng(s) for s in seeds]), z)
    assert np.array_equal(together, again)


def test_compiled_sampler_agrees() -> None:
    compiled = compiled_sampler()
    if compiled is None:
        pytest.skip("the optional polyagamma package is not installed")
    z = np.full((1, N_DRAWS), 1.7)
    ours = draw_polya_gamma(one_stream(1), z)
    theirs = draw_polya_gamma(one_stream(2), z, compiled=compiled)
    assert abs(ours.mean() - theirs.mean()) < 5 * np.sqrt(2 * ours.var() / N_DRAWS)
