import numpy as np
import pandas as pd
import pytest
from conftest import CBPP

import glmm_binomial as g


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
