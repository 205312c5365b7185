"""Simulated (DHARMa) residuals: the randomized quantile against a row-by-row definition, the
sampler, the posterior draw, grouping, the tests' definitions, determinism, every method, bad
input, a small calibration, and the plot."""

from __future__ import annotations

import bisect
import dataclasses

import numpy as np
import pandas as pd
import pytest
from _dask_support import rows_on_cluster
from _simulate import simulated_model
from conftest import CBPP
from scipy import stats
from scipy.special import expit

import glmm_binomial as g
from glmm_binomial.methods.laplace import LaplaceObjective, conditional_effects
from glmm_binomial.results.simulated_residuals import (
    MAX_INVERSION_TRIALS,
    SimulatedResiduals,
    draw_by_inversion,
    inversion_table,
    posterior_draw,
    quantile_regression,
    scaled_residuals,
    simulate_residuals,
)

CONTRACEPTION_FORMULA = "use ~ age + urban + livch + (1 | district)"


@pytest.fixture(scope="module")
def cbpp_fit() -> g.GLMMResult:
    return g.fit(CBPP, g.datasets.load("cbpp"))


@pytest.fixture(scope="module")
def contraception_fit() -> g.GLMMResult:
    return g.fit(CONTRACEPTION_FORMULA, g.datasets.load("contraception"))


def brute_force_residuals(
    observed: np.ndarray, simulated: np.ndarray, uniforms: np.ndarray
) -> np.ndarray:
    """The definition, one row at a time: the sorted simulations of the row, bisect for the
    number below and at or below the observed value, the randomized position between."""
    n_sim, n_units = simulated.shape
    out = np.empty(n_units)
    for i in range(n_units):
        column = sorted(float(v) for v in simulated[:, i])
        below = bisect.bisect_left(column, float(observed[i]))
        at_or_below = bisect.bisect_right(column, float(observed[i]))
        out[i] = below / n_sim + uniforms[i] * (at_or_below - below) / n_sim
    return out


# --- the randomized quantile -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float64])
def test_scaled_residuals_equal_the_row_by_row_definition(dtype: type) -> None:
    rng = np.random.default_rng(11)
    n_sim, n_units = 37, 300  # more than one block of simulations, ties everywhere
    simulated = rng.integers(0, 6, size=(n_sim, n_units)).astype(dtype)
    observed = rng.integers(0, 6, size=n_units).astype(np.float64)
    observed[:5] = [0, 5, 0, 5, 3]
    uniforms = rng.random(n_units)
    got = scaled_residuals(observed, simulated, uniforms)
    expected = brute_force_residuals(observed, simulated, uniforms)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


def test_scaled_residuals_with_observed_values_outside_the_simulations() -> None:
    simulated = np.array([[1, 2], [2, 2], [3, 2]], dtype=np.uint8)
    # 300 is beyond uint8: above every simulation; -1 below every one; 2.5 not a whole number.
    for observed in ([300.0, -1.0], [2.5, 2.0]):
        uniforms = np.array([0.3, 0.6])
        got = scaled_residuals(np.array(observed), simulated, uniforms)
        expected = brute_force_residuals(np.array(observed), simulated, uniforms)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


def test_fit_residuals_equal_the_definition(cbpp_fit: g.GLMMResult) -> None:
    for re in ("posterior", "conditional", "unconditional"):
        res = simulate_residuals(cbpp_fit, n_sim=50, seed=3, re=re)
        expected = brute_force_residuals(res.observed, res.simulated_successes, res.randomization)
        np.testing.assert_allclose(res.residuals, expected, rtol=0, atol=1e-15)
        assert res.simulated.shape == (cbpp_fit.nobs, 50)
        assert np.all((res.residuals >= 0) & (res.residuals <= 1))
        assert np.all(res.simulated_successes <= res.trials[None, :])


# --- the sampler -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trials", "mu"),
    [(1, 0.3), (1, 0.9), (5, 0.2), (5, 0.7), (16, 0.5), (16, 0.97), (3, 0.0), (3, 1.0)],
)
def test_inversion_draws_are_binomial(trials: int, mu: float) -> None:
    rng = np.random.default_rng(5)
    n = 100_000
    m = np.full(n, trials)
    cdf, flip = inversion_table(np.full(n, mu), m)
    x = draw_by_inversion(cdf, flip, m, rng.random(n))
    counts = np.bincount(x, minlength=trials + 1)
    expected = stats.binom.pmf(np.arange(trials + 1), trials, mu) * n
    if mu in (0.0, 1.0):
        np.testing.assert_array_equal(counts, expected)
        return
    enough = expected > 5  # pool the sparse tail into the test's degrees of freedom
    observed = np.r_[counts[enough], counts[~enough].sum()]
    wanted = np.r_[expected[enough], expected[~enough].sum()]
    keep = wanted > 0
    assert stats.chisquare(observed[keep], wanted[keep] * n / wanted[keep].sum()).pvalue > 1e-3


def test_simulations_have_the_fitted_means(cbpp_fit: g.GLMMResult) -> None:
    """Conditional simulations average m * fitted (modes included), row by row; the rows with
    more trials than MAX_INVERSION_TRIALS (Generator.binomial) too."""
    res = simulate_residuals(cbpp_fit, n_sim=4000, seed=8, re="conditional")
    m = res.trials
    assert np.any(m > MAX_INVERSION_TRIALS) and np.any(m <= MAX_INVERSION_TRIALS)
    p = cbpp_fit.fitted()
    mean = res.simulated_successes.mean(axis=0)
    standard_error = np.sqrt(m * p * (1 - p) / 4000)
    assert np.max(np.abs(mean - m * p) / standard_error) < 4.5


def test_unconditional_simulations_vary_the_group_effects(cbpp_fit: g.GLMMResult) -> None:
    """With new random effects per simulation the herd totals vary more than binomially."""
    res = simulate_residuals(cbpp_fit, n_sim=2000, seed=9, re="unconditional")
    conditional = simulate_residuals(cbpp_fit, n_sim=2000, seed=9, re="conditional")
    codes = cbpp_fit.model.blocks[0].codes
    totals = np.stack([np.bincount(codes, weights=s) for s in res.simulated_successes])
    fixed_totals = np.stack(
        [np.bincount(codes, weights=s) for s in conditional.simulated_successes]
    )
    assert np.all(totals.var(axis=0) > 1.5 * fixed_totals.var(axis=0))
    assert res.random_effects is None
    assert conditional.random_effects is cbpp_fit.fit_output.ranef


# --- the posterior draw -----------------------------------------------------------------------


def test_posterior_draw_has_the_exact_posterior_moments() -> None:
    """Many draws of a random intercept, against p(b_j | y) by quadrature on a fine grid for
    small Bernoulli groups with a large SD (where the Gaussian approximation is visibly off)."""
    n_levels, rows = 6, 4
    codes = np.repeat(np.arange(n_levels), rows)
    y = np.array([1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0], float)
    n = n_levels * rows
    model = g.ModelData(
        y,
        np.ones(n),
        np.ones((n, 1)),
        np.zeros(n),
        ("(Intercept)",),
        (g.RandomBlock("g", ("(Intercept)",), codes, tuple(range(n_levels)), np.ones((n, 1))),),
    )
    theta, beta = np.array([2.0]), np.array([0.2])
    objective = LaplaceObjective(model)
    modes, covs = conditional_effects(objective, objective.mode(theta, beta), theta)
    draws = np.array(
        [
            posterior_draw(model, theta, beta, modes, covs, np.random.default_rng(s))[0][0][:, 0]
            for s in range(2000)
        ]
    )
    grid = np.linspace(-15, 15, 6001)
    sd = theta[0]
    exact_mean, exact_var = [], []
    for j in range(n_levels):
        yj = y[codes == j]
        eta = beta[0] + grid[:, None]
        loglik = (yj * eta - np.logaddexp(0.0, eta)).sum(axis=1) - 0.5 * (grid / sd) ** 2
        weight = np.exp(loglik - loglik.max())
        weight /= weight.sum()
        exact_mean.append(float(np.sum(weight * grid)))
        exact_var.append(float(np.sum(weight * grid**2)) - exact_mean[-1] ** 2)
    mean, var = draws.mean(axis=0), draws.var(axis=0)
    standard_error = np.sqrt(np.array(exact_var) / len(draws))
    assert np.all(np.abs(mean - exact_mean) < 4.5 * standard_error + 1e-3)
    np.testing.assert_allclose(var, exact_var, rtol=0.12)
    # The Gaussian start alone is further off for these groups (the refinement matters).
    gaussian = modes[0][:, 0]
    assert np.max(np.abs(gaussian - np.array(exact_mean))) > 0.05


def test_posterior_draw_keeps_a_singular_block_at_its_mode() -> None:
    model = simulated_model(4, n=200, levels=(10,))
    result = g.fit_model(model)
    fit = result.fit_output
    zero = np.zeros_like(fit.theta)
    draws, rate = posterior_draw(
        model,
        zero,
        fit.beta,
        (np.zeros_like(fit.ranef[0]),),
        (np.zeros_like(fit.ranef_cov[0]),),
        np.random.default_rng(0),
    )
    np.testing.assert_array_equal(draws[0], 0.0)
    assert np.isnan(rate)


# --- grouping ----------------------------------------------------------------------------------


def test_grouped_residuals_sum_responses_and_simulations(cbpp_fit: g.GLMMResult) -> None:
    res = simulate_residuals(cbpp_fit, n_sim=60, seed=4)
    grouped = simulate_residuals(cbpp_fit, n_sim=60, seed=4, by="herd")
    assert grouped.by == "herd" and grouped.n_units == 15
    codes = cbpp_fit.model.blocks[0].codes
    np.testing.assert_array_equal(grouped.observed, np.bincount(codes, weights=res.observed))
    np.testing.assert_array_equal(grouped.trials, np.bincount(codes, weights=res.trials))
    sums = np.stack([np.bincount(codes, weights=s) for s in res.simulated_successes])
    np.testing.assert_array_equal(grouped.simulated_successes, sums)
    expected = np.bincount(codes, weights=res.trials * res.fitted) / grouped.trials
    np.testing.assert_allclose(grouped.fitted, expected, rtol=1e-14)
    np.testing.assert_allclose(grouped.centre, np.bincount(codes, weights=res.centre), rtol=1e-14)
    np.testing.assert_allclose(
        grouped.residuals,
        brute_force_residuals(grouped.observed, sums, grouped.randomization),
        atol=1e-15,
    )
    assert list(grouped.table().index) == list(cbpp_fit.ranef()["herd"].index)
    # The same groups given as one label per row, in the same order: the same residuals.
    by_codes = res.grouped(codes)
    np.testing.assert_array_equal(by_codes.residuals, grouped.residuals)
    # Labels are sorted ("1", "10", "11", ... as text): the same sums under each label.
    labels = g.datasets.load("cbpp")["herd"].astype(str).to_numpy()
    by_labels = res.grouped(pd.Series(labels, name="herd"))
    assert by_labels.by == "herd" and list(by_labels.labels[:3]) == ["1", "10", "11"]
    table = by_labels.table()
    np.testing.assert_array_equal(
        table.loc[list(grouped.labels), "observed"].to_numpy(), grouped.observed
    )
    with pytest.raises(ValueError, match="grouped already"):
        grouped.grouped("herd")


def test_bad_grouping_is_refused(cbpp_fit: g.GLMMResult) -> None:
    with pytest.raises(ValueError, match="grouping factor of the model \\('herd'\\)"):
        simulate_residuals(cbpp_fit, n_sim=10, seed=1, by="period")
    with pytest.raises(ValueError, match="one label per row of the fit \\(56\\)"):
        simulate_residuals(cbpp_fit, n_sim=10, seed=1, by=[1, 2, 3])
    labels = np.array(["a"] * 56, dtype=object)
    labels[7] = None
    with pytest.raises(ValueError, match="missing label in row 7"):
        simulate_residuals(cbpp_fit, n_sim=10, seed=1, by=labels)


# --- the tests' definitions --------------------------------------------------------------------


def test_dispersion_test_is_dharma_definition(cbpp_fit: g.GLMMResult) -> None:
    res = simulate_residuals(cbpp_fit, n_sim=200, seed=12)
    # re="posterior": centred on the expected successes given the drawn effects.
    eta = cbpp_fit.model.x @ cbpp_fit.fit_output.beta
    codes = cbpp_fit.model.blocks[0].codes
    assert res.random_effects is not None
    expected = res.trials * expit(eta + res.random_effects[0][codes, 0])
    np.testing.assert_allclose(res.centre, expected, rtol=1e-13)
    observed = np.var(res.observed - expected, ddof=1)
    simulated = np.array([np.var(s - expected, ddof=1) for s in res.simulated_successes])
    test = res.test_dispersion()
    assert test.statistic == pytest.approx(observed / simulated.mean(), rel=1e-12)
    two_sided = min(1.0, 2 * min(np.mean(simulated <= observed), np.mean(simulated >= observed)))
    assert test.p_value == pytest.approx(two_sided)
    assert res.test_dispersion("greater").p_value == pytest.approx(np.mean(simulated >= observed))
    assert res.test_dispersion("less").p_value == pytest.approx(np.mean(simulated <= observed))
    assert test.simulated is not None
    np.testing.assert_allclose(test.simulated, simulated / simulated.mean(), rtol=1e-12)
    # DHARMa's centre (m * fitted, fixed effects alone) for the modes' simulations.
    conditional = simulate_residuals(cbpp_fit, n_sim=200, seed=12, re="conditional")
    assert conditional.centre is None
    expected = conditional.trials * conditional.fitted
    observed = np.var(conditional.observed - expected, ddof=1)
    simulated = np.var(conditional.simulated_successes - expected, axis=1, ddof=1)
    statistic = conditional.test_dispersion().statistic
    assert statistic == pytest.approx(observed / simulated.mean(), rel=1e-12)


def test_uniformity_and_outlier_tests(contraception_fit: g.GLMMResult) -> None:
    res = simulate_residuals(contraception_fit, n_sim=100, seed=13)
    ks = stats.kstest(res.residuals, "uniform")
    test = res.test_uniformity()
    assert (test.statistic, test.p_value) == (ks.statistic, ks.pvalue)
    edge = 1 / 101
    count = int(np.sum(res.residuals < edge) + np.sum(res.residuals > 1 - edge))
    outliers = res.test_outliers()
    assert outliers.statistic == count
    assert outliers.p_value == pytest.approx(stats.binomtest(count, 1934, 2 * edge).pvalue)
    with pytest.raises(ValueError, match="alternative must be one of"):
        res.test_outliers("both")
    text = str(res)
    assert "1934 rows" in text and "uniformity" in text and "dispersion" in text


def test_overdispersed_data_are_flagged() -> None:
    """Beta-binomial counts (phi = 2) fitted as binomial: dispersion ratio well above 1."""
    rng = np.random.default_rng(21)
    groups, rows = 30, 15
    codes = np.repeat(np.arange(groups), rows)
    x = rng.normal(size=groups * rows)
    mu = expit(-0.3 + 0.5 * x + rng.normal(scale=0.7, size=groups)[codes])
    y = rng.binomial(10, rng.beta(mu * 2, (1 - mu) * 2))
    data = pd.DataFrame({"y": y, "x": x, "g": codes})
    result = g.fit("cbind(y, 10 - y) ~ x + (1 | g)", data)
    res = simulate_residuals(result, n_sim=250, seed=1)
    dispersion = res.test_dispersion()
    assert dispersion.statistic > 1.5 and dispersion.p_value < 0.01
    assert res.test_uniformity().p_value < 0.01


# --- a small calibration (the full one: bench/bench_residuals_calibration.py) ------------------


def _calibration_set(rng: np.random.Generator, phi: float | None) -> pd.DataFrame:
    groups, rows = 40, 20
    codes = np.repeat(np.arange(groups), rows)
    x = rng.normal(size=groups * rows)
    mu = expit(-0.5 + 0.5 * x + rng.normal(scale=0.8, size=groups)[codes])
    p = mu if phi is None else rng.beta(mu * phi, (1 - mu) * phi)
    return pd.DataFrame({"y": rng.binomial(10, p), "x": x, "g": codes})


def test_small_calibration() -> None:
    """30 correct and 30 overdispersed (phi = 3) sets: the uniformity and dispersion tests
    reject a correct model rarely and with p-values spread over (0, 1); the overdispersed
    ones nearly always. Residuals without the randomization, or simulated at the modes,
    fail the first part (their p-values bunch near 1)."""
    streams = np.random.SeedSequence(2026).spawn(60)
    uniformity, dispersion, overdispersed = [], [], []
    for s, stream in enumerate(streams):
        rng = np.random.default_rng(stream)
        phi = None if s < 30 else 3.0
        result = g.fit("cbind(y, 10 - y) ~ x + (1 | g)", _calibration_set(rng, phi))
        res = simulate_residuals(result, n_sim=200, seed=s)
        if phi is None:
            uniformity.append(res.test_uniformity().p_value)
            dispersion.append(res.test_dispersion().p_value)
        else:
            overdispersed.append(res.test_dispersion().p_value)
    uniformity_p, dispersion_p = np.array(uniformity), np.array(dispersion)
    assert np.sum(uniformity_p < 0.05) <= 5 and np.sum(dispersion_p < 0.05) <= 5
    assert stats.kstest(uniformity_p, "uniform").pvalue > 0.01
    assert stats.kstest(dispersion_p, "uniform").pvalue > 0.01
    assert np.sum(np.array(overdispersed) < 0.05) >= 27


# --- determinism, methods, inputs --------------------------------------------------------------


def test_same_seed_same_residuals_bit_for_bit(contraception_fit: g.GLMMResult) -> None:
    for re in ("posterior", "conditional", "unconditional"):
        a = simulate_residuals(contraception_fit, n_sim=30, seed=77, re=re, by="district")
        b = simulate_residuals(contraception_fit, n_sim=30, seed=77, re=re, by="district")
        assert a.residuals.tobytes() == b.residuals.tobytes()
        assert a.simulated_successes.tobytes() == b.simulated_successes.tobytes()
    c = simulate_residuals(contraception_fit, n_sim=30, seed=78)
    assert not np.array_equal(c.residuals, a.residuals)
    sequence = np.random.SeedSequence(77)
    d = simulate_residuals(contraception_fit, n_sim=30, seed=sequence, re="unconditional")
    assert (
        d.residuals.tobytes()
        == simulate_residuals(
            contraception_fit, n_sim=30, seed=77, re="unconditional"
        ).residuals.tobytes()
    )


def test_nothing_passed_in_is_modified(cbpp_fit: g.GLMMResult) -> None:
    model = cbpp_fit.model
    before = [model.successes.copy(), model.trials.copy(), model.x.copy()]
    modes = [m.copy() for m in cbpp_fit.fit_output.ranef]
    labels = np.array(g.datasets.load("cbpp")["herd"])
    labels_before = labels.copy()
    simulate_residuals(cbpp_fit, n_sim=20, seed=1, by=labels)
    for a, b in zip(before, [model.successes, model.trials, model.x], strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(modes, cbpp_fit.fit_output.ranef, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(labels, labels_before)
    res = simulate_residuals(cbpp_fit, n_sim=20, seed=1)
    with pytest.raises(ValueError, match="read-only"):
        res.residuals[0] = 0.5
    with pytest.raises(ValueError, match="read-only"):
        res.simulated[0, 0] = 1
    assert cbpp_fit.fit_output.ranef[0].flags.writeable


@pytest.mark.parametrize(("method", "n_agq"), [("laplace", 1), ("agq", 9), ("vb", 1)])
def test_every_method(method: str, n_agq: int) -> None:
    result = g.fit(CBPP, g.datasets.load("cbpp"), method=method, n_agq=n_agq)
    res = simulate_residuals(result, n_sim=40, seed=2)
    assert res.residuals.shape == (56,)
    assert np.all(np.isfinite(res.residuals))
    if method == "vb":
        assert "posterior means" in res.note and "not from posterior draws" in res.note
    else:
        assert "maximum-likelihood" in res.note
    assert res.note in str(res)


def test_model_without_formula() -> None:
    """The spreadsheet path (design None): only the model is needed."""
    model = simulated_model(6, n=300, levels=(15,), slopes=(True,), trials=3)
    result = g.fit_model(model)
    assert result.design is None
    res = simulate_residuals(result, n_sim=50, seed=1, by="g0")
    assert res.n_units == 15
    assert isinstance(res, SimulatedResiduals)


def test_dask_result_is_refused(cbpp_fit: g.GLMMResult) -> None:
    result = rows_on_cluster(cbpp_fit)
    with pytest.raises(ValueError, match=r"stay on the Dask cluster.*ddf\.compute\(\)"):
        simulate_residuals(result, seed=1)


def test_bad_input(cbpp_fit: g.GLMMResult) -> None:
    with pytest.raises(ValueError, match="n_sim must be an integer of at least 2"):
        simulate_residuals(cbpp_fit, n_sim=1)
    with pytest.raises(ValueError, match="n_sim must be an integer"):
        simulate_residuals(cbpp_fit, n_sim=True)
    with pytest.raises(ValueError, match="re must be one of 'posterior', 'conditional'"):
        simulate_residuals(cbpp_fit, re="marginal")
    with pytest.raises(ValueError, match="seed must be None, a non-negative integer"):
        simulate_residuals(cbpp_fit, seed=1.5)
    with pytest.raises(ValueError, match="needs a fit"):
        simulate_residuals("model")  # type: ignore[arg-type]
    model = dataclasses.replace(
        cbpp_fit.model,
        successes=cbpp_fit.model.successes / 2,
        trials=cbpp_fit.model.trials / 2,
        log_binomial_constant=0.0,
    )
    halves = g.GLMMResult(model, cbpp_fit.fit_output)
    with pytest.raises(ValueError, match="whole numbers of trials"):
        simulate_residuals(halves, seed=1)


# --- quantile regression and the plot ----------------------------------------------------------


def _check_loss(residual: np.ndarray, q: float) -> float:
    return float(np.sum(np.where(residual >= 0, q * residual, (q - 1) * residual)))


def test_quantile_regression_minimizes_the_check_loss() -> None:
    """The LP's fit has the least check loss: no smaller than statsmodels' QuantReg on the same
    B-spline basis, and exact sample quantiles per value when x has few values."""
    from scipy.interpolate import BSpline
    from statsmodels.regression.quantile_regression import QuantReg

    rng = np.random.default_rng(1)
    x = np.sort(rng.random(400))
    y = np.clip(0.3 + 0.4 * x**2 + 0.2 * rng.standard_normal(400), 0, 1)
    knots = np.r_[np.zeros(4), [0.25, 0.5, 0.75], np.ones(4)]
    basis = BSpline.design_matrix(x, knots, 3).toarray()
    for q in (0.25, 0.5, 0.75):
        ours = quantile_regression(x, y, q, x)
        assert ours is not None
        theirs = QuantReg(y, basis).fit(q=q, max_iter=5000).fittedvalues
        assert _check_loss(y - ours, q) <= _check_loss(y - theirs, q) + 1e-9
        assert _check_loss(y - ours, q) == pytest.approx(_check_loss(y - theirs, q), rel=1e-4)
    values = np.repeat([0.2, 0.6, 1.0], 101)
    y = rng.random(len(values))
    got = quantile_regression(values, y, 0.25, np.array([0.2, 0.6, 1.0]))
    expected = [np.sort(y[values == v])[25] for v in (0.2, 0.6, 1.0)]
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_plot_renders_to_png(cbpp_fit: g.GLMMResult, tmp_path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = simulate_residuals(cbpp_fit, n_sim=100, seed=1)
    fig = res.plot()
    path = tmp_path / "residuals.png"
    fig.savefig(path)
    plt.close(fig)
    assert path.stat().st_size > 10_000
    qq, scatter = fig.axes
    assert qq.get_title() and scatter.get_title()
    assert qq.get_xlabel() and qq.get_ylabel() and scatter.get_xlabel() and scatter.get_ylabel()
    assert any("uniformity" in t.get_text() for t in qq.texts)
    assert any("dispersion" in t.get_text() for t in qq.texts)
    assert len(scatter.get_lines()) >= 6  # three expected levels, three quantile curves
