"""Multiplicity adjustments of z tests as emmeans 1.8.4 makes them (df = Inf, asymptotic).

- tukey: p = P(R_k > sqrt(2) |z|), R_k the range of k independent N(0, 1) variables (the
  studentized range with infinite degrees of freedom), k the number of means compared;
- dunnettx: emmeans' approximation to Dunnett's test (emmeans:::.pdunnx): with n contrasts,
  w = (n - 1)/n and m = (1 + sqrt(1 + 8 n))/2,
  F(x) = w P(R_m <= sqrt(2) x) + (1 - w) P(chi^2_1 <= x^2)^n and p = 1 - F(|z|);
- sidak: 1 - (1 - p)^n; bonferroni: min(1, n p); holm, hochberg, hommel, BH, BY and fdr:
  R's p.adjust(method = ...) (fdr is BH, Benjamini-Hochberg);
- scheffe: p = P(chi^2_r > z^2), r the rank of the family's contrasts (emmeans' scheffe.rank:
  the rank of their linear functions of the coefficients), for any number of contrasts;
- mvt: the exact joint adjustment of the family's correlated z statistics (emmeans' "mvt"
  with df = Inf, mvtnorm's pmvnorm): p = P(max_j |Z_j| >= |z|), Z ~ N(0, R), R the
  contrasts' correlation matrix, by scipy's randomized quasi-Monte Carlo (Genz) integration
  with a fixed seed (MVT_SEED; R's mvtnorm draws a new seed each call, and its default
  accuracy is 1e-3) to an absolute error of MVT_ABSEPS (MVT_COARSE_ABSEPS, mvtnorm's own,
  for families of more than MVT_FINE_TESTS or with a singular correlation: mvt_abseps), kept
  between the unadjusted and the Bonferroni p-value (its bounds); for families of at most
  MVT_MAX_TESTS;
- none.

The range distribution is P(R_k > q) = k int phi(z) [Phi(z)^(k-1) - (Phi(z) - Phi(z - q))^(k-1)] dz,
evaluated with adaptive quadrature in a form without cancellation (a^m - (a - b)^m =
-a^m expm1(m log1p(-b/a))), so that p-values keep their relative accuracy far into the tail
(scipy.stats.studentized_range at df = inf computes 1 - cdf there, and R's ptukey is accurate
to about 1e-13 in absolute terms only: its p-values below 1e-10 are off by percents). k may be
fractional, as dunnettx needs.

Critical values for simultaneous intervals invert the same functions (brentq to 1e-12; R's
qtukey stops at 1e-4 and emmeans' dunnettx quantile at 5e-4, so R's adjusted interval limits
are only that accurate). The p.adjust methods' intervals use the Bonferroni critical value, as
emmeans does; scheffe's is sqrt of the chi^2_r quantile at level; mvt's solves
P(max_j |Z_j| < c) = level (brentq to MVT_XTOL on the same integral).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import integrate, optimize, special, stats

from glmm_binomial.numerics.covariance import sd_correlation

__all__ = [
    "ADJUSTMENTS",
    "BONFERRONI_INTERVALS",
    "MVT_ABSEPS",
    "MVT_COARSE_ABSEPS",
    "MVT_FINE_TESTS",
    "MVT_MAX_TESTS",
    "MVT_SEED",
    "MVT_XTOL",
    "P_ADJUST_METHODS",
    "adjust_p_values",
    "correlation_of",
    "critical_value",
    "dunnettx_sf",
    "max_abs_inside",
    "mvt_abseps",
    "mvt_sf",
    "p_adjust",
    "range_sf",
]

FloatArray = NDArray[np.float64]

ADJUSTMENTS = (
    "tukey",
    "dunnettx",
    "mvt",
    "scheffe",
    "sidak",
    "holm",
    "hochberg",
    "hommel",
    "fdr",
    "BH",
    "BY",
    "bonferroni",
    "none",
)
"""emmeans' adjust= options for contrasts (module docstring)."""
BONFERRONI_INTERVALS = ("bonferroni", "holm", "hochberg", "hommel", "fdr", "BH", "BY")
"""The adjustments whose simultaneous intervals take the Bonferroni critical value (emmeans')."""

QUAD_RTOL = 1e-12
"""Relative tolerance of the range-distribution integral."""

ROOT_XTOL = 1e-12
"""Absolute tolerance of the critical values."""

MVT_SEED = 20230417
"""Seed of the quasi-Monte Carlo integration of "mvt" (the same numbers on every call)."""

MVT_ABSEPS = 1e-4
"""Absolute error requested of each "mvt" probability (scipy's abseps and releps) in families
of at most MVT_FINE_TESTS: ten times mvtnorm's default accuracy (1e-3, emmeans'); 1e-5 costs
30 to 40 times as much beyond 10 tests."""

MVT_FINE_TESTS = 12
"""The largest family "mvt" integrates to MVT_ABSEPS (each integral up to about 0.4 s at 12
tests on 2 cores, and ten times as long at 16 tests as to MVT_COARSE_ABSEPS)."""

MVT_COARSE_ABSEPS = 1e-3
"""Absolute error of each "mvt" probability in families of more than MVT_FINE_TESTS or with a
singular correlation (mvt_abseps): mvtnorm's default, so emmeans' own accuracy."""

MVT_XTOL = 1e-4
"""Absolute tolerance of the "mvt" critical value."""

MVT_MAX_TESTS = 20
"""The largest family "mvt" integrates (a family of n tests takes n integrals for its p-values
and about six for its critical value, each up to 1 s at 28 tests where emmeans' mvtnorm takes
1.6 s for all: some 3 s at 17 tests, 10 s at 28); emmeans.contrast uses Sidak's adjustment
beyond, with a note (conservative whatever the correlations, by Sidak's inequality)."""


def mvt_abseps(correlation: FloatArray) -> float:
    """The absolute error "mvt" integrates a family with this correlation matrix to:
    MVT_ABSEPS up to MVT_FINE_TESTS tests, MVT_COARSE_ABSEPS beyond them or where the
    correlation is singular (contrasts of fewer independent estimates: pairs of three or more
    means, simple effects combined), whose integral scipy takes 30 s and more to reach to 1e-4
    at ten tests and half a second to 1e-3."""
    n = len(correlation)
    if n > MVT_FINE_TESTS:
        return MVT_COARSE_ABSEPS
    if n > 1 and np.linalg.matrix_rank(correlation, hermitian=True) < n:
        return MVT_COARSE_ABSEPS
    return MVT_ABSEPS


_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def _range_sf_one(q: float, k: float) -> float:
    if not q > 0.0:
        return 1.0
    m = k - 1.0

    def integrand(z: float) -> float:
        log_a = special.log_ndtr(z)
        log_b = special.log_ndtr(z - q)
        ratio = np.exp(log_b - log_a)  # b / a < 1
        # phi(z) a^m (1 - (1 - b/a)^m), in logs where it can underflow. Far right, a and b
        # both round to 1 (ratio 1, log1p(-1) = -inf): the limit 1 - 0^m = 1 is right there.
        head = np.exp(-0.5 * z * z - _LOG_SQRT_2PI + m * log_a)
        with np.errstate(divide="ignore"):
            return float(k * head * -np.expm1(m * np.log1p(-ratio)))

    # The mass lies between the bulk of phi (|z| < 9) and the peak of phi(z) Phi(z - q) near
    # q/2; beyond [-12, q + 12] the integrand is below 1e-30 of its peak.
    value, _ = integrate.quad(
        integrand,
        -12.0,
        q + 12.0,
        points=[0.0, 0.5 * q],
        epsabs=0.0,
        epsrel=QUAD_RTOL,
        limit=200,
    )
    return float(min(max(value, 0.0), 1.0))


def range_sf(q: float | Sequence[float] | FloatArray, k: float) -> FloatArray:
    """P(R_k > q) for the range R_k of k independent standard normals (k >= 2, may be
    fractional): the upper tail of the studentized range with infinite df."""
    if not k >= 2.0:
        raise ValueError(f"the number of means k must be at least 2, got {k!r}")
    values = np.atleast_1d(np.asarray(q, dtype=np.float64))
    return np.array([_range_sf_one(float(v), float(k)) for v in values.ravel()]).reshape(
        values.shape
    )


def _chi2_1_cdf_power_sf(x: FloatArray, n: int) -> FloatArray:
    """1 - P(chi^2_1 <= x^2)^n = 1 - (1 - 2 Phi(-|x|))^n without cancellation."""
    tail = 2.0 * special.ndtr(-np.abs(x))
    with np.errstate(divide="ignore"):  # x = 0: log1p(-1) = -inf gives 1, the right value
        return np.asarray(-np.expm1(n * np.log1p(-tail)))


def dunnettx_sf(x: float | FloatArray, n: int) -> FloatArray:
    """1 - F(|x|) of emmeans' dunnettx approximation for n contrasts (module docstring)."""
    x = np.abs(np.atleast_1d(np.asarray(x, dtype=np.float64)))
    if n <= 1:
        return np.asarray(2.0 * special.ndtr(-x))
    weight = (n - 1.0) / n
    n_means = (1.0 + np.sqrt(1.0 + 8.0 * n)) / 2.0
    tukey = range_sf(np.sqrt(2.0) * x, n_means)
    return np.asarray(weight * tukey + (1.0 - weight) * _chi2_1_cdf_power_sf(x, n))


def _holm(p: FloatArray, n: int) -> FloatArray:
    order = np.argsort(p, kind="stable")
    scaled = np.maximum.accumulate((n - np.arange(len(p))) * p[order])
    out = np.empty(len(p))
    out[order] = np.minimum(scaled, 1.0)
    return out


P_ADJUST_METHODS = ("holm", "hochberg", "hommel", "bonferroni", "BH", "BY", "fdr", "none")
"""R's p.adjust methods (marginaleffects' p_adjust); "fdr" is "BH"."""


def p_adjust(p: FloatArray, method: str, n: int | None = None) -> FloatArray:
    """R's p.adjust(p, method, n) (P_ADJUST_METHODS): the p-values that are not NaN adjusted
    as one family of n tests (default: their number; emmeans gives the number of all the
    family's contrasts, those without a p-value included), NaN kept. holm, hochberg and
    hommel control the familywise error rate (step-down, step-up, Hommel's closed test),
    bonferroni n p; BH (fdr) and BY the false discovery rate (Benjamini-Hochberg;
    Benjamini-Yekutieli, BH times sum 1/i)."""
    if method not in P_ADJUST_METHODS:
        raise ValueError(
            f"p_adjust must be one of {', '.join(map(repr, P_ADJUST_METHODS))}, got {method!r}"
        )
    p = np.asarray(p, dtype=np.float64)
    out = np.full(len(p), np.nan)
    known = ~np.isnan(p)
    values = p[known]
    size = len(values)
    if n is None:
        n = size
    if n < size:
        raise ValueError(f"n must be at least the number of p-values ({size}), got {n}")
    if size == 0 or method == "none" or n <= 1:
        out[known] = values
        return out
    ranks = np.arange(1, size + 1)
    if method == "hommel" and n == 2:
        method = "hochberg"  # as R's p.adjust
    if method == "bonferroni":
        adjusted = np.minimum(n * values, 1.0)
    elif method == "holm":
        adjusted = _holm(values, n)
    elif method == "hommel":
        # The tests without a p-value enter as p = 1, as R's p.adjust pads them.
        adjusted = _hommel(np.concatenate([values, np.ones(n - size)]))[:size]
    else:
        # step-up: running minima from the largest p-value down
        order = np.argsort(values, kind="stable")[::-1]
        descending = ranks[::-1]
        if method == "hochberg":
            scaled = (n - descending + 1) * values[order]
        else:
            scaled = n / descending * values[order]
            if method == "BY":
                scaled = scaled * np.sum(1.0 / np.arange(1, n + 1))
        adjusted = np.empty(size)
        adjusted[order] = np.minimum(np.minimum.accumulate(scaled), 1.0)
    out[known] = adjusted
    return out


def _hommel(p: FloatArray) -> FloatArray:
    """Hommel's adjustment as R's p.adjust computes it."""
    n = len(p)
    order = np.argsort(p, kind="stable")
    ps = p[order]
    i = np.arange(1, n + 1)
    q = np.full(n, np.min(n * ps / i))
    pa = q.copy()
    for m in range(n - 1, 1, -1):
        i1 = np.arange(n - m + 1)  # R's seq_len(n - m + 1), zero-based
        i2 = np.arange(n - m + 1, n)  # R's (n - m + 2):n
        q1 = np.min(m * ps[i2] / np.arange(2, m + 1))
        q[i1] = np.minimum(m * ps[i1], q1)
        q[i2] = q[n - m]
        pa = np.maximum(pa, q)
    out = np.empty(n)
    out[order] = np.maximum(pa, ps)
    return out


def max_abs_inside(c: float, correlation: FloatArray, abseps: float | None = None) -> float:
    """P(max_j |Z_j| < c), Z ~ N(0, correlation) (a singular correlation allowed), by scipy's
    seeded quasi-Monte Carlo integration (MVT_SEED, to an absolute error ``abseps``; default
    mvt_abseps(correlation))."""
    n = len(correlation)
    bound = np.full(n, c)
    error = mvt_abseps(correlation) if abseps is None else abseps
    settings: dict[str, Any] = {
        "mean": np.zeros(n),
        "cov": correlation,
        "allow_singular": True,
        "abseps": error,
        "releps": error,
        "lower_limit": -bound,
    }
    try:
        value = stats.multivariate_normal.cdf(
            bound, **settings, rng=np.random.default_rng(MVT_SEED)
        )
    except TypeError:  # scipy before 1.15 (Pyodide's) names the generator random_state
        value = stats.multivariate_normal.cdf(
            bound, **settings, random_state=np.random.default_rng(MVT_SEED)
        )
    return float(np.clip(value, 0.0, 1.0))


def mvt_sf(absolute: FloatArray, correlation: FloatArray) -> FloatArray:
    """P(max_j |Z_j| >= |z|) for each |z| in `absolute` (module docstring: "mvt"), between
    the unadjusted p-value and Bonferroni's."""
    n = len(correlation)
    unadjusted = 2.0 * special.ndtr(-absolute)
    error = mvt_abseps(correlation)
    exact = np.array([1.0 - max_abs_inside(float(a), correlation, error) for a in absolute])
    return np.clip(exact, unadjusted, np.minimum(n * unadjusted, 1.0))


def correlation_of(covariance: FloatArray) -> FloatArray:
    """The correlation matrix of a covariance matrix (numerics.covariance.sd_correlation),
    a zero variance's row and column 0 but its diagonal 1."""
    with np.errstate(invalid="ignore"):  # a variance of -1e-18 from rounding: taken as zero
        _, correlation = sd_correlation(covariance)
    out = np.nan_to_num(correlation, nan=0.0)
    np.fill_diagonal(out, 1.0)
    return np.asarray(out, dtype=np.float64)


def adjust_p_values(
    z: FloatArray,
    adjust: str,
    family_size: int,
    covariance: FloatArray | None = None,
    rank: int | None = None,
    n_tests: int | None = None,
) -> FloatArray:
    """Two-sided p-values of one family of z statistics with an adjustment (module
    docstring); family_size is the number of means for tukey (ignored otherwise); covariance:
    the statistics' estimates' covariance, which "mvt" needs (their correlation); rank: the
    rank of the family's contrasts, which "scheffe" needs. n_tests: the family's number of
    tests (default: len(z)). A NaN statistic (a contrast with no estimate) has no p-value but
    counts as a test of the family, as emmeans counts every contrast of a by group (its
    by.size: Sidak, dunnettx, Bonferroni and the other p.adjust methods); mvt's integral is
    over the others."""
    z = np.asarray(z, dtype=np.float64)
    n = len(z) if n_tests is None else n_tests
    known = ~np.isnan(z)
    if not known.all():
        out = np.full(len(z), np.nan)
        if known.any():
            kept = None if covariance is None else covariance[np.ix_(known, known)]
            out[known] = adjust_p_values(z[known], adjust, family_size, kept, rank, n)
        return out
    absolute = np.abs(z)
    unadjusted = 2.0 * special.ndtr(-absolute)
    if adjust == "scheffe":  # for one contrast too (its rank 1: the unadjusted p-value)
        return np.asarray(special.chdtrc(_scheffe_rank(rank), absolute**2), dtype=np.float64)
    if adjust == "tukey":
        # By the number of means (the range of family_size of them), however many of their
        # contrasts have a statistic.
        return range_sf(np.sqrt(2.0) * absolute, float(family_size))
    if adjust == "none" or n <= 1:
        return unadjusted
    if adjust == "dunnettx":
        return dunnettx_sf(absolute, n)
    if adjust == "sidak":
        with np.errstate(divide="ignore"):  # p = 1: log1p(-1) = -inf gives 1, the right value
            return np.asarray(-np.expm1(n * np.log1p(-unadjusted)))
    if adjust == "bonferroni":
        return np.minimum(n * unadjusted, 1.0)
    if adjust in P_ADJUST_METHODS:
        return p_adjust(unadjusted, adjust, n)
    if adjust == "mvt":
        if covariance is None:
            raise ValueError("adjust 'mvt' needs the covariance of the estimates")
        return mvt_sf(absolute, correlation_of(covariance))
    raise ValueError(f"adjust must be one of {', '.join(map(repr, ADJUSTMENTS))}, got {adjust!r}")


def _scheffe_rank(rank: int | None) -> int:
    if rank is None or rank < 1:
        raise ValueError("adjust 'scheffe' needs the rank of the contrasts (at least 1)")
    return int(rank)


def critical_value(
    level: float,
    adjust: str,
    n: int,
    family_size: int,
    covariance: FloatArray | None = None,
    rank: int | None = None,
) -> float:
    """The multiplier c of simultaneous intervals estimate -/+ c SE at confidence ``level``
    for a family of n estimates (family_size means for tukey; covariance: the estimates'
    covariance, for mvt; rank: the rank of the contrasts, for scheffe)."""
    alpha = 1.0 - level
    if adjust == "scheffe":
        return float(np.sqrt(special.chdtri(_scheffe_rank(rank), alpha)))
    if adjust == "none" or n <= 1:
        return float(special.ndtri(1.0 - alpha / 2.0))
    if adjust in BONFERRONI_INTERVALS:
        return float(special.ndtri(1.0 - alpha / (2.0 * n)))
    if adjust == "mvt":
        if covariance is None:
            raise ValueError("adjust 'mvt' needs the covariance of the estimates")
        correlation = correlation_of(covariance)
        error = mvt_abseps(correlation)
        integrals: dict[float, float] = {}  # brentq evaluates the bracket's ends again

        def shortfall(c: float) -> float:
            if c not in integrals:
                integrals[c] = max_abs_inside(c, correlation, error) - level
            return integrals[c]

        # Between the unadjusted and the Bonferroni values (ends taken when the integral's
        # error puts the root outside).
        low = float(special.ndtri(1.0 - alpha / 2.0))
        high = float(special.ndtri(1.0 - alpha / (2.0 * n)))
        if shortfall(low) >= 0.0:
            return low
        if shortfall(high) <= 0.0:
            return high
        return float(optimize.brentq(shortfall, low, high, xtol=MVT_XTOL))
    if adjust == "sidak":
        return float(special.ndtri((1.0 + level ** (1.0 / n)) / 2.0))
    if adjust == "tukey":

        def excess(x: float) -> float:
            return float(range_sf(np.sqrt(2.0) * x, float(family_size))[0]) - alpha

    elif adjust == "dunnettx":

        def excess(x: float) -> float:
            return float(dunnettx_sf(x, n)[0]) - alpha

    else:
        raise ValueError(
            f"adjust must be one of {', '.join(map(repr, ADJUSTMENTS))}, got {adjust!r}"
        )
    # The adjusted value lies between the unadjusted and the Bonferroni critical values.
    low = float(special.ndtri(1.0 - alpha / 2.0)) - 1e-9
    high = float(special.ndtri(1.0 - alpha / (2.0 * max(n, family_size * (family_size - 1))))) + 1
    return float(optimize.brentq(excess, low, high, xtol=ROOT_XTOL))
