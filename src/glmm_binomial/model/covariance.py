"""Covariance structures of a random-effect term: how theta parametrizes Lambda_t.

The random effects of term t have covariance Sigma_t = Lambda_t Lambda_t' (relative to the unit
scale of the binomial GLMM, so relative = absolute). A structure maps its slice of theta to the
k x k lower-triangular Lambda_t, gives theta's bounds and lme4's start, puts theta in canonical
form, and carries the chain rule from the deviance's gradient in the entries of Lambda_t to its
gradient in theta, so the exact gradients of every method work for any structure: the
factorization and the objectives see only Lambda_t, never theta.

``Unstructured`` is lme4's parametrization: theta holds the lower triangle of Lambda_t column by
column (k (k + 1) / 2 entries, the diagonal non-negative). A new structure is one subclass here
(and its spelling in the formula parser).

glmmTMB's structured terms (``ar1(f + 0 | g)``, ``cs(...)``, ``diag(...)``) are written as
Sigma_t = D R D with D = diag(SDs) and R a correlation matrix, so Lambda_t = D L with L the
Cholesky factor of R (unit rows). Their theta is glmmTMB's own: the log SD(s), then the
correlation parameter on glmmTMB's scale (ar1: rho = phi / sqrt(1 + phi^2); cs:
rho = plogis(phi) (1 + a) - a with a = 1 / (k - 1), so R stays positive definite). theta is then
unbounded; an SD whose log runs far down (exp(theta) below the boundary tolerance) counts as
a boundary fit (``at_boundary``). ``us(f + 0 | g)`` is lme4's unstructured term.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar, cast

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


def log_tolerance(tol: float) -> float:
    """log(tol) for a tolerance on an SD, -inf for 0 (no SD lies below it: OptimizerControl's
    snap_tol = 0 turns the snap off)."""
    return math.log(tol) if tol > 0 else -math.inf


class CovarianceStructure(ABC):
    """Lambda_t as a function of the term's theta (k x k, lower triangular)."""

    k: int
    name: str

    moment_start: ClassVar[bool] = True
    """Whether a fit starts the terms' SDs at moment estimates (with_sds; the optimizer's
    moment_start) rather than at 1."""

    restarts_when_singular: ClassVar[bool] = False
    """Whether a singular end of a term of two or more SDs is searched again from lme4's
    start (ends_singular, restart_start): unstructured and diag; cs and ar1 have starts of
    their own."""

    @property
    @abstractmethod
    def n_theta(self) -> int:
        """Number of parameters."""

    @property
    def linear(self) -> bool:
        """Whether Lambda is linear in theta (then Lambda(theta) - Lambda(theta0) =
        Lambda(theta - theta0))."""
        return False

    @abstractmethod
    def lambda_matrix(self, theta: FloatArray) -> FloatArray:
        """Lambda (k x k, lower triangular) at theta."""

    @abstractmethod
    def theta_gradient(self, lam: FloatArray, grad_lambda: FloatArray) -> FloatArray:
        """d f / d theta at the theta whose Lambda is `lam`, given d f / d Lambda[r, c]
        (k x k; only the lower triangle is used)."""

    @abstractmethod
    def lower_bounds(self) -> FloatArray:
        """Lower bounds of theta (-inf where unbounded)."""

    @abstractmethod
    def start(self) -> FloatArray:
        """The optimizer's start (lme4's: Lambda = I where the structure allows)."""

    @abstractmethod
    def with_sds(self, theta: FloatArray, sds: FloatArray) -> FloatArray:
        """theta with the terms' SDs (k of them, positive) set to `sds` and no correlation
        beyond what theta has (a start from moment estimates of the SDs)."""

    def canonical(self, theta: FloatArray) -> FloatArray:
        """theta in canonical form (the same covariance; e.g. a non-negative diagonal)."""
        return np.array(theta, dtype=np.float64)

    def at_boundary(self, theta: FloatArray, tol: float) -> NDArray[np.bool_]:
        """Which entries of theta sit on the boundary of the parameter space (a variance at
        zero): bounded entries below `tol` (lme4's isSingular rule)."""
        return np.asarray(np.isfinite(self.lower_bounds()) & (theta < tol))

    def scaled(self, theta: FloatArray, factor: float) -> FloatArray:
        """theta of the covariance factor^2 Sigma: every SD times `factor` (> 0), the
        correlations kept (Lambda times factor where Lambda is linear in theta, else the log
        SDs moved by log(factor))."""
        values = np.asarray(theta, dtype=np.float64)
        if self.linear:
            return values * factor
        return np.where(self.log_sds(), values + np.log(factor), values)

    def saturated(self, theta: FloatArray, tol: float) -> NDArray[np.bool_]:
        """Which entries of theta are a correlation parameter whose correlation lies within
        `tol` of an end of its range (the parameter far out, the deviance flat in it): none
        but for the structures with a correlation parameter."""
        return np.zeros(self.n_theta, dtype=bool)

    def log_sds(self) -> NDArray[np.bool_]:
        """Which entries of theta are the log of an SD (a boundary at -inf); none here."""
        return np.zeros(self.n_theta, dtype=bool)

    def log_sd_spreads(self, spreads: FloatArray) -> FloatArray:
        """For each log SD entry of theta (log_sds), the largest |z| among the columns its SD
        scales, given each column's (spreads); NaN elsewhere."""
        return np.full(self.n_theta, np.nan)

    def snaps(self, theta: FloatArray, near: float, tol: float) -> list[tuple[int, float, float]]:
        """The entries of theta whose variance is below `near` but not yet at the boundary
        (at_boundary with `tol`), each as (index, the entry's value on the boundary, its SD
        now): bounded entries (a diagonal entry of Lambda) go to zero."""
        theta = np.asarray(theta, dtype=np.float64)
        bounded = np.isfinite(self.lower_bounds()) & (np.abs(theta) < near)
        bounded &= ~self.at_boundary(theta, tol)
        return [(int(j), 0.0, abs(float(theta[j]))) for j in np.flatnonzero(bounded)]

    def unsaturated(self, theta: FloatArray, tol: float, margin: float) -> FloatArray:
        """theta with a saturated correlation (within `tol` of an end of its range) moved to
        `margin` inside it; theta itself for the structures without a correlation."""
        return np.array(theta, dtype=np.float64)

    def at_end(self, theta: FloatArray, tol: float, near: float, gap: float) -> FloatArray:
        """theta with a saturated correlation (within `tol` of an end of its range) put `gap`
        from that end, and each log SD whose SD is below `near` at log(gap); theta itself for
        the structures with neither (unstructured: its diagonal entries reach zero
        themselves)."""
        return np.array(theta, dtype=np.float64)

    def other_basin(self, theta: FloatArray, tol: float) -> FloatArray | None:
        """A start for a second search where the structure's deviance is known to have an
        optimum of another kind than the one theta is at, or None (every structure but cs and
        ar1)."""
        return None

    def ends_singular(self, theta: FloatArray, tol: float) -> bool:
        """Whether theta is a singular end of a vector term that calls for a second search
        from lme4's start (restarts_when_singular: unstructured, diag; two or more SDs): an
        SD below `tol`, or for an unstructured term a correlation at +-1 (a diagonal entry of
        Lambda at zero). cs and ar1 have starts of their own (other_basin, face_starts)."""
        return self.k >= 2 and self.restarts_at_zero(theta, tol)

    def restarts_at_zero(self, theta: FloatArray, tol: float) -> bool:
        """Whether the structure restarts when singular (restarts_when_singular: unstructured,
        diag) and theta is on its boundary (at_boundary: an SD below `tol`, or for an
        unstructured term a correlation at +-1), whatever the number of its SDs."""
        if not self.restarts_when_singular:
            return False
        return bool(self.at_boundary(np.asarray(theta, dtype=np.float64), tol).any())

    def restart_start(self) -> FloatArray | None:
        """The term's part of that second search's start: lme4's (Lambda = I) for the
        structures that restart (restarts_when_singular, scalar terms too), else None (the
        end's theta kept)."""
        return self.start() if self.restarts_when_singular else None

    def mirror_starts(self, theta: FloatArray, tol: float) -> list[FloatArray]:
        """Starts in the other basins of a singular end: theta with one column's correlations
        negated, one per column but the first (module Unstructured); none for the other
        structures."""
        return []

    def face_starts(self, theta: FloatArray, tol: float) -> list[FloatArray]:
        """Starts for further searches where the structure's deviance is known to have optima
        on several faces of its parameter space (one term's SD at zero): one per term whose SD
        at theta is not below `tol`; none for every structure but cs."""
        return []

    def correlation_trials(self, theta: FloatArray, tol: float) -> list[FloatArray]:
        """theta with its correlation parameter moved where the correlation does not enter
        the model at theta (fewer than two SDs off the boundary, `tol`), so that its value
        there says nothing: near each end of its range (CORRELATION_TRIAL_MARGIN of the range
        inside). None for the structures without one (an empty list)."""
        return []

    def turned(self, theta: FloatArray, tol: float) -> FloatArray | None:
        """theta with each column of Lambda whose diagonal entry is at the boundary (below
        `tol`) while an entry below it is not (|entry| >= tol) folded into the later columns,
        or None when there is none. Such a column adds c c' to the trailing block only, and
        turns with the later columns on a flat deviance; folded, the column is zero (its
        diagonal entry put at 0) and the trailing block is refactored to the same
        covariance, the canonical factor of that covariance. Only unstructured terms have
        such columns."""
        return None

    def taken_over(self, theta: FloatArray, tol: float) -> list[tuple[FloatArray, int]]:
        """For each column of Lambda whose diagonal entry is below `tol` and each later column
        that is not (|diagonal| >= tol): theta with the turned columns folded (turned) and
        then that later column's entries moved into that column (the same covariance but for
        the column's own entries below `tol`, the later column now zero), with the index in
        theta of the first column's diagonal entry. Off such a point, that entry moves the
        covariance of its term with the later column's terms at first order, which no move
        of the folded point does. Empty for the structures without such columns."""
        return []

    def parameter_entries(self) -> tuple[tuple[int, int], ...]:
        """The covariance entries that the model's parameters are reported as, one per theta
        entry in theta's order: (r, r) the SD of term r, (r, c) the correlation of terms r and
        c (lme4's names sd_<term>|<group> and cor_<r>.<c>|<group>)."""
        rows, cols = lower_triangle(self.k)
        return tuple((int(r), int(c)) for r, c in zip(rows, cols, strict=True))

    @property
    def label(self) -> str:
        """How the summary marks the structure's correlation ("" for lme4's)."""
        return ""


def lower_triangle(k: int) -> tuple[IntArray, IntArray]:
    """Row and column indices of a k x k lower triangle, column by column (lme4's order)."""
    rows, cols = [], []
    for c in range(k):
        for r in range(c, k):
            rows.append(r)
            cols.append(c)
    return np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)


@dataclass(frozen=True)
class Unstructured(CovarianceStructure):
    """lme4's general positive semi-definite covariance: Lambda's lower triangle, column by
    column, is theta."""

    k: int
    name: str = "us"
    restarts_when_singular: ClassVar[bool] = True

    @property
    def n_theta(self) -> int:
        return self.k * (self.k + 1) // 2

    @property
    def linear(self) -> bool:
        return True

    @cached_property
    def _indices(self) -> tuple[IntArray, IntArray]:
        return lower_triangle(self.k)

    def lower_indices(self) -> tuple[IntArray, IntArray]:
        """Row and column indices of theta's entries in Lambda, column-major lower triangle."""
        rows, cols = self._indices
        return rows.copy(), cols.copy()

    def lambda_matrix(self, theta: FloatArray) -> FloatArray:
        lam = np.zeros((self.k, self.k))
        rows, cols = self._indices
        lam[rows, cols] = theta
        return lam

    def theta_gradient(self, lam: FloatArray, grad_lambda: FloatArray) -> FloatArray:
        rows, cols = self._indices
        return np.asarray(grad_lambda[rows, cols], dtype=np.float64)

    def lower_bounds(self) -> FloatArray:
        rows, cols = self._indices
        return np.where(rows == cols, 0.0, -np.inf)

    def start(self) -> FloatArray:
        rows, cols = self._indices
        return np.where(rows == cols, 1.0, 0.0)

    def with_sds(self, theta: FloatArray, sds: FloatArray) -> FloatArray:
        """Lambda diagonal: lme4's start with the SDs on the diagonal."""
        rows, cols = self._indices
        return np.where(rows == cols, np.asarray(sds, dtype=np.float64)[rows], 0.0)

    def canonical(self, theta: FloatArray) -> FloatArray:
        """Every column of Lambda whose diagonal entry is negative negated: Lambda Lambda' is
        unchanged and the diagonal is non-negative."""
        rows, cols = self._indices
        values = np.array(theta, dtype=np.float64)
        for c in range(self.k):
            if values[(rows == c) & (cols == c)][0] < 0:
                values[cols == c] *= -1.0
        return values

    def turned(self, theta: FloatArray, tol: float) -> FloatArray | None:
        lam = self.lambda_matrix(np.asarray(theta, dtype=np.float64))
        folded = False
        for c in range(self.k - 1):
            below = lam[c + 1 :, c]
            if not (abs(lam[c, c]) < tol and np.max(np.abs(below)) >= tol):
                continue
            # [T, c] [T, c]' = T T' + c c' = R' R for R of the QR of [T, c]': R' is lower
            # triangular, its columns' signs made the diagonal's non-negative.
            stacked = np.column_stack([lam[c + 1 :, c + 1 :], below]).T
            r = cast(FloatArray, np.linalg.qr(stacked, mode="r"))
            signs = np.where(np.diag(r) < 0.0, -1.0, 1.0)
            lam[c + 1 :, c + 1 :] = r.T * signs[None, :]
            lam[c:, c] = 0.0
            folded = True
        if not folded:
            return None
        rows, cols = self._indices
        return np.asarray(lam[rows, cols], dtype=np.float64)

    def mirror_starts(self, theta: FloatArray, tol: float) -> list[FloatArray]:
        """At a singular end (ends_singular: a correlation at +-1, a diagonal entry of Lambda
        at zero) the rank-deficient covariances form separate basins, one per pattern of
        signs of the correlations (for two columns, correlation +1 and -1), and a search from
        correlations near 0 falls into one of them. These starts are the end with column j's
        correlations negated (Lambda -> D_j Lambda D_j, D_j = I with -1 at j), one per
        column j but the first: the same SDs in each other sign pattern."""
        theta = np.asarray(theta, dtype=np.float64)
        if not self.ends_singular(theta, tol):
            return []
        rows, cols = self._indices
        starts = []
        for j in range(1, self.k):
            flipped = np.where((rows == j) != (cols == j), -theta, theta)
            if np.max(np.abs(flipped - theta)) >= tol:  # a correlation that changes
                starts.append(flipped)
        return starts

    def taken_over(self, theta: FloatArray, tol: float) -> list[tuple[FloatArray, int]]:
        folded = self.turned(theta, tol)
        lam = self.lambda_matrix(np.asarray(theta if folded is None else folded, np.float64))
        rows, cols = self._indices
        points = []
        for c in range(self.k - 1):
            if abs(lam[c, c]) >= tol:
                continue
            diagonal = int(np.flatnonzero((rows == c) & (cols == c))[0])
            for later in range(c + 1, self.k):
                if abs(lam[later, later]) < tol:
                    continue
                # Its entries lie in rows >= later > c: column c stays lower triangular.
                moved = lam.copy()
                moved[:, c] = lam[:, later]
                moved[:, later] = 0.0
                points.append((np.asarray(moved[rows, cols], dtype=np.float64), diagonal))
        return points


SD_FLOOR = 1e-300
"""Smallest SD taken when a structured term's SD is given (profiles reach an SD of 0; its log
is then this floor's, a Lambda of zero to working precision)."""


class ScaledCorrelation(CovarianceStructure):
    """Sigma = D R(rho) D with D = diag(SDs): theta = (log SDs, then the correlation parameter
    phi on glmmTMB's scale). Lambda = D L, L the Cholesky factor of R, whose rows have unit
    length, so the SDs are the row norms of Lambda and theta is recovered from Lambda alone
    (what theta_gradient is given)."""

    k: int

    @property
    @abstractmethod
    def n_sd(self) -> int:
        """1 (one SD shared by the terms) or k (one SD per term)."""

    @property
    def n_correlation(self) -> int:
        """Number of correlation parameters (0 or 1)."""
        return 1

    @property
    def n_theta(self) -> int:
        return self.n_sd + self.n_correlation

    def rho(self, phi: float) -> float:
        """The correlation parameter rho at glmmTMB's phi."""
        raise NotImplementedError

    def phi(self, rho: float) -> float:
        """glmmTMB's phi of the correlation rho (the inverse of ``rho``)."""
        raise NotImplementedError

    def rho_slope(self, rho: float) -> float:
        """d rho / d phi, as a function of rho."""
        raise NotImplementedError

    def rho_curvature(self, rho: float) -> float:
        """d^2 rho / d phi^2, as a function of rho."""
        raise NotImplementedError

    def rho_bounds(self) -> tuple[float, float]:
        """The open interval rho lies in."""
        return -1.0, 1.0

    def factor_derivatives(self, rho: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``factor``'s L and d L / d rho, and d^2 L / d rho^2 (k x k each)."""
        raise NotImplementedError

    def entry_derivatives(
        self, theta: FloatArray, rows: IntArray, cols: IntArray
    ) -> tuple[FloatArray, FloatArray]:
        """First and second derivatives in theta of Lambda's entries (rows[e], cols[e]):
        J (n_entries x n_theta) and S (n_entries x n_theta x n_theta). Lambda[i, c] =
        s_i L[i, c](rho(phi)) (s_i the SD of term i: its own or the shared one), so
        d/d log s_i is the entry itself, d/d phi is s_i L' rho', and the second derivatives
        are the entry (log s_i twice), s_i L' rho' (log s_i and phi) and
        s_i (L'' rho'^2 + L' rho'') (phi twice)."""
        theta = np.asarray(theta, dtype=np.float64)
        sds = self.sds(theta)
        n_entries = len(rows)
        jac = np.zeros((n_entries, self.n_theta))
        second = np.zeros((n_entries, self.n_theta, self.n_theta))
        which = np.asarray(rows) if self.n_sd == self.k else np.zeros(n_entries, dtype=np.intp)
        entry = np.arange(n_entries)
        rho = self.rho(float(theta[self.n_sd])) if self.n_correlation else 0.0
        if self.n_correlation:
            lower, d_lower, dd_lower = self.factor_derivatives(rho)
        else:
            lower, d_lower = self.factor(rho)
        values = sds[rows] * lower[rows, cols]
        jac[entry, which] = values
        second[entry, which, which] = values
        if self.n_correlation:
            j = self.n_sd
            slope, curvature = self.rho_slope(rho), self.rho_curvature(rho)
            d_values = sds[rows] * d_lower[rows, cols]
            jac[:, j] = d_values * slope
            second[entry, which, j] = d_values * slope
            second[entry, j, which] = d_values * slope
            second[:, j, j] = sds[rows] * dd_lower[rows, cols] * slope**2 + d_values * curvature
        return jac, second

    @abstractmethod
    def factor(self, rho: float) -> tuple[FloatArray, FloatArray]:
        """L (k x k lower triangular, unit rows, L L' = R(rho)) and d L / d rho."""

    def sds(self, theta: FloatArray) -> FloatArray:
        """The k SDs at theta."""
        return np.broadcast_to(np.exp(theta[: self.n_sd]), (self.k,)).astype(np.float64)

    def lambda_matrix(self, theta: FloatArray) -> FloatArray:
        theta = np.asarray(theta, dtype=np.float64)
        rho = self.rho(float(theta[self.n_sd])) if self.n_correlation else 0.0
        lower, _ = self.factor(rho)
        return np.asarray(self.sds(theta)[:, None] * lower, dtype=np.float64)

    def _rho_of(self, lam: FloatArray, sd: FloatArray) -> float:
        """rho read off Lambda: L[i, 0] = rho for the first row i >= 1 with a non-zero SD
        (ar1: rho^i, so row 1); 0 when none (the deviance does not depend on rho then)."""
        for i in range(1, self.k):
            if sd[i] > 0.0:
                return float(lam[i, 0] / sd[i])
        return 0.0

    def theta_gradient(self, lam: FloatArray, grad_lambda: FloatArray) -> FloatArray:
        """d f / d log SD_j = sum_c G[j, c] Lambda[j, c] (rows of the terms sharing the SD
        summed); d f / d phi = <G, D dL/drho> drho/dphi, G the lower triangle of d f / d
        Lambda."""
        g = np.tril(np.asarray(grad_lambda, dtype=np.float64))
        lam = np.asarray(lam, dtype=np.float64)
        rows = (g * lam).sum(axis=1)
        out = np.empty(self.n_theta)
        out[: self.n_sd] = rows if self.n_sd == self.k else rows.sum()
        if self.n_correlation:
            sd = np.sqrt((lam * lam).sum(axis=1))
            rho = self._rho_of(lam, sd)
            _, d_lower = self.factor(rho)
            out[self.n_sd] = float((g * (sd[:, None] * d_lower)).sum()) * self.rho_slope(rho)
        return out

    def lower_bounds(self) -> FloatArray:
        return np.full(self.n_theta, -np.inf)

    def start(self) -> FloatArray:
        """SDs 1 and rho 0: Lambda = I."""
        start = np.zeros(self.n_theta)
        if self.n_correlation:
            start[self.n_sd] = self.phi(0.0)
        return start

    def with_sds(self, theta: FloatArray, sds: FloatArray) -> FloatArray:
        """The log SDs set, the correlation parameter kept; one SD shared by the terms (ar1)
        takes their root mean square."""
        out = np.array(theta, dtype=np.float64)
        sds = np.asarray(sds, dtype=np.float64)
        shared = np.sqrt(np.mean(sds * sds))
        out[: self.n_sd] = np.log(sds if self.n_sd == self.k else np.array([shared]))
        return out

    def correlation_trials(self, theta: FloatArray, tol: float) -> list[FloatArray]:
        theta = np.asarray(theta, dtype=np.float64)
        if not self.n_correlation or not self.at_boundary(theta, tol)[self.n_sd]:
            return []
        low, high = self.rho_bounds()
        margin = CORRELATION_TRIAL_MARGIN * (high - low)
        trials = []
        for rho in (low + margin, high - margin):
            trial = theta.copy()
            trial[self.n_sd] = self.phi(rho)
            trials.append(trial)
        return trials

    def at_boundary(self, theta: FloatArray, tol: float) -> NDArray[np.bool_]:
        """An SD below `tol` (its log below log(tol)) is on the boundary, as lme4's rule for
        the diagonal of Lambda; so is the correlation parameter when fewer than two of the
        terms' SDs are off it (the correlation then does not enter the model)."""
        out = np.zeros(self.n_theta, dtype=bool)
        out[: self.n_sd] = np.asarray(theta[: self.n_sd]) < log_tolerance(tol)
        if self.n_correlation:
            out[self.n_sd] = int((self.sds(theta) >= tol).sum()) < 2
        return out

    def log_sds(self) -> NDArray[np.bool_]:
        """The SD entries, first in theta."""
        return np.arange(self.n_theta) < self.n_sd

    def log_sd_spreads(self, spreads: FloatArray) -> FloatArray:
        out = np.full(self.n_theta, np.nan)
        # One SD per column, or one shared by all (ar1's).
        out[: self.n_sd] = spreads if self.n_sd == self.k else np.max(spreads, initial=0.0)
        return out

    def snaps(self, theta: FloatArray, near: float, tol: float) -> list[tuple[int, float, float]]:
        """An SD below `near` but not below `tol` goes to the boundary's side of tol (its log
        to log(tol) - 1)."""
        theta = np.asarray(theta, dtype=np.float64)
        logs = theta[: self.n_sd]
        return [
            (int(j), log_tolerance(tol) - 1.0, float(np.exp(logs[j])))
            for j in np.flatnonzero((logs < log_tolerance(near)) & (logs >= log_tolerance(tol)))
        ]

    def saturated(self, theta: FloatArray, tol: float) -> NDArray[np.bool_]:
        out = np.zeros(self.n_theta, dtype=bool)
        if self.n_correlation:
            rho = self.rho(float(theta[self.n_sd]))
            low, high = self.rho_bounds()
            out[self.n_sd] = min(rho - low, high - rho) < tol
        return out

    def unsaturated(self, theta: FloatArray, tol: float, margin: float) -> FloatArray:
        out = np.array(theta, dtype=np.float64)
        if self.saturated(out, tol).any():
            low, high = self.rho_bounds()
            rho = self.rho(float(out[self.n_sd]))
            out[self.n_sd] = self.phi(float(np.clip(rho, low + margin, high - margin)))
        return out

    def at_end(self, theta: FloatArray, tol: float, near: float, gap: float) -> FloatArray:
        """An SD the search left near zero (5e-4 or 1e-5, say) may still be a few 1e-6 of
        deviance short of zero, the end of its range: in its log the deviance falls ever more
        slowly towards it."""
        out = np.array(theta, dtype=np.float64)
        if self.saturated(out, tol).any():
            low, high = self.rho_bounds()
            rho = self.rho(float(out[self.n_sd]))
            out[self.n_sd] = self.phi(high - gap if high - rho < rho - low else low + gap)
        sds = out[: self.n_sd]
        sds[sds < log_tolerance(near)] = np.log(gap)
        return out

    def parameters(self, theta: FloatArray) -> FloatArray:
        """The reported parameters at theta: the SD(s), then rho."""
        theta = np.asarray(theta, dtype=np.float64)
        values = np.exp(theta[: self.n_sd])
        if self.n_correlation:
            values = np.append(values, self.rho(float(theta[self.n_sd])))
        return np.asarray(values, dtype=np.float64)

    def theta_from_parameters(self, values: FloatArray) -> tuple[FloatArray, FloatArray]:
        """theta from the reported parameters (SDs, rho) and the diagonal of d theta / d
        parameter (SDs floored at SD_FLOOR)."""
        values = np.asarray(values, dtype=np.float64)
        sd = np.maximum(values[: self.n_sd], SD_FLOOR)
        theta = np.log(sd)
        slope = 1.0 / sd
        if self.n_correlation:
            rho = float(values[self.n_sd])
            theta = np.append(theta, self.phi(rho))
            slope = np.append(slope, 1.0 / self.rho_slope(rho))
        return theta, slope

    def parameter_bounds(self) -> tuple[FloatArray, FloatArray]:
        """Bounds of the reported parameters: SDs in [0, inf), rho in its open interval."""
        low, high = self.rho_bounds()
        lower = np.concatenate([np.zeros(self.n_sd), np.full(self.n_correlation, low)])
        upper = np.concatenate([np.full(self.n_sd, np.inf), np.full(self.n_correlation, high)])
        return lower, upper

    def parameter_entries(self) -> tuple[tuple[int, int], ...]:
        sds = [(j, j) for j in range(self.n_sd)]
        return tuple(sds + [(1, 0)] * self.n_correlation)

    @property
    def label(self) -> str:
        return f"({self.name})" if self.n_correlation else ""


@dataclass(frozen=True)
class Diagonal(ScaledCorrelation):
    """glmmTMB's ``diag(f + 0 | g)``: one SD per term, no correlation; theta = log SDs."""

    k: int
    name: str = "diag"
    restarts_when_singular: ClassVar[bool] = True

    @property
    def n_sd(self) -> int:
        return self.k

    @property
    def n_correlation(self) -> int:
        return 0

    def factor(self, rho: float) -> tuple[FloatArray, FloatArray]:
        return np.eye(self.k), np.zeros((self.k, self.k))


@dataclass(frozen=True)
class Ar1(ScaledCorrelation):
    """glmmTMB's ``ar1(f + 0 | g)``: one SD shared by the k terms (the occasions, in order)
    and corr(b_i, b_j) = rho^|i - j|; theta = (log SD, phi), rho = phi / sqrt(1 + phi^2)."""

    k: int
    name: str = "ar1"

    def __post_init__(self) -> None:
        check_dimension(self.name, self.k)

    @property
    def n_sd(self) -> int:
        return 1

    def rho(self, phi: float) -> float:
        return float(phi / np.sqrt(1.0 + phi * phi))

    def phi(self, rho: float) -> float:
        return float(rho / np.sqrt(1.0 - rho * rho))

    def rho_slope(self, rho: float) -> float:
        return float((1.0 - rho * rho) ** 1.5)

    def rho_curvature(self, rho: float) -> float:
        """d/drho (1 - rho^2)^1.5 times d rho / d phi."""
        return float(-3.0 * rho * (1.0 - rho * rho) ** 2)

    def other_basin(self, theta: FloatArray, tol: float) -> FloatArray | None:
        """At an end with rho within `tol` of -1 or 1 (and the SD off zero, where rho
        enters): the SD 1 and rho 2/3 towards the other end. The deviance can have an optimum
        at each end (one occasion's effect alternating in sign from one to the next, or all
        alike): bench/cs_basins.py's data, ar1:393 (800 rows, 100 groups, 4 occasions) ended
        at rho -1 (SD 0.149), 0.499 below glmmTMB's optimum at rho 1 (SD 0.303)."""
        theta = np.asarray(theta, dtype=np.float64)
        if not self.saturated(theta, tol).any() or theta[0] < log_tolerance(tol):
            return None
        out = self.start()
        out[1] = self.phi(-2.0 / 3.0 if self.rho(float(theta[1])) > 0 else 2.0 / 3.0)
        return out

    def factor(self, rho: float) -> tuple[FloatArray, FloatArray]:
        """L[i, 0] = rho^i and L[i, j] = c rho^(i - j) (1 <= j <= i), c = sqrt(1 - rho^2):
        the Cholesky factor of rho^|i - j| in closed form, and its derivative in rho."""
        lower, d_lower, _ = self._closed_form(rho, second=False)
        return lower, d_lower

    def factor_derivatives(self, rho: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """With d^2 L / d rho^2: i (i - 1) rho^(i - 2) in column 0; in the others, with
        m = i - j and c = sqrt(1 - rho^2) (c' = -rho / c, c'' = -1 / c^3),
        c'' rho^m + 2 c' m rho^(m - 1) + c m (m - 1) rho^(m - 2)."""
        lower, d_lower, dd_lower = self._closed_form(rho, second=True)
        return lower, d_lower, cast(FloatArray, dd_lower)

    def _closed_form(
        self, rho: float, second: bool
    ) -> tuple[FloatArray, FloatArray, FloatArray | None]:
        i = np.arange(self.k)[:, None]
        j = np.arange(self.k)[None, :]
        lag = np.clip(i - j, 0, None)
        c = np.sqrt(1.0 - rho * rho)
        power = rho**lag
        lower_part = j <= i
        lower = np.where(j == 0, power, c * power) * lower_part
        slope = lag * rho ** np.clip(lag - 1, 0, None)  # d rho^lag / d rho
        d_lower = np.where(j == 0, slope, c * slope - power * rho / c) * lower_part
        dd_lower = None
        if second:
            curve = lag * (lag - 1) * rho ** np.clip(lag - 2, 0, None)
            other = -power / c**3 - 2.0 * (rho / c) * slope + c * curve
            dd_lower = np.asarray(np.where(j == 0, curve, other) * lower_part, dtype=np.float64)
        return np.asarray(lower, dtype=np.float64), np.asarray(d_lower, dtype=np.float64), dd_lower


CORRELATION_TRIAL_MARGIN = 0.05
"""CovarianceStructure.correlation_trials: how far inside each end of its range (a share of
the range) a correlation that does not enter the model is tried."""

FACE_LOG_SD = -5.0
"""CompoundSymmetry.face_starts: the log SD a face start gives its term (SD 0.0067)."""


@dataclass(frozen=True)
class CompoundSymmetry(ScaledCorrelation):
    """glmmTMB's ``cs(f + 0 | g)`` (as in glmmTMB 1.1.5): one SD per term and one common
    correlation rho; theta = (log SDs, phi), rho = plogis(phi) (1 + a) - a with a = 1/(k - 1),
    which keeps R = (1 - rho) I + rho 1 1' positive definite."""

    k: int
    name: str = "cs"

    # Its deviance has several optima on small data, and from moment SDs the search lands in
    # another as often as not (seeds 100-249 of bench/metamorphic.py's cs kind: 6 of 144 fits
    # lower, by up to 3.9 in logLik, 2 higher): its SDs start at 1, as before.
    moment_start: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_dimension(self.name, self.k)

    @property
    def n_sd(self) -> int:
        return self.k

    @property
    def _a(self) -> float:
        return 1.0 / (self.k - 1)

    def rho(self, phi: float) -> float:
        a = self._a
        # Far out towards -a (a search run along the flat end of the range, phi -1500) e^-phi
        # overflows to inf, and rho is -a: its limit, without numpy's warning.
        with np.errstate(over="ignore"):
            return float((1.0 + a) / (1.0 + np.exp(-phi)) - a)

    def phi(self, rho: float) -> float:
        a = self._a
        p = (rho + a) / (1.0 + a)
        return float(np.log(p) - np.log1p(-p))

    def rho_slope(self, rho: float) -> float:
        a = self._a
        p = (rho + a) / (1.0 + a)
        return float((1.0 + a) * p * (1.0 - p))

    def rho_curvature(self, rho: float) -> float:
        a = self._a
        p = (rho + a) / (1.0 + a)
        return float((1.0 + a) * p * (1.0 - p) * (1.0 - 2.0 * p))

    def rho_bounds(self) -> tuple[float, float]:
        return -self._a, 1.0

    def other_basin(self, theta: FloatArray, tol: float) -> FloatArray | None:
        """At an end with rho within `tol` of an end of its range and an SD below `tol`:
        SDs 1 and rho a sixth of the range from the other end. Such an end has a twin at
        the other end of rho with another occasion's SD at zero, as often the higher (cs
        seeds 250-1199 of bench/metamorphic.py: 196 of 909 fits end so, and the search from
        here ends higher on 4, by 0.06 to 0.77 in logLik, where glmmTMB's start found one of
        them)."""
        theta = np.asarray(theta, dtype=np.float64)
        below = theta[: self.n_sd] < log_tolerance(tol)
        if not self.saturated(theta, tol).any() or not below.any():
            return None
        low, high = self.rho_bounds()
        rho = self.rho(float(theta[self.n_sd]))
        near_high = high - rho < rho - low
        out = self.start()
        out[self.n_sd] = self.phi(low + (high - low) * (1.0 / 6.0 if near_high else 5.0 / 6.0))
        return out

    def face_starts(self, theta: FloatArray, tol: float) -> list[FloatArray]:
        """For each term whose SD at theta is not below `tol`: its SD at e^FACE_LOG_SD, the
        others' at 1, and phi 0 (glmmTMB's start). Over the faces (one term's SD at zero,
        where rho moves only the other terms' correlations) the deviance has optima that
        neither lme4's start nor glmmTMB's reaches: cs seeds 250-449 of bench/metamorphic.py,
        the search from one of these starts ends higher on 8 of 189 fits (by 0.002 to
        0.44), and on 26 of 33 fits where starts at other rho found a higher optimum (by up
        to 5.8), on faces of terms whose SDs were not at zero."""
        theta = np.asarray(theta, dtype=np.float64)
        starts = []
        for j in np.flatnonzero(theta[: self.n_sd] >= log_tolerance(tol)):
            start = np.zeros(self.n_theta)
            start[j] = FACE_LOG_SD
            starts.append(start)
        return starts

    def factor(self, rho: float) -> tuple[FloatArray, FloatArray]:
        """The Cholesky factor of the equicorrelation matrix by its recursion: column j has
        d_j = sqrt(1 - S_j) on the diagonal and t_j = (rho - S_j) / d_j below it, with
        S_j = t_0^2 + ... + t_{j-1}^2; the derivative in rho by the same recursion."""
        lower, d_lower, _ = self._recursion(rho, second=False)
        return lower, d_lower

    def factor_derivatives(self, rho: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """With d^2 L / d rho^2 by the recursion differentiated twice: with S, S', S'' its
        running sum and derivatives, d'' = -S'' / (2 d) - S'^2 / (4 d^3) and
        t'' = (-S'' - 2 t' d' - t d'') / d."""
        lower, d_lower, dd_lower = self._recursion(rho, second=True)
        return lower, d_lower, cast(FloatArray, dd_lower)

    def _recursion(
        self, rho: float, second: bool
    ) -> tuple[FloatArray, FloatArray, FloatArray | None]:
        k = self.k
        lower = np.zeros((k, k))
        d_lower = np.zeros((k, k))
        dd_lower = np.zeros((k, k)) if second else None
        total, d_total, dd_total = 0.0, 0.0, 0.0
        for j in range(k):
            d = np.sqrt(max(1.0 - total, 0.0))
            dd = -d_total / (2.0 * d) if d > 0 else 0.0
            t = (rho - total) / d if d > 0 else 0.0
            dt = ((1.0 - d_total) - t * dd) / d if d > 0 else 0.0
            lower[j, j], d_lower[j, j] = d, dd
            lower[j + 1 :, j], d_lower[j + 1 :, j] = t, dt
            if dd_lower is not None and d > 0:
                ddd = -dd_total / (2.0 * d) - d_total**2 / (4.0 * d**3)
                ddt = (-dd_total - 2.0 * dt * dd - t * ddd) / d
                dd_lower[j, j] = ddd
                dd_lower[j + 1 :, j] = ddt
                dd_total += 2.0 * (dt * dt + t * ddt)
            total, d_total = total + t * t, d_total + 2.0 * t * dt
        return lower, d_lower, dd_lower


def check_dimension(name: str, k: int) -> None:
    """A correlation structure needs at least two terms."""
    if k < 2:
        raise ValueError(
            f"a {name}() covariance needs at least two columns (one per occasion), got {k}; "
            f"write the occasions as a factor, as in {name}(factor(time) + 0 | id)"
        )


STRUCTURES: dict[str, type[CovarianceStructure]] = {
    "us": Unstructured,
    "ar1": Ar1,
    "cs": CompoundSymmetry,
    "diag": Diagonal,
}
"""Covariance structures by their glmmTMB spelling (``name(terms | group)``)."""


def make_structure(name: str, terms: tuple[str, ...], text: str = "") -> CovarianceStructure:
    """The structure `name` (a key of STRUCTURES) for the columns `terms` of the term `text`;
    ValueError for a structure that cannot describe them (ar1 with an intercept column: its
    columns must be the occasions, as ar1(time + 0 | id))."""
    if name not in STRUCTURES:
        raise ValueError(
            f"unknown covariance structure {name!r} in {text!r}; known: {', '.join(STRUCTURES)}"
        )
    k = len(terms)
    if name == "ar1" and "(Intercept)" in terms:
        raise ValueError(
            f"{text}: an ar1() term needs one column per occasion and no intercept; "
            "write it with + 0, as in ar1(time + 0 | id)"
        )
    try:
        return STRUCTURES[name](k)  # type: ignore[call-arg]
    except ValueError as error:
        raise ValueError(f"{text}: {error}") from None
