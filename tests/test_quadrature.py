"""Adaptive Gauss-Hermite quadrature: rules, Laplace limit, brute-force integrals, lme4 parity."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.special
from _simulate import simulated_model
from _simulate_nested import nested_model
from conftest import load_reference

from glmm_binomial.family import loglik_kernel, make_family
from glmm_binomial.methods.agq import (
    AgqObjective,
    QuadratureControl,
    fit_agq,
    gauss_hermite,
    sparse_grid,
)
from glmm_binomial.methods.laplace import LaplaceObjective, fit_laplace
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.numerics.pirls import PirlsControl

DATA = Path(__file__).parents[1] / "src" / "glmm_binomial" / "data"


# --- data sets built by hand from the shipped CSVs -------------------------------------------


def _block(name: str, labels: pd.Series, z: np.ndarray | None = None, terms=("(Intercept)",)):
    values = labels.to_numpy()
    levels, codes = np.unique(values, return_inverse=True)
    z = np.ones((len(values), 1)) if z is None else z
    return RandomBlock(name, tuple(terms), codes.astype(np.intp), tuple(levels.tolist()), z)


def cbpp() -> ModelData:
    d = pd.read_csv(DATA / "cbpp.csv")
    x = np.column_stack([np.ones(len(d))] + [(d.period == p).to_numpy(float) for p in (2, 3, 4)])
    names = ("(Intercept)", "period2", "period3", "period4")
    return ModelData(
        d.incidence.to_numpy(float),
        d["size"].to_numpy(float),
        x,
        np.zeros(len(d)),
        names,
        (_block("herd", d.herd),),
    )


def contraception(kind: str = "intercept") -> ModelData:
    d = pd.read_csv(DATA / "contraception.csv")
    urban = (d.urban == "Y").to_numpy(float)
    livch = [(d.livch == level).to_numpy(float) for level in ("1", "2", "3+")]
    x = np.column_stack([np.ones(len(d)), d.age, d.age**2, urban, *livch])
    names = ("(Intercept)", "age", "I(age^2)", "urbanY", "livch1", "livch2", "livch3+")
    if kind == "intercept":  # (1 | district)
        blocks = (_block("district", d.district),)
    elif kind == "slope":  # (1 + urban | district)
        z = np.column_stack([np.ones(len(d)), urban])
        blocks = (_block("district", d.district, z, ("(Intercept)", "urbanY")),)
    else:  # (1 + urban || district): two k = 1 blocks with the same codes
        blocks = (
            _block("district", d.district),
            _block("district", d.district, urban[:, None], ("urbanY",)),
        )
    n = len(d)
    return ModelData(d.use.to_numpy(float), np.ones(n), x, np.zeros(n), names, blocks)


def verbagg() -> ModelData:
    d = pd.read_csv(DATA / "verbagg.csv")
    x = np.column_stack(
        [
            np.ones(len(d)),
            d.Anger,
            d.Gender == "M",
            d.btype == "scold",
            d.btype == "shout",
            d.situ == "self",
        ]
    ).astype(float)
    names = ("(Intercept)", "Anger", "GenderM", "btypescold", "btypeshout", "situself")
    n = len(d)
    return ModelData(d.r2.to_numpy(float), np.ones(n), x, np.zeros(n), names, (_block("id", d.id),))


def wide_model() -> ModelData:
    """A 4-vector effect (1 + x1 + x1^2 + x1^3 | g) on simulated data with 6 groups."""
    data = simulated_model(1, levels=(6,), slopes=(True,))
    b = data.blocks[0]
    z = np.column_stack([b.z, b.z[:, 1] ** 2, b.z[:, 1] ** 3])
    block = RandomBlock(b.group, ("(Intercept)", "x1", "x1^2", "x1^3"), b.codes, b.levels, z)
    return ModelData(data.successes, data.trials, data.x, data.offset, data.fixed_names, (block,))


CONTRACEPTION_BETA = np.array([-1.06, 0.003, -0.0045, 0.77, 0.83, 0.91, 0.93])


# --- Gauss-Hermite rules ---------------------------------------------------------------------


def _normal_moment(p: int) -> float:
    return 0.0 if p % 2 else float(math.prod(range(1, p, 2)))


@pytest.mark.parametrize("n_agq", [1, 2, 3, 7, 12, 25, 40])
def test_gauss_hermite_integrates_polynomials_exactly(n_agq):
    nodes, weights = gauss_hermite(n_agq)
    assert np.sum(weights) == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_array_equal(nodes, -nodes[::-1])  # symmetrized
    assert np.all(weights > 0)
    for p in range(2 * n_agq):
        # Moments grow like (p-1)!!; compare relative to the size of the summands.
        scale = float(np.sum(weights * np.abs(nodes) ** p)) + 1.0
        assert np.sum(weights * nodes**p) == pytest.approx(_normal_moment(p), abs=1e-12 * scale)


def test_gauss_hermite_matches_numpy():
    nodes, weights = gauss_hermite(20)
    ref_nodes, ref_weights = np.polynomial.hermite_e.hermegauss(20)
    np.testing.assert_allclose(nodes, ref_nodes, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(weights, ref_weights / math.sqrt(2 * math.pi), rtol=1e-11)


@pytest.mark.parametrize(("level", "k"), [(3, 2), (4, 3), (5, 4)])
def test_sparse_grid_is_exact_to_total_degree(level, k):
    nodes, weights = sparse_grid(level, k)
    assert np.sum(weights) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(30):
        powers = rng.multinomial(rng.integers(0, 2 * level), np.ones(k) / k)
        value = np.sum(weights * np.prod(nodes**powers, axis=1))
        expected = math.prod(_normal_moment(int(p)) for p in powers)
        assert value == pytest.approx(expected, abs=1e-10 * (1 + expected))


def test_sparse_grid_is_used_only_when_smaller():
    small_cap = QuadratureControl(max_product_nodes=10)
    assert AgqObjective(contraception("slope"), 4, quadrature_control=small_cap).rule_kind == (
        "product"  # 16 product nodes against 30 sparse
    )
    wide = wide_model()
    objective = AgqObjective(wide, 3, quadrature_control=QuadratureControl(max_product_nodes=50))
    assert objective.rule_kind == "sparse" and objective.n_nodes == 41  # against 3^4 = 81


def test_bad_n_agq_is_rejected():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n_agq"):
            AgqObjective(cbpp(), bad)


# --- n_agq = 1 is Laplace --------------------------------------------------------------------

LAPLACE_CASES = {
    "scalar": (cbpp, np.array([0.6]), np.array([-1.4, -1.0, -1.1, -1.5])),
    "vector": (
        lambda: contraception("slope"),
        np.array([0.6, -0.5, 0.45]),
        CONTRACEPTION_BETA,
    ),
    "independent": (lambda: contraception("independent"), np.array([0.6, 0.5]), CONTRACEPTION_BETA),
    "wide": (
        wide_model,
        np.array([0.8, 0.1, -0.1, 0.05, 0.5, 0.1, 0.0, 0.3, 0.05, 0.2]),
        np.array([-0.2, 0.4, 0.3]),
    ),
    "nested": (lambda: nested_model(1), np.array([0.9, 1.3]), np.array([-0.4, 0.7])),
    "nested_depth3": (
        lambda: nested_model(2, branching=(6, 3, 2), sds=(0.8, 1.0, 1.2)),
        np.array([0.7, 0.9, 1.1]),
        np.array([-0.4, 0.7]),
    ),
}


@pytest.mark.parametrize("case", sorted(LAPLACE_CASES))
def test_one_point_rule_equals_laplace(case):
    make, theta, beta = LAPLACE_CASES[case]
    data = make()
    laplace = LaplaceObjective(data).deviance(theta, beta)
    agq = AgqObjective(data, 1).deviance(theta, beta)
    assert -0.5 * agq == pytest.approx(-0.5 * laplace, abs=1e-8)


def test_one_point_fit_equals_laplace_fit():
    data = cbpp()
    agq, laplace = fit_agq(data, 1), fit_laplace(data)
    assert agq.loglik == pytest.approx(laplace.loglik, abs=1e-8)
    np.testing.assert_allclose(agq.beta, laplace.beta, atol=1e-6)
    assert agq.method == "agq" and agq.n_agq == 1


# --- gradients -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "n_agq", "cap"),
    [("scalar", 5, 4096), ("vector", 3, 4096), ("independent", 3, 4096), ("wide", 3, 50)],
)
def test_exact_gradient_matches_central_differences(case, n_agq, cap):
    make, theta, beta = LAPLACE_CASES[case]
    data = make()
    # A tighter PIRLS tolerance than the default removes ~1e-9 evaluation noise from the
    # differences (the quadrature sum, unlike Laplace, is not stationary in the centre).
    objective = AgqObjective(
        data, n_agq, PirlsControl(tol=1e-20), quadrature_control=QuadratureControl(cap)
    )
    assert objective.rule_kind == ("sparse" if case == "wide" else "product")
    _, g_theta, g_beta = objective.deviance_and_gradient(theta, beta)
    # Fourth-order central differences (the 4-D case has cubic covariates), steps scaled to
    # each coordinate's covariate (age^2 reaches ~400).
    scale = np.concatenate([np.ones(len(theta)), 1.0 / np.max(np.abs(data.x), axis=0)])
    step = 1e-4 * scale
    numeric = []
    for j in range(len(scale)):
        e = np.zeros(len(scale))
        e[j] = step[j]
        values = [
            objective.deviance(theta + c * e[: len(theta)], beta + c * e[len(theta) :])
            for c in (2.0, 1.0, -1.0, -2.0)
        ]
        numeric.append((-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * step[j]))
    analytic = np.concatenate([g_theta, g_beta])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-4)


def test_nested_difference_gradient_is_accurate():
    make, theta, beta = LAPLACE_CASES["nested"]
    control = QuadratureControl(nested_gradient="differences")
    objective = AgqObjective(make(), 5, quadrature_control=control)
    _, g_theta, g_beta = objective.deviance_and_gradient(theta, beta)
    numeric = []
    for j in range(4):
        e = np.zeros(4)
        e[j] = 1e-6
        plus = objective.deviance(theta + e[:2], beta + e[2:])
        minus = objective.deviance(theta - e[:2], beta - e[2:])
        numeric.append((plus - minus) / 2e-6)
    np.testing.assert_allclose(np.concatenate([g_theta, g_beta]), numeric, rtol=1e-6, atol=1e-6)


def _covariate_nested(seed: int) -> ModelData:
    """Depth 3, binomial trials 3, a covariate (not 1) as the middle level's Z column, rows
    shuffled (so AgqObjective sorts them)."""
    data = nested_model(seed, branching=(8, 3, 2), sds=(0.8, 1.0, 1.2), trials=3)
    rng = np.random.default_rng(seed)
    z = 1.0 + 0.5 * rng.normal(size=data.n_obs)
    blocks = tuple(
        RandomBlock(b.group, b.terms, b.codes, b.levels, z[:, None] if d == 1 else b.z)
        for d, b in enumerate(data.blocks)
    )
    shuffled = ModelData(data.successes, data.trials, data.x, data.offset, data.fixed_names, blocks)
    return shuffled.take(rng.permutation(data.n_obs))


NESTED_GRADIENT_CASES = {
    "depth2": (lambda: nested_model(1), 5),
    "depth2_trials": (lambda: nested_model(3, branching=(20, 3), trials=5), 6),
    "depth3": (lambda: nested_model(2, branching=(6, 3, 2), sds=(0.8, 1.0, 1.2)), 4),
    "depth3_trials_covariate_shuffled": (lambda: _covariate_nested(5), 3),
    "depth4_trials": (
        lambda: nested_model(4, branching=(4, 2, 2, 2), sds=(0.8, 1.0, 0.7, 1.2), trials=2),
        3,
    ),
}


@pytest.mark.parametrize("case", sorted(NESTED_GRADIENT_CASES))
def test_nested_exact_gradient_matches_central_differences(case):
    make, n_agq = NESTED_GRADIENT_CASES[case]
    data = make()
    # A tight PIRLS tolerance removes the mode's ~1e-9 noise from the differences.
    objective = AgqObjective(data, n_agq, PirlsControl(tol=1e-22))
    rng = np.random.default_rng(len(case))
    for _ in range(2):
        theta = rng.uniform(0.3, 1.5, size=data.n_theta) * rng.choice([-1.0, 1.0], data.n_theta)
        beta = rng.normal(scale=0.5, size=data.n_fixed)
        _, g_theta, g_beta = objective.deviance_and_gradient(theta, beta)
        analytic = np.concatenate([g_theta, g_beta])
        step = 1e-5
        numeric = []
        for j in range(len(analytic)):
            e = np.zeros(len(analytic))
            e[j] = step
            values = [
                objective.deviance(theta + c * e[: len(theta)], beta + c * e[len(theta) :])
                for c in (2.0, 1.0, -1.0, -2.0)
            ]
            numeric.append((-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * step))
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", ["nested", "nested_depth3"])
def test_nested_one_point_gradient_equals_laplace_gradient(case):
    make, theta, beta = LAPLACE_CASES[case]
    data = make()
    laplace = LaplaceObjective(data).deviance_and_gradient(theta, beta)
    agq = AgqObjective(data, 1).deviance_and_gradient(theta, beta)
    assert agq[0] == pytest.approx(laplace[0], abs=1e-8)
    np.testing.assert_allclose(agq[1], laplace[1], rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(agq[2], laplace[2], rtol=1e-7, atol=1e-7)


def test_nested_warm_start_moves_the_mode_to_first_order():
    make, theta, beta = LAPLACE_CASES["nested_depth3"]
    data = make()
    objective = AgqObjective(data, 5)
    objective.deviance(theta, beta)
    step = np.array([0.02, -0.015, 0.01]), np.array([0.01, -0.02])
    target = AgqObjective(data, 5).mode(theta + step[0], beta + step[1])
    u1, u2 = objective._predicted_start(theta + step[0], beta + step[1])
    last = objective._last
    assert last is not None
    # The error of the first-order move is second order in the step; the last mode's is first.
    moved = max(np.max(np.abs(u1 - target.u1)), np.max(np.abs(u2 - target.u2)))
    unmoved = max(np.max(np.abs(last[2].u1 - target.u1)), np.max(np.abs(last[2].u2 - target.u2)))
    assert moved < 0.1 * unmoved
    assert objective.deviance(theta + step[0], beta + step[1]) == pytest.approx(
        AgqObjective(data, 5).deviance(theta + step[0], beta + step[1]), abs=1e-9
    )


def test_nested_exact_gradient_matches_the_difference_path():
    make, theta, beta = LAPLACE_CASES["nested_depth3"]
    data = make()
    exact = AgqObjective(data, 5).deviance_and_gradient(theta, beta)
    control = QuadratureControl(nested_gradient="differences")
    differences = AgqObjective(data, 5, quadrature_control=control).deviance_and_gradient(
        theta, beta
    )
    assert exact[0] == differences[0]
    np.testing.assert_allclose(exact[1], differences[1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(exact[2], differences[2], rtol=1e-6, atol=1e-6)


def test_nested_solve_equals_dense_solve():
    data = _covariate_nested(7)
    objective = AgqObjective(data, 3)
    rule = objective._nested
    assert rule is not None
    rng = np.random.default_rng(1)
    w = rng.uniform(0.05, 0.25, size=data.n_obs) * objective.merged.data.trials
    a = [z * lam for z, lam in zip(rule.z, (0.7, -1.1, 0.9), strict=True)]
    diag, off = rule._eliminate(*rule._precision(w, a))
    rhs = [rng.normal(size=n) for n in rule.n_levels]
    solved = np.concatenate(rule._solve(diag, off, rhs))
    # Dense H = A' W A + I over all levels' effects.
    starts = np.cumsum([0, *rule.n_levels])
    big_a = np.zeros((data.n_obs, starts[-1]))
    for d in range(rule.depth):
        big_a[np.arange(data.n_obs), starts[d] + rule.codes[d]] = a[d]
    dense = big_a.T @ (w[:, None] * big_a) + np.eye(starts[-1])
    np.testing.assert_allclose(solved, np.linalg.solve(dense, np.concatenate(rhs)), rtol=1e-10)
    # The eliminated precisions: log det H = sum of their logs.
    logdet = sum(float(np.sum(np.log(s))) for s in diag)
    assert logdet == pytest.approx(np.linalg.slogdet(dense)[1], rel=1e-12)


# Fits by main's code (commit ea8353b, central-difference gradient, default controls):
# (data, n_agq, loglik, theta, beta).
NESTED_FITS_BY_DIFFERENCES = {
    "depth2": (
        lambda: nested_model(6, branching=(40, 3)),
        9,
        -185.83904870615572,
        [0.8456708405466311, 1.423046946284651],
        [-0.535843869445576, 0.9875031741255659],
    ),
    "depth3": (
        lambda: nested_model(2, branching=(12, 3, 2), sds=(0.8, 1.0, 1.2)),
        5,
        -110.60709594003143,
        [0.7337311376470762, 1.1175539944261335, 0.7292773553362935],
        [-0.7550763691532829, 0.6594329420531727],
    ),
    "depth2_trials": (
        lambda: nested_model(11, branching=(30, 3), trials=4),
        7,
        -311.87642416716756,
        [1.1610041272794271, 1.137773853519577],
        [-0.255586906274034, 0.8431094081406055],
    ),
}


@pytest.mark.parametrize("case", sorted(NESTED_FITS_BY_DIFFERENCES))
def test_nested_fit_reaches_the_difference_fits_optimum(case):
    make, n_agq, loglik, theta, beta = NESTED_FITS_BY_DIFFERENCES[case]
    fit = fit_agq(make(), n_agq)
    assert fit.converged
    assert fit.loglik == pytest.approx(loglik, abs=1e-6)
    np.testing.assert_allclose(fit.theta, theta, atol=1e-6)
    np.testing.assert_allclose(fit.beta, beta, atol=1e-6)
    summary = fit.opt_summary
    assert summary.tolerances["nested_gradient"] == "exact"
    # A few dozen evaluations (the difference path took 171 to 242 on these).
    assert summary.evaluations < 80


def test_nested_gradient_control_is_checked():
    with pytest.raises(ValueError, match="nested_gradient"):
        QuadratureControl(nested_gradient="forward")


# --- brute-force integrals -------------------------------------------------------------------


def _grid(half_width: float, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoid grid for int f(u) phi(u) du: nodes and log weights (phi included)."""
    u = np.linspace(-half_width, half_width, points)
    log_w = np.log(u[1] - u[0]) - 0.5 * u * u - 0.5 * math.log(2 * math.pi)
    return u, log_w


def _brute_vector(data: ModelData, theta, beta, half_width=7.0, points=101) -> float:
    """Marginal log-likelihood by a dense non-adaptive 2-D grid, group by group."""
    (block,) = data.blocks
    lam = block.lambda_matrix(theta)
    u, log_w = _grid(half_width, points)
    u1, u2 = np.meshgrid(u, u, indexing="ij")
    grid = np.column_stack([u1.ravel(), u2.ravel()])
    log_weights = (log_w[:, None] + log_w[None, :]).ravel()
    eta_fixed = data.x @ beta + data.offset
    total = data.log_binomial_constant
    for j in range(block.n_levels):
        rows = block.codes == j
        eta = eta_fixed[rows, None] + block.z[rows] @ lam @ grid.T
        kernel = loglik_kernel(eta, data.successes[rows, None], data.trials[rows, None])
        total += scipy.special.logsumexp(kernel.sum(axis=0) + log_weights)
    return float(total)


def _brute_nested(data: ModelData, theta, beta, half_width=8.0, points=201) -> float:
    """Two-level nested intercepts: per outer group, a grid over the outer effect of products
    of grid integrals over the inner effects."""
    outer, inner = data.blocks
    u, log_w = _grid(half_width, points)
    eta_fixed = data.x @ beta + data.offset
    total = data.log_binomial_constant
    for c in range(outer.n_levels):
        rows = np.flatnonzero(outer.codes == c)
        eta = (
            eta_fixed[rows, None, None]
            + theta[0] * u[None, :, None]  # outer effect on axis 1
            + theta[1] * u[None, None, :]  # inner effect on axis 2
        )
        kernel = loglik_kernel(eta, data.successes[rows, None, None], data.trials[rows, None, None])
        moms, codes = np.unique(inner.codes[rows], return_inverse=True)
        per_mom = np.zeros((len(moms), points, points))
        np.add.at(per_mom, codes, kernel)
        inner_log = scipy.special.logsumexp(per_mom + log_w[None, None, :], axis=2)
        total += scipy.special.logsumexp(inner_log.sum(axis=0) + log_w)
    return float(total)


def test_vector_agq_matches_dense_grid():
    data = contraception("slope")
    theta = np.array([0.62, -0.58, 0.45])
    brute = _brute_vector(data, theta, CONTRACEPTION_BETA)
    agq = -0.5 * AgqObjective(data, 15).deviance(theta, CONTRACEPTION_BETA)
    assert agq == pytest.approx(brute, rel=1e-6)
    # The diagonal (||) form is the same integral with a diagonal Lambda.
    diagonal = contraception("independent")
    brute_diag = _brute_vector(
        contraception("slope"), np.array([0.6, 0.0, 0.5]), CONTRACEPTION_BETA
    )
    agq_diag = -0.5 * AgqObjective(diagonal, 15).deviance(np.array([0.6, 0.5]), CONTRACEPTION_BETA)
    assert agq_diag == pytest.approx(brute_diag, rel=1e-6)


def test_nested_agq_matches_dense_grid():
    data = nested_model(1)
    theta, beta = np.array([0.9, 1.3]), np.array([-0.4, 0.7])
    brute = _brute_nested(data, theta, beta)
    agq = -0.5 * AgqObjective(data, 15).deviance(theta, beta)
    assert agq == pytest.approx(brute, rel=1e-6)
    laplace = -0.5 * LaplaceObjective(data).deviance(theta, beta)
    assert abs(laplace - brute) > 0.5  # the case is one where Laplace is visibly off


def test_nested_with_zero_inner_variance_equals_single_factor():
    data = nested_model(3)
    outer_only = ModelData(
        data.successes, data.trials, data.x, data.offset, data.fixed_names, data.blocks[:1]
    )
    beta = np.array([-0.4, 0.7])
    nested = AgqObjective(data, 7).deviance(np.array([1.1, 0.0]), beta)
    single = AgqObjective(outer_only, 7).deviance(np.array([1.1]), beta)
    assert nested == pytest.approx(single, abs=1e-9)


def test_depth_three_converges_in_n_agq():
    make, theta, beta = LAPLACE_CASES["nested_depth3"]
    data = make()
    values = [AgqObjective(data, n).deviance(theta, beta) for n in (11, 15)]
    assert values[0] == pytest.approx(values[1], abs=1e-6)
    assert abs(values[1] - LaplaceObjective(data).deviance(theta, beta)) > 1e-2


# --- invariances and errors ------------------------------------------------------------------


def test_group_labels_and_block_order_do_not_matter():
    data = nested_model(4)
    theta, beta = np.array([0.8, 1.2]), np.array([-0.3, 0.6])
    rng = np.random.default_rng(0)
    relabelled = []
    for b in data.blocks[::-1]:
        perm = rng.permutation(b.n_levels)
        relabelled.append(RandomBlock(b.group, b.terms, perm[b.codes], b.levels, b.z))
    other = ModelData(
        data.successes, data.trials, data.x, data.offset, data.fixed_names, tuple(relabelled)
    )
    first = AgqObjective(data, 9).deviance(theta, beta)
    second = AgqObjective(other, 9).deviance(theta[::-1], beta)
    assert first == pytest.approx(second, abs=1e-9)
    assert AgqObjective(data, 9).deviance(theta, beta) == first  # bit for bit


def test_crossed_factors_raise():
    data = simulated_model(2, levels=(12, 5), slopes=(False, False))
    with pytest.raises(ValueError, match="crossed.*laplace"):
        AgqObjective(data, 5)


def test_nested_vector_effect_raises():
    data = nested_model(1)
    outer, inner = data.blocks
    z = np.column_stack([np.ones(data.n_obs), data.x[:, 1]])
    slope = RandomBlock(outer.group, ("(Intercept)", "x1"), outer.codes, outer.levels, z)
    bad = ModelData(
        data.successes, data.trials, data.x, data.offset, data.fixed_names, (slope, inner)
    )
    with pytest.raises(ValueError, match="scalar effect"):
        AgqObjective(bad, 3)


# --- fits ------------------------------------------------------------------------------------

REFERENCE_FITS = [
    ("cbpp", cbpp, "glmer_agq25", 25),
    ("contraception_intercept", contraception, "glmer_agq25", 25),
    ("verbagg_subject_agq", verbagg, "glmer_agq12", 12),
]


@pytest.mark.parametrize(("name", "make", "key", "n_agq"), REFERENCE_FITS)
def test_estimates_match_glmer(name, make, key, n_agq):
    reference = load_reference(name)["fits"][key]
    data = make()
    fit = fit_agq(data, n_agq)
    expected = np.array([reference["fixef"][k] for k in data.fixed_names])
    np.testing.assert_allclose(fit.beta, expected, atol=1e-4)
    assert fit.theta[0] == pytest.approx(reference["varcorr"][0]["sdcor"], abs=1e-4)
    se = np.array([reference["se"][k] for k in data.fixed_names])
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov_beta)), se, rtol=1e-3)
    assert fit.converged and fit.n_agq == n_agq
    assert fit.loglik_label.startswith(f"adaptive Gauss-Hermite quadrature, n_agq={n_agq}")


@pytest.mark.parametrize("case", ["vector", "nested"])
def test_fitted_loglik_stable_between_9_and_15_nodes(case):
    # Seed 6: both nested SDs interior (0.85 and 1.42 by AGQ, 0.81 and 1.20 by Laplace).
    data = contraception("slope") if case == "vector" else nested_model(6, branching=(40, 3))
    fits = [fit_agq(data, n) for n in (9, 15)]
    if case == "nested":
        assert np.all(fits[1].theta > 0.5)
    assert abs(fits[0].loglik - fits[1].loglik) < 1e-3
    assert all(fit.converged for fit in fits)


def test_formula_front_end_matches_glmer_agq():
    """fit(formula, method="agq") on cbpp: glmer's nAGQ = 25 estimates (1e-4)."""
    import glmm_binomial as g

    ref = load_reference("cbpp")
    agq = ref["fits"]["glmer_agq25"]
    result = g.fit(ref["formula"], g.datasets.load("cbpp"), method="agq", n_agq=25)
    np.testing.assert_allclose(result.params.to_numpy(), list(agq["fixef"].values()), atol=1e-4)
    assert result.varcorr["std_dev"].iloc[0] == pytest.approx(agq["varcorr"][0]["sdcor"], abs=1e-4)
    assert result.n_agq == 25 and result.method == "agq"
    assert "Quadrature" in result.summary()


AGQ_NODES_DATA = Path(__file__).parent / "reference" / "log_link_agq_nodes.csv"


def _log_link_fit(formula: str, link: str = "log", **options: object) -> Any:
    import warnings

    import glmm_binomial as g

    frame = pd.read_csv(AGQ_NODES_DATA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return g.fit(formula, frame, link=link, **options)


def test_log_link_nodes_past_the_bound_are_counted():
    """AgqObjective.rows_past_bound: with the SD at zero every node is the mode itself (eta
    <= 0 there: no row past the bound); the larger the SD, the further the nodes reach (rows
    at the estimates' eta nearest 0 first); a link without a bound counts none."""
    fitted = _log_link_fit("y ~ x + f + (1 | g)", method="agq", n_agq=5)
    model, beta = fitted.model, np.asarray(fitted.fit_output.beta)
    objective = AgqObjective(model, 5)
    counts = [objective.rows_past_bound(np.array([sd]), beta) for sd in (0.0, 0.3, 1.0, 3.0)]
    assert counts[0] == 0
    assert counts == sorted(counts) and counts[-1] > counts[1] > 0
    assert counts[-1] <= model.n_obs
    logit = dataclasses.replace(model, family=make_family("binomial", "logit"))
    assert AgqObjective(logit, 5).rows_past_bound(np.array([3.0]), beta) == 0


def test_log_link_quadrature_cut_by_the_bound_is_reported():
    """fuzz_dask_log 25 (tests/reference/log_link_agq_nodes.csv): at the AGQ estimates of
    y ~ x + f + (1 | g) nodes reach mu = 1 at some rows, past which the likelihood is taken as 0
    (its logLik, -95.348, lies below the Laplace fit's -94.884, which has no such nodes); the
    fit says so with a BoundaryWarning. With an offset the search ended unconverged on such a
    kink and said nothing of the bound; it now does. The logit fit of the same data, without a
    bound, does not."""
    from glmm_binomial import BoundaryWarning

    fitted = _log_link_fit("y ~ x + f + (1 | g)", method="agq", n_agq=5)
    cut = [w for w in fitted.warnings if "cuts the quadrature" in str(w)]
    assert fitted.converged and len(cut) == 1
    assert cut[0].category is BoundaryWarning
    rows = AgqObjective(fitted.model, 5).rows_past_bound(
        np.asarray(fitted.theta), np.asarray(fitted.fit_output.beta)
    )
    assert f"reach mu = 1 or beyond at {rows} row(s)" in str(cut[0])
    laplace = _log_link_fit("y ~ x + f + (1 | g)")
    assert not any("quadrature" in str(w) for w in laplace.warnings)
    offset = _log_link_fit("y ~ x + (1 | g) + offset(o)", method="agq", n_agq=5)
    assert not offset.converged
    assert any("cuts the quadrature" in str(w) for w in offset.warnings)
    nested = _log_link_fit("y ~ x + (1 | g/h)", method="agq", n_agq=5)
    assert any("cuts the quadrature" in str(w) for w in nested.warnings)
    logit = _log_link_fit("y ~ x + f + (1 | g)", link="logit", method="agq", n_agq=5)
    assert logit.converged
    assert not any("quadrature" in str(w) for w in logit.warnings)


def test_a_search_ending_on_the_kink_at_the_bound_is_reported():
    """fuzz_dask_log 37 (tests/reference/log_link_agq_kink.csv): at a row of all successes the
    quadrature's likelihood rises as a node nears mu = 1 and drops to 0 past it, and the AGQ
    search ends on that kink (a node at eta = -1.2e-9, the Hessian indefinite). Counting only
    nodes strictly past the bound missed it: nodes within LINK_BOUND_TOL count."""
    frame = pd.read_csv(Path(__file__).parent / "reference" / "log_link_agq_kink.csv")
    import warnings

    import glmm_binomial as g

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = g.fit("y ~ x + f + (1 | g)", frame, link="log", method="agq", n_agq=5)
    assert not fitted.converged
    assert any("cuts the quadrature" in str(w) for w in fitted.warnings)
