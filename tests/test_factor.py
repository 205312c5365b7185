"""The blocked sparse factorization (factor.py) against dense references: the chain layout
(nested factors eliminated leaf first, sparse coupling to a dense rest) and the plain layout
(first factor + dense rest) give the same mode, deviance and exact gradient, and both match a
dense computation whose gradient is taken by complex-step differentiation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.numerics.blas import blas_threads
from glmm_binomial.numerics.factor import Structure
from glmm_binomial.numerics.pirls import PirlsControl


def _model(
    seed: int, n: int, groups: list[tuple[str, np.ndarray, bool]], trials: int = 1
) -> ModelData:
    """Binomial data with one block per (name, codes, slope) entry."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n), rng.normal(size=n)])
    eta = x @ np.array([-0.3, 0.6])
    blocks = []
    for name, codes, slope in groups:
        n_levels = int(codes.max()) + 1
        z = np.column_stack([np.ones(n), x[:, 1]]) if slope else np.ones((n, 1))
        b = rng.normal(scale=0.9, size=(n_levels, z.shape[1]))
        eta = eta + np.einsum("ic,ic->i", z, b[codes])
        terms = ("(Intercept)", "x1") if slope else ("(Intercept)",)
        blocks.append(RandomBlock(name, terms, codes.astype(np.intp), tuple(range(n_levels)), z))
    m = np.full(n, float(trials))
    k = rng.binomial(trials, 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return ModelData(k, m, x, np.zeros(n), ("(Intercept)", "x1"), tuple(blocks))


def _nested_codes(rng: np.random.Generator, n: int, branching: tuple[int, ...]) -> list[np.ndarray]:
    """Codes of nested levels, outermost first: leaves drawn at random, parents by division."""
    n_leaves = int(np.prod(branching))
    leaf = rng.permutation(
        np.concatenate([np.arange(n_leaves), rng.integers(0, n_leaves, n - n_leaves)])
    )
    sizes = np.cumprod(branching)
    return [leaf // (n_leaves // int(s)) for s in sizes]


def _cases() -> dict[str, tuple[ModelData, np.ndarray]]:
    rng = np.random.default_rng(11)
    n = 300
    two = _nested_codes(rng, n, (8, 12))
    three = _nested_codes(rng, n, (3, 4, 10))
    crossed = [rng.integers(0, 25, n), rng.integers(0, 9, n)]
    # Partially crossed: b is nested in a for half the rows and random for the rest.
    a = rng.integers(0, 10, n)
    b = np.where(np.arange(n) < n // 2, a * 3 + rng.integers(0, 3, n), rng.integers(0, 30, n))
    small = rng.integers(0, 4, n)
    return {
        "nested2": (
            _model(1, n, [("c", two[0], False), ("c:m", two[1], False)]),
            np.array([0.8, 1.1]),
        ),
        "nested3": (
            _model(
                2, n, [("r", three[0], False), ("r:c", three[1], False), ("r:c:m", three[2], False)]
            ),
            np.array([0.6, 0.9, 1.2]),
        ),
        "nested_slopes": (
            _model(3, n, [("c", two[0], True), ("c:m", two[1], True)]),
            np.array([0.8, 0.2, 0.5, 1.0, -0.3, 0.4]),
        ),
        "crossed": (
            _model(4, n, [("a", crossed[0], False), ("b", crossed[1], True)]),
            np.array([0.9, 0.7, 0.1, 0.3]),
        ),
        "partially_crossed": (
            _model(5, n, [("a", a, False), ("b", b, False)]),
            np.array([0.7, 1.0]),
        ),
        "nested_and_crossed": (
            _model(6, n, [("c", two[0], False), ("c:m", two[1], True), ("s", small, False)]),
            np.array([0.8, 1.0, 0.2, 0.4, 0.6]),
        ),
        "nested3_and_crossed": (
            _model(
                7,
                n,
                [
                    ("r", three[0], True),
                    ("r:c", three[1], False),
                    ("r:c:m", three[2], False),
                    ("s", small, False),
                ],
            ),
            np.array([0.6, 0.1, 0.3, 0.9, 1.2, 0.5]),
        ),
    }


CASES = _cases()


def _dense_deviance(data: ModelData, theta: np.ndarray, beta: np.ndarray) -> complex:
    """Laplace deviance from dense Z Lambda by Newton in complex arithmetic (for the
    complex-step derivative): a reference independent of factor.py."""
    n = data.n_obs
    columns = []
    for b, lam in zip(data.blocks, data.lambdas(theta.real), strict=True):
        del lam
        z = np.zeros((n, b.n_levels * b.k))
        for c in range(b.k):
            z[np.arange(n), b.codes * b.k + c] = b.z[:, c]
        columns.append(z)
    z_all = np.hstack(columns)
    lam_blocks = []
    for b, s in zip(data.blocks, data.theta_slices(), strict=True):
        rows, cols = b.lower_indices()
        lam = np.zeros((b.k, b.k), dtype=complex)
        lam[rows, cols] = theta[s]
        lam_blocks.append(np.kron(np.eye(b.n_levels), lam))
    a = z_all @ scipy.linalg.block_diag(*lam_blocks)
    eta_fixed = data.x @ beta + data.offset
    u = np.zeros(a.shape[1], dtype=complex)
    converged = False
    for _ in range(60):
        eta = eta_fixed + a @ u
        mu = 1.0 / (1.0 + np.exp(-eta))
        w = data.trials * mu * (1.0 - mu)
        h = a.T @ (w[:, None] * a) + np.eye(a.shape[1])
        step = np.linalg.solve(h, a.T @ (data.successes - data.trials * mu) - u)
        u = u + step
        if converged:
            break
        # Quadratic convergence: one more step after a step of 1e-12 is at rounding.
        converged = bool(np.max(np.abs(step)) < 1e-12)
    eta = eta_fixed + a @ u
    mu = 1.0 / (1.0 + np.exp(-eta))
    w = data.trials * mu * (1.0 - mu)
    h = a.T @ (w[:, None] * a) + np.eye(a.shape[1])
    lu, _ = scipy.linalg.lu_factor(h)
    kernel = np.sum(data.successes * eta - data.trials * np.log1p(np.exp(eta)))
    return -2.0 * kernel + u @ u + np.sum(np.log(np.diag(lu))) - 2.0 * data.log_binomial_constant


def _complex_step_gradient(data: ModelData, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
    step = 1e-30
    point = np.concatenate([theta, beta]).astype(complex)
    out = np.empty(point.size)
    # One BLAS thread: threads on small dense solves cost far more than they save.
    with blas_threads(1):
        for j in range(point.size):
            p = point.copy()
            p[j] += 1j * step
            out[j] = _dense_deviance(data, p[: theta.size], p[theta.size :]).imag / step
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_chain_and_plain_layouts_agree_with_the_dense_reference(name: str) -> None:
    data, theta = CASES[name]
    beta = np.array([-0.2, 0.5])
    # A mode to rounding (the default stops at a decrement of 1e-14, u to about 1e-7).
    tight = PirlsControl(tol=1e-24)
    chain = LaplaceObjective(data, tight)
    plain = LaplaceObjective(data, tight)
    plain.structure = Structure(plain.data, nested=False)
    dev_c, gt_c, gb_c = chain.deviance_and_gradient(theta, beta)
    dev_p, gt_p, gb_p = plain.deviance_and_gradient(theta, beta)
    assert dev_c == pytest.approx(dev_p, abs=1e-10)
    np.testing.assert_allclose(gt_c, gt_p, atol=1e-10)
    np.testing.assert_allclose(gb_c, gb_p, atol=1e-10)
    mode_c, mode_p = chain.mode(theta, beta), plain.mode(theta, beta)
    np.testing.assert_allclose(mode_c.eta, mode_p.eta, atol=1e-10)
    with blas_threads(1):
        dense = _dense_deviance(data, theta.astype(complex), beta.astype(complex))
    assert dev_c == pytest.approx(dense.real, abs=1e-9)
    if name in ("nested2", "partially_crossed", "nested_and_crossed"):
        return  # covered by the other cases' complex steps (a few tenths of a second each)
    reference = _complex_step_gradient(data, theta, beta)
    np.testing.assert_allclose(np.concatenate([gt_c, gb_c]), reference, atol=1e-7)


@pytest.mark.parametrize("name", ["crossed", "nested3_and_crossed"])
def test_factor_inverse_is_the_selected_inverse_kept(name: str) -> None:
    """Factor.inverse: selected_inverse() formed once per factor (the mode error, the gradient
    and the conditional covariances share it)."""
    data, theta = CASES[name]
    mode = LaplaceObjective(data).mode(theta, np.array([-0.2, 0.5]))
    kept = mode.factor.inverse
    assert mode.factor.inverse is kept
    fresh = mode.factor.selected_inverse()
    for got, want in zip(kept.diag, fresh.diag, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_rows_products_are_the_full_ones_at_that_row(name: str) -> None:
    """row_transpose (row i of Z Lambda, pirls.face_step's right-hand sides) is transpose_times
    of the unit vector e_i, and times_at the rows' entries of times: the same numbers without
    a pass over every row."""
    data, theta = CASES[name]
    objective = LaplaceObjective(data)
    st = objective.structure
    a1, a2 = st.z_lambda(objective.data, objective.data.lambdas(theta))
    rng = np.random.default_rng(2)
    u1, u2 = rng.normal(size=(st.n1, st.k1)), rng.normal(size=st.q2)
    rows = np.array([0, 7, st.n - 1, 7])
    np.testing.assert_array_equal(st.times_at(rows, a1, a2, u1, u2), st.times(a1, a2, u1, u2)[rows])
    for i in rows[:3]:
        unit = np.zeros(st.n)
        unit[i] = 1.0
        got = st.row_transpose(a1, a2, int(i))
        want = st.transpose_times(a1, a2, unit)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_layout_follows_the_grouping_codes() -> None:
    """Nested factors form the chain whatever their names; crossed ones go to the rest."""
    st = Structure(CASES["nested3"][0])
    assert [lv.n_groups for lv in st.levels] == [120, 12, 3]
    assert st.q_rest == 0
    st = Structure(CASES["nested3_and_crossed"][0])
    assert [lv.n_groups for lv in st.levels] == [120, 12, 3]
    assert st.q_rest == 4
    st = Structure(CASES["crossed"][0])
    assert len(st.levels) == 1
    assert Structure(CASES["nested3"][0], nested=False).q_rest == 15


@pytest.mark.parametrize("name", sorted(CASES))
def test_sparse_coupling_matches_the_dense_coupling(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The coupling to the rest through pairs of pattern entries (large crossed factors) and
    through a dense block (small ones) give the same deviance, gradient and mode."""
    import glmm_binomial.numerics.factor as factor

    data, theta = CASES[name]
    beta = np.array([-0.2, 0.5])
    tight = PirlsControl(tol=1e-24)
    dense = LaplaceObjective(data, tight)
    plain = LaplaceObjective(data, tight)
    plain.structure = Structure(plain.data, nested=False)
    monkeypatch.setattr(factor, "DENSE_COUPLING_MAX_SIZE", 0)
    sparse = LaplaceObjective(data, tight)
    sparse_plain = LaplaceObjective(data, tight)
    sparse_plain.structure = Structure(sparse_plain.data, nested=False)
    assert not any(lv.dense_coupling for lv in sparse_plain.structure.levels)
    expected = dense.deviance_and_gradient(theta, beta)
    for objective in (plain, sparse, sparse_plain):
        got = objective.deviance_and_gradient(theta, beta)
        assert got[0] == pytest.approx(expected[0], abs=1e-10)
        np.testing.assert_allclose(got[1], expected[1], atol=1e-10)
        np.testing.assert_allclose(got[2], expected[2], atol=1e-10)
        np.testing.assert_allclose(
            objective.mode(theta, beta).eta, dense.mode(theta, beta).eta, atol=1e-10
        )


def _multilevel_reference() -> list[dict]:
    import json
    from pathlib import Path

    return list(json.loads((Path(__file__).parent / "reference" / "multilevel.json").read_text()))


@pytest.mark.parametrize("record", _multilevel_reference(), ids=lambda r: r["formula"])
def test_multilevel_fits_reach_glmmtmb(record: dict) -> None:
    """Simulated nested (depth 3, codes local to their parent, a slope on the middle level)
    and crossed data (tests/reference/make_multilevel.py, .R): glmmTMB's optimum, logLik to
    1e-6, fixed effects and random-effect SDs to 1e-4."""
    from pathlib import Path

    import pandas as pd

    import glmm_binomial

    frame = pd.read_csv(Path(__file__).parent / "reference" / record["data"])
    for column in ("region", "comm", "mom", "a", "b"):
        if column in frame:
            frame[column] = frame[column].astype(str)
    result = glmm_binomial.fit(record["formula"], frame)
    tmb = record["glmmTMB"]
    assert result.converged
    assert result.loglik == pytest.approx(tmb["logLik"], abs=1e-6)
    np.testing.assert_allclose(result.params.to_numpy(), list(tmb["fixef"].values()), atol=1e-4)
    ours = sorted(float(np.sqrt(c[0, 0])) for c in result.covariance_matrices())
    theirs = sorted(float(np.sqrt(c[0][0])) for c in tmb["cov"].values())
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("slope", [False, True])
def test_one_factor_solve_is_the_substitutions_and_the_dense_inverse(slope: bool) -> None:
    # Factor.solve's batched product with the blocks' inverses (one grouping factor alone)
    # against the chain's forward and back substitutions and a dense solve of H.
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 12, 200)
    data = _model(5, 200, [("g", codes, slope)])
    objective = LaplaceObjective(data)
    theta = np.array([0.9, -0.3, 0.5]) if slope else np.array([0.8])
    mode = objective.mode(theta, np.array([-0.2, 0.5]))
    factor = mode.factor
    assert factor.block_diagonal
    r1 = rng.normal(size=mode.u1.shape)
    solved, rest = factor.solve(r1, np.zeros(0))
    substituted, _ = factor.backward(factor.forward(r1, np.zeros(0))[0], np.zeros(0))
    np.testing.assert_allclose(solved, substituted, rtol=1e-13, atol=1e-14)
    assert rest.shape == (0,)
    lam = mode.lambdas[0]
    h = np.matmul(np.matmul(lam.T, factor.cross), lam) + np.eye(lam.shape[0])  # H_j
    np.testing.assert_allclose(np.einsum("jkl,jl->jk", h, solved), r1, rtol=1e-10, atol=1e-12)
    if not slope:
        np.testing.assert_array_equal(solved, substituted)  # the scalar path's own products


def intercepts_on(codes: np.ndarray, n_levels: int) -> ModelData:
    """An intercept-only model with a random intercept on the grouping codes given."""
    n = len(codes)
    return ModelData(
        successes=np.zeros(n),
        trials=np.ones(n),
        x=np.ones((n, 1)),
        offset=np.zeros(n),
        fixed_names=("(Intercept)",),
        blocks=(RandomBlock("g", ("1",), codes, tuple(range(n_levels)), np.ones((n, 1))),),
    )


@pytest.mark.parametrize("max_rows", [1, 5, 40, 10_000])
def test_level_chunks_are_runs_of_whole_levels(max_rows: int) -> None:
    rng = np.random.default_rng(4)
    counts = rng.integers(1, 12, 30)
    codes = np.repeat(np.arange(30), counts)
    n = len(codes)
    chunks = Structure(intercepts_on(codes, 30)).level_chunks(max_rows)
    assert chunks is not None
    # Consecutive, covering every row and level once, each level whole within its run.
    assert chunks[0].rows.start == 0 and chunks[-1].rows.stop == n
    assert chunks[0].levels.start == 0 and chunks[-1].levels.stop == 30
    for before, after in zip(chunks[:-1], chunks[1:], strict=True):
        assert before.rows.stop == after.rows.start
        assert before.levels.stop == after.levels.start
    values = rng.normal(size=n)
    for chunk in chunks:
        assert np.array_equal(chunk.counts, counts[chunk.levels])
        assert chunk.starts[0] == 0
        assert chunk.rows.stop - chunk.rows.start == int(np.sum(chunk.counts))
        # A run ends at the first level that starts at or past a multiple of max_rows.
        assert chunk.rows.stop - chunk.rows.start <= max_rows + int(np.max(counts))
        ops = chunk.ops()
        part = values[chunk.rows]
        assert np.allclose(ops.level_sum(part), np.bincount(codes, values)[chunk.levels])
        assert np.array_equal(
            ops.level_values(np.arange(len(chunk.counts))), codes[chunk.rows] - chunk.levels.start
        )
    if max_rows >= n:
        assert len(chunks) == 1
    # Rows not sorted by level: no runs.
    shuffled = rng.permutation(n)
    assert Structure(intercepts_on(codes[shuffled], 30)).level_chunks(max_rows) is None
