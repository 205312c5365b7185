"""method="mcmc" with several grouping factors (methods/mcmc_multi.py): nested and crossed random
intercepts and a correlated term crossed with an intercept against exact posteriors (PyMC NUTS,
tests/reference/posterior_multilevel_*.json), the joint Gaussian draw through the blocked factor
against dense linear algebra, reproducibility and the result it produces."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from _simulate import simulated_model
from conftest import REFERENCE_DIR, load_reference

import glmm_binomial as g
from glmm_binomial.methods import mcmc, mcmc_multi
from glmm_binomial.methods.mcmc import McmcControl
from glmm_binomial.model.data import ModelData, RandomBlock

MEAN_MCSE = 4.0  # means within 4 Monte Carlo SEs (ours and the reference's combined)
SD_RELATIVE = 0.07  # posterior SDs within 7%

CASES = {
    # formula, data file, the reference's SD names -> ours
    "crossed": (
        "y ~ x1 + (1 | a) + (1 | b)",
        "multilevel_crossed.csv",
        {"a": "sd_(Intercept)|a", "b": "sd_(Intercept)|b"},
    ),
    "nested": (
        "y ~ x1 + (1 | region/comm)",
        "multilevel_nested.csv",
        {"region": "sd_(Intercept)|region", "rc": "sd_(Intercept)|comm:region"},
    ),
    "crossed_slope": (
        "y ~ x1 + (1 + x1 | a) + (1 | b)",
        "multilevel_crossed.csv",
        {"a:Intercept": "sd_(Intercept)|a", "a:x1": "sd_x1|a", "b": "sd_(Intercept)|b"},
    ),
}


def load_case(case: str) -> tuple[str, pd.DataFrame, dict[str, dict[str, float]]]:
    formula, filename, sd_names = CASES[case]
    data = pd.read_csv(REFERENCE_DIR / filename)
    for column in ("a", "b", "region", "comm"):
        if column in data:
            data[column] = data[column].astype(str)  # grouping labels
    ref = load_reference(f"posterior_multilevel_{case}")
    rows = {"(Intercept)": ref["fixed_effects"]["Intercept"], "x1": ref["fixed_effects"]["x1"]}
    rows.update({ours: ref["sds"][theirs] for theirs, ours in sd_names.items()})
    if ref["correlations"]:
        rows["cor_x1.(Intercept)|a"] = ref["correlations"]["a:Intercept,x1"]
    return formula, data, rows


@pytest.mark.parametrize("case", sorted(CASES))
def test_posterior_matches_reference(case: str) -> None:
    """Means within 4 combined MCSEs, SDs within 7%, R-hat below 1.01 and bulk ESS above 1,000
    (4 chains x 1,000 draws after 200 warm-up sweeps) for every fixed effect, SD and
    correlation."""
    formula, data, reference = load_case(case)
    result = g.fit(formula, data, method="mcmc", draws=1000, warmup=200, seed=5)
    summary = result.mcmc_summary
    assert set(summary.index) == set(reference)
    for name, ref in reference.items():
        ours = summary.loc[name]
        tolerance = MEAN_MCSE * np.hypot(ours["mcse_mean"], ref["mcse_mean"])
        assert abs(ours["mean"] - ref["mean"]) < tolerance, name
        assert ours["sd"] == pytest.approx(ref["sd"], rel=SD_RELATIVE), name
        assert ours["r_hat"] < 1.01, name
        assert ours["ess_bulk"] > 1000, name
    assert result.converged


def models() -> dict[str, ModelData]:
    """Small models: crossed intercepts, nested intercepts (codes of the inner factor unique),
    crossed terms with a non-intercept column, an offset and binomial trials, and two terms
    of one factor beside a crossed one."""
    crossed = simulated_model(7, n=120, levels=(6, 5), slopes=(False, False))
    base = simulated_model(8, n=90, levels=(12,), slopes=(False,))
    inner = base.blocks[0]
    parent = inner.codes // 4  # 3 parents, each holding 4 inner levels
    nested = dataclasses.replace(
        base,
        blocks=(
            RandomBlock("p", ("(Intercept)",), parent, tuple(range(3)), np.ones((90, 1))),
            inner,
        ),
    )
    rng = np.random.default_rng(9)
    model = simulated_model(10, n=100, levels=(5, 4), slopes=(False, False), trials=3)
    slope = RandomBlock(
        "g1", ("x1",), model.blocks[1].codes, model.blocks[1].levels, model.x[:, 1:2].copy()
    )
    mixed = dataclasses.replace(
        model, blocks=(model.blocks[0], slope), offset=rng.normal(scale=0.3, size=100)
    )
    # Two terms on the first factor ((1 + x1 || g0)) beside a crossed one.
    g0 = crossed.blocks[0]
    g0_slope = RandomBlock("g0", ("x1",), g0.codes, g0.levels, crossed.x[:, 1:2].copy())
    family = dataclasses.replace(crossed, blocks=(g0, g0_slope, crossed.blocks[1]))
    # A correlated term crossed with an intercept, and one beside a term of its own factor.
    slope = simulated_model(11, n=150, levels=(8, 5), slopes=(True, False))
    same = simulated_model(12, n=150, levels=(8,), slopes=(True,))
    g = same.blocks[0]
    same = dataclasses.replace(
        same,
        blocks=(g, RandomBlock("g0", ("x2",), g.codes, g.levels, same.x[:, 2:3].copy())),
    )
    return {
        "crossed": crossed,
        "nested": nested,
        "mixed": mixed,
        "family": family,
        "slope": slope,
        "same_factor": same,
    }


@pytest.mark.parametrize("name", ["crossed", "nested", "mixed", "family", "slope", "same_factor"])
def test_joint_draw_is_the_gaussian_conditional(name: str) -> None:
    """(beta, u) | omega, s: with zero noise the draw is the dense conditional mean, and its
    linear map from the noise has the dense conditional covariance (the inverse of
    [X Z Lambda]' Omega [X Z Lambda] + blockdiag(I / prior_fe_sd^2, I))."""
    model = models()[name]
    rows = mcmc_multi.multi_rows(model)
    assert mcmc_multi.several_factor_terms(model)
    n, p = rows.x.shape
    rng = np.random.default_rng(1)
    omega = rng.uniform(0.05, 0.6, size=n) * rows.trials_float
    # Per term a lower-triangular Lambda_t (k_t x k_t) with distinct entries.
    lambdas = []
    for t, k in enumerate(rows.ks):
        lam = np.tril(rng.uniform(0.3, 0.9, size=(k, k)))
        lam[np.diag_indices(k)] += 0.5 + 0.2 * t
        lambdas.append(lam)
    # Dense Z Lambda in the sorted rows, each term's levels (G_t, k_t) raveled, terms side by
    # side (small test data only).
    pieces = []
    for t in range(rows.n_terms):
        zl = rows.z[t] @ lambdas[t]  # (n, k): row i's values for its level's k columns
        indicator = rows.codes[t][:, None] == np.arange(rows.n_levels[t])
        pieces.append((indicator[:, :, None] * zl[:, None, :]).reshape(n, -1))
    z_lambda = np.concatenate(pieces, axis=1)
    q = z_lambda.shape[1]
    design = np.hstack([rows.x, z_lambda])
    precision = design.T @ (omega[:, None] * design)
    precision[np.arange(p), np.arange(p)] += 1.0 / 2.0**2
    precision[np.arange(p, p + q), np.arange(p, p + q)] += 1.0
    offset = np.zeros(n) if rows.offset is None else rows.offset
    mean = np.linalg.solve(precision, design.T @ (rows.kappa - omega * offset))

    def draw(noise: np.ndarray) -> np.ndarray:
        beta, u = mcmc_multi.draw_effects_one_chain(rows, omega, lambdas, noise, 2.0)
        return np.concatenate([beta, *(ut.ravel() for ut in u)])

    at_zero = draw(np.zeros(p + q))
    np.testing.assert_allclose(at_zero, mean, rtol=1e-9, atol=1e-10)
    # The draw is affine in the noise: its columns T e_i give the covariance T T'.
    columns = np.column_stack([draw(e) - at_zero for e in np.eye(p + q)])
    np.testing.assert_allclose(columns @ columns.T, np.linalg.inv(precision), rtol=1e-8, atol=1e-11)


def test_reproducible_and_independent_chains() -> None:
    model = models()["crossed"]
    control = McmcControl(draws=30, warmup=20, chains=2, seed=4, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", g.ConvergenceWarning)  # few draws
        first = mcmc.fit_mcmc(model, control=control)
        again = mcmc.fit_mcmc(model, control=control)
        two_jobs = mcmc.fit_mcmc(model, control=dataclasses.replace(control, n_jobs=2))
        three = mcmc.fit_mcmc(model, control=dataclasses.replace(control, chains=3))
    assert first.posterior is not None and again.posterior is not None
    assert two_jobs.posterior is not None and three.posterior is not None
    for name, values in first.posterior.draws.items():
        np.testing.assert_array_equal(values, again.posterior.draws[name])
        np.testing.assert_array_equal(values, two_jobs.posterior.draws[name])
        # Chain c's draws do not depend on the chains beside it.
        np.testing.assert_array_equal(values, three.posterior.draws[name][:2])
    np.testing.assert_array_equal(first.ranef[0], two_jobs.ranef[0])


def test_result_of_a_nested_fit() -> None:
    """Names, varcorr, ranef and the formula's two spellings of nesting."""
    formula, data, _ = load_case("nested")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", g.ConvergenceWarning)  # few draws
        result = g.fit(formula, data, method="mcmc", draws=60, warmup=30, seed=2)
        spelled = g.fit(
            "y ~ x1 + (1 | region) + (1 | comm:region)",
            data,
            method="mcmc",
            draws=60,
            warmup=30,
            seed=2,
        )
    draws = result.draws
    sd_names = ["sd_(Intercept)|comm:region", "sd_(Intercept)|region"]
    assert sorted(draws) == sorted(["(Intercept)", "x1", *sd_names])
    assert all(v.shape == (4, 60) for v in draws.values())
    for name in draws:
        np.testing.assert_array_equal(draws[name], spelled.draws[name])
    np.testing.assert_allclose(result.params, [draws[n].mean() for n in result.fixed_names])
    std_dev = result.varcorr.set_index("group")["std_dev"]
    np.testing.assert_allclose(std_dev["region"], draws["sd_(Intercept)|region"].mean())
    np.testing.assert_allclose(std_dev["comm:region"], draws["sd_(Intercept)|comm:region"].mean())
    ranef = result.ranef(condvar=True)
    assert ranef["region"].shape == (5, 2) and ranef["comm:region"].shape == (40, 2)
    assert np.all(ranef["comm:region"]["(Intercept)_sd"] > 0)
    assert "Polya-Gamma Gibbs sampler" in str(result.summary())


def test_slope_result() -> None:
    """A correlated term crossed with another: names, theta from the posterior mean SDs and
    correlation, ranef shapes."""
    model = models()["slope"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", g.ConvergenceWarning)  # few draws
        output = mcmc.fit_mcmc(model, control=McmcControl(draws=40, warmup=20, seed=3))
    assert output.posterior is not None
    draws = output.posterior.draws
    assert list(draws) == [
        "(Intercept)",
        "x1",
        "x2",
        "sd_(Intercept)|g0",
        "sd_x1|g0",
        "sd_(Intercept)|g1",
        "cor_x1.(Intercept)|g0",
    ]
    s0, s1 = draws["sd_(Intercept)|g0"].mean(), draws["sd_x1|g0"].mean()
    r = draws["cor_x1.(Intercept)|g0"].mean()
    # lme4's theta: Lambda = diag(s) chol(R), lower triangle column by column.
    np.testing.assert_allclose(
        output.theta, [s0, s1 * r, s1 * np.sqrt(1 - r * r), draws["sd_(Intercept)|g1"].mean()]
    )
    assert [m.shape for m in output.ranef] == [(8, 2), (5, 1)]
    assert [c.shape for c in output.ranef_cov] == [(8, 2, 2), (5, 1, 1)]
    assert np.all(np.linalg.eigvalsh(output.ranef_cov[0]) > 0)
