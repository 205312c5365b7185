"""Separation of the response (no finite ML estimate), by the fixed effects or within groups.

A direction d != 0 with s_i x_i'd >= 0 for every signed row makes the binomial likelihood
increase without bound along d, so maximum likelihood has no finite estimate (Konis's linear
program). A row contributes +x_i if it has a success and -x_i if it has a failure (a binomial
row with both contributes both, and so can never be separated). Columns are scaled to max
|value| 1 before the linear programs.

Two linear programs answer the two questions:

1. Which rows can be separated? Maximize sum_i t_i subject to s_i x_i'd >= t_i, 0 <= t_i <= 1,
   d free. Directions form a cone, so every separable row reaches t_i = 1 at the optimum; the
   rows with t_i > 0 are the separated rows S. Complete separation: S holds every signed row.
2. Which coefficients diverge? The separating direction of least L1 norm (minimize sum |d_j|
   subject to s_i x_i'd >= t_i on S and >= 0 elsewhere) moves only coefficients that must
   move: with a response of all ones and an intercept it moves the intercept alone (a slope
   need not diverge), with y = 1 exactly when x > c it moves the intercept and x. After a fit,
   the coefficients reported are those the fit drove far (``large_coefficients``) that some
   direction of the cone moves (one linear program each), as the fit shows which of several
   interchangeable separating directions it follows; the least direction's otherwise.

Within groups, the same programs run on the augmented design [X, Z] (Z sparse, one column per
level and random-effect column). When the least direction moves the random effects of a term
whose fitted SD has run away, and separates every row of that term, the groups separate the
response (y split by x at a cut-off of its own in every group, or every group all 0 or all 1):
the variance (and the coefficients the fit drove far with it) has no finite estimate either.
The linear programs run only after a cheap screen of the fitted values
(``large_coefficients``, ``runaway_blocks``), as they are costly on very large data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse
from numpy.typing import NDArray

from glmm_binomial.diagnostics import FitWarning, SeparationWarning
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.validation import block_text

FloatArray = NDArray[np.float64]

DENSE_LP_ROWS = 2000
"""Linear programs with more signed rows than this are given to the solver in sparse form."""

SEPARATION_TOL = 1e-7
"""Margins and direction entries below this (relative to the largest) count as zero."""


@dataclass(frozen=True)
class Separation:
    """Fixed-effect columns and random-effect blocks with no finite maximum-likelihood
    estimate (empty if none); complete: every row is separated."""

    complete: bool
    coefficients: tuple[int, ...]
    blocks: tuple[int, ...] = ()


NO_SEPARATION = Separation(False, ())


def detect_separation(
    x: FloatArray,
    successes: FloatArray,
    trials: FloatArray,
    candidates: tuple[int, ...] | None = None,
) -> Separation:
    """Separation of (successes, trials) by the columns of x (see the module docstring).

    candidates: the coefficients a fit has driven far (``large_coefficients``); those of them
    that some separating direction moves are the ones reported, since they are the ones the fit
    follows to infinity (the least direction's coefficients when none is)."""
    signed = _signed_rows(_scale_columns(x), successes, trials)
    found = _least_direction(signed)
    if found is None:
        return NO_SEPARATION
    complete, d = found
    least = tuple(int(j) for j in np.flatnonzero(_moved(d)))
    moving = _movable(signed, candidates or ())
    return Separation(complete, moving or least)


def detect_group_separation(data: ModelData) -> Separation:
    """Separation of the response by the fixed effects and the random effects together (the
    augmented design [X, Z]). ``blocks`` lists the random-effect blocks whose variance has no
    finite estimate: blocks the least separating direction moves and all of whose rows (with a
    nonzero random-effect column) are separated. A row the direction leaves unseparated keeps
    the Laplace log-determinant growing with that block's variance, so the variance stays
    finite; the pure groups of ordinary data do not make a variance run away. ``coefficients``
    are the fixed-effect columns the least direction moves (not unique: the intercept trades
    with the mean of the random effects)."""
    x = _scale_columns(data.x)
    columns = [scipy.sparse.csr_matrix(x)]
    owner = [np.full(data.n_fixed, -1)]
    rows = np.arange(data.n_obs)
    for t, block in enumerate(data.blocks):
        z = _scale_columns(block.z)
        for c in range(block.k):
            zc = scipy.sparse.csr_matrix(
                (z[:, c], (rows, block.codes)), shape=(data.n_obs, block.n_levels)
            )
            columns.append(zc)
            owner.append(np.full(block.n_levels, t))
    design = scipy.sparse.hstack(columns, format="csr")
    signed = _signed_rows(design, data.successes, data.trials)
    found = _least_direction(signed)
    if found is None:
        return NO_SEPARATION
    complete, d = found
    margins = np.asarray(signed @ d).ravel()
    separated_signed = margins > SEPARATION_TOL * float(np.max(margins))
    # A data row is separated when each of its signed copies is (a row with both a success
    # and a failure never is).
    unseparated = np.zeros(data.n_obs, dtype=bool)
    copies = np.concatenate(
        [np.flatnonzero(data.successes > 0), np.flatnonzero(data.successes < data.trials)]
    )
    unseparated[copies[~separated_signed]] = True
    moved = _moved(d)
    which = np.concatenate(owner)[moved]
    blocks = tuple(
        int(t)
        for t in np.unique(which[which >= 0])
        if not np.any(unseparated & np.any(data.blocks[t].z != 0.0, axis=1))
    )
    coefficients = tuple(int(j) for j in np.flatnonzero(moved[: data.n_fixed]))
    return Separation(complete, coefficients, blocks)


def looks_divergent(x: FloatArray, beta: FloatArray, limit: float) -> bool:
    """Some coefficient moves the log-odds by more than `limit` across its column's range:
    the cheap screen before the linear programs (which are costly on very large data)."""
    return bool(large_coefficients(x, beta, limit))


def large_coefficients(x: FloatArray, beta: FloatArray, limit: float) -> tuple[int, ...]:
    """Columns whose coefficient moves the log-odds by more than `limit` across the column."""
    spread = np.max(np.abs(x), axis=0)
    return tuple(int(j) for j in np.flatnonzero(np.abs(beta) * spread > limit))


def runaway_blocks(data: ModelData, theta: FloatArray, limit: float) -> tuple[int, ...]:
    """Random-effect blocks with a column whose SD times its largest |z| exceeds `limit`
    (log-odds): one SD of such a random effect moves the odds by a factor beyond e^limit, which
    only a variance running away to infinity (groups separating y) produces."""
    out = []
    for t, (block, lam) in enumerate(zip(data.blocks, data.lambdas(theta), strict=True)):
        sd = np.sqrt(np.sum(lam * lam, axis=1))
        spread = np.max(np.abs(block.z), axis=0)
        if np.any(sd * spread > limit):
            out.append(t)
    return tuple(out)


def separation_report(
    data: ModelData, beta: FloatArray, theta: FloatArray, limit: float
) -> tuple[tuple[FitWarning, ...], tuple[int, ...]]:
    """Warnings about estimates that run away (separation), and the fixed-effect columns that
    have no finite estimate (separation_found's, without the rest of the finding)."""
    warnings, found = separation_found(data, beta, theta, limit)
    return warnings, found.coefficients


def separation_found(
    data: ModelData, beta: FloatArray, theta: FloatArray, limit: float
) -> tuple[tuple[FitWarning, ...], Separation]:
    """Warnings about estimates that run away (separation), and what was found: the
    fixed-effect columns that have no finite estimate, whether the fixed effects separate every
    row (complete) and, for separation within groups, the random-effect blocks whose variance
    has none. The linear programs run only when the screens (`limit`, log-odds) see a
    coefficient or a random-effect SD that large."""
    large = large_coefficients(data.x, beta, limit)
    runaway = runaway_blocks(data, theta, limit)
    if not large and not runaway:
        return (), NO_SEPARATION
    if large:
        fixed = detect_separation(data.x, data.successes, data.trials, large)
        if fixed.coefficients:
            kind = "complete" if fixed.complete else "quasi-complete"
            names = ", ".join(data.fixed_names[j] for j in fixed.coefficients)
            message = (
                f"{kind} separation: no finite maximum-likelihood estimate for {names}; "
                "the reported values are points on a diverging path, not estimates"
            )
            return (FitWarning(message, SeparationWarning),), fixed
    grouped = detect_group_separation(data)
    blocks = [t for t in grouped.blocks if t in runaway]
    if not blocks:
        # Without a variance running away, a random effect cannot follow a separating direction
        # (its finite variance penalizes it): a fixed effect diverging alone is the case above.
        return (), NO_SEPARATION
    # The coefficients the fit drove far run away with the variance (which ones a separating
    # direction moves is not unique: the intercept trades with the random effects' mean).
    moved = list(large)
    terms = ", ".join(block_text(data.blocks[t]) for t in blocks)
    groups = ", ".join(dict.fromkeys(data.blocks[t].group for t in blocks))
    names = ", ".join(data.fixed_names[j] for j in moved)
    what = [f"the random-effect variance of {terms}"]
    if moved:
        what.append(f"the coefficient{'s' if len(moved) > 1 else ''} of {names}")
    message = (
        f"separation within groups: in every group of {groups} the fixed and random effects "
        "together predict the response perfectly, so "
        + " and ".join(what)
        + " have no finite maximum-likelihood estimate; the reported values are points on a "
        'diverging path, not estimates (method "vb" keeps them finite)'
    )
    return (FitWarning(message, SeparationWarning),), Separation(False, tuple(moved), tuple(blocks))


def _scale_columns(x: FloatArray) -> FloatArray:
    scale = np.max(np.abs(x), axis=0)
    scale[scale == 0] = 1.0
    return np.asarray(x / scale, dtype=np.float64)


def _signed_rows(x: Any, successes: FloatArray, trials: FloatArray) -> Any:
    """+x_i for rows with a success, -x_i for rows with a failure (both for binomial rows)."""
    up = x[np.flatnonzero(successes > 0)]
    down = x[np.flatnonzero(successes < trials)]
    if scipy.sparse.issparse(x):
        return scipy.sparse.vstack([up, -down], format="csr")
    return np.vstack([up, -down])


def _least_direction(signed: Any) -> tuple[bool, FloatArray] | None:
    """(complete, d): the least-L1 separating direction, or None when nothing separates."""
    n, p = signed.shape
    if not scipy.sparse.issparse(signed) and n > DENSE_LP_ROWS:
        # The slack columns form an n x n identity: dense, it would not fit in memory.
        signed = scipy.sparse.csr_matrix(signed)
    sparse = scipy.sparse.issparse(signed)
    stack = scipy.sparse.hstack if sparse else np.hstack
    identity = scipy.sparse.identity(n, format="csr") if sparse else np.eye(n)
    # 1. the separable rows: maximize sum t, s_i x_i'd >= t_i, 0 <= t_i <= 1, d free.
    first = scipy.optimize.linprog(
        np.concatenate([np.zeros(p), -np.ones(n)]),
        A_ub=stack([-signed, identity]),
        b_ub=np.zeros(n),
        bounds=[(None, None)] * p + [(0.0, 1.0)] * n,
        method="highs",
    )
    if first.status != 0:
        return None
    t = np.asarray(first.x[p:])
    separated = t > SEPARATION_TOL
    if not np.any(separated):
        return None
    # 2. the least direction: minimize sum |d| (d = d+ - d-) keeping those margins.
    lower = np.where(separated, t, 0.0)
    second = scipy.optimize.linprog(
        np.ones(2 * p),
        A_ub=stack([-signed, signed]),
        b_ub=-lower,
        bounds=[(0.0, None)] * (2 * p),
        method="highs",
    )
    d = np.asarray(first.x[:p]) if second.status != 0 else second.x[:p] - second.x[p:]
    margins = np.asarray(signed @ d).ravel()
    largest = float(np.max(margins))
    if not largest > SEPARATION_TOL or float(np.min(margins)) < -SEPARATION_TOL * largest:
        return None
    complete = bool(np.all(margins > SEPARATION_TOL * largest))
    return complete, d


def _movable(signed: Any, candidates: tuple[int, ...]) -> tuple[int, ...]:
    """The candidate columns j that some direction of the cone {d : s_i x_i'd >= 0} moves
    (max or min of d_j over the cone in the unit box is not 0)."""
    n, p = signed.shape
    out = []
    for j in candidates:
        for sign in (1.0, -1.0):
            c = np.zeros(p)
            c[j] = -sign
            found = scipy.optimize.linprog(
                c, A_ub=-signed, b_ub=np.zeros(n), bounds=[(-1.0, 1.0)] * p, method="highs"
            )
            if found.status == 0 and -found.fun > SEPARATION_TOL:
                out.append(j)
                break
    return tuple(out)


def _moved(d: FloatArray) -> NDArray[np.bool_]:
    largest = float(np.max(np.abs(d), initial=0.0))
    return np.abs(d) > SEPARATION_TOL * max(largest, 1.0)
