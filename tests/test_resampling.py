import numpy as np
import pandas as pd
import pytest
from _simulate import rare_level_frame
from conftest import CBPP

import glmm_binomial as g
from glmm_binomial.results.bootstrap import ordered_quantile
from glmm_binomial.results.simulate import prepare_fast_refit, simulate_successes


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
    # lme4's nsim is n.
    np.testing.assert_array_equal(cbpp_fit.simulate(nsim=3, seed=7), a)
    with pytest.raises(ValueError, match="give n or nsim"):
        cbpp_fit.simulate(2, nsim=3)


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


def test_percentile_intervals_of_columns_without_a_finite_replicate():
    """A coefficient diverging to -inf in every refit (fuzz_workflow 98: a level whose rows
    are all failures) has the interval (-inf, -inf); its clipped quantile used to fall below
    the column's (absent) largest finite replicate and came out +inf. Between -inf and inf
    the quantile interpolates inf - inf: NaN, as R's quantile()."""
    replicates = pd.DataFrame(
        {
            "all_minus_inf": [-np.inf] * 4,
            "both": [-np.inf, -np.inf, np.inf, np.inf],
        }
    )
    upper, lower = ordered_quantile(replicates, 0.975), ordered_quantile(replicates, 0.025)
    assert lower[0] == -np.inf and upper[0] == -np.inf
    assert lower[1] == -np.inf and upper[1] == np.inf
    assert np.isnan(ordered_quantile(replicates, 0.5)[1])


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


@pytest.fixture(scope="module")
def rare_level_fit():
    return g.fit("y ~ x + f + (1 | g)", rare_level_frame())


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_a_separated_replicate_is_kept_at_its_limit(rare_level_fit):
    """f's level c has 4 rows at a probability near 0.2: some simulated responses have them
    all failures, fc has no finite estimate there. Such a replicate was left out (or, where the
    fast refit stopped on the path near fc = -15 short of the screen, kept at that point as if
    it were an estimate); it is now kept with fc at -inf and the rest at the limit, the fit of
    the replicate's mixed rows, so the percentile interval of fc reaches -inf."""
    fit = rare_level_fit
    n_boot = 40
    boot = g.bootstrap(fit, n_boot=n_boot, seed=1)
    assert boot.n_failed == 0 and boot.n_separated >= 3
    assert "separated" in repr(boot)
    fc = boot.replicates["fc"]
    assert (fc[list(boot.separated)] == -np.inf).all()
    assert np.isfinite(fc.drop(index=list(boot.separated))).all()
    assert (fc.drop(index=list(boot.separated)) > -10).all()
    assert boot.confint().loc["fc", "lower"] == -np.inf
    assert np.isfinite(boot.confint().drop(index="fc").to_numpy()).all()
    # One separated replicate against the fit of its own mixed rows.
    r = boot.separated[0]
    plan = prepare_fast_refit(fit)
    child = np.random.SeedSequence(1).spawn(n_boot)[r]
    y = simulate_successes(plan.model, plan.theta, plan.beta, np.random.default_rng(child))
    names = plan.model.fixed_names
    x = plan.model.x
    c = x[:, names.index("fc")] == 1
    assert (y[c] == 0).all()
    mixed_rows = pd.DataFrame(
        {
            "y": y,
            "x": x[:, names.index("x")],
            "f": np.where(x[:, names.index("fb")] == 1, "b", "a"),
            "g": plan.model.blocks[0].codes,
        }
    )[~c]
    mixed = g.fit("y ~ x + f + (1 | g)", mixed_rows)
    kept = boot.replicates.loc[r].drop("fc")
    expected = pd.concat([mixed.varcorr["std_dev"].set_axis(kept.index[:1]), mixed.params])
    np.testing.assert_allclose(kept.to_numpy(), expected.to_numpy(), atol=2e-4)
    # A full refit per replicate (with a statistic) gives the same replicates.
    with_statistic = g.bootstrap(fit, n_boot=12, seed=1, statistic=first_fixed_effect)
    columns = list(boot.replicates.columns)
    np.testing.assert_allclose(
        with_statistic.replicates[columns], boot.replicates.iloc[:12], atol=1e-3
    )
    assert with_statistic.separated == tuple(i for i in boot.separated if i < 12)


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_pb_test_counts_a_separated_refit_at_its_supremum(rare_level_fit):
    """Responses simulated from `y ~ x + (1 | g)` leave f's 4 rows of level c all failures
    now and then: the refit of `y ~ x + f + (1 | g)` is then separated along fc, and its
    log-likelihood at the limit is the supremum the ratio compares (it was a failure)."""
    small = g.fit("y ~ x + (1 | g)", rare_level_frame())
    result = g.pb_test(rare_level_fit, small, nsim=30, seed=4)
    assert result.n_failed == 0 and np.isfinite(result.reference).all()
    separated = 0
    for i, child in enumerate(np.random.SeedSequence(4).spawn(30)):
        fit = small.fit_output
        y = simulate_successes(small.model, fit.theta, fit.beta, np.random.default_rng(child))
        large = rare_level_fit.refit(y)
        if large.diverging:
            separated += 1
            assert large.limit_verified and large.diverging == ["fc"]
            reduced = small.refit(y)
            ratio = 2 * (large.loglik - reduced.loglik)
            assert result.reference[i] == pytest.approx(max(ratio, 0.0), abs=1e-6)
    assert separated >= 2


def test_a_statistic_sees_each_replicate_on_the_fitted_rows():
    """The fast refit simulates on the rows sorted by group; a statistic's full refit took
    those responses on the fitted model's rows, in the data's order: on cbpp shuffled, the
    replicates with a statistic were those of other responses (half of them failed)."""
    shuffled = g.datasets.load("cbpp").sample(frac=1.0, random_state=3).reset_index(drop=True)
    fit = g.fit(CBPP, shuffled)
    plain = g.bootstrap(fit, n_boot=6, seed=2)
    with_statistic = g.bootstrap(fit, n_boot=6, seed=2, statistic=first_fixed_effect)
    assert with_statistic.n_failed == 0
    np.testing.assert_allclose(
        with_statistic.replicates[plain.replicates.columns], plain.replicates, atol=1e-3
    )
    np.testing.assert_allclose(
        with_statistic.replicates["stat"], plain.replicates["period2"], atol=1e-3
    )


@pytest.fixture(scope="module")
def agq_fit():
    return g.fit(CBPP, g.datasets.load("cbpp"), method="agq", n_agq=5)


def test_an_agq_fit_is_bootstrapped_by_agq_refits(agq_fit):
    """lme4's bootMer refits an nAGQ > 1 fit by its own method; so does bootstrap (a full
    refit from the estimates per replicate: the fast refit is the Laplace deviance's)."""
    boot = g.bootstrap(agq_fit, n_boot=5, seed=8)
    assert boot.n_failed == 0
    assert list(boot.replicates.columns) == list(agq_fit.confint("wald").index)
    child = np.random.SeedSequence(8).spawn(5)[3]
    fit = agq_fit.fit_output
    y = simulate_successes(agq_fit.model, fit.theta, fit.beta, np.random.default_rng(child))
    direct = agq_fit.refit(y)
    assert direct.method == "agq" and direct.fit_output.n_agq == 5
    expected = pd.concat([direct.varcorr["std_dev"], direct.params]).to_numpy()
    np.testing.assert_allclose(boot.replicates.loc[3].to_numpy(), expected, atol=1e-8)
    two = g.bootstrap(agq_fit, n_boot=5, seed=8, n_jobs=2)
    np.testing.assert_array_equal(two.replicates.to_numpy(), boot.replicates.to_numpy())
    interval = agq_fit.confint("boot", n_boot=5, seed=8)
    assert np.isfinite(interval.to_numpy()).all()


def test_a_posterior_fit_is_not_bootstrapped():
    vb = g.fit(CBPP, g.datasets.load("cbpp"), method="vb")
    with pytest.raises(ValueError, match="fits a posterior"):
        g.bootstrap(vb, n_boot=3)
