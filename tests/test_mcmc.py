"""method="mcmc": the Polya-Gamma Gibbs sampler against exact posteriors (PyMC NUTS, stored in
tests/reference/posterior_*.json), its pieces against dense linear algebra and the LKJ prior,
reproducibility, and the result it produces."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from _simulate import simulated_model
from conftest import load_reference
from scipy import stats

import glmm_binomial as g
from glmm_binomial import datasets
from glmm_binomial.methods import mcmc, mcmc_multi
from glmm_binomial.methods.mcmc import Mcmc, McmcControl
from glmm_binomial.methods.polya_gamma import ChainStreams
from glmm_binomial.methods.registry import make_method, method_class
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.model.design import build_model

CASES = {
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp"),
    "contraception": ("use ~ age + urban + livch + (1 | district)", "contraception"),
    "contraception_slope": (
        "use ~ age + urban + livch + (1 + urban | district)",
        "contraception",
    ),
}
# The references' names (patsy) -> ours (R's).
FIXED_NAMES = {
    "Intercept": "(Intercept)",
    "C(period)[T.2]": "period2",
    "C(period)[T.3]": "period3",
    "C(period)[T.4]": "period4",
    "urban[T.Y]": "urbanY",
    "livch[T.1]": "livch1",
    "livch[T.2]": "livch2",
    "livch[T.3+]": "livch3+",
    "age": "age",
}
MEAN_MCSE = 4.0  # means within 4 Monte Carlo SEs (ours and the reference's combined)
SD_RELATIVE = 0.07  # posterior SDs within 7%


def reference_rows(case: str) -> dict[str, dict[str, float]]:
    """The reference's summaries under our parameter names."""
    ref = load_reference(f"posterior_{case}")
    out = {FIXED_NAMES[name]: values for name, values in ref["fixed_effects"].items()}
    for name, values in ref["sds"].items():
        group, _, term = name.partition(":")
        term = {"Intercept": "(Intercept)", "urban[T.Y]": "urbanY"}.get(term, term)
        out[f"sd_{term or '(Intercept)'}|{group}"] = values
    for values in ref["correlations"].values():
        out["cor_urbanY.(Intercept)|district"] = values
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_posterior_matches_reference(case: str) -> None:
    """Means within 4 combined MCSEs and SDs within 7% of the exact posterior, for every fixed
    effect, SD and correlation. 1,500 draws per chain after 300 warm-up sweeps give bulk ESS
    of 1,300 or more (SD errors of 2% or less)."""
    formula, data = CASES[case]
    result = g.fit(formula, datasets.load(data), method="mcmc", draws=1500, warmup=300, seed=11)
    summary = result.mcmc_summary
    reference = reference_rows(case)
    assert set(summary.index) == set(reference)
    for name, ref in reference.items():
        ours = summary.loc[name]
        tolerance = MEAN_MCSE * np.hypot(ours["mcse_mean"], ref["mcse_mean"])
        assert abs(ours["mean"] - ref["mean"]) < tolerance, name
        assert ours["sd"] == pytest.approx(ref["sd"], rel=SD_RELATIVE), name
        assert ours["r_hat"] < 1.01, name
    assert result.converged


@pytest.fixture(scope="module")
def small_fit() -> g.GLMMResult:
    formula, data = CASES["cbpp"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", g.ConvergenceWarning)  # few draws: low ESS
        return g.fit(formula, datasets.load(data), method="mcmc", draws=200, warmup=100, seed=3)


def test_result_is_a_posterior(small_fit: g.GLMMResult) -> None:
    result = small_fit
    draws = result.draws
    assert list(draws) == [*result.fixed_names, "sd_(Intercept)|herd"]
    assert all(v.shape == (4, 200) for v in draws.values())
    np.testing.assert_allclose(result.params, [draws[n].mean() for n in result.fixed_names])
    np.testing.assert_allclose(result.bse, [draws[n].std(ddof=1) for n in result.fixed_names])
    np.testing.assert_allclose(result.varcorr["std_dev"], [draws["sd_(Intercept)|herd"].mean()])
    assert list(result.mcmc_summary.columns) == [
        "mean",
        "sd",
        "mcse_mean",
        "ess_bulk",
        "ess_tail",
        "r_hat",
    ]
    text = str(result.summary())
    assert "Polya-Gamma Gibbs sampler (posterior means)" in text
    assert "equal-tailed posterior quantiles" in text and "Post.SD" in text
    interval = result.confint()  # credible intervals: quantiles of the draws
    period2 = np.quantile(draws["period2"], [0.025, 0.975])
    np.testing.assert_allclose(interval.loc["period2"], period2)
    np.testing.assert_allclose(
        result.fixed_effects.loc["period2", ["ci_lower", "ci_upper"]], period2
    )
    assert result.loglik_method == mcmc.LOGLIK_LABEL
    assert result.opt_summary.tolerances["rhat_threshold"] == 0.01 * 101
    ranef = result.ranef(condvar=True)["herd"]
    assert ranef.shape == (15, 2) and np.all(ranef["(Intercept)_sd"] > 0)
    with pytest.raises(ValueError, match="maximum-likelihood"):
        g.anova(result, result)


def test_inference_data(small_fit: g.GLMMResult) -> None:
    pytest.importorskip("arviz")
    idata = small_fit.to_inference_data()
    assert idata.posterior["period2"].shape == (4, 200)


def test_other_methods_have_no_draws() -> None:
    formula, data = CASES["cbpp"]
    result = g.fit(formula, datasets.load(data))
    assert result.posterior is None
    with pytest.raises(AttributeError, match="no posterior draws"):
        _ = result.draws


def test_correlated_term_result() -> None:
    model = simulated_model(4, n=300, levels=(12,), slopes=(True,))
    output = mcmc.fit_mcmc(model, control=McmcControl(draws=100, warmup=50, seed=2))
    assert output.posterior is not None
    draws = output.posterior.draws
    corr = draws["cor_x1.(Intercept)|g0"]
    assert np.all(np.abs(corr) < 1.0)
    # theta in lme4's layout reproduces the posterior mean SDs and correlation exactly.
    lam = model.blocks[0].lambda_matrix(output.theta)
    cov = lam @ lam.T
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(sd, [draws["sd_(Intercept)|g0"].mean(), draws["sd_x1|g0"].mean()])
    np.testing.assert_allclose(cov[1, 0] / (sd[0] * sd[1]), corr.mean())


# --- the method object ------------------------------------------------------------------


def test_registered_method_object() -> None:
    assert method_class("mcmc") is Mcmc
    assert Mcmc.posterior and Mcmc.name == "mcmc"
    made = make_method("mcmc", draws=50, warmup=20, chains=2, seed=3, prior_fe_sd=3.0)
    assert made == Mcmc(3.0, 1.0, McmcControl(draws=50, warmup=20, chains=2, seed=3))
    # The keywords override those fields of a control given beside them.
    base = McmcControl(draws=10, thin=2, seed=1)
    assert make_method("mcmc", control=base, seed=4).control == dataclasses.replace(base, seed=4)
    assert made.tolerances["prior_fe_sd"] == 3.0 and made.tolerances["draws"] == 50.0
    assert made.title == "MCMC, Polya-Gamma Gibbs sampler (posterior means)"
    with pytest.raises(ValueError, match="starts from its own random starts"):
        made.fit(simulated_model(1, n=50, levels=(5,)), start=(np.ones(1), np.zeros(2)))


def test_name_object_and_options_give_the_same_draws() -> None:
    formula, data = CASES["cbpp"]
    frame = datasets.load(data)
    control = McmcControl(draws=30, warmup=20, chains=2, seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", g.ConvergenceWarning)  # few draws: low ESS
        by_name = g.fit(formula, frame, method="mcmc", draws=30, warmup=20, chains=2, seed=9)
        by_object = g.fit(formula, frame, method=Mcmc(control=control))
        again = g.fit(formula, frame, method="mcmc", control=control)
    for other in (by_object, again):
        assert other.method_object == by_name.method_object
        for name, values in by_name.draws.items():
            assert np.array_equal(values, other.draws[name]), name
        assert other.loglik == by_name.loglik
    assert by_name.opt_summary.tolerances["seed"] == "9"
    with pytest.raises(ValueError, match="maximum-likelihood fits"):
        by_name.refit(by_name.model.successes)


# --- independent terms of one factor ------------------------------------------------------


def independent_model(seed: int, k: int = 2) -> ModelData:
    """(1 | g0) + (0 + x1 | g0) [+ (0 + x2 | g0)]: one-column terms of one factor."""
    model = simulated_model(seed, n=240, levels=(9,), slopes=(False,), trials=2)
    first = model.blocks[0]
    blocks = [first]
    for j in range(1, k):
        blocks.append(
            RandomBlock(first.group, (f"x{j}",), first.codes, first.levels, model.x[:, j : j + 1])
        )
    return dataclasses.replace(model, blocks=tuple(blocks))


def test_independent_terms_are_one_block_without_correlations() -> None:
    model = independent_model(3)
    assert mcmc_multi.independent_terms_of_one_factor(model)
    block, correlated = mcmc.sampled_block(model)
    assert not correlated and block.terms == ("(Intercept)", "x1")
    output = mcmc.fit_mcmc(model, control=McmcControl(draws=60, warmup=40, seed=2))
    assert output.posterior is not None
    draws = output.posterior.draws
    assert [n for n in draws if not n.startswith("x") and n != "(Intercept)"] == [
        "sd_(Intercept)|g0",
        "sd_x1|g0",
    ]
    # theta: one SD per one-column term, the posterior mean SDs; ranef split per term.
    np.testing.assert_allclose(
        output.theta, [draws["sd_(Intercept)|g0"].mean(), draws["sd_x1|g0"].mean()]
    )
    assert [r.shape for r in output.ranef] == [(9, 1), (9, 1)]
    assert [c.shape for c in output.ranef_cov] == [(9, 1, 1), (9, 1, 1)]
    # Blocks of different factors, or repeated names, are not independent components.
    moved = dataclasses.replace(
        model, blocks=(model.blocks[0], dataclasses.replace(model.blocks[1], group="h"))
    )
    assert not mcmc_multi.independent_terms_of_one_factor(moved)


@pytest.mark.parametrize("k", [2, 3])
def test_independent_phi_density_matches_dense(k: int) -> None:
    """Independent components: log p(phi | omega, beta) (b integrated out; the k = 2 closed
    form with r = 0, the batched path for k = 3) and log p(phi | omega) (beta integrated out
    too) differ between points as the dense Gaussian integrals do, with Sigma = diag(s^2)."""
    model = with_offset_and_unused_level(independent_model(6, k))
    rows = mcmc.sorted_rows(model)
    assert not rows.correlated and rows.k == k
    p, n_levels = rows.p, rows.n_levels
    omega = np.random.default_rng(3).uniform(0.05, 0.5, size=(1, model.n_obs))
    beta = np.array([[-0.2, 0.4, 0.3]])
    sums = mcmc.sweep_sums(rows, omega, prior_fe_sd=2.0)
    residual = sums.r_b - np.einsum("cgkp,cp->cgk", sums.b_t.reshape(1, n_levels, k, p), beta)
    phis = np.random.default_rng(4).normal(scale=0.6, size=(1, 5, k))
    ours = mcmc.phi_log_density(sums, residual, phis, k, 1.0, 2.0, correlated=False)[0]
    collapsed = mcmc.conditional(sums, phis, k, 1.0, 2.0, correlated=False).log_density[0]

    w = omega[0]
    zd = np.zeros((model.n_obs, n_levels * k))
    for c in range(k):
        zd[np.arange(model.n_obs), rows.codes * k + c] = rows.z[:, c]
    offset = np.linspace(-0.5, 0.5, model.n_obs)[np.argsort(model.blocks[0].codes, kind="stable")]
    h = zd.T @ (rows.kappa - w * (rows.x @ beta[0] + offset))
    design = np.hstack([rows.x, zd])
    h_joint = design.T @ (rows.kappa - w * offset)
    dense, dense_joint = [], []
    for i in range(phis.shape[1]):
        log_sd = phis[0, i]
        prior = -0.5 * np.sum(log_sd**2)
        sigma_inv = np.diag(np.exp(-2.0 * log_sd))
        log_det = 2.0 * np.sum(log_sd)
        q = zd.T @ (w[:, None] * zd) + np.kron(np.eye(n_levels), sigma_inv)
        dense.append(
            prior
            - 0.5 * n_levels * log_det
            - 0.5 * np.linalg.slogdet(q)[1]
            + 0.5 * h @ np.linalg.solve(q, h)
        )
        precision = np.zeros((p + n_levels * k, p + n_levels * k))
        precision[:p, :p] = np.eye(p) / 4.0
        precision[p:, p:] = np.kron(np.eye(n_levels), sigma_inv)
        q_joint = design.T @ (w[:, None] * design) + precision
        dense_joint.append(
            prior
            - 0.5 * n_levels * log_det
            - 0.5 * np.linalg.slogdet(q_joint)[1]
            + 0.5 * h_joint @ np.linalg.solve(q_joint, h_joint)
        )
    np.testing.assert_allclose(ours - ours[0], np.array(dense) - dense[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        collapsed - collapsed[0], np.array(dense_joint) - dense_joint[0], rtol=1e-9, atol=1e-9
    )


def test_independent_terms_match_structured_vb() -> None:
    """(1 + urbanY || district) on contraception: posterior means and SDs of the fixed effects
    and of the two SDs close to structured vb's (whose fixed-effect SDs are within 10% of the
    exact posterior's on these data; a loose check of the whole path, not a reference)."""
    data = datasets.load("contraception")
    data = data.assign(urbanY=(data["urban"] == "Y").astype(float))
    formula = "use ~ age + urban + (1 + urbanY || district)"
    ours = g.fit(formula, data, method="mcmc", draws=300, warmup=150, seed=4)
    vb = g.fit(formula, data, method="vb")
    np.testing.assert_allclose(ours.params, vb.params, atol=0.5 * vb.bse.min())
    np.testing.assert_allclose(ours.bse, vb.bse, rtol=0.15)
    np.testing.assert_allclose(ours.varcorr["std_dev"], vb.varcorr["std_dev"], rtol=0.15)
    assert list(ours.ranef()["district"].columns) == ["(Intercept)", "urbanY"]


# --- reproducibility ---------------------------------------------------------------------


def run(model: ModelData, **options: object) -> dict[str, np.ndarray]:
    control = McmcControl(**{"draws": 40, "warmup": 30, "seed": 7, **options})  # type: ignore[arg-type]
    output = mcmc.fit_mcmc(model, control=control)
    assert output.posterior is not None
    return output.posterior.draws


def test_same_seed_same_draws_and_chains_independent() -> None:
    model = simulated_model(1, n=200, levels=(10,))
    first = run(model, chains=3)
    again = run(model, chains=3)
    fewer = run(model, chains=2)
    for name, values in first.items():
        assert np.array_equal(values, again[name])
        assert np.array_equal(values[:2], fewer[name])  # chain c does not see the others
    assert not np.array_equal(first["x1"][0], first["x1"][1])


def test_worker_processes_give_the_same_draws() -> None:
    model = simulated_model(3, n=200, levels=(10,), slopes=(True,))
    control = McmcControl(draws=30, warmup=25, chains=3, seed=5)
    one = mcmc.fit_mcmc(model, control=control)
    two = mcmc.fit_mcmc(model, control=dataclasses.replace(control, n_jobs=2))
    assert one.posterior is not None and two.posterior is not None
    for name, values in one.posterior.draws.items():
        assert np.array_equal(values, two.posterior.draws[name]), name
    assert np.array_equal(one.ranef[0], two.ranef[0])
    assert np.array_equal(one.ranef_cov[0], two.ranef_cov[0])
    assert np.array_equal(one.beta, two.beta)


def test_thinning_keeps_every_thin_th_sweep() -> None:
    model = simulated_model(2, n=200, levels=(10,), trials=3)
    every = run(model, draws=40)
    thinned = run(model, draws=20, thin=2)
    for name, values in thinned.items():
        assert np.array_equal(values, every[name][:, 1::2])


def test_seed_none_records_entropy() -> None:
    model = simulated_model(1, n=200, levels=(10,))
    control = McmcControl(draws=20, warmup=10, seed=None)
    output = mcmc.fit_mcmc(model, control=control)
    assert output.posterior is not None
    entropy = output.posterior.settings["seed_entropy"]
    repeat = mcmc.fit_mcmc(model, control=dataclasses.replace(control, seed=entropy))
    assert repeat.posterior is not None
    assert np.array_equal(output.posterior.draws["x1"], repeat.posterior.draws["x1"])


# --- the pieces against dense linear algebra ---------------------------------------------


def with_offset_and_unused_level(model: ModelData) -> ModelData:
    """The same rows with an offset and one more level that has no rows."""
    wider = tuple(
        RandomBlock(b.group, b.terms, b.codes, (*b.levels, "unused"), b.z) for b in model.blocks
    )
    offset = np.linspace(-0.5, 0.5, model.n_obs)
    return dataclasses.replace(model, blocks=wider, offset=offset)


@pytest.mark.parametrize("slope", [False, True])
def test_collapsed_density_and_draw_moments_match_dense(slope: bool) -> None:
    """log p(phi | omega) (beta and b integrated out) differs between points as the dense
    Gaussian integral does, and the conditional mean and covariance of beta are the dense
    ones; with an offset, binomial trials and a level without rows."""
    model = with_offset_and_unused_level(
        simulated_model(5, n=150, levels=(8,), slopes=(slope,), trials=2)
    )
    rows = mcmc.sorted_rows(model)
    k, p, n_levels = rows.k, rows.p, rows.n_levels
    omega = np.random.default_rng(1).uniform(0.05, 0.5, size=(1, model.n_obs))
    sums = mcmc.sweep_sums(rows, omega, prior_fe_sd=2.0)
    d = k + k * (k - 1) // 2
    phis = np.random.default_rng(2).normal(scale=0.7, size=(1, 4, d))
    cond = mcmc.conditional(sums, phis, k, prior_log_sd_sd=1.0, lkj_eta=2.0)

    # Dense: rows in sorted order, Z with one column per (level, term).
    w = omega[0]
    x, z, codes = rows.x, rows.z, rows.codes
    zd = np.zeros((model.n_obs, n_levels * k))
    for c in range(k):
        zd[np.arange(model.n_obs), codes * k + c] = z[:, c]
    offset = np.linspace(-0.5, 0.5, model.n_obs)[np.argsort(model.blocks[0].codes, kind="stable")]
    design = np.hstack([x, zd])
    h = design.T @ (rows.kappa - w * offset)
    dense = []
    for i in range(phis.shape[1]):
        cov = mcmc.covariance_parameters(phis[:, i], k, 1.0, 2.0)
        sigma_inv = cov.precision[0]
        prior = np.zeros((p + n_levels * k, p + n_levels * k))
        prior[:p, :p] = np.eye(p) / 4.0
        prior[p:, p:] = np.kron(np.eye(n_levels), sigma_inv)
        q = design.T @ (w[:, None] * design) + prior
        log_det_q = np.linalg.slogdet(q)[1]
        value = (
            cov.log_prior[0]
            - 0.5 * n_levels * cov.log_det[0]
            - 0.5 * log_det_q
            + 0.5 * h @ np.linalg.solve(q, h)
        )
        dense.append(value)
        q_inv = np.linalg.inv(q)
        mean_beta = np.linalg.solve(q, h)[:p]
        chol_s = cond.chol_s[0, i]
        ours_mean = np.linalg.solve(chol_s.T, cond.whitened_c[0, i])
        np.testing.assert_allclose(ours_mean, mean_beta, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(
            np.linalg.inv(chol_s @ chol_s.T), q_inv[:p, :p], rtol=1e-9, atol=1e-12
        )
    np.testing.assert_allclose(
        cond.log_density[0] - cond.log_density[0, 0],
        np.array(dense) - dense[0],
        rtol=1e-9,
        atol=1e-9,
    )


def three_column_model(seed: int) -> ModelData:
    """(1 + x1 + x2 | g0): a term with k = 3 (the general, not closed-form, path)."""
    model = simulated_model(seed, n=240, levels=(9,), slopes=(True,), trials=2)
    block = model.blocks[0]
    z = np.column_stack([block.z, model.x[:, 2]])
    wide = RandomBlock(block.group, (*block.terms, "x2"), block.codes, block.levels, z)
    return dataclasses.replace(model, blocks=(wide,))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_phi_density_given_beta_matches_dense(k: int) -> None:
    """log p(phi | omega, beta) with b integrated out, in closed form per level (k = 1, 2) or
    by batched k x k algebra, differs between points as the dense Gaussian integral does."""
    if k == 3:
        model = with_offset_and_unused_level(three_column_model(6))
    else:
        model = with_offset_and_unused_level(
            simulated_model(6, n=150, levels=(8,), slopes=(k == 2,), trials=2)
        )
    rows = mcmc.sorted_rows(model)
    p, n_levels = rows.p, rows.n_levels
    omega = np.random.default_rng(3).uniform(0.05, 0.5, size=(1, model.n_obs))
    beta = np.array([[-0.2, 0.4, 0.3]])
    sums = mcmc.sweep_sums(rows, omega, prior_fe_sd=2.0)
    residual = sums.r_b - np.einsum("cgkp,cp->cgk", sums.b_t.reshape(1, n_levels, k, p), beta)
    d = k + k * (k - 1) // 2
    phis = np.random.default_rng(4).normal(scale=0.6, size=(1, 5, d))
    ours = mcmc.phi_log_density(sums, residual, phis, k, 1.0, 2.0)[0]

    w = omega[0]
    zd = np.zeros((model.n_obs, n_levels * k))
    for c in range(k):
        zd[np.arange(model.n_obs), rows.codes * k + c] = rows.z[:, c]
    offset = np.linspace(-0.5, 0.5, model.n_obs)[np.argsort(model.blocks[0].codes, kind="stable")]
    h = zd.T @ (rows.kappa - w * (rows.x @ beta[0] + offset))
    dense = []
    for i in range(phis.shape[1]):
        cov = mcmc.covariance_parameters(phis[:, i], k, 1.0, 2.0)
        q = zd.T @ (w[:, None] * zd) + np.kron(np.eye(n_levels), cov.precision[0])
        dense.append(
            cov.log_prior[0]
            - 0.5 * n_levels * cov.log_det[0]
            - 0.5 * np.linalg.slogdet(q)[1]
            + 0.5 * h @ np.linalg.solve(q, h)
        )
    np.testing.assert_allclose(ours - ours[0], np.array(dense) - dense[0], rtol=1e-9, atol=1e-9)


def test_three_column_term_samples() -> None:
    model = three_column_model(7)
    draws = run(model, draws=30, warmup=20)
    assert {"cor_x2.(Intercept)|g0", "cor_x2.x1|g0", "sd_x2|g0"} <= set(draws)


def test_fixed_effects_update_leaves_the_conditional_posterior_invariant() -> None:
    """Repeated independence Metropolis-Hastings updates of beta given b (the Newton step
    started 2 posterior SDs off) reproduce the mean and SDs of p(beta | b, y), computed on a
    grid."""
    model = simulated_model(8, n=60, levels=(5,), trials=3)
    model = dataclasses.replace(model, x=model.x[:, :2], fixed_names=("(Intercept)", "x1"))
    rows = mcmc.sorted_rows(model)
    random_part = np.tile(np.linspace(-0.4, 0.4, model.n_obs), (200, 1))
    grid = np.linspace(-3.0, 3.0, 301)
    b0, b1 = np.meshgrid(grid, grid, indexing="ij")
    eta = b0[..., None] + b1[..., None] * rows.x[:, 1] + random_part[0]
    log_post = (
        np.sum(rows.successes * eta - rows.trials_float * np.logaddexp(0.0, eta), axis=-1)
        - (b0**2 + b1**2) / 8.0
    )
    weights = np.exp(log_post - log_post.max())
    weights /= weights.sum()
    exact_mean = np.array([np.sum(weights * b0), np.sum(weights * b1)])
    exact_sd = np.sqrt(np.array([np.sum(weights * b0**2), np.sum(weights * b1**2)]) - exact_mean**2)
    streams = ChainStreams([np.random.default_rng(s) for s in np.random.SeedSequence(2).spawn(200)])
    beta = np.zeros((200, 2))
    start = np.tile(exact_mean + 2.0 * exact_sd, (200, 1))
    draws = []
    for sweep in range(60):
        beta, _ = mcmc.update_fixed_effects(rows, beta, random_part, start, 2.0, 1, streams, 2)
        if sweep >= 10:
            draws.append(beta)
    values = np.concatenate(draws)
    # 200 chains x 50 updates; the draws of a chain are autocorrelated, so allow 3000 of them.
    assert np.all(np.abs(values.mean(axis=0) - exact_mean) < 4 * exact_sd / np.sqrt(3000))
    np.testing.assert_allclose(values.std(axis=0), exact_sd, rtol=0.05)


def test_lkj_and_log_sd_priors() -> None:
    """Slice sampling phi from its prior alone: each correlation of a 3 x 3 LKJ(2) matrix is
    2 Beta(2.5, 2.5) - 1 and each log SD is N(0, 1)."""
    k, eta = 3, 2.0
    d = k + k * (k - 1) // 2
    n_chains = 100
    seeds = np.random.SeedSequence(4).spawn(n_chains)
    streams = ChainStreams([np.random.default_rng(s) for s in seeds])

    def log_prior(points: np.ndarray) -> np.ndarray:
        return mcmc.covariance_parameters(points, k, 1.0, eta).log_prior

    x = np.zeros((n_chains, d))
    directions = np.broadcast_to(np.eye(d), (n_chains, d, d))
    correlations, log_sds = [], []
    for sweep in range(150):
        x, _ = mcmc.slice_update(log_prior, x, directions, streams, 50, 200, 3)
        if sweep >= 20:
            chol = mcmc.covariance_parameters(x[:, None], k, 1.0, eta).corr_cholesky[:, 0]
            corr = chol @ np.swapaxes(chol, 1, 2)
            correlations.append(corr[:, [1, 2, 2], [0, 0, 1]])
            log_sds.append(x[:, :k])
    r = np.concatenate(correlations)
    a = eta - 1 + k / 2
    for j in range(3):
        assert stats.kstest((r[:, j] + 1) / 2, stats.beta(a, a).cdf).pvalue > 1e-3
    assert stats.kstest(np.concatenate(log_sds).ravel(), "norm").pvalue > 1e-3


def test_two_by_two_prior_formula() -> None:
    """For k = 2 the log prior of y = atanh(r) is (eta - 1) log(1 - r^2) + log(1 - r^2)
    (LKJ density times the Jacobian of tanh) plus the log SDs' normal terms."""
    phi = np.array([[[0.3, -0.2, 0.4], [0.1, 0.5, -1.3]]])
    cov = mcmc.covariance_parameters(phi, 2, 1.5, 2.0)
    r = np.tanh(phi[..., 2])
    expected = -0.5 * np.sum(phi[..., :2] ** 2, axis=-1) / 1.5**2 + 2.0 * np.log1p(-(r**2))
    np.testing.assert_allclose(cov.log_prior, expected)


# --- refusals ----------------------------------------------------------------------------


def test_refusals() -> None:
    data = datasets.load("cbpp")
    formula = CASES["cbpp"][0]
    model, _ = build_model(formula, data)
    probit = dataclasses.replace(model, family=dataclasses.replace(model.family, link="probit"))
    with pytest.raises(ValueError, match="logit link only"):
        mcmc.fit_mcmc(probit)
    for family in ({"link": "probit"}, {"family": "betabinomial"}):
        with pytest.raises(ValueError, match="method 'mcmc' fits the binomial family with the"):
            g.fit(formula, data, method="mcmc", **family)
    halves = dataclasses.replace(model, trials=model.trials + 0.5)
    with pytest.raises(ValueError, match="whole numbers of trials"):
        mcmc.fit_mcmc(halves)
    with pytest.raises(ValueError, match="draws does not apply to method 'laplace'"):
        g.fit(formula, data, draws=100)
    with pytest.raises(ValueError, match="seed does not apply to method 'vb'"):
        g.fit(formula, data, method="vb", seed=1)
    with pytest.raises(ValueError, match="must be a McmcControl"):
        g.fit(formula, data, method="mcmc", control=g.OptimizerControl())
    with pytest.raises(ValueError, match="draws must be a positive integer"):
        g.fit(formula, data, method="mcmc", draws=0)
    with pytest.raises(ValueError, match="n_agq applies only to method='agq'"):
        g.fit(formula, data, method="mcmc", n_agq=5)
    with pytest.raises(ValueError, match="method 'mcmc' keeps its own fixed priors"):
        g.fit(formula, data, method="mcmc", priors="blme")
    with pytest.raises(ValueError, match="prior_fe_sd must be a positive number"):
        g.fit(formula, data, method="mcmc", prior_fe_sd=-1.0)
    with pytest.raises(ValueError, match="seed must be"):
        McmcControl(seed="x")
    assert McmcControl(seed=np.int64(3)) == McmcControl(seed=3)
    with pytest.raises(ValueError, match="thin must be"):
        McmcControl(thin=1.5)  # type: ignore[arg-type]


def test_refusals_name_the_user_s_terms() -> None:
    data = datasets.load("contraception")
    with pytest.raises(ValueError, match="method 'mcmc' fits lme4's terms, not the structured"):
        g.fit("use ~ age + cs(1 + age | district)", data, method="mcmc")


def test_dask_frame_is_refused() -> None:
    dd = pytest.importorskip("dask.dataframe")
    formula, data = CASES["cbpp"]
    frame = dd.from_pandas(datasets.load(data), npartitions=2)
    with pytest.raises(ValueError, match="'mcmc' is not available on a Dask DataFrame"):
        g.fit(formula, frame, method="mcmc", seed=1)


def test_poor_mixing_is_reported() -> None:
    formula, data = CASES["cbpp"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit(formula, datasets.load(data), method="mcmc", draws=8, warmup=0, seed=1)
    assert any("effective sample size below 400" in w for w in result.warnings)


def test_a_posterior_with_poor_diagnostics_is_still_summarized() -> None:
    # Few draws: R-hat warns, but the draws still summarize the posterior (the random
    # effects' table was NA, as for an optimizer stopped short, beside the fixed effects).
    formula, data = CASES["cbpp"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", g.ConvergenceWarning)
        result = g.fit(
            formula, datasets.load(data), method="mcmc", draws=50, warmup=20, chains=2, seed=1
        )
    assert not result.converged and any("R-hat" in w for w in result.warnings)
    text = str(result.summary())
    sd = result.varcorr["std_dev"].iloc[0]
    assert f"{sd:.4f}" in text and "not an estimate" not in text
    assert "Warning: R-hat above 1.01" in text
