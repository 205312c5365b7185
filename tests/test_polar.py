"""numerics.polar: the rows of unstructured Lambda_t in polar coordinates."""

from __future__ import annotations

import numpy as np
import pytest
from _simulate import simulated_model
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from glmm_binomial import datasets
from glmm_binomial.model.design import build_model
from glmm_binomial.numerics.polar import ANGLE_SCALE_MAX, PolarRows, row_direction, row_jacobian

ROWS = st.integers(2, 5).flatmap(
    lambda m: arrays(np.float64, m, elements=st.floats(-3.0, 3.0, allow_subnormal=False))
)


@given(ROWS)
def test_to_theta_inverts_to_polar(row):
    polar = PolarRows((np.arange(len(row)),))
    y = polar.to_polar(row)
    np.testing.assert_allclose(polar.to_theta(y), row, atol=1e-12)
    assert y[0] == pytest.approx(np.linalg.norm(row))
    assert np.linalg.norm(row_direction(y[1:])) == pytest.approx(1.0)


def test_a_row_of_zeros_points_along_the_diagonal():
    polar = PolarRows((np.arange(3),))
    y = polar.to_polar(np.zeros(3))
    assert y[0] == 0.0
    np.testing.assert_allclose(y[1:], np.pi / 2)
    np.testing.assert_allclose(row_direction(y[1:]), [0.0, 0.0, 1.0], atol=1e-15)


@given(ROWS)
def test_jacobian_matches_central_differences(row):
    polar = PolarRows((np.arange(len(row)),))
    y = polar.to_polar(row)
    jac = row_jacobian(float(y[0]), y[1:])
    step = 1e-6
    for j in range(len(y)):
        e = np.zeros(len(y))
        e[j] = step
        numeric = (polar.to_theta(y + e) - polar.to_theta(y - e)) / (2 * step)
        np.testing.assert_allclose(jac[:, j], numeric, atol=1e-7)


def test_pull_back_is_the_chain_rule():
    """The gradient of f(to_theta(y)) for a linear f is J' c per row, other entries as they are."""
    rng = np.random.default_rng(3)
    polar = PolarRows((np.array([1, 3]), np.array([2, 4, 5])))
    theta = rng.normal(size=7)
    c = rng.normal(size=7)
    y = polar.to_polar(theta)
    pulled = polar.pull_back(y, c)
    step = 1e-6
    for j in range(7):
        e = np.zeros(7)
        e[j] = step
        numeric = (c @ polar.to_theta(y + e) - c @ polar.to_theta(y - e)) / (2 * step)
        assert pulled[j] == pytest.approx(numeric, abs=1e-7)
    assert pulled[0] == c[0] and pulled[6] == c[6]  # not in any row: unchanged


def test_scales_pull_back_a_diagonal_curvature():
    """At a diagonal row (l21 = 0, l22 = s) the radius has l22's scale and the angle l21's
    divided by s (at most ANGLE_SCALE_MAX)."""
    polar = PolarRows((np.array([1, 2]),))
    theta = np.array([0.7, 0.0, 0.5])
    y = polar.to_polar(theta)
    scales = polar.scales(y, np.array([0.3, 0.1, 0.2]))
    np.testing.assert_allclose(scales, [0.3, 0.2, 0.1 / 0.5])
    tiny = polar.scales(polar.to_polar(np.array([0.7, 0.0, 1e-3])), np.array([0.3, 0.1, 0.2]))
    assert tiny[2] == ANGLE_SCALE_MAX


def test_rows_of_each_unstructured_block_in_column_order():
    """theta is each block's lower triangle column by column: for k = 3 (l11, l21, l31, l22,
    l32, l33), rows (l21, l22) and (l31, l32, l33); a second block's indices are offset."""
    data = datasets.load("contraception")
    model, _ = build_model("use ~ age + (1 + age + urban | district) + (1 + age | livch)", data)
    rows = PolarRows.of(model)
    assert rows is not None
    assert [r.tolist() for r in rows.rows] == [[1, 3], [2, 4, 5], [7, 8]]


def test_no_rows_for_scalar_or_structured_terms():
    assert PolarRows.of(simulated_model(1)) is None
    data = datasets.load("contraception")
    model, _ = build_model("use ~ age + diag(1 + urban | district)", data)
    assert PolarRows.of(model) is None
