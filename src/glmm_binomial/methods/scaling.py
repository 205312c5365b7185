"""Internal centring and scaling of the design, and the exact map of a fit back to user units.

The binomial GLMM is equivariant under a linear change of its design columns: with
X~ = X C_x and, per random-effect block t, Z~_t = Z_t C_t (C invertible),

    X beta = X~ beta~          beta = C_x beta~,        vcov(beta) = C_x vcov(beta~) C_x',
    Z_t b = Z~_t b~            b = C_t b~,              Lambda_t Lambda_t' = C_t L~ L~' C_t',

and the likelihood is unchanged. A covariate in large or small units (x * 1e6) leaves the fit's
parameters many orders of magnitude apart, which the optimizer and the boundary test (a
diagonal of Lambda below a fixed tolerance) cannot cope with; on the scaled design the same fit
is well conditioned. ``choose_scaling`` picks C (identity where a column is already well scaled,
so such fits stay bit-identical), ``to_internal`` builds the internal ModelData and
``to_user`` maps a FitOutput of the internal fit back: beta, vcov_beta, theta (lme4's
lower-triangular layout, re-triangularised by an LQ factorization when centring mixes the
block's effects), theta_cov (through the exact Jacobian of that map), ranef and ranef_cov.
The log-likelihood is the same number in both.

Column j of X is centred (x_j - m_j, m_j its mean, subtracted as m_j times the intercept
column) only when the model keeps an intercept; a column of Z_t only when block t holds an
intercept column as well (a correlated term: b0 + b1 x = (b0 + b1 m) + b1 (x - m) mixes the
block's effects), never in ``||`` blocks or (0 + x | g). Scales are powers of two, so scaling
itself is exact in floating point.

A block with a structured covariance (ar1, cs, diag: model.covariance) keeps its columns as
they are: a change of columns maps an unstructured covariance to another one, but not an
AR(1) to an AR(1) (per-column scales break its common SD, centring mixes the occasions).
Their columns are indicators of occasions, which need no rescaling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from glmm_binomial.diagnostics import ConvergenceWarning, FitWarning
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.model.covariance import CovarianceStructure, Unstructured
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.numerics.covariance import LimitCovariance, transform_covariance
from glmm_binomial.numerics.optimize import DevianceAndGradient, OptimizerControl

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Scaling:
    """Column maps of one model: X~ = X fixed, Z~_t = Z_t blocks[t]. Each is the identity
    but for 1 / scale on the diagonal of a scaled column and -mean / scale in the intercept's
    row of a centred one."""

    fixed: FloatArray
    blocks: tuple[FloatArray, ...]

    @property
    def is_identity(self) -> bool:
        return _is_identity(self.fixed) and all(_is_identity(c) for c in self.blocks)


def _is_identity(c: FloatArray) -> bool:
    # Square, n nonzero entries, all of them ones on the diagonal (np.eye and array_equal
    # cost more than the fit's own work on a small model).
    n = c.shape[0]
    return c.shape == (n, n) and np.count_nonzero(c) == n and bool((c.diagonal() == 1.0).all())


@dataclass(frozen=True)
class ColumnMoments:
    """Per column of a matrix: its rows, mean, sum of squared deviations from the mean (M2)
    and whether it is all ones. Moments of row blocks combine exactly in theory and stably in
    floating point (combine_moments), so a matrix spread over many places (Dask partitions)
    gets its scaling without being gathered."""

    rows: int
    mean: FloatArray
    m2: FloatArray
    ones: NDArray[np.bool_]


def column_moments(matrix: FloatArray) -> ColumnMoments:
    """The moments of matrix's columns (two passes: mean, then squared deviations)."""
    n = int(matrix.shape[0])
    if n == 0:
        zero = np.zeros(matrix.shape[1])
        return ColumnMoments(0, zero, zero, np.ones(matrix.shape[1], dtype=bool))
    mean = matrix.mean(axis=0)
    m2 = ((matrix - mean) ** 2).sum(axis=0)
    return ColumnMoments(n, mean, m2, (matrix == 1.0).all(axis=0))


def combine_moments(parts: list[ColumnMoments]) -> ColumnMoments:
    """The moments of the stacked rows (Chan, Golub and LeVeque's pairwise update)."""
    total = parts[0]
    for part in parts[1:]:
        if part.rows == 0:
            continue
        if total.rows == 0:
            total = part
            continue
        n = total.rows + part.rows
        delta = part.mean - total.mean
        mean = total.mean + delta * (part.rows / n)
        m2 = total.m2 + part.m2 + delta * delta * (total.rows * part.rows / n)
        total = ColumnMoments(n, mean, m2, total.ones & part.ones)
    return total


COLUMN_STATS_CHUNK = 1 << 20
"""_column_map copies at most this many values of the matrix at a time (columns as rows)."""


def _column_map(
    matrix: FloatArray, scale_limit: float, center_limit: float, may_centre: bool = True
) -> FloatArray:
    """C with matrix @ C centred (only when a column of ones is present) and scaled."""
    n, p = matrix.shape
    if n >= 2 and (matrix == 1.0).all():
        return np.eye(p)  # columns of ones (a random intercept's): nothing to centre or scale
    means, sds, rms, ones_flags = (np.zeros(p) for _ in range(4))
    if n:
        # Columns as contiguous rows, a chunk at a time: each row's mean, SD and root mean
        # square are the same numbers as the column's own (the same pairwise sums), in a few
        # array operations instead of a few per column.
        step = max(1, COLUMN_STATS_CHUNK // n)
        for start in range(0, p, step):
            rows = np.ascontiguousarray(matrix[:, start : start + step].T)
            end = start + rows.shape[0]
            means[start:end] = rows.mean(axis=1)
            sds[start:end] = rows.std(axis=1)
            rms[start:end] = np.sqrt((rows * rows).mean(axis=1))
            ones_flags[start:end] = (rows == 1.0).all(axis=1)

    def stats(j: int) -> tuple[float, float, float]:
        return float(means[j]), float(sds[j]), float(rms[j])

    ones = [int(j) for j in np.flatnonzero(ones_flags)]
    return _decide(matrix.shape, ones, stats, scale_limit, center_limit, may_centre)


def _moments_map(
    moments: ColumnMoments, scale_limit: float, center_limit: float, may_centre: bool = True
) -> FloatArray:
    """_column_map from a matrix's moments instead of the matrix."""
    n = max(moments.rows, 1)

    def stats(j: int) -> tuple[float, float, float]:
        mean, variance = float(moments.mean[j]), float(moments.m2[j]) / n
        return mean, float(np.sqrt(variance)), float(np.sqrt(variance + mean * mean))

    ones = [int(j) for j in np.flatnonzero(moments.ones)]
    shape = (moments.rows, len(moments.mean))
    return _decide(shape, ones, stats, scale_limit, center_limit, may_centre)


def _decide(
    shape: tuple[int, ...],
    ones: list[int],
    stats: Callable[[int], tuple[float, float, float]],
    scale_limit: float,
    center_limit: float,
    may_centre: bool,
) -> FloatArray:
    """The column map from each column's (mean, standard deviation, root mean square)."""
    n_cols = shape[1]
    c = np.eye(n_cols)
    if shape[0] < 2:
        return c
    intercept = ones[0] if ones and may_centre else None
    for j in range(n_cols):
        if j in ones:
            continue
        mean, sd, rms = stats(j)
        if intercept is not None:
            spread = sd
        else:
            mean, spread = 0.0, rms
        if not np.isfinite(spread) or spread <= 0.0 or not np.isfinite(mean):
            continue  # constant (or unusable) column: nothing to gain
        centre = intercept is not None and abs(mean) > center_limit * spread
        scale = spread if centre else rms
        rescale = not 1.0 / scale_limit <= scale <= scale_limit
        if not (centre or rescale):
            continue
        power = 2.0 ** float(np.round(np.log2(scale))) if rescale else 1.0
        c[j, j] = 1.0 / power
        if centre:
            assert intercept is not None
            c[intercept, j] = -mean / power
    return c


def choose_scaling(
    model: ModelData, limits: OptimizerControl, centre_random: bool = True
) -> Scaling:
    """The column maps that make each column of X and Z_t well scaled (identity where it
    already is), by the limits named in OptimizerControl (fixed_scale_limit, ...).

    centre_random=False scales random-effect columns only. Adaptive Gauss-Hermite quadrature
    with n_agq > 1 on a vector random effect needs that: centring rotates the spherical
    effects u (u = Q u~), and a product rule is not rotation invariant, so centring would
    change the approximation itself, not only its parametrisation (scaling leaves u as it
    is, and the Laplace approximation is rotation invariant)."""
    fixed = _column_map(model.x, limits.fixed_scale_limit, limits.fixed_center_limit)
    blocks = tuple(
        _column_map(b.z, limits.random_scale_limit, limits.random_center_limit, centre_random)
        if isinstance(b.covariance, Unstructured)
        else np.eye(b.k)  # a structured covariance is kept on its own columns
        for b in model.blocks
    )
    return Scaling(fixed, blocks)


def choose_scaling_from_moments(
    fixed: ColumnMoments,
    blocks: list[ColumnMoments],
    limits: OptimizerControl,
    centre_random: bool = True,
    covariances: Sequence[CovarianceStructure] = (),
) -> Scaling:
    """choose_scaling from the columns' moments (of X and of each block's Z); covariances:
    each block's structure (none given: unstructured), a structured one kept on its own
    columns as choose_scaling keeps it."""
    structured = [not isinstance(c, Unstructured) for c in covariances] or [False] * len(blocks)
    return Scaling(
        _moments_map(fixed, limits.fixed_scale_limit, limits.fixed_center_limit),
        tuple(
            np.eye(len(m.mean))
            if kept
            else _moments_map(
                m, limits.random_scale_limit, limits.random_center_limit, centre_random
            )
            for m, kept in zip(blocks, structured, strict=True)
        ),
    )


def _apply(matrix: FloatArray, c: FloatArray) -> FloatArray:
    """matrix @ c, computed column by column so that untouched columns are copied exactly."""
    if _is_identity(c):
        return matrix
    out = np.array(matrix, dtype=np.float64, copy=True)
    for j in range(c.shape[1]):
        if c[j, j] == 1.0 and np.count_nonzero(c[:, j]) == 1:
            continue
        rows = np.flatnonzero(c[:, j])
        column = matrix[:, j] * c[j, j]
        for i in rows:
            if i != j:
                column = column + matrix[:, i] * c[i, j]
        out[:, j] = column
    return out


def to_internal(model: ModelData, scaling: Scaling) -> ModelData:
    """The model on the transformed columns (the same likelihood, reparametrised)."""
    if scaling.is_identity:
        return model
    blocks = tuple(
        replace(b, z=_apply(b.z, c)) for b, c in zip(model.blocks, scaling.blocks, strict=True)
    )
    return replace(model, x=_apply(model.x, scaling.fixed), blocks=blocks)


def _lower_factor(m: FloatArray) -> FloatArray:
    """Lower-triangular L with non-negative diagonal and L L' = M M' (LQ factorization)."""
    r = scipy.linalg.qr(m.T, mode="r")[0]
    lower = np.asarray(r, dtype=np.float64).T
    signs = np.sign(np.diag(lower))
    signs[signs == 0] = 1.0
    return lower * signs[None, :]


def block_theta_to_user(block: RandomBlock, c: FloatArray, theta: FloatArray) -> FloatArray:
    """One block's theta (internal columns) -> theta of the user's columns."""
    if _is_identity(c):
        return np.array(theta, dtype=np.float64)
    lam = block.lambda_matrix(theta)
    if np.count_nonzero(c - np.diag(np.diag(c))) == 0:
        # Scaling only: diag(c) Lambda~ is already lower triangular with the same signs.
        user = np.diag(c)[:, None] * lam
    else:
        user = _lower_factor(c @ lam)
    rows, cols = block.lower_indices()
    return np.asarray(user[rows, cols], dtype=np.float64)


def start_to_internal(
    model: ModelData, scaling: Scaling, theta: FloatArray, beta: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(theta, beta) of the user's columns -> the same point on the internal columns:
    beta~ = C_x^{-1} beta and Lambda~_t the lower factor of C_t^{-1} Lambda_t."""
    if scaling.is_identity:
        return theta, beta
    internal_theta = np.empty_like(theta)
    # The family's parameters (theta's tail) do not depend on the columns.
    internal_theta[model.family_slice] = theta[model.family_slice]
    for block, c, sl in zip(model.blocks, scaling.blocks, model.theta_slices(), strict=True):
        inverse = np.asarray(np.linalg.inv(c), dtype=np.float64)
        internal_theta[sl] = block_theta_to_user(block, inverse, theta[sl])
    return internal_theta, np.asarray(np.linalg.solve(scaling.fixed, beta), dtype=np.float64)


def _block_jacobian(block: RandomBlock, c: FloatArray, theta: FloatArray) -> FloatArray | None:
    """d theta_user / d theta_internal of one block (None where L is singular)."""
    if _is_identity(c):
        return np.eye(len(theta))
    rows, cols = block.lower_indices()
    if np.count_nonzero(c - np.diag(np.diag(c))) == 0:
        return np.diag(np.diag(c)[rows])
    lam = block.lambda_matrix(theta)
    lower = block.lambda_matrix(block_theta_to_user(block, c, theta))
    diagonal = np.diag(lower)
    if (diagonal <= 1e-12 * max(1.0, float(np.abs(lower).max()))).any():
        return None
    lower_inv = np.linalg.inv(lower)
    jac = np.empty((len(rows), len(rows)))
    for e, (r, col) in enumerate(zip(rows, cols, strict=True)):
        d_lam = np.zeros_like(lam)
        d_lam[r, col] = 1.0
        d_sigma = c @ (d_lam @ lam.T + lam @ d_lam.T) @ c.T
        # Derivative of the Cholesky factor: dL = L Phi(L^-1 dSigma L^-T), Phi the lower
        # triangle with its diagonal halved.
        inner = lower_inv @ d_sigma @ lower_inv.T
        phi = np.tril(inner) - 0.5 * np.diag(np.diag(inner))
        jac[:, e] = (lower @ phi)[rows, cols]
    return jac


def to_user(model: ModelData, scaling: Scaling, output: FitOutput) -> FitOutput:
    """A FitOutput of the internal model mapped back to the user's columns (exact)."""
    if scaling.is_identity:
        return output
    cx = scaling.fixed
    beta = cx @ output.beta
    vcov_beta = transform_covariance(cx, output.vcov_beta)
    theta = np.empty_like(output.theta)
    n_theta = model.n_theta
    jacobian = np.zeros((n_theta, n_theta))
    unavailable = np.zeros(n_theta, dtype=bool)
    # The family's parameters (theta's tail) do not depend on the columns.
    family = model.family_slice
    theta[family] = output.theta[family]
    jacobian[family, family] = np.eye(family.stop - family.start)
    ranef, ranef_cov = [], []
    for t, (block, c, sl) in enumerate(
        zip(model.blocks, scaling.blocks, model.theta_slices(), strict=True)
    ):
        theta[sl] = block_theta_to_user(block, c, output.theta[sl])
        jac = _block_jacobian(block, c, output.theta[sl])
        if jac is None:
            unavailable[sl] = True
        else:
            jacobian[sl, sl] = jac
        ranef.append(output.ranef[t] @ c.T)
        ranef_cov.append(np.einsum("ab,jbc,dc->jad", c, output.ranef_cov[t], c))
    theta_cov = output.theta_cov
    if theta_cov is not None:
        missing = np.all(np.isnan(theta_cov), axis=1)
        for sl in model.theta_slices():
            block_jac = jacobian[sl, sl]
            mixing = np.count_nonzero(block_jac - np.diag(np.diag(block_jac))) > 0
            if missing[sl].any() and mixing:
                # A parameter held on the boundary (NaN row) mixes into the block's others
                # through the re-triangularisation: none of them has a covariance then.
                unavailable[sl] = True
        unavailable |= missing
        finite = np.where(np.isnan(theta_cov), 0.0, theta_cov)
        mapped = jacobian @ finite @ jacobian.T
        mapped[unavailable, :] = np.nan
        mapped[:, unavailable] = np.nan
        theta_cov = mapped
    # A user coefficient built from a diverging internal one diverges too (its vcov row is
    # NaN from transform_covariance alike): centring spreads a slope's divergence to the
    # intercept.
    diverging = np.flatnonzero((cx[:, list(output.diverging)] != 0.0).any(axis=1))
    directions = user_directions(cx, output.separation.directions)
    separation = replace(
        output.separation, coefficients=tuple(int(j) for j in diverging), directions=directions
    )
    limit = output.vcov_limit
    if limit is not None:
        # cx's rows: a user combination c is the internal cx' c, orthogonal to the internal
        # flat directions exactly when c is to their images cx F.
        limit = LimitCovariance(
            transform_covariance(cx, limit.matrix), separation.flat_directions(len(beta))
        )
    return replace(
        output,
        theta=theta,
        beta=beta,
        vcov_beta=0.5 * (vcov_beta + vcov_beta.T),
        theta_cov=theta_cov,
        ranef=tuple(ranef),
        ranef_cov=tuple(ranef_cov),
        separation=separation,
        vcov_limit=limit,
    )


def user_directions(
    cx: FloatArray, directions: tuple[tuple[float, ...], ...]
) -> tuple[tuple[float, ...], ...]:
    """The separation's flat directions (internal columns) in the user's coefficients
    (beta = cx beta~ moves by cx d along d), as an orthonormal basis again."""
    if not directions:
        return ()
    mapped = np.linalg.qr(cx @ np.asarray(directions, dtype=np.float64).T)[0]
    return tuple(tuple(float(v) for v in column) for column in mapped.T)


def check_in_user_units(
    output: FitOutput,
    deviance_and_gradient: DevianceAndGradient,
    control: OptimizerControl,
) -> FitOutput:
    """The mapped-back fit checked on the user's own columns: the deviance there must equal
    the internal fit's (relative control.deviance_match_tol) and sqrt(g' V g) (g the exact
    gradient in the user's units, V the mapped covariance of theta and that of beta, over
    the free parameters) must stay below control.user_gradient_tol. Otherwise converged is
    False and a ConvergenceWarning says what failed."""
    if not output.converged:
        return output
    deviance = -2.0 * output.loglik + output.prior_deviance  # the (penalized) objective
    value, grad_theta, grad_beta = deviance_and_gradient(output.theta, output.beta)
    problem = ""
    if not np.isfinite(value) or abs(value - deviance) > control.deviance_match_tol * max(
        1.0, abs(deviance)
    ):
        problem = (
            f"the deviance on the user's columns ({value:.10g}) differs from the internal "
            f"fit's ({deviance:.10g})"
        )
    else:
        # sqrt(g' V g), V the covariance of theta and that of beta (block by block, over the
        # entries with a finite variance): the largest first-order deviance change of a move
        # of one standard error in any direction. Per coordinate, |g_j| SE_j grows with the
        # columns' collinearity (a covariate near 5e4 +- 1000 and the intercept) where no move
        # of one standard error changes the deviance as much.
        parts = [(grad_beta, output.vcov_beta)]
        if output.theta_cov is not None:
            parts.append((grad_theta, output.theta_cov))
        change = 0.0
        for grad, cov in parts:
            usable = np.isfinite(np.diag(cov))
            g = grad[usable]
            quadratic = float(g @ cov[np.ix_(usable, usable)] @ g)
            change += max(quadratic, 0.0) if np.isfinite(quadratic) else np.nan
        worst = float(np.sqrt(change))  # nan (failing below) when g or V is not finite
        if not worst <= control.user_gradient_tol:
            problem = (
                "the gradient in the user's units is not small relative to the curvature: "
                f"sqrt(g' V g) (V the estimates' covariance) is {worst:.3g} > "
                f"user_gradient_tol {control.user_gradient_tol:g}"
            )
    if not problem:
        return output
    summary = replace(output.opt_summary, converged=False, message=problem)
    return replace(
        output,
        converged=False,
        opt_summary=summary,
        warnings=(
            *output.warnings,
            FitWarning(f"optimizer did not converge: {problem}", ConvergenceWarning),
        ),
    )
