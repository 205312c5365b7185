"""The parametric bootstrap likelihood-ratio test (glmm_binomial.results.bootstrap_lrt)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import quiet_fit

import glmm_binomial as g
from glmm_binomial.results.simulate import simulate_successes, with_response

RESPONSE = "cbind(incidence, size - incidence)"


@pytest.fixture(scope="module")
def interaction():
    large = quiet_fit("use ~ age * urban + livch + (1 | district)", "contraception")
    small = quiet_fit("use ~ age + urban + livch + (1 | district)", "contraception")
    return large, small


def test_a_clear_effect_gets_the_smallest_p_value():
    large = quiet_fit(f"{RESPONSE} ~ period + (1 | herd)", "cbpp")
    small = quiet_fit(f"{RESPONSE} ~ 1 + (1 | herd)", "cbpp")
    result = g.pb_test(large, small, nsim=40, seed=3)
    assert result.statistic == pytest.approx(2 * (large.loglik - small.loglik))
    assert result.df == 3 and result.n_failed == 0
    assert (result.reference < result.statistic).all()
    assert result.p_value == pytest.approx(1 / 41)
    assert list(result.table.index) == ["LRT", "PBtest"]


def test_without_an_effect_it_agrees_with_the_chi_square(interaction):
    """age:urban (chi-square p 0.359): the bootstrap p-value within Monte Carlo error (100
    simulations: SD about 0.05) of it; the same numbers for either order of the fits, for
    two worker processes, and for the same seed again."""
    large, small = interaction
    result = g.pb_test(large, small, nsim=100, seed=7)
    assert result.p_chisq == pytest.approx(0.3589, abs=1e-3)
    assert abs(result.p_value - result.p_chisq) < 0.15
    same = g.pb_test(small, large, nsim=100, seed=7, n_jobs=2)
    np.testing.assert_array_equal(same.reference, result.reference)
    assert same.p_value == result.p_value


def test_each_simulation_is_a_refit_of_both_models(interaction):
    """Simulation i: a response drawn from the small model with the i-th spawned seed, both
    models refitted from their estimates; its ratio is the reference's i-th value."""
    large, small = interaction
    result = g.pb_test(large, small, nsim=3, seed=11)
    child = np.random.SeedSequence(11).spawn(3)[1]
    fit = small.fit_output
    y = simulate_successes(small.model, fit.theta, fit.beta, np.random.default_rng(child))
    logliks = [
        r.method_object.fit(with_response(r.model, y), start=(r.theta, r.params.to_numpy())).loglik
        for r in (small, large)
    ]
    assert result.reference[1] == pytest.approx(2 * (logliks[1] - logliks[0]), abs=1e-8)


def test_refusals(interaction):
    large, small = interaction
    with pytest.raises(ValueError, match="nested"):
        g.pb_test(large, large, nsim=5, seed=1)
    other = quiet_fit("use ~ age + urban + livch + (1 | livch)", "contraception")
    with pytest.raises(ValueError, match="nested"):
        g.pb_test(large, other, nsim=5, seed=1)
    vb = quiet_fit("use ~ age + urban + livch + (1 | district)", "contraception", method="vb")
    with pytest.raises(ValueError, match="maximum-likelihood fits, not method 'vb'"):
        g.pb_test(large, vb, nsim=5, seed=1)
    cbpp = quiet_fit(f"{RESPONSE} ~ period + (1 | herd)", "cbpp")
    with pytest.raises(ValueError, match="different numbers of observations"):
        g.pb_test(large, cbpp, nsim=5, seed=1)
    with pytest.raises(ValueError, match="nsim"):
        g.pb_test(large, small, nsim=0)
    with pytest.raises(ValueError, match="takes two GLMMResult"):
        g.pb_test(large, "small")


def test_a_random_slope_is_tested_too():
    """A variance component (and its correlation) on the boundary under the smaller model,
    where the chi-square is conservative: the reference is simulated, not assumed."""
    large = quiet_fit("use ~ age + urban + livch + (1 + urban | district)", "contraception")
    small = quiet_fit("use ~ age + urban + livch + (1 | district)", "contraception")
    result = g.pb_test(large, small, nsim=20, seed=5)
    assert result.df == 2 and result.statistic == pytest.approx(14.599, abs=1e-2)
    assert result.n_failed == 0 and result.p_value <= 2 / 21
