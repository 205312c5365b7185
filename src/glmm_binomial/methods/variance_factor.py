"""The variance parameters' factor of structured variational Bayes, q(phi), and its priors.

Per random-effect block t with k columns: k = 1, log s ~ N(mu, sigma^2) under q and
N(0, prior_log_sd_sd^2) under the prior; k >= 2, Sigma = diag(s) R diag(s) with log s ~ N(mu, C)
(full covariance) under q and N(0, prior_log_sd_sd^2 I) under the prior, and R built from its
canonical partial correlations z = tanh(y) (Stan's construction), y ~ N(m_y, V_y) under q and
R ~ LKJ(lkj_eta) under the prior: the partial correlation of columns (i, j), i > j (0-based), is
then 2 Beta(b, b) - 1 with b = eta + (k - 2 - j) / 2, so y has density
prod 2^(1 - 2b) / B(b, b) cosh(y)^(-2b), and log det R = -2 sum log cosh(y).

VarianceFactor.terms gives the ELBO's terms in phi for given second moments A_t = sum_j
E[b_tj b_tj'] (E[log p(b | Sigma)], E[log p(phi)], entropy of q(phi), constants included) with
their exact gradient; precisions gives E[Sigma_t^{-1}] (closed form in log s; a product
Gauss-Hermite cubature over y for E[R^{-1}]).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import scipy.special
from numpy.typing import NDArray

from glmm_binomial.model.data import ModelData
from glmm_binomial.numerics.gaussian_expectations import LOG_2PI, expected_log_cosh, gauss_hermite
from glmm_binomial.numerics.quasi_newton import minimize_bfgs

FloatArray = NDArray[np.float64]


# --- correlation matrices from canonical partial correlations ------------------------------
def correlation_pairs(k: int) -> list[tuple[int, int]]:
    """(i, j), i > j, in the order of y: row by row of the lower triangle."""
    return [(i, j) for i in range(1, k) for j in range(i)]


def lkj_shapes(k: int, eta: float) -> FloatArray:
    """Beta shape b of each partial correlation (correlation_pairs order) under LKJ(eta)."""
    return np.array([eta + (k - 2 - j) / 2.0 for _, j in correlation_pairs(k)])


def cholesky_from_partials(y: FloatArray, k: int) -> FloatArray:
    """Cholesky factors (N, k, k) of the correlation matrices with canonical partial
    correlations tanh(y) (N, d)."""
    n = y.shape[0]
    low = np.zeros((n, k, k))
    low[:, 0, 0] = 1.0
    z = np.tanh(y)
    c = 1.0 / np.cosh(y)
    for p, (i, j) in enumerate(correlation_pairs(k)):
        prefix = low[:, i, i] if j > 0 else np.ones(n)  # prod of sech over l < j, kept here
        low[:, i, j] = z[:, p] * prefix
        low[:, i, i] = prefix * c[:, p]
    return low


def lower_inverse(low: FloatArray) -> FloatArray:
    """Inverses of lower-triangular matrices (N, k, k) by forward substitution, vectorized over
    N (batched LU through np.linalg.inv is several times slower for these small blocks)."""
    k = low.shape[1]
    out = np.zeros_like(low)
    diagonal = 1.0 / np.diagonal(low, axis1=1, axis2=2)
    for i in range(k):
        out[:, i, i] = diagonal[:, i]
        for j in range(i):
            # (L^{-1})_ij = -sum_{m = j}^{i - 1} L_im (L^{-1})_mj / L_ii
            acc = np.einsum("nm,nm->n", low[:, i, j:i], out[:, j:i, j])
            out[:, i, j] = -acc * diagonal[:, i]
    return out


def _lower_chol(params: FloatArray, dim: int) -> FloatArray:
    """Lower-triangular matrix from packed entries (column-major lower triangle), log diagonal."""
    low = np.zeros((dim, dim))
    rows, cols = np.tril_indices(dim)
    order = np.lexsort((rows, cols))
    rows, cols = rows[order], cols[order]
    low[rows, cols] = params
    low[np.diag_indices(dim)] = np.exp(np.diag(low))
    return low


def _lower_gradient(grad_low: FloatArray, low: FloatArray) -> FloatArray:
    """Packed gradient (as _lower_chol's parameters) from the gradient in the lower matrix."""
    dim = low.shape[0]
    g = grad_low.copy()
    g[np.diag_indices(dim)] *= np.diag(low)
    rows, cols = np.tril_indices(dim)
    order = np.lexsort((rows, cols))
    return g[rows[order], cols[order]]


def _pack_lower(low: FloatArray) -> FloatArray:
    dim = low.shape[0]
    g = low.copy()
    g[np.diag_indices(dim)] = np.log(np.diag(low))
    rows, cols = np.tril_indices(dim)
    order = np.lexsort((rows, cols))
    return g[rows[order], cols[order]]


@dataclass(frozen=True)
class VarianceBlock:
    """Where block t's variational parameters of q(phi_t) sit and what its prior is."""

    k: int
    n_levels: int
    start: int
    size: int


OPTIMAL_GTOL, OPTIMAL_FTOL, OPTIMAL_MAX_ITER, OPTIMAL_MAX_STEP = 1e-5, 2.2e-9, 1000, 2.0
"""VarianceFactor.optimal's BFGS (numerics.quasi_newton): gradient tolerance, relative
reduction tolerance, iteration cap and longest step (a start's coordinate-ascent step: no
rows involved, so loose tolerances cost nothing later)."""


class VarianceFactor:
    """q(phi): the variance parameters' factor, its ELBO terms and their exact gradient."""

    def __init__(
        self,
        data: ModelData,
        prior_log_sd_sd: float,
        lkj_eta: float,
        cubature_nodes: int = 16,
        max_cubature_nodes: int = 4096,
        column_rms: list[FloatArray] | None = None,
    ) -> None:
        """cubature_nodes: Gauss-Hermite nodes per dimension of the cubature over y, reduced
        so that the product rule keeps at most max_cubature_nodes; column_rms: the root mean
        square of each block's random-effect columns (None: from data's rows; given for data
        whose rows are elsewhere, as on Dask)."""
        self.prior_log_sd_sd = float(prior_log_sd_sd)
        self.lkj_eta = float(lkj_eta)
        self.blocks: list[VarianceBlock] = []
        # Root mean square of each random-effect column: the start gives each random effect an
        # SD of 1 on the log-odds scale (1 / rms of its column).
        self.column_rms = column_rms or [
            np.sqrt(np.mean(b.z * b.z, axis=0)) if b.z.shape[0] else np.ones(b.k)
            for b in data.blocks
        ]
        start = 0
        self.cubature: dict[int, tuple[FloatArray, FloatArray]] = {}
        for b in data.blocks:
            k = b.k
            d = k * (k - 1) // 2
            size = 2 if k == 1 else k + k * (k + 1) // 2 + d + d * (d + 1) // 2
            self.blocks.append(VarianceBlock(k, b.n_levels, start, size))
            start += size
            if k >= 2 and k not in self.cubature:
                per_dim = cubature_nodes
                while per_dim > 2 and per_dim**d > max_cubature_nodes:
                    per_dim -= 1
                nodes, weights = gauss_hermite(per_dim)
                grid = np.array(list(itertools.product(nodes, repeat=d)))
                w = np.prod(np.array(list(itertools.product(weights, repeat=d))), axis=1)
                self.cubature[k] = (grid, w)
        self.size = start

    def optimal(self, phi: FloatArray, second_moments: list[FloatArray]) -> FloatArray:
        """The q(phi) maximizing the ELBO for fixed A_t (a coordinate-ascent step; no rows
        involved), from phi."""

        def negative(v: FloatArray) -> tuple[float, FloatArray]:
            try:
                value, grad = self.terms(v, second_moments)
            except ArithmeticError:  # a trial point far out: not a candidate
                return math.inf, np.zeros_like(v)
            if not np.isfinite(value):
                return math.inf, np.zeros_like(v)
            return -value, -grad

        found = minimize_bfgs(
            negative,
            phi,
            np.eye(len(phi)),
            gtol=OPTIMAL_GTOL,
            ftol=OPTIMAL_FTOL,
            max_iter=OPTIMAL_MAX_ITER,
            max_step=OPTIMAL_MAX_STEP,
        )
        best = np.asarray(found.x, dtype=np.float64)
        return best if np.all(np.isfinite(best)) else phi

    def start(self) -> FloatArray:
        """Start: every random effect with SD 1 on the log-odds scale (1 / rms of its column;
        an intercept's SD 1), the spread of q(log SD) it has near a data-determined optimum
        (1 / sqrt(2 n)); correlations 0 with spread 1 / sqrt(n)."""
        out = np.zeros(self.size)
        for blk, rms in zip(self.blocks, self.column_rms, strict=True):
            n = float(blk.n_levels)
            mu = -np.log(np.where(rms > 0, rms, 1.0))
            if blk.k == 1:
                out[blk.start : blk.start + 2] = (mu[0], -0.5 * math.log(2.0 * n + 1.0))
                continue
            k, d = blk.k, blk.k * (blk.k - 1) // 2
            out[blk.start : blk.start + k] = mu
            pos = blk.start + k
            out[pos : pos + k * (k + 1) // 2] = _pack_lower(np.eye(k) / math.sqrt(2.0 * n + 1.0))
            pos += k * (k + 1) // 2 + d
            out[pos : pos + d * (d + 1) // 2] = _pack_lower(np.eye(d) / math.sqrt(n))
        return out

    def scales(self) -> FloatArray:
        """Rough inverse square roots of the ELBO's curvature in each parameter (the L-BFGS-B
        variables are the parameters divided by these)."""
        out = np.ones(self.size)
        for blk in self.blocks:
            out[blk.start : blk.start + blk.k] = 1.0 / math.sqrt(blk.n_levels + 1.0)
        return out

    def _unpack(
        self, blk: VarianceBlock, phi: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """(mu, chol of C, m_y, chol of V_y) of a k >= 2 block."""
        k, d = blk.k, blk.k * (blk.k - 1) // 2
        p = phi[blk.start : blk.start + blk.size]
        mu = p[:k]
        lc = _lower_chol(p[k : k + k * (k + 1) // 2], k)
        pos = k + k * (k + 1) // 2
        m_y = p[pos : pos + d]
        ly = _lower_chol(p[pos + d :], d)
        return mu, lc, m_y, ly

    def precisions(self, phi: FloatArray) -> list[FloatArray]:
        """E_q[Sigma_t^{-1}] per block (k_t x k_t)."""
        out = []
        for blk in self.blocks:
            if blk.k == 1:
                mu, log_s = phi[blk.start], phi[blk.start + 1]
                out.append(np.array([[math.exp(-2.0 * mu + 2.0 * math.exp(2.0 * log_s))]]))
                continue
            mu, lc, m_y, ly = self._unpack(blk, phi)
            e_inverse_sd = self._inverse_sd_products(mu, lc @ lc.T)
            e_rinv, _ = self._inverse_correlation(blk, m_y, ly, None)
            out.append(e_inverse_sd * e_rinv)
        return out

    @staticmethod
    def _inverse_sd_products(mu: FloatArray, cov: FloatArray) -> FloatArray:
        """E[1 / (s_c s_d)] for log s ~ N(mu, cov)."""
        dv = np.diag(cov)
        return np.asarray(
            np.exp(-(mu[:, None] + mu[None, :]) + 0.5 * (dv[:, None] + dv[None, :] + 2.0 * cov))
        )

    def _inverse_correlation(
        self, blk: VarianceBlock, m_y: FloatArray, ly: FloatArray, weight: FloatArray | None
    ) -> tuple[FloatArray, tuple[FloatArray, FloatArray] | None]:
        """E[R^{-1}] by the cubature over y = m_y + L_y xi and, with weight = M, the gradient
        of E[tr(R^{-1} M)] in m_y and in L_y."""
        k = blk.k
        grid, w = self.cubature[k]
        y = m_y[None, :] + grid @ ly.T
        low = cholesky_from_partials(y, k)
        low_inv = lower_inverse(low)
        rinv = np.matmul(low_inv.transpose(0, 2, 1), low_inv)
        expected = np.einsum("n,nab->ab", w, rinv)
        if weight is None:
            return expected, None
        # d tr(R^{-1} M) / d L = -2 R^{-1} M R^{-1} L, then back through the partials.
        grad_l = -2.0 * np.matmul(np.matmul(np.matmul(rinv, weight), rinv), low)
        z = np.tanh(y)
        c2 = 1.0 / np.cosh(y) ** 2
        grad_y = np.zeros_like(y)
        pairs = correlation_pairs(k)
        index = {pair: p for p, pair in enumerate(pairs)}
        for p, (i, j) in enumerate(pairs):
            # L_il for l < j and L_ii carry a factor sech(y_ij); L_ij carries tanh(y_ij).
            prefix = np.ones(y.shape[0])  # prod of sech(y_il) over l < j
            for l_ in range(j):
                prefix = prefix / np.cosh(y[:, index[(i, l_)]])
            g = grad_l[:, i, j] * c2[:, p] * prefix
            tail = grad_l[:, i, i] * low[:, i, i]
            for jj in range(j + 1, i):
                tail = tail + grad_l[:, i, jj] * low[:, i, jj]
            grad_y[:, p] = g - z[:, p] * tail
        grad_m = w @ grad_y
        grad_ly = np.tril(np.einsum("n,na,nb->ab", w, grad_y, grid))
        return expected, (grad_m, grad_ly)

    def expected_correlation(self, phi: FloatArray, t: int) -> FloatArray:
        """E_q[R_t] (k x k) of a block with k >= 2."""
        blk = self.blocks[t]
        _, _, m_y, ly = self._unpack(blk, phi)
        grid, w = self.cubature[blk.k]
        low = cholesky_from_partials(m_y[None, :] + grid @ ly.T, blk.k)
        return np.asarray(np.einsum("n,nab->ab", w, np.matmul(low, low.transpose(0, 2, 1))))

    def sd_moments(self, phi: FloatArray, t: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Mean and SD of each log SD of block t under q, and E[SD]."""
        blk = self.blocks[t]
        if blk.k == 1:
            mu = np.array([phi[blk.start]])
            sd = np.array([math.exp(phi[blk.start + 1])])
        else:
            mu, lc, _, _ = self._unpack(blk, phi)
            sd = np.sqrt(np.diag(lc @ lc.T))
        return mu, sd, np.exp(mu + 0.5 * sd * sd)

    def terms(self, phi: FloatArray, second_moments: list[FloatArray]) -> tuple[float, FloatArray]:
        """The ELBO's terms in phi for given A_t = sum_j E[b_tj b_tj'] (second_moments):
        sum_t E[log p(b_t | Sigma_t)] + E[log p(phi)] + entropy(q(phi)), constants included,
        and the gradient in phi."""
        value = 0.0
        grad = np.zeros(self.size)
        precision = 1.0 / self.prior_log_sd_sd**2
        log_prior_norm = -0.5 * math.log(2.0 * math.pi * self.prior_log_sd_sd**2)
        entropy_norm = 0.5 * (1.0 + LOG_2PI)
        for blk, a in zip(self.blocks, second_moments, strict=True):
            n = float(blk.n_levels)
            if blk.k == 1:
                mu, log_s = phi[blk.start], phi[blk.start + 1]
                s2 = math.exp(2.0 * log_s)
                psi_a = math.exp(-2.0 * mu + 2.0 * s2) * float(a[0, 0])
                value += (
                    -0.5 * n * LOG_2PI
                    - n * mu
                    - 0.5 * psi_a
                    + log_prior_norm
                    - 0.5 * precision * (mu * mu + s2)
                    + entropy_norm
                    + log_s
                )
                grad[blk.start] = -n + psi_a - precision * mu
                grad[blk.start + 1] = -2.0 * s2 * psi_a - precision * s2 + 1.0
                continue
            k, d = blk.k, blk.k * (blk.k - 1) // 2
            mu, lc, m_y, ly = self._unpack(blk, phi)
            cov = lc @ lc.T
            cov_y = ly @ ly.T
            e_inverse_sd = self._inverse_sd_products(mu, cov)
            e_rinv, y_grad = self._inverse_correlation(blk, m_y, ly, e_inverse_sd * a)
            assert y_grad is not None
            q = e_rinv * a * e_inverse_sd  # E[Sigma^{-1}] entrywise times A
            shapes = lkj_shapes(k, self.lkj_eta)
            lc_value, lc_mean, lc_var = expected_log_cosh(m_y, np.diag(cov_y))
            # -n/2 E log det Sigma = -n sum mu + n sum E log cosh y; LKJ: -2 b E log cosh y.
            coef = n - 2.0 * shapes
            lkj_norm = float(
                np.sum((1.0 - 2.0 * shapes) * math.log(2.0) - scipy.special.betaln(shapes, shapes))
            )
            value += (
                -0.5 * n * k * LOG_2PI
                - n * float(np.sum(mu))
                + float(coef @ lc_value)
                - 0.5 * float(np.sum(q))
                + k * log_prior_norm
                - 0.5 * precision * (float(mu @ mu) + float(np.trace(cov)))
                + lkj_norm
                + k * entropy_norm
                + float(np.sum(np.log(np.diag(lc))))
                + d * entropy_norm
                + float(np.sum(np.log(np.diag(ly))))
            )
            row_sums = q.sum(axis=1)
            grad_mu = -n + row_sums - precision * mu
            grad_cov = -0.5 * (np.diag(row_sums) + q) - 0.5 * precision * np.eye(k)
            grad_lc = 2.0 * grad_cov @ lc
            grad_lc[np.diag_indices(k)] += 1.0 / np.diag(lc)  # entropy: sum log diag
            grad_my = coef * lc_mean - 0.5 * y_grad[0]
            grad_ly = 2.0 * (coef * lc_var)[:, None] * ly - 0.5 * y_grad[1]
            grad_ly = np.tril(grad_ly)
            grad_ly[np.diag_indices(d)] += 1.0 / np.diag(ly)
            pos = blk.start
            grad[pos : pos + k] = grad_mu
            pos += k
            grad[pos : pos + k * (k + 1) // 2] = _lower_gradient(np.tril(grad_lc), lc)
            pos += k * (k + 1) // 2
            grad[pos : pos + d] = grad_my
            pos += d
            grad[pos : pos + d * (d + 1) // 2] = _lower_gradient(grad_ly, ly)
        return value, grad
