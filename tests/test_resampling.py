import numpy as np
import pandas as pd
import pytest
from conftest import CBPP

import glmm_binomial as g
from glmm_binomial.results.bootstrap import ordered_quantile


@pytest.fixture(scope="module")
def cbpp_fit():
    return g.fit(CBPP, g.datasets.load("cbpp"))


def first_fixed_effect(result):
    return float(result.params.iloc[1])


def fails_on_small_sd(result):
    # A statistic that fails for some replicates: their failures are counted and listed.
    if result.varcorr["std_dev"].iloc[0] < 0.6:
        raise ValueError("small SD")
    return result.varcorr["std_dev"].iloc[0]


def test_simulate_is_seeded_and_uses_the_modes(cbpp_fit):
    a = cbpp_fit.simulate(3, seed=7)
    assert a.shape == (cbpp_fit.nobs, 3)
    np.testing.assert_array_equal(a, cbpp_fit.simulate(3, seed=7))
    assert not np.array_equal(a, cbpp_fit.simulate(3, seed=8))
    trials = cbpp_fit.model.trials
    assert np.all((a >= 0) & (a <= trials[:, None])) and np.all(a == np.round(a))
    # Conditional on the modes, the mean over many draws is the conditional fitted mean.
    many = cbpp_fit.simulate(4000, seed=1, use_u=True)
    expected = trials * cbpp_fit.predict()
    np.testing.assert_allclose(many.mean(axis=1), expected, atol=0.12)
    with pytest.raises(ValueError, match="n must be"):
        cbpp_fit.simulate(0)


def test_refit_to_own_response_reproduces_the_fit(cbpp_fit):
    same = cbpp_fit.refit(cbpp_fit.model.successes)
    assert same.loglik == pytest.approx(cbpp_fit.loglik, abs=1e-8)
    np.testing.assert_allclose(same.params, cbpp_fit.params, atol=1e-5)
    other = cbpp_fit.refit(cbpp_fit.simulate(seed=3)[:, 0])
    direct = g.fit_model(other.model)
    assert other.loglik == pytest.approx(direct.loglik, abs=1e-6)
    np.testing.assert_allclose(other.params, direct.params, atol=1e-4)
    with pytest.raises(ValueError, match="new_response"):
        cbpp_fit.refit(np.ones(3))
    with pytest.raises(ValueError, match="row 0"):
        cbpp_fit.refit(np.full(cbpp_fit.nobs, 1e3))


def test_bootstrap_same_seed_same_output_with_one_and_two_workers(cbpp_fit):
    one = g.bootstrap(cbpp_fit, n_boot=12, seed=5, n_jobs=1)
    two = g.bootstrap(cbpp_fit, n_boot=12, seed=5, n_jobs=2)
    np.testing.assert_array_equal(one.replicates.to_numpy(), two.replicates.to_numpy())
    assert list(one.replicates.columns) == list(cbpp_fit.confint("wald").index)
    table = one.confint(0.9)
    assert (table["lower"] <= table["upper"]).all()
    with pytest.warns(DeprecationWarning, match="conf_level"):
        assert one.confint(level=0.9).equals(table)  # the deprecated name of conf_level
    assert one.confint(conf_level=0.9).equals(table)
    different = g.bootstrap(cbpp_fit, n_boot=12, seed=6)
    assert not np.array_equal(one.replicates.to_numpy(), different.replicates.to_numpy())


def test_bootstrap_with_statistic_and_failures(cbpp_fit):
    boot = g.bootstrap(cbpp_fit, n_boot=8, seed=2, statistic=first_fixed_effect)
    np.testing.assert_allclose(boot.replicates["stat"], boot.replicates["period2"], atol=1e-3)
    assert boot.estimates["stat"] == pytest.approx(cbpp_fit.params.iloc[1])
    failing = g.bootstrap(cbpp_fit, n_boot=10, seed=2, statistic=fails_on_small_sd)
    assert 0 < failing.n_failed < 10
    assert all("small SD" in message for _, message in failing.failures)
    failed_rows = [index for index, _ in failing.failures]
    assert failing.replicates.loc[failed_rows].isna().all().all()
    assert "failed refits" in repr(failing)


def test_confint_boot_entry_point(cbpp_fit):
    table = cbpp_fit.confint("boot", n_boot=10, seed=1)
    assert isinstance(table, pd.DataFrame) and table.shape == (5, 2)
    with pytest.raises(ValueError, match="n_boot"):
        g.bootstrap(cbpp_fit, n_boot=0)


def test_percentile_intervals_order_infinite_replicates_beyond_the_finite_ones():
    replicates = pd.DataFrame(
        {
            "finite": [1.0, 2.0, np.nan, 4.0],
            "to_inf": [1.0, 2.0, 3.0, np.inf],
            "from_minus_inf": [-np.inf, 1.0, 2.0, 3.0],
            "all_inf": [np.inf] * 4,
            "none": [np.nan] * 4,
        }
    )
    upper, lower = ordered_quantile(replicates, 0.975), ordered_quantile(replicates, 0.025)
    # Finite columns as pandas' (linear, type 7); a quantile reaching into +-inf is +-inf.
    assert upper[0] == pytest.approx(replicates["finite"].quantile(0.975))
    assert lower[0] == pytest.approx(replicates["finite"].quantile(0.025))
    assert upper[1] == np.inf and lower[1] == pytest.approx(1.075)
    assert lower[2] == -np.inf and upper[2] == pytest.approx(2.925)
    assert upper[3] == np.inf and lower[3] == np.inf
    assert np.isnan(upper[4]) and np.isnan(lower[4])


def test_bootstrap_of_a_beta_binomial_at_its_limit_reports_phi_inf():
    """Binomial data: the beta-binomial's phi at its limit (inf); the refits that end out
    there are put at the limit too, and phi's percentile interval reaches inf instead of
    NaN (pandas' quantile of inf - inf)."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(25), 12)
    x = rng.normal(size=groups.size)
    trials = rng.integers(2, 8, groups.size)
    eta = -0.3 + 0.6 * x + 0.5 * rng.normal(size=25)[groups]
    y = rng.binomial(trials, 1.0 / (1.0 + np.exp(-eta)))
    data = pd.DataFrame({"y": y, "f": trials - y, "x": x, "g": groups})
    with pytest.warns(g.BoundaryWarning):
        fitted = g.fit("cbind(y, f) ~ x + (1 | g)", data, family="betabinomial")
    boot = g.bootstrap(fitted, n_boot=12, seed=3)
    assert boot.estimates["phi"] == np.inf
    phi = boot.replicates["phi"]
    assert (phi == np.inf).any() and np.isfinite(phi).any()
    interval = boot.confint()
    assert interval.loc["phi", "upper"] == np.inf
    assert np.isfinite(interval.loc["phi", "lower"])
    assert np.isfinite(interval.drop(index="phi").to_numpy()).all()
