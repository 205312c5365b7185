"""Separation of the response (no finite ML estimate), by the fixed effects or within groups.

A direction d != 0 with s_i x_i'd >= 0 for every signed row makes the binomial likelihood
increase without bound along d, so maximum likelihood has no finite estimate (Konis's linear
program). A row contributes +x_i if it has a success and -x_i if it has a failure (a binomial
row with both contributes both, and so can never be separated). Columns are scaled to max
|value| 1 before the linear programs.

Two linear programs answer the two questions:

1. Which rows can be separated? Directions form a cone C = {d : s_i x_i'd >= 0 for all i}; the
   rows with a positive margin at some d in C are the separated rows S (complete separation: S
   holds every signed row). They are found by maximizing the sum of the margins of the rows not
   yet in S over C within the unit box |d_j| <= 1, adding the rows the optimum separates to S,
   and repeating until the optimum is 0. Each round's direction is independent of the earlier
   ones (it separates a row they all leave at margin 0), so there are at most p + 1 rounds.
2. Which coefficients diverge? The separating direction of least L1 norm (minimize sum |d_j|
   subject to s_i x_i'd >= 1 on S and >= 0 elsewhere) moves only coefficients that must
   move: with a response of all ones and an intercept it moves the intercept alone (a slope
   need not diverge), with y = 1 exactly when x > c it moves the intercept and x. After a fit,
   the coefficients reported are those the fit drove far (``large_coefficients``) that some
   direction of the cone moves (one linear program each), as the fit shows which of several
   interchangeable separating directions it follows; the least direction's otherwise.

Every program has only the p coefficients as unknowns (no variable per row) and one constraint
per signed row, solved by constraint generation: HiGHS solves it on a working set of rows (an
evenly spaced sample and each column's extreme rows first), the margins of all rows are checked
in one matrix-vector product, and the most violated rows join the working set until none is
violated. Time is O(n p) per round plus small linear programs, memory O(n p) (the signed rows);
no n x n matrix and no per-row variable is formed. On ordinary data the first program on the
sample already proves that nothing separates: a subset of separable rows is separable, so a
sample that is not separable proves the whole data is not (``separation_possible``).

Within groups, the same programs run on the augmented design [X, Z] (Z sparse, one column per
level and random-effect column). When the least direction moves the random effects of a term
whose fitted SD has run away, and separates every row of that term, the groups separate the
response (y split by x at a cut-off of its own in every group, or every group all 0 or all 1):
the variance (and the coefficients the fit drove far with it) has no finite estimate either.
A single column of a term whose rows are all separated (an occasion whose responses are all 0
or all 1 in every group, the other occasions mixed) is reported the same way, but only once its
own SD ran far out (separation_found's column_limit): its rows' limit as that SD grows can lie
below a large but finite optimum.
After a fit the linear programs run only after a cheap screen of the fitted values
(``large_coefficients``, ``saturated_rows`` on the model's link, ``runaway_blocks``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse
from numpy.typing import NDArray

from glmm_binomial.diagnostics import FitWarning, SeparationWarning
from glmm_binomial.family import Family
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.validation import block_text

FloatArray = NDArray[np.float64]

SEPARATION_TOL = 1e-7
"""Margins and direction entries below this (relative to the largest) count as zero."""


@dataclass(frozen=True)
class SeparationControl:
    """Tolerances and caps of the separation linear programs (columns scaled to max |value| 1).

    margin_tol: a signed row whose margin s_i x_i'd (d in the unit box) exceeds this is
    separated by d; direction entries and margins below it relative to the largest count as
    zero. feasibility_tol: a row whose margin falls more than this below its bound is a
    violated constraint of constraint generation. sample_rows: evenly spaced rows of the first
    working set (and of ``separation_possible``'s sample). batch_rows: most violated rows
    added to the working set per round (at least two per column). max_rounds: rounds of
    constraint generation per program; beyond them the program is solved on every row.
    certificate_max_iter, certificate_tol, certificate_margin: no_separation_certificate's
    Newton iterations and step tolerance, and the share of the largest weight every corrected
    weight must keep.
    """

    margin_tol: float = SEPARATION_TOL
    feasibility_tol: float = 1e-9
    certificate_max_iter: int = 30
    certificate_tol: float = 1e-10
    certificate_margin: float = 1e-6
    sample_rows: int = 2000
    batch_rows: int = 2000
    max_rounds: int = 100


DEFAULT_CONTROL = SeparationControl()


@dataclass(frozen=True)
class Separation:
    """Fixed-effect columns and random-effect blocks with no finite maximum-likelihood
    estimate (empty if none); complete: every row is separated. columns: the (block, column)
    pairs whose SD has none (every column of a block separated as a whole;
    one column where only that column's rows are, as an occasion of a structured covariance
    whose responses are all 0 or all 1 in every group)."""

    complete: bool
    coefficients: tuple[int, ...]
    columns: tuple[tuple[int, int], ...] = ()
    # Derived from what was found (the rows left mixed), so not part of equality.
    directions: tuple[tuple[float, ...], ...] = field(default=(), compare=False)

    def flat_directions(self, n_fixed: int) -> FloatArray:
        """An orthonormal basis (n_fixed x m) of the fixed-effect directions along which the
        log-likelihood is flat in the limit of the diverging path: ``directions`` where the
        check found them, else the unit vectors of ``coefficients`` (holding them fixed)."""
        if self.directions:
            return np.asarray(self.directions, dtype=np.float64).T
        basis = np.zeros((n_fixed, len(self.coefficients)))
        basis[list(self.coefficients), np.arange(len(self.coefficients))] = 1.0
        return basis

    @property
    def by_fixed_effects_alone(self) -> bool:
        """Fixed-effect columns diverge, some rows stay mixed and every random-effect SD has
        an estimate: the rest of the fit has a limit along the diverging path."""
        return bool(self.coefficients) and not self.complete and not self.columns

    @property
    def blocks(self) -> tuple[int, ...]:
        """The random-effect blocks with a column in ``columns``, in order."""
        return tuple(dict.fromkeys(t for t, _ in self.columns))


NO_SEPARATION = Separation(False, ())


def detect_separation(
    x: FloatArray,
    successes: FloatArray,
    trials: FloatArray,
    candidates: tuple[int, ...] | None = None,
    control: SeparationControl = DEFAULT_CONTROL,
) -> Separation:
    """Separation of (successes, trials) by the columns of x (see the module docstring).

    candidates: the coefficients a fit has driven far (``large_coefficients``); those of them
    that some separating direction moves are the ones reported, since they are the ones the fit
    follows to infinity (the least direction's coefficients when none is)."""
    if no_separation_certificate(*_evenly_spaced(x, successes, trials, control), control):
        return NO_SEPARATION
    signed = _signed_rows(_scale_columns(x), successes, trials)
    found = _least_direction(signed, control)
    if found is None:
        return NO_SEPARATION
    complete, d, rows = found
    least = tuple(int(j) for j in np.flatnonzero(_moved(d)))
    coefficients = _movable(signed, candidates or (), rows, control) or least
    open_rows = _unseparated(signed, d, successes, trials)
    directions = _flat_directions(x[open_rows], coefficients, control)
    return Separation(complete, coefficients, directions=directions)


def _flat_directions(
    x_open: FloatArray, coefficients: tuple[int, ...], control: SeparationControl
) -> tuple[tuple[float, ...], ...]:
    """An orthonormal basis of the directions v that move only `coefficients` and leave every
    unseparated row's predictor unchanged (x_open v = 0), as tuples over all the columns.

    As the path diverges, the separated rows' weights vanish and the information tends to
    that of the unseparated rows: flat along these directions, which hold the diverging
    coefficients' infinite part, and not along the finite combinations of them (the
    predictors of the cells that stay mixed). Covariances are taken on the complement (a
    coefficient outside `coefficients` is orthogonal to every such v). Empty where none is
    found numerically (holding the coefficients fixed instead)."""
    moved = list(coefficients)
    if not moved:
        return ()
    # Columns scaled to max |value| 1 over the mixed rows (none: every row separated).
    part = x_open[:, moved]
    scale = np.abs(part).max(axis=0, initial=0.0)
    scale[scale == 0.0] = 1.0
    # Right singular vectors with (relatively) zero singular values span part's null space;
    # R of part = QR has part's singular values and right vectors (no n x n factor).
    _, values, vt = np.linalg.svd(np.linalg.qr(part / scale, mode="r"), full_matrices=True)
    largest = float(values.max(initial=0.0))
    rank = int(np.count_nonzero(values > control.margin_tol * max(largest, 1.0)))
    if rank == len(moved):
        return ()
    # Back to the unscaled columns: (part / scale) v_s = 0 is part (v_s / scale) = 0.
    null = np.linalg.qr(vt[rank:].T / scale[:, None])[0]
    basis = np.zeros((x_open.shape[1], null.shape[1]))
    basis[moved] = null
    return tuple(tuple(float(v) for v in column) for column in basis.T)


def _unseparated(
    signed: Any, d: FloatArray, successes: FloatArray, trials: FloatArray
) -> NDArray[np.bool_]:
    """The data rows that direction d does not separate: those with a signed copy
    (_signed_rows' order) at margin 0 (a row with both a success and a failure never is)."""
    margins = np.asarray(signed @ d).ravel()
    separated_signed = margins > SEPARATION_TOL * float(margins.max(initial=0.0))
    unseparated = np.zeros(len(successes), dtype=bool)
    copies = np.concatenate([np.flatnonzero(successes > 0), np.flatnonzero(successes < trials)])
    unseparated[copies[~separated_signed]] = True
    return unseparated


def separation_possible(
    x: FloatArray,
    successes: FloatArray,
    trials: FloatArray,
    control: SeparationControl = DEFAULT_CONTROL,
) -> bool:
    """A cheap necessary condition for separation: whether an evenly spaced sample of at most
    ``control.sample_rows`` rows is separable by the columns of x (one small linear program).
    A subset of separable data is separable, so False proves that the whole data is not; True
    says that ``detect_separation`` must look at every row."""
    x, successes, trials = _evenly_spaced(x, successes, trials, control)
    if no_separation_certificate(x, successes, trials, control):
        return False
    signed = _signed_rows(_scale_columns(x), successes, trials)
    rows = np.arange(signed.shape[0])
    weights = np.ones(signed.shape[0])
    found = _solve_cone(signed, -_weighted_sum(signed, weights), rows, control)
    if found is None:
        return True  # the program failed: let the full check decide
    d, _ = found
    return bool((np.asarray(signed @ d).ravel()).max(initial=0.0) > control.margin_tol)


def _evenly_spaced(
    x: FloatArray, successes: FloatArray, trials: FloatArray, control: SeparationControl
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """At most control.sample_rows evenly spaced rows (all of them when there are fewer)."""
    n = x.shape[0]
    if n <= control.sample_rows:
        return x, successes, trials
    take = np.unique(np.linspace(0, n - 1, control.sample_rows).round().astype(np.intp))
    return x[take], successes[take], trials[take]


def no_separation_certificate(
    x: FloatArray,
    successes: FloatArray,
    trials: FloatArray,
    control: SeparationControl = DEFAULT_CONTROL,
) -> bool:
    """True when weights prove that no direction separates the response (then neither does
    one for any superset of these rows); False when they do not (the linear programs decide).

    Stiemke's alternative: if lam_i > 0 for every signed row s_i with sum_i lam_i s_i = 0, no
    d has s_i'd >= 0 for all i and > 0 for some. The logistic fit's score gives such weights:
    at its maximum, k_i (1 - mu_i) on the success rows and (m_i - k_i) mu_i on the failure
    rows. Newton's method finds it (at most certificate_max_iter steps, stopping when no
    coefficient moves by certificate_tol; a separated response has no maximum and never
    stops); the score left by rounding is removed from the weights by the least-norm
    correction, and the certificate holds when every corrected weight keeps at least
    certificate_margin times the largest one. No linear program, so no scipy.optimize."""
    x = _scale_columns(np.asarray(x, dtype=np.float64))
    n, p = x.shape
    if n == 0 or p == 0:
        return False
    beta = np.zeros(p)
    settled = False
    for _ in range(control.certificate_max_iter):
        eta = x @ beta
        mu = 0.5 * (1.0 + np.tanh(0.5 * eta))
        weights = trials * mu * (1.0 - mu)
        information = x.T @ (weights[:, None] * x)
        step = np.linalg.lstsq(information, x.T @ (successes - trials * mu), rcond=None)[0]
        if not np.isfinite(step).all():
            return False
        beta = beta + step
        if float(np.abs(step).max()) < control.certificate_tol:
            settled = True
            break
    if not settled:
        return False
    eta = x @ beta
    # The tails in the form that keeps their relative accuracy (1 - mu for mu near 1).
    mu, complement = 1.0 / (1.0 + np.exp(-eta)), 1.0 / (1.0 + np.exp(eta))
    up, down = successes > 0, successes < trials
    signed = np.vstack([x[up], -x[down]])
    lam = np.concatenate([successes[up] * complement[up], (trials - successes)[down] * mu[down]])
    residual = signed.T @ lam
    correction = signed @ np.linalg.lstsq(signed.T @ signed, residual, rcond=None)[0]
    corrected = lam - correction
    if not np.isfinite(corrected).all() or lam.size == 0:
        return False
    return bool(corrected.min() > control.certificate_margin * float(lam.max()))


def detect_group_separation(
    data: ModelData, control: SeparationControl = DEFAULT_CONTROL
) -> Separation:
    """Separation of the response by the fixed effects and the random effects together (the
    augmented design [X, Z]). ``columns`` lists the random-effect columns (block, column)
    whose SD has no finite estimate: columns the least separating direction moves and all of
    whose rows (with a nonzero entry in that column) are separated; ``blocks`` the blocks they
    are in. A row the direction leaves unseparated keeps the Laplace log-determinant growing
    with the SD of each column it has a nonzero entry in, so that SD stays finite; the pure
    groups of ordinary data do not make a variance run away. ``coefficients`` are the
    fixed-effect columns the least direction moves (not unique: the intercept trades with the
    mean of the random effects)."""
    x = _scale_columns(data.x)
    columns = [scipy.sparse.csr_matrix(x)]
    owner = [np.full(data.n_fixed, 0)]
    rows = np.arange(data.n_obs)
    for block in data.blocks:
        z = _scale_columns(block.z)
        for c in range(block.k):
            zc = scipy.sparse.csr_matrix(
                (z[:, c], (rows, block.codes)), shape=(data.n_obs, block.n_levels)
            )
            columns.append(zc)
            owner.append(np.full(block.n_levels, len(owner)))
    design = scipy.sparse.hstack(columns, format="csr")
    signed = _signed_rows(design, data.successes, data.trials)
    found = _least_direction(signed, control)
    if found is None:
        return NO_SEPARATION
    complete, d, _ = found
    unseparated = _unseparated(signed, d, data.successes, data.trials)
    moved = _moved(d)
    # owner j >= 1 is the j-th random-effect column over the blocks in order (0 the fixed).
    which = np.concatenate(owner)[moved]
    pairs = [(t, c) for t, block in enumerate(data.blocks) for c in range(block.k)]
    # The rows each column (and each block) has a nonzero entry in that stay unseparated.
    open_columns = [(unseparated[:, None] & (b.z != 0.0)).any(axis=0) for b in data.blocks]
    loose: list[tuple[int, int]] = []
    for j in np.unique(which[which > 0]):
        t, c = pairs[j - 1]
        if not open_columns[t].any():
            # Every row of the block separated: the whole covariance has no finite estimate.
            loose.extend((t, other) for other in range(data.blocks[t].k))
        elif not open_columns[t][c]:
            loose.append((t, c))
    coefficients = tuple(int(j) for j in np.flatnonzero(moved[: data.n_fixed]))
    return Separation(complete, coefficients, tuple(dict.fromkeys(loose)))


def looks_divergent(data: ModelData, beta: FloatArray, limit: float) -> bool:
    """Some coefficient moves the log-odds by more than `limit` across its column's range, or
    some row's fixed-effect predictor is saturated on data's link (``saturated_rows``): the
    cheap screen before the linear programs (which are costly on very large data)."""
    return bool(large_coefficients(data.x, beta, limit)) or saturated_rows(data, beta, limit)


def large_coefficients(x: FloatArray, beta: FloatArray, limit: float) -> tuple[int, ...]:
    """Columns whose coefficient moves the log-odds by more than `limit` across the column."""
    spread = np.abs(x).max(axis=0)
    return tuple(int(j) for j in np.flatnonzero(np.abs(beta) * spread > limit))


def saturated_rows(data: ModelData, beta: FloatArray, limit: float) -> bool:
    """Some row's fixed-effect linear predictor x_i'beta (offset left out) puts its mean
    beyond the probabilities of log-odds -limit and +limit, read on data's link: a probit
    (+-5.9 for limit 20) or cloglog fit (+3.0) stalls on a separating path long before a
    coefficient moves its predictor by `limit`, and a diverging path always saturates a row."""
    return saturated_eta(data.family, data.x @ beta, limit)


def saturated_eta(family: Family, eta: FloatArray, limit: float) -> bool:
    """Some value of the linear predictor `eta` lies beyond the link's values at log-odds
    -limit and +limit (saturation_bounds)."""
    low, high = saturation_bounds(family, limit)
    return bool(np.any((eta < low) | (eta > high)))


def stalled_separation(
    data: ModelData, conditional_eta: FloatArray | None, limit: float
) -> Separation | None:
    """A search that stalled on a separating path with the random effects' help: some row's
    conditional linear predictor (random effects at their modes) is saturated on the link
    while its fixed part is not, and the fixed effects separate the response (the linear
    program, run only then; its result, None otherwise). A cloglog fit started near the path
    (a warm start) stops with a separating coefficient of 2.8, its rows' mean 1 - 1e-15 once
    their group's effect is added: the gradient has vanished in double precision before any
    coefficient looks large."""
    if conditional_eta is None or not saturated_eta(data.family, conditional_eta, limit):
        return None
    found = detect_separation(data.x, data.successes, data.trials)
    return found if found.coefficients else None


def saturation_bounds(family: Family, limit: float) -> tuple[float, float]:
    """The family link's eta at the probabilities of log-odds -limit and +limit (saturated_rows'
    screen)."""
    low, high = family.link_values(
        np.array([1.0 / (1.0 + np.exp(limit)), 1.0 / (1.0 + np.exp(-limit))])
    )
    return float(low), float(high)


def runaway_columns(
    data: ModelData, theta: FloatArray, limit: float
) -> tuple[tuple[int, int], ...]:
    """Random-effect columns (block, column) whose SD times the column's largest |z| exceeds
    `limit` (log-odds): one SD of such a random effect moves the odds by a factor beyond
    e^limit, which only a variance running away to infinity (groups separating y) produces."""
    out: list[tuple[int, int]] = []
    for t, (block, lam) in enumerate(zip(data.blocks, data.lambdas(theta), strict=True)):
        sd = np.sqrt((lam * lam).sum(axis=1))
        spread = np.abs(block.z).max(axis=0)
        out.extend((t, int(c)) for c in np.flatnonzero(sd * spread > limit))
    return tuple(out)


def runaway_blocks(data: ModelData, theta: FloatArray, limit: float) -> tuple[int, ...]:
    """Random-effect blocks whose random effect on some row, z_i' b_t, has an SD
    sqrt(z_i' Sigma_t z_i) beyond `limit` (log-odds): the fitted odds of that row move by a
    factor beyond e^limit with one SD. On the rows, not per column, so that the screen does
    not change when a column is shifted or scaled (x -> 10 x + 3 moves an SD between the
    intercept and the slope, not the rows' effects)."""
    out = []
    for t, (block, lam) in enumerate(zip(data.blocks, data.lambdas(theta), strict=True)):
        if largest_row_variance(block.z, lam) > limit * limit:
            out.append(t)
    return tuple(out)


def largest_row_variance(z: FloatArray, lam: FloatArray) -> float:
    """max_i z_i' Lambda Lambda' z_i over the rows of z (0 without rows): the largest variance
    of one row's random effect, on the scale of the linear predictor (runaway_blocks' screen;
    a Dask fit takes the maximum over its partitions)."""
    if not len(z):
        return 0.0
    return float(np.square(z @ lam).sum(axis=1).max())


def within_groups_text(
    data: ModelData, columns: tuple[tuple[int, int], ...]
) -> tuple[str, str, bool]:
    """The parts of a warning about separation within groups, for the (block, column) pairs
    whose SD has no finite estimate: where the groups predict the response perfectly, which
    variances that leaves without an estimate (a whole term, or single columns), and whether
    those are more than one (a verb's number)."""
    blocks = list(dict.fromkeys(t for t, _ in columns))
    whole = [t for t in blocks if _whole(data, columns, t)]
    parts = [t for t in blocks if t not in whole]
    where, what = [], []
    if whole:
        groups = ", ".join(dict.fromkeys(data.blocks[t].group for t in whole))
        where.append(
            f"in every group of {groups} the fixed and random effects together predict the "
            "response perfectly"
        )
        terms = ", ".join(block_text(data.blocks[t]) for t in whole)
        what.append(f"the random-effect variance of {terms}")
    for t in parts:
        block = data.blocks[t]
        own = [block.terms[c] for u, c in columns if u == t]
        names = ", ".join(own)
        where.append(
            f"in every group of {block.group} the fixed and random effects together predict "
            f"the response perfectly on the rows where {' or '.join(own)} is not 0"
        )
        what.append(f"the SD{'s' if len(own) > 1 else ''} of {names} in {block_text(block)}")
    # A whole term is one variance (its covariance), a single column one SD.
    count = len(whole) + sum(1 for t, _ in columns if t in parts)
    return "; ".join(where), " and ".join(what), count > 1


ON_PATH = "; the reported values are points on a diverging path, not estimates"
"""How separation_found's messages end where the fit reports a point on the diverging path."""


def separation_found(
    data: ModelData,
    beta: FloatArray,
    theta: FloatArray,
    limit: float,
    column_limit: float | None = None,
    fixed_limit: float | None = None,
    conditional_eta: FloatArray | None = None,
) -> tuple[tuple[FitWarning, ...], Separation]:
    """Warnings about estimates that run away (separation), and what was found: the
    fixed-effect columns that have no finite estimate, whether the fixed effects separate every
    row (complete) and, for separation within groups, the random-effect blocks whose variance
    has none. The linear programs run only when the screens (`limit`, log-odds) see a
    coefficient or a random-effect SD that large, or a row's fixed-effect predictor beyond
    the link's value at those log-odds. A single separated column of a block (the rest of
    the block's rows not separated) is reported only where its own SD passes `column_limit`
    (runaway_columns): the limit of the likelihood as that SD grows can lie below a large but
    finite optimum, which a far larger SD is not; None: never reported. fixed_limit: the fixed
    part's screen (coefficients and rows' fixed-effect predictors) when it differs from the
    random effects' `limit`. conditional_eta: the rows' linear predictor with the random
    effects at their modes; where it saturates on the link (saturated_eta) the fixed effects'
    linear program runs too (``stalled_separation``)."""
    fixed_limit = limit if fixed_limit is None else fixed_limit
    divergent = looks_divergent(data, beta, fixed_limit)
    # The stalled search's program has no large coefficient to prefer: the one to report.
    stalled = None if divergent else stalled_separation(data, conditional_eta, fixed_limit)
    runaway = runaway_blocks(data, theta, limit)
    if not divergent and stalled is None and not runaway:
        return (), NO_SEPARATION
    large = large_coefficients(data.x, beta, fixed_limit)
    if divergent or stalled is not None:
        fixed = (
            stalled
            if stalled is not None
            else detect_separation(data.x, data.successes, data.trials, large)
        )
        if fixed.coefficients:
            kind = "complete" if fixed.complete else "quasi-complete"
            names = ", ".join(data.fixed_names[j] for j in fixed.coefficients)
            columns = _runaway_group_columns(data, theta, runaway, column_limit)
            if not columns:
                message = f"{kind} separation: no finite maximum-likelihood estimate for {names}"
                message += ON_PATH
                return (FitWarning(message, SeparationWarning),), fixed
            # The groups separate the rest as well (their variance runs away with the
            # coefficients): neither has an estimate, and the search's end is no limit.
            where, variances, _ = within_groups_text(data, columns)
            message = (
                f"{kind} separation: no finite maximum-likelihood estimate for {names}, and "
                f"separation within groups: {where}, so {variances} has none either" + ON_PATH
            )
            both = Separation(fixed.complete, fixed.coefficients, columns, fixed.directions)
            return (FitWarning(message, SeparationWarning),), both
    columns = _runaway_group_columns(data, theta, runaway, column_limit)
    if not columns:
        # Without a variance running away, a random effect cannot follow a separating direction
        # (its finite variance penalizes it): a fixed effect diverging alone is the case above.
        return (), NO_SEPARATION
    # The coefficients the fit drove far run away with the variance (which ones a separating
    # direction moves is not unique: the intercept trades with the random effects' mean), far
    # as the variance's screen reads it.
    moved = list(large_coefficients(data.x, beta, limit))
    where, variances, plural = within_groups_text(data, columns)
    names = ", ".join(data.fixed_names[j] for j in moved)
    what = [variances]
    if moved:
        what.append(f"the coefficient{'s' if len(moved) > 1 else ''} of {names}")
    message = (
        f"separation within groups: {where}, so "
        + " and ".join(what)
        + f" {'have' if plural or moved else 'has'} no finite maximum-likelihood estimate"
        + ON_PATH
        + ' (method "vb" keeps them finite)'
    )
    return (FitWarning(message, SeparationWarning),), Separation(False, tuple(moved), columns)


def _runaway_group_columns(
    data: ModelData, theta: FloatArray, runaway: tuple[int, ...], column_limit: float | None
) -> tuple[tuple[int, int], ...]:
    """The (block, column) pairs whose SD has no finite estimate (separation_found): those of
    a block the groups separate as a whole and whose SD runs away (`runaway`), and a single
    separated column whose own SD passes `column_limit` (None: never)."""
    if not runaway and column_limit is None:
        return ()
    grouped = detect_group_separation(data)
    # A block separated as a whole runs away in some direction (reported whole, as any of its
    # SDs does); a single separated column only when its own SD does, far.
    far = () if column_limit is None else runaway_columns(data, theta, column_limit)
    return tuple(
        (t, c)
        for t, c in grouped.columns
        if (t in runaway and _whole(data, grouped.columns, t)) or (t, c) in far
    )


def _whole(data: ModelData, columns: tuple[tuple[int, int], ...], t: int) -> bool:
    """Every column of block t is among the (block, column) pairs."""
    return all((t, c) in columns for c in range(data.blocks[t].k))


def _scale_columns(x: FloatArray) -> FloatArray:
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    return np.asarray(x / scale, dtype=np.float64)


def _signed_rows(x: Any, successes: FloatArray, trials: FloatArray) -> Any:
    """+x_i for rows with a success, -x_i for rows with a failure (both for binomial rows)."""
    up = x[np.flatnonzero(successes > 0)]
    down = x[np.flatnonzero(successes < trials)]
    if scipy.sparse.issparse(x):
        return scipy.sparse.vstack([up, -down], format="csr")
    return np.vstack([up, -down])


def _weighted_sum(signed: Any, weights: FloatArray) -> FloatArray:
    """sum_i weights_i * signed_i (a row vector), without copying rows."""
    return np.asarray(signed.T @ weights, dtype=np.float64).ravel()


def _start_rows(signed: Any, control: SeparationControl) -> NDArray[np.intp]:
    """The first working set: evenly spaced rows, and the rows with each column's largest and
    smallest entry (they bound each coefficient's direction)."""
    n = signed.shape[0]
    sample = np.linspace(0, n - 1, min(n, control.sample_rows)).round().astype(np.intp)
    if scipy.sparse.issparse(signed):
        extremes = [np.asarray(signed.argmax(axis=0)).ravel(), np.asarray(signed.argmin(axis=0))]
    else:
        extremes = [np.argmax(signed, axis=0), np.argmin(signed, axis=0)]
    return np.unique(np.concatenate([sample, *[np.ravel(e) for e in extremes]]).astype(np.intp))


def _solve(
    cost: FloatArray,
    signed: Any,
    lower: FloatArray,
    bounds: list[tuple[float | None, float | None]],
    rows: NDArray[np.intp],
    control: SeparationControl,
    split: bool = False,
) -> tuple[FloatArray, NDArray[np.intp]] | None:
    """Minimize cost'v subject to signed @ d >= lower (every row) and the bounds, by constraint
    generation from the working set ``rows``: d = v, or d = v[:p] - v[p:] when ``split``.
    Returns (v, the final working set), or None when HiGHS reports a failure."""
    import scipy.optimize  # here only: the package costs a first call about 0.2 s

    n, p = signed.shape
    batch = max(control.batch_rows, 2 * p)
    for round_ in range(control.max_rounds + 1):
        if round_ == control.max_rounds:
            rows = np.arange(n)  # the cap: every row at once (still p unknowns)
        block = scipy.sparse.csr_matrix(signed[rows])
        a_ub = scipy.sparse.hstack([-block, block], format="csr") if split else -block
        found = scipy.optimize.linprog(
            cost,
            A_ub=a_ub,
            b_ub=-lower[rows],
            bounds=bounds,
            method="highs",
        )
        if found.status != 0:
            return None
        v = np.asarray(found.x, dtype=np.float64)
        d = v[:p] - v[p:] if split else v
        shortfall = lower - np.asarray(signed @ d).ravel()
        outside = np.ones(n, dtype=bool)
        outside[rows] = False
        violated = np.flatnonzero(outside & (shortfall > control.feasibility_tol))
        if violated.size == 0:
            return v, rows
        if violated.size > batch:
            worst = np.argpartition(-shortfall[violated], batch - 1)[:batch]
            violated = np.sort(violated[worst])
        rows = np.union1d(rows, violated)
    return None  # not reached: the last round uses every row


def _solve_cone(
    signed: Any, cost: FloatArray, rows: NDArray[np.intp], control: SeparationControl
) -> tuple[FloatArray, NDArray[np.intp]] | None:
    """Minimize cost'd over the cone {d : signed @ d >= 0} within the unit box."""
    p = signed.shape[1]
    return _solve(cost, signed, np.zeros(signed.shape[0]), [(-1.0, 1.0)] * p, rows, control)


def _separable_rows(
    signed: Any, control: SeparationControl
) -> tuple[NDArray[np.bool_], FloatArray, NDArray[np.intp]] | None:
    """The signed rows some direction of the cone separates, a direction separating all of
    them (the sum of each round's), and the working set (see the module docstring, 1.)."""
    n, p = signed.shape
    known = np.zeros(n, dtype=bool)
    total = np.zeros(p)
    rows = _start_rows(signed, control)
    for _ in range(p + 1):
        cost = -_weighted_sum(signed, (~known).astype(np.float64))
        if not cost.any():
            break  # the remaining rows sum to zero: none has a positive margin in the cone
        found = _solve_cone(signed, cost, rows, control)
        if found is None:
            return None
        d, rows = found
        new = (np.asarray(signed @ d).ravel() > control.margin_tol) & ~known
        if not new.any():
            break
        known |= new
        total += d
    return known, total, rows


def _least_direction(
    signed: Any, control: SeparationControl = DEFAULT_CONTROL
) -> tuple[bool, FloatArray, NDArray[np.intp]] | None:
    """(complete, d, working rows): the least-L1 separating direction, or None when nothing
    separates."""
    n, p = signed.shape
    found = _separable_rows(signed, control)
    if found is None:
        return None
    separated, total, rows = found
    if not separated.any():
        return None
    # 2. the least direction: minimize sum |d| (d = d+ - d-) with margins >= 1 on the
    # separated rows (the cone lets them all reach 1) and >= 0 elsewhere.
    lower = separated.astype(np.float64)
    second = _solve(
        np.ones(2 * p), signed, lower, [(0.0, None)] * (2 * p), rows, control, split=True
    )
    if second is None:
        d = total
    else:
        v, rows = second
        d = v[:p] - v[p:]
    margins = np.asarray(signed @ d).ravel()
    largest = float(margins.max())
    if not largest > control.margin_tol or float(margins.min()) < -control.margin_tol * largest:
        return None
    complete = bool((margins > control.margin_tol * largest).all())
    return complete, d, rows


def _movable(
    signed: Any,
    candidates: tuple[int, ...],
    rows: NDArray[np.intp],
    control: SeparationControl = DEFAULT_CONTROL,
) -> tuple[int, ...]:
    """The candidate columns j that some direction of the cone {d : s_i x_i'd >= 0} moves
    (max or min of d_j over the cone in the unit box is not 0)."""
    p = signed.shape[1]
    out = []
    for j in candidates:
        for sign in (1.0, -1.0):
            cost = np.zeros(p)
            cost[j] = -sign
            found = _solve_cone(signed, cost, rows, control)
            if found is not None and sign * found[0][j] > control.margin_tol:
                out.append(j)
                break
    return tuple(out)


def _moved(d: FloatArray) -> NDArray[np.bool_]:
    largest = float(np.abs(d).max(initial=0.0))
    return np.abs(d) > SEPARATION_TOL * max(largest, 1.0)
