"""The fixed effects' covariance with coefficients that have none (NaN rows)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from glmm_binomial.numerics.covariance import (
    LimitCovariance,
    complement_basis,
    kept_rows,
    moving_rows,
    project_hessian,
    row_variances,
    spread_covariance,
    transform_covariance,
)


def test_diverging_coefficients_get_nan_rows_and_the_others_their_covariance():
    rows, kept = kept_rows(n_theta=1, n_fixed=3, diverging=(0,))
    assert rows.tolist() == [0, 2, 3] and kept.tolist() == [1, 2]
    vcov, unavailable = spread_covariance(np.array([[2.0, 0.5], [0.5, 1.0]]), kept, 3)
    assert unavailable == ()
    assert np.isnan(vcov[0]).all() and np.isnan(vcov[:, 0]).all()
    np.testing.assert_array_equal(vcov[1:, 1:], [[2.0, 0.5], [0.5, 1.0]])


def test_negative_variances_are_unavailable_not_square_rooted():
    vcov, unavailable = spread_covariance(np.array([[-1.0, 0.0], [0.0, 1.0]]), np.arange(2), 2)
    assert unavailable == (0,)
    assert np.isnan(vcov[0]).all() and vcov[1, 1] == 1.0


def test_transform_keeps_nan_to_the_coefficients_that_depend_on_it():
    vcov = np.array([[np.nan, np.nan, np.nan], [np.nan, 4.0, 1.0], [np.nan, 1.0, 9.0]])
    # beta = c beta~: the intercept mixes with the centred x1; x1 and x2 are scaled.
    c = np.array([[1.0, -3.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 2.0]])
    mapped = transform_covariance(c, vcov)
    assert np.isnan(mapped[0]).all() and np.isnan(mapped[:, 0]).all()
    np.testing.assert_allclose(mapped[1:, 1:], [[1.0, 1.0], [1.0, 36.0]])
    full = np.array([[1.0, 0.2, 0.0], [0.2, 4.0, 1.0], [0.0, 1.0, 9.0]])
    np.testing.assert_allclose(transform_covariance(c, full), c @ full @ c.T)


def test_nothing_diverging_keeps_every_row_and_the_covariance_as_it_is():
    rows, kept = kept_rows(n_theta=2, n_fixed=3, diverging=())
    assert rows.tolist() == [0, 1, 2, 3, 4] and kept.tolist() == [0, 1, 2]
    given = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.1], [0.0, 0.1, 3.0]])
    vcov, unavailable = spread_covariance(given, kept, 3)
    assert unavailable == () and vcov is not given
    np.testing.assert_array_equal(vcov, given)
    # Diverging indices are those of the fixed effects; others are ignored (as setdiff1d did).
    rows, kept = kept_rows(n_theta=1, n_fixed=3, diverging=(2, 5))
    assert rows.tolist() == [0, 1, 2] and kept.tolist() == [0, 1]


def test_a_block_with_a_correlation_beyond_one_loses_both_standard_errors():
    """Positive variances whose 2 x 2 block is indefinite (a saddle of the log-likelihood):
    the correlation 6.3 is no correlation, and nothing tells which of the two has the
    standard error."""
    given = np.array([[9e-6, 6.289 * 3e-3 * 7e-4], [6.289 * 3e-3 * 7e-4, 4.9e-7]])
    vcov, unavailable = spread_covariance(given, np.arange(2), 2)
    assert unavailable == (0, 1)
    assert np.isnan(vcov).all()


def test_only_the_coefficient_on_the_negative_direction_loses_its_standard_error():
    # 0 and 1 are uncorrelated, and 2's correlations of 0.8 with both make the block
    # indefinite: 2 loads most on the negative direction (0.71 against 0.5 each).
    given = np.array([[1.0, 0.0, 0.8], [0.0, 1.0, 0.8], [0.8, 0.8, 1.0]])
    assert np.linalg.eigvalsh(given)[0] < 0
    vcov, unavailable = spread_covariance(given, np.arange(3), 3)
    assert unavailable == (2,)
    np.testing.assert_array_equal(vcov[:2, :2], given[:2, :2])
    assert np.isnan(vcov[2]).all() and np.isnan(vcov[:, 2]).all()


def test_a_nearly_singular_covariance_keeps_every_standard_error():
    # Two nearly collinear columns: a correlation of 1 - 1e-12 is a covariance still.
    r = 1.0 - 1e-12
    given = np.array([[4.0, 2.0 * r], [2.0 * r, 1.0]])
    vcov, unavailable = spread_covariance(given, np.arange(2), 2)
    assert unavailable == ()
    np.testing.assert_array_equal(vcov, given)


def test_a_non_finite_covariance_entry_drops_its_two_coefficients():
    given = np.array([[1.0, np.inf, 0.0], [np.inf, 1.0, 0.0], [0.0, 0.0, 1.0]])
    _, unavailable = spread_covariance(given, np.arange(3), 3)
    assert unavailable == (0, 1)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=6).flatmap(
        lambda p: st.lists(
            st.floats(min_value=-3.0, max_value=3.0, allow_nan=False),
            min_size=p * p,
            max_size=p * p,
        )
    )
)
def test_what_keeps_its_standard_errors_is_a_covariance(entries):
    """Any symmetric matrix with a positive diagonal (the inverse of an information that may
    be indefinite): the coefficients left with a standard error form a positive semidefinite
    block, and a matrix that already is one keeps them all."""
    p = int(round(len(entries) ** 0.5))
    a = np.array(entries).reshape(p, p)
    given_matrix = 0.5 * (a + a.T)
    np.fill_diagonal(given_matrix, np.abs(np.diagonal(given_matrix)) + 0.1)
    vcov, unavailable = spread_covariance(given_matrix, np.arange(p), p)
    kept = [j for j in range(p) if j not in unavailable]
    block = vcov[np.ix_(kept, kept)]
    assert np.isfinite(block).all()
    if kept:
        sd = np.sqrt(np.diagonal(block))
        assert np.linalg.eigvalsh(block / np.outer(sd, sd)).min() >= -1e-9
    sd = np.sqrt(np.diagonal(given_matrix))
    if np.linalg.eigvalsh(given_matrix / np.outer(sd, sd)).min() >= 1e-8:
        assert unavailable == ()


def test_the_limit_covariance_is_the_inverse_on_the_complement_of_the_flat_direction():
    # An information flat along d = (-1, 1, 1) / sqrt(3) over beta (theta first): the
    # limit's covariance gives every combination orthogonal to d its variance, as the
    # pseudo-inverse does, and any combination with a component along d none.
    rng = np.random.default_rng(0)
    d = np.array([-1.0, 1.0, 1.0, 0.0]) / np.sqrt(3.0)
    basis = complement_basis(d[:, None])
    assert basis.shape == (4, 3)
    np.testing.assert_allclose(basis.T @ basis, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(basis.T @ d, 0.0, atol=1e-12)
    a = rng.normal(size=(5, 5))
    hessian = a @ a.T + 5.0 * np.eye(5)
    flat = np.eye(5) - np.outer(np.r_[0.0, d], np.r_[0.0, d])
    hessian = flat @ hessian @ flat  # no curvature along (0, d)
    reduced = project_hessian(hessian, 1, basis)
    cov = np.linalg.inv(0.5 * reduced)
    matrix = basis @ cov[1:, 1:] @ basis.T
    np.testing.assert_allclose(matrix, np.linalg.pinv(0.5 * hessian)[1:, 1:], atol=1e-10)
    limit = LimitCovariance(matrix, d[:, None])
    rows = np.array([[1.0, 1.0, 0.0, 0.5], [1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    variance = row_variances(rows, np.full((4, 4), np.nan), limit)
    assert np.isnan(variance[2]) and np.isfinite(variance[:2]).all()
    np.testing.assert_allclose(variance[:2], np.einsum("ij,jk,ik->i", rows, matrix, rows)[:2])
    contrast = transform_covariance(rows[:2] - rows[[1, 0]], np.full((4, 4), np.nan), limit)
    assert np.isfinite(contrast).all()


def test_a_limit_coefficient_without_curvature_stays_without_a_variance():
    # A coefficient whose curvature was not positive definite has NaN rows in the limit too:
    # the combinations using it have no variance even when orthogonal to the flat direction.
    matrix = np.array([[1.0, 0.1, np.nan], [0.1, 2.0, np.nan], [np.nan, np.nan, np.nan]])
    limit = LimitCovariance(matrix, np.array([[1.0], [0.0], [0.0]]))
    rows = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    variance = row_variances(rows, matrix, limit)
    assert variance[0] == 2.0 and np.isnan(variance[1:]).all()


def test_an_estimate_moving_along_the_flat_direction_is_not_one():
    flat = np.array([[-1.0], [1.0], [0.0]]) / np.sqrt(2.0)
    limit = LimitCovariance(np.eye(3), flat)
    gradients = np.array(
        [
            [1.0, 0.0, 0.0],  # the intercept alone: moves with the path
            [1.0, 1.0, 0.5],  # a mixed cell's predictor: finite
            [1e-17, 0.0, 0.0],  # a probability already at 0: its limit
            [np.nan, 0.0, 0.0],  # no gradient: not judged here
        ]
    )
    assert moving_rows(gradients, limit).tolist() == [True, False, False, False]
    assert not moving_rows(gradients, None).any()
