"""The start of a Dask fit from sums over the partitions, and the checks that need the rows.

What the in-memory fit learns from the rows before its optimizer runs, learned from partition
sums: the aliased fixed-effect columns (design.aliased_columns on the stacked R factors of the
partitions' X: R'R = X'X, the same column norms and unpivoted R diagonal), the internal centring
and scaling (methods.scaling, from the columns' moments combined over the partitions), and the
GLM start (numerics.optimize.glm_newton on partition sums of X'WX and X'r). After the optimizer,
the separation check (on the rows gathered to the client when the screens fire) and the
identifiability check (validation.check_identifiable, on stand-in rows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from glmm_binomial.diagnostics import FitWarning, SeparationWarning
from glmm_binomial.distributed.partition import StartSums
from glmm_binomial.distributed.runner import Partitions
from glmm_binomial.family import BINOMIAL_LOGIT, Family
from glmm_binomial.methods.base import Method
from glmm_binomial.methods.maximum_likelihood import LikelihoodMethod
from glmm_binomial.methods.scaling import (
    Scaling,
    choose_scaling_from_moments,
    combine_moments,
)
from glmm_binomial.model.covariance import CovarianceStructure, Unstructured
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.model.design import (
    DesignInfo,
    aliased_columns,
    design_null_basis,
    no_information,
    rank_deficiency_warning,
)
from glmm_binomial.model.separation import (
    Separation,
    large_coefficients,
    saturation_bounds,
    separation_found,
)
from glmm_binomial.numerics.optimize import (
    OptimizerControl,
    bounded_glm_newton,
    feasible_glm_start,
    glm_newton,
    link_scaled_start,
    moment_theta,
    start_curvature,
)

FloatArray = NDArray[np.float64]

SEPARATION_GATHER_LIMIT = 50_000_000
"""When the separation screen fires, the design is gathered to the client for the linear
programs if it has at most this many values (rows x columns); beyond, a warning says so."""


@dataclass
class Start:
    """What the first passes over the partitions found: the fixed-effect columns kept (aliased
    ones dropped), the largest |x| of each kept column and |z| of each block's columns (on the
    columns the fit is made on), whether every row is one Bernoulli trial, the internal scaling,
    the start of beta on the internal columns (the least-squares fit of the overall rate on the
    link's scale) and the offset's projection on them (optimize.offset_coefficients), the link
    of the overall rate (level) and the kept column of ones (intercept; None without one);
    null_basis: where columns were dropped, the full design's null space (the same as the
    rows' X's: X'X is the R'R of the partitions' stacked R factors), which says which marginal
    means are estimable."""

    kept: list[int]
    largest: FloatArray
    z_spread: list[FloatArray]
    bernoulli: bool
    scaling: Scaling
    beta: FloatArray
    offset_part: FloatArray
    level: float = 0.0
    intercept: int | None = None
    null_basis: FloatArray | None = None


def first_passes(
    partitions: Partitions,
    method: Method,
    n_columns: int,
    family: Family = BINOMIAL_LOGIT,
    covariances: Sequence[CovarianceStructure] = (),
) -> Start:
    """Aliased columns dropped from every partition, the internal scaling chosen and applied to
    every partition (a LikelihoodMethod's: scaling.choose_scaling's rules, with the method's
    control and centring of random columns, a block with a structured covariance among
    `covariances`, one per block, kept on its own columns; other methods fit the user's
    columns), and the start of beta (on family's link)."""
    sums: list[StartSums] = partitions.read("start_sums")
    r = np.vstack([part.r for part in sums])
    dropped = set(aliased_columns(r))
    kept = [j for j in range(n_columns) if j not in dropped]
    null_basis = design_null_basis(r, sorted(dropped)) if dropped else None
    if dropped:
        partitions.replace("without_columns", kept=kept)
    n_fixed = len(kept)
    r = r[:, kept]
    xo = sum((part.x_offset for part in sums), np.zeros(n_columns))[kept]
    k = sum(part.successes for part in sums)
    m = sum(part.trials for part in sums)
    if not m > 0:
        raise no_information("the trials (successes + failures, or weights=) are zero on every row")
    largest = np.max(np.vstack([part.largest for part in sums]), axis=0)[kept]
    column_sums = sum((part.column_sums for part in sums), np.zeros(n_columns))[kept]
    bernoulli = all(part.bernoulli for part in sums)
    n_blocks = len(sums[0].z_spread)
    z_spread = [
        np.max(np.vstack([part.z_spread[t] for part in sums]), axis=0) for t in range(n_blocks)
    ]
    z_moments = [combine_moments([part.z_moments[t] for part in sums]) for t in range(n_blocks)]
    x_moments = combine_moments([part.x_moments for part in sums])
    x_moments = dataclasses.replace(
        x_moments, mean=x_moments.mean[kept], m2=x_moments.m2[kept], ones=x_moments.ones[kept]
    )
    if isinstance(method, LikelihoodMethod):
        # The internal centring and scaling of the in-memory fit (scaling.choose_scaling), from
        # the columns' moments combined over the partitions.
        scaling = choose_scaling_from_moments(
            x_moments, z_moments, method.control, method.centres_random, covariances
        )
    else:
        # VB's priors are stated in the user's units: its columns are never rescaled.
        scaling = Scaling(np.eye(n_fixed), tuple(np.eye(len(z.mean)) for z in z_moments))
    rate = (k + 0.5) / (m + 1.0)
    level = float(family.link_values(np.array([rate]))[0])
    ones = np.flatnonzero(x_moments.ones)
    # lstsq(X, link(rate) - offset) by the normal equations with X'X = R'R.
    xtx = r.T @ r
    beta, offset_part = np.zeros(n_fixed), np.zeros(n_fixed)
    try:
        target = column_sums * level - xo
        factor = scipy.linalg.cho_factor(xtx)
        # On the internal columns X C the same fits have coefficients C^{-1} beta.
        beta = np.linalg.solve(scaling.fixed, scipy.linalg.cho_solve(factor, target))
        if xo.any():
            offset_part = np.linalg.solve(scaling.fixed, scipy.linalg.cho_solve(factor, xo))
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        beta, offset_part = np.zeros(n_fixed), np.zeros(n_fixed)
    if not scaling.is_identity:
        partitions.replace("on_internal_columns", scaling=scaling)
        # The separation screens look at the columns the fit is made on.
        spreads = partitions.read("spreads")
        largest = np.max(np.vstack([part[0] for part in spreads]), axis=0)
        z_spread = [
            np.max(np.vstack([part[1][t] for part in spreads]), axis=0) for t in range(n_blocks)
        ]
    intercept = int(ones[0]) if ones.size else None
    return Start(
        kept, largest, z_spread, bernoulli, scaling, beta, offset_part, level, intercept, null_basis
    )


def glm_start(
    partitions: Partitions, start: Start, control: OptimizerControl, family: Family
) -> tuple[FloatArray, FloatArray]:
    """numerics.optimize.glm_newton from start.beta on the partitions' sums of the
    log-likelihood, X'WX and X'r (one round trip per Newton step): beta of the
    fixed-effects-only GLM and the upper Cholesky factor of its information. A link with a
    bound on eta (the log link: eta <= 0) starts and steps inside it, as in memory
    (optimize.feasible_glm_start, bounded_glm_newton), on the partitions' largest eta and
    room for a step."""

    def sums(b: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        return glm_sums(partitions, b)

    if not np.isfinite(family.eta_upper):
        return glm_newton(start.beta, sums, control)

    def largest(b: FloatArray) -> float:
        return max(partitions.read("largest_eta", beta=b), default=-np.inf)

    def room(b: FloatArray, step: FloatArray, limit: float) -> float:
        return min(partitions.read("step_room", beta=b, step=step, limit=limit), default=np.inf)

    beta = feasible_glm_start(start.beta, start.level, start.intercept, largest, family)
    return bounded_glm_newton(beta, sums, largest, room, control, family)


def glm_sums(partitions: Partitions, beta: FloatArray) -> tuple[float, FloatArray, FloatArray]:
    """The fixed-effects-only GLM's log-likelihood, X'WX and X'r at beta, summed over the
    partitions in partition order (numerics.optimize.glm_value_information_score's)."""
    n_fixed = len(beta)
    value = 0.0
    info = np.zeros((n_fixed, n_fixed))
    score = np.zeros(n_fixed)
    for part_value, part_info, part_score in partitions.read(
        "glm_value_information_score", beta=beta
    ):
        value += part_value
        info += part_info
        score += part_score
    return value, info, score


def theta_start(
    partitions: Partitions, surrogate: ModelData, beta: FloatArray, control: OptimizerControl
) -> tuple[FloatArray, float, FloatArray | None]:
    """The in-memory fit's start of theta (numerics.optimize.start_point): lme4's, or with
    control.moment_start the moment estimates from the levels' scores at the GLM fit beta,
    summed over the partitions (a level may have rows in several); the factor by which the
    start scales the GLM's beta (moment_theta's attenuation; 1 without the moment start);
    and start_curvature's approximation of the curvature in theta (None without the moment
    start or control.approximate_theta_scale)."""
    if not control.moment_start:
        return family_start(partitions, surrogate, beta, link_scaled_start(surrogate)), 1.0, None
    theta = surrogate.theta_start()
    scores: list[tuple[FloatArray, FloatArray] | None] = [
        (np.zeros((b.n_levels, b.k)), np.zeros((b.n_levels, b.k)))
        if isinstance(b.covariance, Unstructured)
        else None
        for b in surrogate.blocks
    ]
    for keys, parts in partitions.read("level_scores", beta=beta):
        for total, where, part in zip(scores, keys, parts, strict=True):
            if total is not None and part is not None:
                # Each partition's levels are distinct: the fancy-indexed sums are exact.
                total[0][where] += part[0]
                total[1][where] += part[1]
    theta, factor = moment_theta(surrogate, scores, theta)
    curvature = (
        start_curvature(surrogate, scores, theta) if control.approximate_theta_scale else None
    )
    return family_start(partitions, surrogate, beta, theta), factor, curvature


def family_start(
    partitions: Partitions, surrogate: ModelData, beta: FloatArray, theta: FloatArray
) -> FloatArray:
    """theta with the family's parameters (the beta-binomial's log phi) started as in memory
    (numerics.optimize.start_point): from the moments of the rows about the GLM fit beta,
    summed over the partitions in partition order."""
    family = surrogate.family
    if not family.n_parameters:
        return theta
    moments = sum(partitions.read("family_start_moments", beta=beta))
    out = np.array(theta, dtype=np.float64)
    out[surrogate.family_slice] = family.parameters_from_moments(moments)
    return out


def identifiability_stand_in(
    start: Start, blocks: Sequence[RandomBlock], n_complete: int
) -> ModelData | None:
    """Rows on which a method's check (validation.check_identifiable, lme4's
    check.nobs.vs.nlev) sees what it would see on the data, when it can fail (every row one
    Bernoulli trial and no more rows than the random effects of some block): every level used,
    as every level of a Dask fit is. None when the check cannot fail."""
    if not start.bernoulli or all(n_complete > b.n_levels * b.k for b in blocks):
        return None
    n = n_complete
    return ModelData(
        np.zeros(n),
        np.ones(n),
        np.zeros((n, 0)),
        np.zeros(n),
        (),
        tuple(
            dataclasses.replace(
                b, codes=np.arange(n, dtype=np.intp) % b.n_levels, z=np.zeros((n, b.k))
            )
            for b in blocks
        ),
        log_binomial_constant=0.0,
    )


def separation_check(
    partitions: Partitions,
    surrogate: ModelData,
    start: Start,
    theta: FloatArray,
    beta: FloatArray,
    n_complete: int,
    limit: float,
    column_limit: float | None = None,
) -> tuple[tuple[FitWarning, ...], Separation | tuple[int, ...]]:
    """separation.separation_found on the rows gathered to the client, run only when its
    screens fire (|beta| x max |x| beyond `limit`, a row's fixed-effect predictor beyond the
    link's value at log-odds -+limit, or a row's random-effect SD, as in memory: saturated_rows,
    runaway_rows) and the rows are few enough to gather; beyond, a warning that the exact
    check was not run. column_limit: separation_found's."""
    large = large_coefficients(start.largest[None, :], beta, limit)
    if (
        not large
        and not saturated_rows(partitions, surrogate, beta, limit)
        and not runaway_rows(partitions, surrogate, start, theta, limit)
    ):
        return (), ()
    width = surrogate.n_fixed + sum(b.k for b in surrogate.blocks)
    if n_complete * width > SEPARATION_GATHER_LIMIT:
        message = (
            f"possible separation: some estimate moves the log-odds by more than {limit:g} "
            "across its column; the data are too large to gather for the exact check (fit in "
            "memory to run it)"
        )
        return (FitWarning(message, SeparationWarning),), large
    arrays = partitions.read("design_arrays")
    blocks = tuple(
        dataclasses.replace(
            block,
            codes=np.concatenate([a[3][t][0] for a in arrays]),
            z=np.vstack([a[3][t][1] for a in arrays]),
        )
        for t, block in enumerate(surrogate.blocks)
    )
    rows = ModelData(
        np.concatenate([a[1] for a in arrays]),
        np.concatenate([a[2] for a in arrays]),
        np.vstack([a[0] for a in arrays]),
        np.zeros(n_complete),
        surrogate.fixed_names,
        blocks,
        log_binomial_constant=0.0,
        family=surrogate.family,
    )
    return separation_found(rows, beta, theta, limit, column_limit)


def saturated_rows(
    partitions: Partitions, surrogate: ModelData, beta: FloatArray, limit: float
) -> bool:
    """separation.saturated_rows over the partitions (one pass): some row's fixed-effect
    predictor beyond the link's values at log-odds -+limit."""
    low, high = saturation_bounds(surrogate.family, limit)
    ranges = partitions.read("fixed_eta_range", beta=beta)
    return bool(min(r[0] for r in ranges) < low or max(r[1] for r in ranges) > high)


def runaway_rows(
    partitions: Partitions, surrogate: ModelData, start: Start, theta: FloatArray, limit: float
) -> tuple[int, ...]:
    """The blocks in which some row's random effect has an SD sqrt(z_i' Sigma z_i) beyond
    `limit` (separation.runaway_blocks, the in-memory screen). sum_j SD_j max |z_j| bounds it
    (the triangle inequality over Lambda's rows): only where a block's bound passes the limit
    are the rows read, once over the partitions."""
    lambdas = surrogate.lambdas(theta)
    bounds = [
        float(np.sqrt(np.sum(lam * lam, axis=1)) @ spread)
        for lam, spread in zip(lambdas, start.z_spread, strict=True)
    ]
    if max(bounds, default=0.0) <= limit:
        return ()
    largest = np.max(np.array(partitions.read("row_variances", lambdas=lambdas)), axis=0)
    return tuple(int(t) for t in np.flatnonzero(np.atleast_1d(largest) > limit * limit))


def result_design(
    design: DesignInfo, fixed_names: Sequence[str], all_names: Sequence[str], start: Start
) -> DesignInfo:
    """The fit's DesignInfo: the learned one with the kept and dropped fixed-effect columns."""
    dropped = [name for name in all_names if name not in fixed_names]
    return dataclasses.replace(
        design,
        kept_columns=tuple(start.kept),
        dropped_columns=tuple(dropped),
        null_basis=start.null_basis,
        warnings=design.warnings + ((rank_deficiency_warning(dropped),) if dropped else ()),
    )
