"""numerics.dense: the LAPACK Cholesky and solves give scipy.linalg's numbers, bit for bit,
and its errors."""

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from glmm_binomial.numerics.dense import cho_solve_upper, cholesky_upper, solve_upper


def spd(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, n))
    return m @ m.T + 0.1 * np.eye(n)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 10_000), columns=st.integers(0, 3))
def test_same_numbers_as_scipy(n: int, seed: int, columns: int) -> None:
    a = spd(n, seed)
    b = np.random.default_rng(seed + 1).normal(size=(n, columns) if columns else n)
    r = cholesky_upper(a)
    assert np.array_equal(r, scipy.linalg.cholesky(a, lower=False))
    assert np.array_equal(cho_solve_upper(r, b), scipy.linalg.cho_solve((r, False), b))
    assert np.array_equal(solve_upper(r, b), scipy.linalg.solve_triangular(r, b, lower=False))
    assert np.allclose(a @ cho_solve_upper(r, b), b)
    assert np.allclose(np.tril(r, -1), 0.0)


def test_input_not_modified_and_fortran_or_c_order() -> None:
    a = spd(5, 3)
    kept = a.copy()
    r_c = cholesky_upper(a)
    r_f = cholesky_upper(np.asfortranarray(a))
    assert np.array_equal(a, kept)
    assert np.array_equal(r_c, r_f)


def test_errors() -> None:
    with pytest.raises(np.linalg.LinAlgError, match="order 2"):
        cholesky_upper(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        cholesky_upper(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="square"):
        cholesky_upper(np.ones((2, 3)))
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        solve_upper(np.array([[1.0, 1.0], [0.0, 0.0]]), np.ones(2))


def test_empty() -> None:
    r = cholesky_upper(np.zeros((0, 0)))
    assert r.shape == (0, 0)
    assert cho_solve_upper(r, np.zeros(0)).shape == (0,)
    assert solve_upper(r, np.zeros((0, 0))).shape == (0, 0)
