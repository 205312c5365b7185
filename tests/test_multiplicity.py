"""The range distribution (studentized range, df = Inf) and emmeans' adjustments.

MPMATH_RANGE_SF holds P(R_k > sqrt(2) x) computed with mpmath 1.3 at 50 digits by
    k * quad(lambda z: npdf(z) * (ncdf(z)**(k-1) - (ncdf(z) - ncdf(z - q))**(k-1)),
             [-inf, -10, -5, 0, q/2, q, q + 10, inf]),   q = sqrt(2) x
(k = (1 + sqrt(17))/2 is dunnettx's family size for two contrasts). R's ptukey, which emmeans
uses, is accurate to about 6e-14 in absolute terms only: at x = 7.7365, k = 4 it gives
7.73e-14 where the value is 6.13e-14 (effects.json, pairs_livch_link).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from glmm_binomial.results.multiplicity import (
    MVT_ABSEPS,
    MVT_COARSE_ABSEPS,
    adjust_p_values,
    correlation_of,
    critical_value,
    dunnettx_sf,
    mvt_abseps,
    p_adjust,
    range_sf,
)

K_DUNNETT_2 = (1 + np.sqrt(17)) / 2
MPMATH_RANGE_SF = [
    (2, 0.5, 0.61707507745197379),
    (2, 3.27205571610532, 0.0010676853312413132),
    (2, 7.73648498631203, 1.0220304628483189e-14),
    (2, 9.0, 2.2571768119076813e-19),
    (4, 0.5, 0.95908240087662529),
    (4, 3.27205571610532, 0.0058835139426025661),
    (4, 7.73648498631203, 6.1321102522512093e-14),
    (4, 9.0, 1.3543056761236033e-18),
    (6, 0.5, 0.99618709724554778),
    (6, 3.27205571610532, 0.013634793178074721),
    (6, 7.73648498631203, 1.5330094649887195e-13),
    (6, 9.0, 3.3857631630419144e-18),
    (K_DUNNETT_2, 0.5, 0.79049632286951978),
    (K_DUNNETT_2, 3.27205571610532, 0.0020824734747868997),
    (K_DUNNETT_2, 7.73648498631203, 2.0440541334285514e-14),
    (K_DUNNETT_2, 9.0, 4.5143532390934617e-19),
]


@pytest.mark.parametrize(("k", "x", "expected"), MPMATH_RANGE_SF)
def test_range_sf_to_high_precision(k: float, x: float, expected: float) -> None:
    assert range_sf(np.sqrt(2) * x, k)[0] == pytest.approx(expected, rel=1e-9)


def test_two_means_is_the_normal_tail() -> None:
    x = np.array([0.1, 1.0, 2.5, 6.0])
    np.testing.assert_allclose(range_sf(np.sqrt(2) * x, 2), 2 * stats.norm.sf(x), rtol=1e-10)


@settings(max_examples=30)
@given(
    q=st.floats(min_value=0.05, max_value=6.0),
    k=st.floats(min_value=2.0, max_value=12.0),
)
def test_agrees_with_scipy_where_scipy_is_accurate(q: float, k: float) -> None:
    """scipy.stats.studentized_range at df = inf (1 - cdf: accurate while p >> 1e-16)."""
    expected = stats.studentized_range.sf(q, k, np.inf)
    assert range_sf(q, k)[0] == pytest.approx(expected, rel=1e-7, abs=1e-15)


def test_dunnettx_formula() -> None:
    """emmeans' .pdunnx: w ptukey(sqrt(2) x, (1 + sqrt(1 + 8n))/2) + (1 - w) pf(x^2)^n."""
    x, n = 2.1, 3
    w = (n - 1) / n
    cdf = w * (1 - range_sf(np.sqrt(2) * x, (1 + np.sqrt(1 + 8 * n)) / 2)[0])
    cdf += (1 - w) * stats.chi2.cdf(x * x, 1) ** n
    assert dunnettx_sf(x, n)[0] == pytest.approx(1 - cdf, rel=1e-12)
    assert dunnettx_sf(x, 1)[0] == pytest.approx(2 * stats.norm.sf(x), rel=1e-12)


def test_adjustments_order() -> None:
    z = np.array([3.0, 2.0, 0.5])
    none = adjust_p_values(z, "none", 3)
    for adjust in ("tukey", "dunnettx", "sidak", "holm", "bonferroni"):
        adjusted = adjust_p_values(z, adjust, 3)
        assert np.all(adjusted >= none - 1e-15) and np.all(adjusted <= 1.0)
    assert adjust_p_values(z[:1], "bonferroni", 2)[0] == none[0]  # one test: no adjustment
    with pytest.raises(ValueError, match="adjust"):
        adjust_p_values(z, "scheffe", 3)


@pytest.mark.parametrize("adjust", ["tukey", "dunnettx", "sidak", "bonferroni", "none"])
def test_critical_values_invert_the_p_values(adjust: str) -> None:
    """At the critical value the adjusted p-value of the largest |z| is 1 - level."""
    n, family = 6, 4
    c = critical_value(0.95, adjust, n, family)
    z = np.array([c] + [0.0] * (n - 1))
    if adjust == "bonferroni":
        assert 2 * stats.norm.sf(c) * n == pytest.approx(0.05, rel=1e-10)
    else:
        assert adjust_p_values(z, adjust, family)[0] == pytest.approx(0.05, rel=1e-8)
    assert critical_value(0.95, "tukey", 6, 4) == pytest.approx(
        stats.studentized_range.ppf(0.95, 4, np.inf) / np.sqrt(2), rel=1e-9
    )


@pytest.mark.parametrize("adjust", ["tukey", "dunnettx", "sidak", "holm", "bonferroni", "none"])
def test_no_statistic_no_p_value(adjust):
    # Found by bench/fuzz_workflow.py: pairs() of a separated fit showed p = 1 for contrasts
    # with no standard error (z NaN).
    z = np.array([1.8, np.nan, -2.5, np.nan])
    p = adjust_p_values(z, adjust, 4)
    assert np.isnan(p[[1, 3]]).all()
    # The others are adjusted as a family of all four tests, as emmeans counts every contrast
    # of a by group (its p.adjust(p, n = 4)); Tukey's by the number of means, as before.
    np.testing.assert_array_equal(p[[0, 2]], adjust_p_values(z[[0, 2]], adjust, 4, n_tests=4))
    if adjust not in ("tukey", "none"):
        assert (p[[0, 2]] > adjust_p_values(z[[0, 2]], adjust, 4)).all()
    if adjust == "tukey":
        np.testing.assert_array_equal(
            p[[0, 2]], adjust_p_values(np.array([1.8, -2.5, 9.0]), adjust, 4)[:2]
        )


def test_mvt_integrates_to_mvtnorms_accuracy_beyond_twelve_tests_or_when_singular() -> None:
    """1e-4 for a regular family of up to 12 tests; mvtnorm's 1e-3 for more tests or a singular
    correlation (contrasts of fewer independent estimates), where scipy's integration to 1e-4
    takes tens of seconds."""
    assert mvt_abseps(np.eye(12)) == MVT_ABSEPS == 1e-4
    assert mvt_abseps(np.eye(13)) == MVT_COARSE_ABSEPS == 1e-3
    pairs = np.array([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0], [0.0, 1.0, -1.0]])
    covariance = pairs @ pairs.T  # three pairs of three means: rank 2
    assert mvt_abseps(correlation_of(covariance)) == MVT_COARSE_ABSEPS
    assert mvt_abseps(correlation_of(covariance + np.eye(3))) == MVT_ABSEPS
    # The singular family's p-values still lie between the unadjusted and Bonferroni's.
    z = np.array([0.5, 2.0, 3.0])
    p = adjust_p_values(z, "mvt", 3, covariance)
    unadjusted = 2.0 * stats.norm.sf(z)
    assert np.all(p >= unadjusted - 1e-12) and np.all(p <= np.minimum(3 * unadjusted, 1.0))


def test_mvt_is_the_joint_adjustment_of_correlated_statistics() -> None:
    z = np.array([2.5, -1.0, 0.3])
    # Independent statistics: P(max |Z| >= c) = 1 - (1 - p)^n, Sidak's exactly.
    independent = adjust_p_values(z, "mvt", 3, np.eye(3) * 4.0)
    np.testing.assert_allclose(independent, adjust_p_values(z, "sidak", 3), atol=2e-4)
    # Perfectly correlated ones are one statistic: no adjustment.
    same = adjust_p_values(z, "mvt", 3, np.ones((3, 3)))
    np.testing.assert_allclose(same, adjust_p_values(z, "none", 3), atol=2e-4)
    # In between, and the same numbers on every call (a fixed seed).
    correlated = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.5], [0.2, 0.5, 1.0]])
    p = adjust_p_values(z, "mvt", 3, correlated)
    assert np.all(p >= adjust_p_values(z, "none", 3)) and np.all(p <= independent + 2e-4)
    np.testing.assert_array_equal(p, adjust_p_values(z, "mvt", 3, correlated))
    # Its critical value inverts its p-value, and lies below Sidak's.
    c = critical_value(0.95, "mvt", 3, 3, correlated)
    assert adjust_p_values(np.array([c, 0.0, 0.0]), "mvt", 3, correlated)[0] == pytest.approx(
        0.05, abs=3e-4
    )
    assert critical_value(0.95, "none", 3, 3) < c < critical_value(0.95, "sidak", 3, 3)
    with pytest.raises(ValueError, match="mvt' needs the covariance"):
        adjust_p_values(z, "mvt", 3)
    # fdr is R's p.adjust "fdr" (Benjamini-Hochberg); its intervals Bonferroni's.
    unadjusted = 2 * stats.norm.sf(np.abs(z))
    ranked = np.minimum.accumulate((3 / np.arange(3, 0, -1)) * np.sort(unadjusted)[::-1])
    np.testing.assert_allclose(np.sort(adjust_p_values(z, "fdr", 3)), np.sort(ranked))
    assert critical_value(0.95, "fdr", 3, 3) == critical_value(0.95, "bonferroni", 3, 3)


@settings(max_examples=50, deadline=None)
@given(
    p=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8),
    extra=st.integers(0, 4),
    method=st.sampled_from(["holm", "hochberg", "hommel", "bonferroni", "BH", "BY"]),
)
def test_p_adjust_with_more_tests_than_p_values(p: list[float], extra: int, method: str) -> None:
    """R's p.adjust(p, n = length(p) + extra): tests without a p-value make every adjusted
    p-value at least as large; for hommel they enter as p = 1 (R pads them); extra 0 is the
    default."""
    raw = np.asarray(p)
    n = len(raw) + extra
    more = p_adjust(raw, method, n)
    np.testing.assert_array_equal(p_adjust(raw, method, len(raw)), p_adjust(raw, method))
    assert np.all(more >= p_adjust(raw, method) - 1e-15)
    assert np.all((more >= raw - 1e-15) & (more <= 1.0))
    if method == "bonferroni":
        np.testing.assert_allclose(more, np.minimum(n * raw, 1.0))
    if method == "hommel" and n > 2:
        padded = p_adjust(np.concatenate([raw, np.ones(extra)]), method)[: len(raw)]
        np.testing.assert_allclose(more, padded, rtol=1e-12)
    with pytest.raises(ValueError, match="n must be at least"):
        p_adjust(raw, method, len(raw) - 1)
