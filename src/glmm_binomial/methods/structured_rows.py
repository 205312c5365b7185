"""Structured variational Bayes on a set of rows holding whole levels of every grouping factor.

q(beta, b) = N(m, Omega^{-1}) of structured_vb.py couples the fixed effects with the random
effects only through p-dimensional sums over rows. When every level of every grouping factor
lies within one set of rows (the whole data set in memory; on Dask a partition holding whole
levels of the outermost factor, every other factor nested in it), H = Lambda' Z' W Z Lambda + I
is block diagonal over the sets, and the inner loop of structured_vb.py splits into what each
set computes on its own rows and random effects, and sums over the sets:

- covariance_pieces: H's factor for the set's row weights w, G = H^{-1} Lambda' Z' W X, and
  the set's share of the Schur complement, X' W X - X' W Z Lambda G (p x p), and of log det H;
- direction, given S^{-1} = Cov(beta): Var(eta_i) = r_i' S^{-1} r_i + a_i' H^{-1} a_i, the
  rows' derivatives g_i and fixed-point weights, the Newton direction in u for the gradient
  g_u = Lambda' Z' g - u, y = H^{-1} g_u, and the shares of X' g, X' W Z Lambda y (which give
  the step in beta: S^{-1} (X' g - beta / prior_fe_sd^2 - X' W Z Lambda y)), of g_u' y and
  G' g_u (which give the Newton decrement, g_beta' d_beta + g_u' (y - G d_beta)) and of
  tr Cov(u);
- newton_step, given the step in beta: the step in u, y - G d_beta, and in E[eta_i], and the
  largest |step in E[eta_i]|;
- row_values (trial step lengths, a read) and finish (the step taken, the fixed-point weights
  kept for the next inner loop): the rows' expected log-likelihood, |u|^2 and the shares of
  the second moments A_t = sum_j E[u_tj u_tj'] (in u coordinates).

structured_vb.StructuredObjective adds the shares in a fixed order and takes every decision
of the inner loop; its algorithm is the same for one set (in memory) and for many (Dask,
distributed/structured_vb.py). A set keeps between calls its random effects' means u, the
row weights of its next covariance, and the current covariance, direction and step; a call
replaces these (never changes an array in place), so that a copy of a set made before a call
stays valid (Dask's versions of a partition, distributed/runner.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from glmm_binomial.methods.laplace import sorted_by_first_factor
from glmm_binomial.model.data import ModelData
from glmm_binomial.numerics.factor import Factor, SelectedInverse, Structure, row_dot
from glmm_binomial.numerics.gaussian_expectations import expected_log1pexp

FloatArray = NDArray[np.float64]

SMALLEST_WEIGHT = 1e-300
"""Row weights are kept at least this (a weight of 0 would make H's blocks singular)."""


@dataclass(frozen=True)
class RowCovariance:
    """A set's part of Omega^{-1} for one set of row weights (factor.py's u coordinates): H's
    factor and selected inverse, G (split as (n1, k1, p) and (q2, p)) and the rows
    r_i = x_i - G' a_i (transposed, p x n); row_var is Var(eta_i) once S^{-1} is known."""

    weights: FloatArray
    factor: Factor
    inverse: SelectedInverse
    g1: FloatArray
    g2: FloatArray
    rt: FloatArray


@dataclass(frozen=True)
class Direction:
    """The rows' derivatives in E[eta_i] (gradient), the fixed-point weights they give
    (weights_next), Var(eta_i), the gradient in u (r1, r2) and y = H^{-1} of it."""

    gradient: FloatArray
    weights_next: FloatArray
    row_var: FloatArray
    r1: FloatArray
    r2: FloatArray
    y1: FloatArray
    y2: FloatArray


@dataclass(frozen=True)
class DirectionShare:
    """A set's share of the Newton direction: X' g, X' W Z Lambda y, g_u' y, G' g_u, the
    largest weight change and weight (maxima, initial 0 and 1), and tr Cov(u) of its random
    effects."""

    xg: FloatArray
    xwz: FloatArray
    gu_y: float
    g_gu: FloatArray
    weight_change: float
    largest_weight: float
    trace_u: float


@dataclass(frozen=True)
class Step:
    """The Newton step in u and in E[eta_i]."""

    d1: FloatArray
    d2: FloatArray
    d_eta: FloatArray


@dataclass(frozen=True)
class FinishShare:
    """A set's share at the end of an inner loop: the rows' expected log-likelihood
    (sum_i k_i E[eta_i] - m_i E[log(1 + e^eta_i)]), |u|^2 and per block sum_j E[u_tj u_tj']."""

    row_value: float
    u_square: float
    moments: list[FloatArray]


class StructuredRows:
    """The rows of whole levels of every grouping factor and their random effects in the inner
    loop of structured variational Bayes (module docstring). data: the rows (sorted here by
    the layout's first factor, so that its sums are contiguous)."""

    def __init__(self, data: ModelData) -> None:
        self.data, self.structure = sorted_by_first_factor(data)
        st = self.structure
        self.n_fixed = self.data.n_fixed
        # The fixed-effects design transposed (p x n): its columns contiguous in memory.
        self.xt = np.ascontiguousarray(self.data.x.T)
        self.u1 = np.zeros((st.n1, st.k1))
        self.u2 = np.zeros(st.q2)
        # The weights of the next covariance (the last inner loop's fixed-point update).
        self.row_weights = 0.25 * self.data.trials
        self.lambdas: list[FloatArray] | None = None
        # Z Lambda's values, the first part's Lambda and E[eta] (set by an inner loop's start).
        self.a1 = self.a2 = self.lambda1 = self.eta = np.zeros(0)
        self.cov: RowCovariance | None = None
        self.current_direction: Direction | None = None
        self.current_step: Step | None = None

    # --- coordinates ---------------------------------------------------------------------
    def block_u(self, u1: FloatArray, u2: FloatArray, t: int) -> FloatArray:
        """The u means of block t as (n_levels, k)."""
        st, b = self.structure, self.data.blocks[t]
        if t in st.first_blocks:
            return u1[:, st.first_columns[st.first_blocks.index(t)]]
        offset = st.rest_offsets[st.rest.index(t)]
        return u2[offset + np.arange(b.n_levels)[:, None] * b.k + np.arange(b.k)]

    def set_block_u(self, u1: FloatArray, u2: FloatArray, t: int, values: FloatArray) -> None:
        st, b = self.structure, self.data.blocks[t]
        if t in st.first_blocks:
            u1[:, st.first_columns[st.first_blocks.index(t)]] = values
            return
        offset = st.rest_offsets[st.rest.index(t)]
        u2[offset + np.arange(b.n_levels)[:, None] * b.k + np.arange(b.k)] = values

    def block_g(self, cov: RowCovariance, t: int) -> FloatArray:
        """Rows of G for block t: (n_levels, k, p)."""
        st, b = self.structure, self.data.blocks[t]
        if t in st.first_blocks:
            return cov.g1[:, st.first_columns[st.first_blocks.index(t)], :]
        offset = st.rest_offsets[st.rest.index(t)]
        return cov.g2[offset + np.arange(b.n_levels)[:, None] * b.k + np.arange(b.k)]

    def column_squares(self) -> tuple[list[FloatArray], int]:
        """Per block the sum over rows of each random-effect column's square, and the rows."""
        return [np.sum(b.z * b.z, axis=0) for b in self.data.blocks], self.data.n_obs

    # --- the inner loop's calls (module docstring) ---------------------------------------
    def covariance_pieces(
        self,
        lambdas: list[FloatArray] | None = None,
        beta: FloatArray | None = None,
        step: float | None = None,
        trial_weights: bool = False,
        damping: float = 1.0,
    ) -> tuple[FloatArray, float]:
        """The covariance for the kept row weights: the set's share of the Schur complement
        (without the prior) and log det H. First, when lambdas are given (an inner loop's
        start), the means are moved to them keeping b = Lambda u (the warm start) and E[eta]
        is computed for beta; when step is given, the last Newton step is taken with that
        length, the weights moving from the current ones by `damping` times the way to the
        fixed-point ones of the last direction (or, with trial_weights, those at the point
        stepped to): all the way when damping is 1."""
        if lambdas is not None:
            assert beta is not None
            self._begin(lambdas, beta)
        if step is not None:
            self._take(step)
            d = self._direction()
            target = (
                self.row_derivatives(self.eta, d.row_var)[1] if trial_weights else d.weights_next
            )
            if damping != 1.0:
                target = self.row_weights + damping * (target - self.row_weights)
            self.row_weights = target
        return self._covariance(np.maximum(self.row_weights, SMALLEST_WEIGHT))

    def direction(self, schur_inverse: FloatArray) -> DirectionShare:
        """Var(eta_i) for Cov(beta) = schur_inverse, the rows' derivatives and the Newton
        direction in u; the set's shares of what the step in beta needs."""
        st, cov = self.structure, self._covariance_now()
        x = self.data.x
        rt = cov.rt
        if self.n_fixed:
            solved = schur_inverse @ rt
            row_var = rt[0] * solved[0]
            for j in range(1, self.n_fixed):
                row_var += rt[j] * solved[j]
        else:
            row_var = np.zeros(st.n)
        row_var += row_inverse_quadratic(st, cov.factor, cov.inverse, self.a1, self.a2)
        g, w_next = self.row_derivatives(self.eta, row_var)
        r1, r2 = st.transpose_times(self.a1, self.a2, g)
        r1 = r1 - self.u1
        r2 = r2 - self.u2
        y1, y2 = cov.factor.solve(r1, r2)
        wz = cov.weights * st.times(self.a1, self.a2, y1, y2)
        self.current_direction = Direction(g, w_next, row_var, r1, r2, y1, y2)
        self.current_step = None
        p = self.n_fixed
        return DirectionShare(
            x.T @ g,
            x.T @ wz,
            float(np.sum(r1 * y1) + np.sum(r2 * y2)),
            r1.reshape(-1) @ cov.g1.reshape(-1, p) + r2 @ cov.g2 if p else np.zeros(0),
            float(np.max(np.abs(w_next - cov.weights), initial=0.0)),
            float(np.max(cov.weights, initial=1.0)),
            self.trace_u(cov, schur_inverse),
        )

    def newton_step(self, d_beta: FloatArray) -> float:
        """The Newton step in u and E[eta] for the step d_beta in beta; the largest |step in
        E[eta_i]| of the set's rows."""
        st, cov, d = self.structure, self._covariance_now(), self._direction()
        d1 = d.y1 - cov.g1 @ d_beta
        d2 = d.y2 - cov.g2 @ d_beta
        d_eta = self.data.x @ d_beta + st.times(self.a1, self.a2, d1, d2)
        self.current_step = Step(d1, d2, d_eta)
        return float(np.max(np.abs(d_eta), initial=0.0))

    def row_values(self, steps: tuple[float, ...]) -> list[tuple[float, float]]:
        """The rows' expected log-likelihood and |u|^2 at each step length along the last
        Newton step (0: the current means); nothing is kept."""
        d, s = self._direction(), self._step()
        out = []
        for step in steps:
            if step == 0.0:
                u1, u2, eta = self.u1, self.u2, self.eta
            else:
                u1, u2 = self.u1 + step * s.d1, self.u2 + step * s.d2
                eta = self.eta + step * s.d_eta
            u_square = float(np.sum(u1 * u1) + np.sum(u2 * u2))
            out.append((self.row_value(eta, d.row_var), u_square))
        return out

    def finish(
        self, step: float, schur_inverse: FloatArray, d_beta: FloatArray | None = None
    ) -> FinishShare:
        """The end of an inner loop: the last Newton step (for d_beta, when given) taken with
        length `step` (0: none), the fixed-point weights of the last direction kept for the
        next inner loop; the set's shares of the rows' value, |u|^2 and the second moments of
        u."""
        if d_beta is not None:
            self.newton_step(d_beta)
        if step:
            self._take(step)
        cov, d = self._covariance_now(), self._direction()
        self.row_weights = np.maximum(d.weights_next, SMALLEST_WEIGHT)
        moments = []
        for t in range(len(self.data.blocks)):
            u = self.block_u(self.u1, self.u2, t)
            moments.append(u.T @ u + self.u_covariances(cov, schur_inverse, t).sum(axis=0))
        u_square = float(np.sum(self.u1 * self.u1) + np.sum(self.u2 * self.u2))
        return FinishShare(self.row_value(self.eta, d.row_var), u_square, moments)

    def random_effects(
        self, schur_inverse: FloatArray
    ) -> tuple[list[FloatArray], list[FloatArray]]:
        """Posterior means (n_levels, k) and covariances (n_levels, k, k) of every block's
        random effects b = Lambda u, for the last inner loop's q(beta, b)."""
        assert self.lambdas is not None
        cov = self._covariance_now()
        ranef, ranef_cov = [], []
        for t, lam in enumerate(self.lambdas):
            ranef.append(self.block_u(self.u1, self.u2, t) @ lam.T)
            u_cov = self.u_covariances(cov, schur_inverse, t)
            ranef_cov.append(np.einsum("ab,jbc,dc->jad", lam, u_cov, lam))
        return ranef, ranef_cov

    # --- pieces ----------------------------------------------------------------------------
    def u_covariances(self, cov: RowCovariance, schur_inverse: FloatArray, t: int) -> FloatArray:
        """Cov_q(u) of block t per level: H^{-1}'s diagonal blocks + G S^{-1} G'."""
        u_cov = cov.inverse.block_covariances(self.data, t)
        if self.n_fixed:
            gt = self.block_g(cov, t)
            u_cov = u_cov + np.einsum("jap,pq,jbq->jab", gt, schur_inverse, gt)
        return u_cov

    def trace_u(self, cov: RowCovariance, schur_inverse: FloatArray) -> float:
        """tr Cov_q(u) = tr H^{-1} + tr(G S^{-1} G')."""
        z = cov.inverse
        total = sum(float(np.trace(dg, axis1=1, axis2=2).sum()) for dg in z.diag)
        if z.zrr is not None:
            total += float(np.trace(z.zrr))
        if self.n_fixed:
            for g in (cov.g1.reshape(-1, self.n_fixed), cov.g2):
                total += float(np.sum((g @ schur_inverse) * g))
        return total

    def row_value(self, eta: FloatArray, var: FloatArray) -> float:
        """sum_i k_i E[eta_i] - m_i E[log(1 + e^eta_i)]."""
        e, _, _ = expected_log1pexp(eta, var, derivatives=False)
        return float(self.data.successes @ eta - self.data.trials @ e)

    def row_derivatives(self, eta: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The rows' derivatives in E[eta_i] (k_i - m_i E[expit]) and the fixed-point weights
        (twice the derivative in -Var(eta_i): m_i E[expit'])."""
        _, d_mean, d_var = expected_log1pexp(eta, var, value=False)
        return self.data.successes - self.data.trials * d_mean, 2.0 * self.data.trials * d_var

    def _begin(self, lambdas: list[FloatArray], beta: FloatArray) -> None:
        """Move the means to new Lambdas keeping b = Lambda u fixed (the warm start), and
        compute Z Lambda's values and E[eta] there."""
        data, st = self.data, self.structure
        if self.lambdas is not None:
            u1, u2 = self.u1.copy(), self.u2.copy()
            for t, (old, new) in enumerate(zip(self.lambdas, lambdas, strict=True)):
                b = self.block_u(u1, u2, t) @ old.T
                u = scipy.linalg.solve_triangular(new, b.T, lower=True).T
                self.set_block_u(u1, u2, t, u)
            self.u1, self.u2 = u1, u2
        self.lambdas = lambdas
        self.a1, self.a2 = st.z_lambda(data, lambdas)
        self.lambda1 = st.first_lambda(lambdas)
        self.eta = data.x @ beta + st.times(self.a1, self.a2, self.u1, self.u2) + data.offset

    def _take(self, step: float) -> None:
        s = self._step()
        self.u1 = self.u1 + step * s.d1
        self.u2 = self.u2 + step * s.d2
        self.eta = self.eta + step * s.d_eta

    def _covariance(self, w: FloatArray) -> tuple[FloatArray, float]:
        """H's factor and selected inverse and G for the row weights w (kept), and the set's
        share of the Schur complement and log det H. The design's columns are held transposed
        (p x n) so that every product over the rows is along contiguous memory."""
        st, xt, p = self.structure, self.xt, self.n_fixed
        a1, a2 = self.a1, self.a2
        factor = st.factorize(a1, a2, w, self.lambda1)
        inverse = factor.selected_inverse()
        wxt = xt * w
        g1, g2, zgt = self._solve_columns(factor, wxt)
        rt = xt - zgt  # rows r_i = x_i - G' a_i, transposed
        schur = np.empty((p, p))
        for j in range(p):
            for k in range(j + 1):
                schur[j, k] = schur[k, j] = 0.5 * (float(wxt[j] @ rt[k]) + float(wxt[k] @ rt[j]))
        self.cov = RowCovariance(w, factor, inverse, g1, g2, rt)
        self.current_direction = None
        self.current_step = None
        return schur, float(factor.logdet)

    def _solve_columns(
        self, factor: Factor, columns: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """G = H^{-1} (Z Lambda)' C for the columns C, given transposed (p x n), split as
        (n1, k1, p) and (q2, p), and (Z Lambda G)' (p x n). One grouping factor (H block
        diagonal): every column through the blocks at once; otherwise one solve per column."""
        st, a1, a2 = self.structure, self.a1, self.a2
        p = columns.shape[0]
        if p == 0:
            return np.zeros((st.n1, st.k1, 0)), np.zeros((st.q2, 0)), np.zeros((0, st.n))
        zgt = np.empty((p, st.n))
        if len(st.levels) == 1 and not st.r2:
            t1 = np.empty((st.n1, st.k1, p))
            for c in range(st.k1):
                for j in range(p):
                    t1[:, c, j] = st.level_sum(a1[:, c] * columns[j])
            linv = factor.linv[0]
            g1 = np.einsum("jba,jbc,jcp->jap", linv, linv, t1)
            for j in range(p):
                zgt[j] = a1[:, 0] * st.level_values(g1[:, 0, j])
                for c in range(1, st.k1):
                    zgt[j] += a1[:, c] * st.level_values(g1[:, c, j])
            return g1, np.zeros((0, p)), zgt
        g1 = np.empty((st.n1, st.k1, p))
        g2 = np.empty((st.q2, p))
        for j in range(p):
            s1, s2 = factor.solve(*st.transpose_times(a1, a2, columns[j]))
            g1[:, :, j] = s1
            g2[:, j] = s2
            zgt[j] = st.times(a1, a2, s1, s2)
        return g1, g2, zgt

    def _covariance_now(self) -> RowCovariance:
        if self.cov is None:
            raise RuntimeError("covariance_pieces must be called first")
        return self.cov

    def _direction(self) -> Direction:
        if self.current_direction is None:
            raise RuntimeError("direction must be called first")
        return self.current_direction

    def _step(self) -> Step:
        if self.current_step is None:
            raise RuntimeError("newton_step must be called first")
        return self.current_step


def row_inverse_quadratic(
    st: Structure, factor: Factor, inverse: SelectedInverse, a1: FloatArray, a2: FloatArray
) -> FloatArray:
    """a_i' H^{-1} a_i for each row i (a_i: the row's Z Lambda values)."""
    if st.r2:
        h1, h2 = factor.row_inverse_products(a1, a2, inverse)
        return row_dot(a1, h1) + row_dot(a2, h2)
    hinv11 = inverse.diag[0]
    if st.k1 == 1:
        return a1[:, 0] * a1[:, 0] * st.level_values(hinv11[:, 0, 0])
    out = np.zeros(st.n)
    for c in range(st.k1):
        out += a1[:, c] * a1[:, c] * st.level_values(hinv11[:, c, c])
        for d in range(c):
            out += 2.0 * a1[:, c] * a1[:, d] * st.level_values(hinv11[:, c, d])
    return out
