"""Outer optimization of a deviance over (theta, beta), and the OptSummary that records it.

The optimizer is a dense BFGS (numerics.quasi_newton) with the exact gradient, in whitened
coordinates so that badly scaled predictors (age and age^2) and variance parameters do not slow
the quasi-Newton search (see minimize_deviance). It stops near the optimum (gtol), where Newton
steps on the objective's exact Hessian, or on finite differences of the exact gradient where it
has none, finish the search (converging quadratically where the quasi-Newton search converges
linearly), and that Hessian gives the covariance of the estimates. Where the exact Hessian
costs about an evaluation (one scalar random effect, few rows), the search is Newton's method on it
from the start (newton_search), the quasi-Newton search only going on where that does not end
at a verified optimum. A quasi-Newton search that is slow to converge on a model with vector
random effects goes on in polar coordinates of Lambda's rows (numerics.polar, SearchCoordinates),
and a variance that it leaves just above zero on a flat deviance is held at zero when that is no
worse (newton_polish). converged is reported only
when the end point passes optimum_check: finite deviance and gradient, the Hessian of the free
parameters positive definite, and a Newton decrement below OptimizerControl.decrement_tol;
and held_check along each variance held at zero (no descent away from the boundary, the free
parameters following).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.model.covariance import Unstructured, log_tolerance
from glmm_binomial.model.data import ModelData
from glmm_binomial.numerics.dense import cho_solve_upper, cholesky_upper, solve_upper
from glmm_binomial.numerics.hessian import gradient_hessian
from glmm_binomial.numerics.polar import PolarRows
from glmm_binomial.numerics.quasi_newton import STOPPED, minimize_bfgs
from glmm_binomial.numerics.step_length import StepRadius, backtracked

if TYPE_CHECKING:
    from glmm_binomial.family import Family

FloatArray = NDArray[np.float64]
DevianceAndGradient = Callable[[FloatArray, FloatArray], tuple[float, FloatArray, FloatArray]]


@dataclass(frozen=True)
class OptimizerControl:
    """Tolerances and caps of the outer optimization (all recorded on the result).

    gtol: the quasi-Newton search hands over to the Newton polish once the largest gradient
        entry in the whitened coordinates (deviance units; there a unit step is about one
        standard error) falls below it; ftol: it also stops when a step lowers the deviance by
        at most ftol times its magnitude; max_iter: its iteration cap; max_step: the longest
        step it takes (Euclidean, whitened units: far from the optimum the quadratic model
        overshoots); armijo, max_backtracks: a step length is accepted where the deviance falls
        by at least armijo times the decrease its slope predicts, after at most max_backtracks
        shorter trials (numerics.quasi_newton); fallback_gtol: when the point where the search
        handed over does not pass optimum_check after the polish (a variance on its way to
        zero, where the deviance is flat), the search goes on until the gradient is below
        this, and polishes again.
    hessian_step: finite-difference step of the final Hessian, in whitened units.
    whitening_floor: the fixed effects' information at the start, whose inverse Cholesky
        factor whitens beta, has each diagonal entry first raised to at least this fraction
        of its largest: a column with next to no information there (a start already far
        along a separated column's diverging path) would otherwise get a scale so large (1e9)
        that one finite-difference step of the final Hessian crosses the whole path
        (fuzz_formula 57:185 --links: a probit coefficient from -9.6 to +1.4e5, and the other
        standard errors 5-12% off in the symmetrized Hessian).
    theta_scale_step: forward-difference step for the curvature that scales each theta (0:
        no scaling).
    approximate_theta_scale: where the start is the moment start, scale each theta entry that
        is a column's SD (a diagonal entry of an unstructured Lambda) by start_curvature's
        approximation of that curvature (no evaluation) instead of a forward difference of
        the gradient (one evaluation each).
    hessian_scheme: "forward" (n_theta + n_fixed gradient evaluations, relative error about
        hessian_step, ample for standard errors) or "central" (twice the cost, error squared).
    polish_step_tol: after a Newton polish step shorter than this (whitened units) the Hessian
        is not recomputed; polish_max_steps caps the Newton steps; a step that raises the
        deviance by at most polish_noise_tol (deviance units: the noise of a deviance whose
        mode is found to a tolerance) is taken when it lowers the Newton decrement.
    exact_hessian: use the objective's exact Hessian where it has one (Laplace, one grouping
        factor with an unstructured block, binomial logit) instead of finite differences of
        the gradient, at the start (theta's scales, beta's whitening) and at the end.
    newton_max_steps: where the objective's exact Hessian costs about an evaluation (one
        scalar random effect, few rows), the search is Newton's method on it from the start, at most
        this many steps, before the quasi-Newton search (which goes on from the last point
        when Newton's steps do not reach a verified optimum); 0: the quasi-Newton search only.
        newton_step_tol: that search ends, without taking it, at a Newton step shorter than
        this (whitened units, about standard errors): the point is then the optimum to within
        that many standard errors, its deviance to within about half the square.
    polar_after_iter: a quasi-Newton search not done after this many iterations, in a model
        with a vector random-effect term (an unstructured Lambda_t with two or more columns),
        goes on with the rows of those Lambda_t in polar coordinates (numerics.polar: each
        row's length, an SD, and its direction's angles, which set the correlations), once per
        fit; 0: never. Nearly singular covariances make valleys that are curved in Lambda's
        entries and straight in these.
    snap_tol: where the Hessian of the free parameters is not positive definite after the
        search, a diagonal entry of Lambda below this (but above boundary_tol) is tried at
        zero, and held there when the deviance is no worse (newton_polish); at the end, a
        column of Lambda whose diagonal entry is below this takes over a later column's
        entries (taken_over_fall).
    zero_start: a given start (a refit's: the estimates of a fit) with a diagonal entry of
        Lambda at exactly zero starts that entry at this instead (off_zero: no gradient-based
        search leaves an exact zero, where the deviance is even in the entry).
    saddle_far_start: where the search from off a saddle at a zero diagonal entry of an
        unstructured Lambda (restarted at zero_start) came back to it, and no column taking
        over a later one shows a fall, it goes on once more from the entry at this value
        (lme4's start for it: the fall may lie beyond the saddle's flat neighbourhood); the
        saddle stays the estimate unless that search ends lower.
    saturation_start: a given start with a structured covariance's correlation within
        boundary_tol of an end of its range starts it this far inside (off_boundary); at the
        end of a search, such a correlation is tried this far inside, and the search goes
        on from there when the deviance falls by decrement_tol (saturated_fall).
    saddle_tol: a theta entry held at the boundary (a variance at zero) whose curvature in
        the final Hessian (whitened units; net of the free coordinates', the Schur
        complement) is below -saddle_tol marks a saddle point (held_check): the search goes
        on once from the entry at zero_start, and the fit is not converged if it ends at one
        again. A saddle only through the free coordinates is kept (converged) when the search
        from zero_start ends no lower by decrement_tol. A last pass ending unverified where
        the free Hessian's smallest eigenvalue is below saddle_tol (not positive definite, or
        nearly singular) weighs that direction (flat_direction): flat when no trial step
        along it falls and the Newton decrement with the eigenvalues raised to saddle_tol is
        within decrement_tol.
    boundary_tol: a diagonal entry of Lambda below this counts as a boundary (singular) fit,
        as lme4's isSingular tol.
    glm_tol, glm_max_iter: the Newton iteration of the GLM start (a start only: the outer
        search moves beta anyway, so it stops once no coefficient moves by glm_tol);
        glm_max_halvings: how many times in a row it halves a step after which the
        log-likelihood fell (glm_newton).
    separation_screen: when some row's random effect has an SD beyond this (log-odds), the
        fit is checked for separation of the response by a grouping factor; on a Dask
        DataFrame (whose search always starts at the GLM, far along any separating path) also
        the fixed part's screen below.
    fixed_separation_screen: when some |beta_j| * max |x_j| exceeds this (log-odds), or some
        row's x_i'beta lies beyond the link's value at log-odds -+this, the fit is checked for
        separation of the response by the fixed-effects design (the linear programs decide;
        the screen only spares them). Below the log-odds where a search that starts inside
        (a refit from the fitted model's estimates, a given start) stops on a separating path:
        its Newton decrement, about the separated rows' probabilities, falls below
        decrement_tol 1e-6 at log-odds near -+13 and beyond (fuzz_separation.py --warm: 11.4
        to 18.7 at the row furthest out, which a screen at 20 missed).
    column_runaway_screen: a random-effect column whose rows the groups separate (the rest
        of its term's rows not) has no finite SD estimate when that SD times the column's
        largest |z| exceeds this (log-odds): the separated rows are then fitted as with an
        infinite SD (profiles of two such fits rose monotonically towards their limit, within
        0.03 of it at an SD of 1e3), while a large SD below it can be a finite optimum (a
        profile on such rows peaked at an SD of 200).
    prior_runaway_factor, prior_runaway_max_iter: a penalized fit (a covariance prior) whose
        end has a row's random-effect SD beyond separation_screen is probed further out, at
        the covariance of those terms times this factor squared and to the fourth (SDs times
        it and its square, correlations kept), beta refitted there (BFGS, at most
        prior_runaway_max_iter iterations); a penalized deviance below the end's there means
        the prior outweighs the likelihood along that path and the end is no posterior mode
        (penalty.with_prior_runaway: blme's default Wishart prior, metamorphic blme3:5095).
    decrement_tol: converged requires the Newton decrement g' H^{-1} g / 2 over the free
        parameters (the deviance the quadratic model still expects to gain; invariant under
        any linear change of parameters, so the same in the user's units as in the internal
        ones) below this, and H there positive definite.
    user_gradient_tol: after a fit on internally rescaled columns, converged also requires,
        in the user's units, sqrt(g' V g) below this (g the exact gradient, V the estimates'
        covariance over the free parameters: the largest first-order deviance change of a
        move of one standard error in any direction; unchanged by a linear change of the
        parameters, as a covariate's units and centring are) and the deviance there to match
        the internal one within deviance_match_tol (relative).
    basin_starts: where a structured covariance's deviance is known to have several optima
        (cs, ar1), search again from starts in its other basins (better_of_basins: the other
        end of rho's range for an end at one, and for cs one start per term with its SD near
        zero) and keep the lowest converged end; only for fits without a given start.
    singular_restart: with basin_starts, where the search ends singular in a vector term
        (unstructured or diag: two or more SDs, one at zero or a correlation at +-1; also an
        SD at zero in a term split by lme4's ||, and a random intercept's SD at zero in a
        model without a fixed intercept: ModelData.theta_singular_restart), search
        again from lme4's start (Lambda = I for every unstructured and diag term, the end's
        beta) and, for an unstructured term, from the end with one column's correlations
        negated (each column in turn), and keep the lower converged end. The moment start and
        lme4's reach different singular optima on a few fits (diag:3098 -205.5347 against
        -204.4898, glmmTMB's; cloglog_slope:3111; crossed_vector:921, which needs both terms
        restarted); a correlation's other sign, on others (a slope's correlation at -1 where
        +1 is 0.87 higher: fuzz_formula 10:4). Where the search did not converge, an SD below
        unconverged_restart_tol (rather than boundary_tol) counts as at zero for these
        restarts: its SDs have not settled, and a fixed tolerance near them would restart
        one of two such searches and not the other.
    basin_merge_tol, basin_merge_decrement: such a search stops, its end discarded, once its
        point lies in the basin of an earlier search's converged end with a positive definite
        Hessian H (in_known_basin): the quadratic model of the deviance about that end, whose
        predicted excess q = d' H d / 2 (d the step from the end) is at most
        basin_merge_decrement, matches the point's deviance excess to within basin_merge_tol
        times q and its gradient to within basin_merge_tol (relative, in the H^{-1} norm),
        each plus decrement_tol for noise; a search that would only reach that end again
        saves its last iterations and its end checks. basin_merge_tol 0: every search runs
        to its end.
    end_gtol: a quasi-Newton pass stops where a structured SD (a log SD: ar1, cs, diag)
        lies below snap_tol with the deviance still falling towards zero, or a structured
        correlation within snap_tol of an end of its range with the deviance still falling
        towards it, once the largest gradient entry of the other coordinates (whitened) is
        below this, and range_end tries those ends (the deviance goes as c SD^2 near zero SD
        and as c e^{-|phi|} near rho's ends, so the search would move the log SD by about
        1/2 and phi by about 1 an iteration); where that does not verify, the pass goes on
        (once per search).
    moment_start: start each block's SDs at moment estimates at the GLM fit (moment_theta:
        an unstructured Lambda's diagonal, diag's and ar1's log SDs; cs keeps SDs 1,
        CovarianceStructure.moment_start; for the logit, the SDs and the GLM's beta scaled up
        by the logistic-normal attenuation factor) instead of lme4's Lambda = I and the GLM's
        beta.
    fixed_scale_limit, random_scale_limit: a column of X (of a random-effect block) whose
        scale (standard deviation where it is centred, else root mean square) lies outside
        [1 / limit, limit] is divided internally by that scale rounded to a power of two
        (see glmm_binomial.methods.scaling); fixed_center_limit, random_center_limit: a column that
        may be centred (an intercept in X, in the block) is when |mean| > limit * SD.
    """

    ftol: float = 1e-13
    gtol: float = 1e-4
    max_iter: int = 1000
    max_step: float = 2.0
    armijo: float = 1e-4
    max_backtracks: int = 40
    moment_start: bool = True
    approximate_theta_scale: bool = True
    fallback_gtol: float = 1e-7
    hessian_step: float = 1e-4
    whitening_floor: float = 1e-8
    theta_scale_step: float = 1e-3
    hessian_scheme: str = "forward"
    polish_step_tol: float = 1e-3
    polish_max_steps: int = 3
    polish_noise_tol: float = 1e-8
    exact_hessian: bool = True
    newton_max_steps: int = 10
    newton_step_tol: float = 1e-5
    polar_after_iter: int = 25
    snap_tol: float = 1e-2
    zero_start: float = 1e-3
    saddle_far_start: float = 1.0
    saturation_start: float = 1e-2
    saddle_tol: float = 1e-3
    boundary_tol: float = 1e-4
    glm_tol: float = 1e-3
    separation_screen: float = 20.0
    fixed_separation_screen: float = 10.0
    column_runaway_screen: float = 1e3
    prior_runaway_factor: float = 10.0
    prior_runaway_max_iter: int = 100
    basin_starts: bool = True
    singular_restart: bool = True
    unconverged_restart_tol: float = 1e-3
    basin_merge_tol: float = 0.1
    basin_merge_decrement: float = 1.0
    end_gtol: float = 1e-2
    glm_max_iter: int = 100
    glm_max_halvings: int = 30
    decrement_tol: float = 1e-6
    user_gradient_tol: float = 1e-2
    deviance_match_tol: float = 1e-8
    fixed_scale_limit: float = 1e3
    fixed_center_limit: float = 10.0
    random_scale_limit: float = 4.0
    random_center_limit: float = 3.0
    positive_settings: ClassVar[frozenset[str]] = frozenset(
        # Steps of a search or a finite difference; the boundary is where an SD's log is below
        # log(boundary_tol) (snap_tol = 0 turns the snap off).
        {"max_step", "hessian_step", "theta_scale_step", "boundary_tol"}
    )

    def tolerances(self) -> dict[str, float | str]:
        """Every field, as OptSummary.tolerances records them (a fresh dict each call)."""
        return dict(self.field_values)

    @functools.cached_property
    def field_values(self) -> dict[str, float | str]:
        # Cached (the fields are fixed): every fit records them.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class OptSummary:
    """What the optimizer did: method, counts, tolerances, time."""

    optimizer: str
    objective: str
    converged: bool
    message: str
    iterations: int
    evaluations: int
    gradient_evaluations: int
    pirls_iterations: int
    pirls_failures: int
    final_gradient_norm: float
    newton_polish: bool
    tolerances: dict[str, float | str]
    seconds: float


def deviance_or_none(
    deviance_and_gradient: DevianceAndGradient, theta: FloatArray, beta: FloatArray
) -> tuple[float, FloatArray, FloatArray]:
    """deviance_and_gradient(theta, beta), or (inf, 0, 0) where it is no deviance: far out on
    a trial step the mode search overflows (an SD of 1e200), or its factor fails (a Lambda
    overflowing, H not positive definite in rounding: LinAlgError), or a finite deviance
    comes with a gradient that is not. A search (minimize_deviance, the profile's re-fits,
    penalty.with_prior_runaway's probe) then steps back; numpy's warnings stay inside."""
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            value, g_theta, g_beta = deviance_and_gradient(theta, beta)
    except np.linalg.LinAlgError:
        value = float("inf")
    else:
        if np.isfinite(value) and np.isfinite(g_theta).all() and np.isfinite(g_beta).all():
            return value, g_theta, g_beta
    return float("inf"), np.zeros(len(theta)), np.zeros(len(beta))


def glm_newton(
    beta: FloatArray,
    value_information_and_score: Callable[[FloatArray], tuple[float, FloatArray, FloatArray]],
    control: OptimizerControl,
) -> tuple[FloatArray, FloatArray]:
    """Newton's method for the fixed-effects-only GLM from `beta`, given a function returning
    its log-likelihood, information X'WX and score X'r at beta (sums over rows: in memory, or
    over the partitions of a Dask fit). A step after which the log-likelihood fell (or is not
    finite) is halved, up to control.glm_max_halvings times in a row: a full Newton step from
    a start far from the fit can overshoot and then diverge (an offset of 30 on some rows).
    Returns beta and the upper Cholesky factor R of the information at the last step
    (R'R = X'WX + 1e-12 I); zeros and I when the iteration diverges."""
    n_fixed = len(beta)
    info_factor = np.eye(n_fixed)
    ridge = 1e-12 * np.eye(n_fixed)
    taken: tuple[FloatArray, float, FloatArray] | None = None  # from where, its value, the step
    halvings = 0
    for _ in range(control.glm_max_iter):
        value, info, score = value_information_and_score(beta)
        if taken is not None and halvings < control.glm_max_halvings:
            origin, before, step = taken
            if not value >= before - GLM_FALL_TOL * (1.0 + abs(before)):
                halvings += 1
                taken = (origin, before, 0.5 * step)
                beta = origin + taken[2]
                continue
        halvings = 0
        info_factor = cholesky_upper(info + ridge)
        step = cho_solve_upper(info_factor, score)
        taken = (beta, value, step)
        beta = beta + step
        if float(np.abs(step).max(initial=0.0)) < control.glm_tol or not np.isfinite(beta).all():
            break
    if not np.isfinite(beta).all():
        beta = np.zeros(n_fixed)
        info_factor = np.eye(n_fixed)
    return beta, info_factor


GLM_FALL_TOL = 1e-10
"""glm_newton halves a step after which the log-likelihood fell by more than this (relative to
1 + its size): rounding near the fit moves it by less."""


def glm_value_information_score(
    data: ModelData, beta: FloatArray
) -> tuple[float, FloatArray, FloatArray]:
    """The log-likelihood (binomial coefficients excluded), X'WX and X'r of the
    fixed-effects-only GLM at beta (W, r: the Fisher weights and the residuals l'(eta) of the
    family's start_family at eta = X beta + offset; for the logit link the Fisher weights are
    the observed ones)."""
    x = data.x
    eta = x @ beta + data.offset
    family = data.family.start_family
    mu, value = family.mean_and_loglik(eta, data.successes, data.trials)
    w, residual = family.fisher_weights_and_residual(eta, mu, data.successes, data.trials)
    return value, x.T @ (w[:, None] * x), x.T @ residual


def glm_start(data: ModelData, control: OptimizerControl) -> tuple[FloatArray, FloatArray]:
    """Fixed-effects-only regression by Newton's method (glm_newton), from the least-squares
    fit of the empirical logit of the overall rate.

    Returns beta and the upper Cholesky factor R of its Fisher information X' W X (R' R).
    A link with an upper bound on eta (the log link: eta <= 0) shortens each step so that every
    row stays below it (feasible_step), and needs a feasible least-squares start."""
    # Start from the link of the overall rate (the empirical logit for the logit link) so the
    # first step is well scaled.
    rate = (data.successes.sum() + 0.5) / (data.trials.sum() + 1.0)
    beta: FloatArray = np.zeros(data.n_fixed)
    level = float(data.family.link_function(rate))
    ones = np.flatnonzero((data.x == 1.0).all(axis=0)) if data.n_obs else np.zeros(0)
    if ones.size and not data.offset.any():
        # The least-squares fit of a constant with an intercept column is exact: the intercept.
        beta[int(ones[0])] = level
    else:
        try:
            beta = np.asarray(
                np.linalg.lstsq(data.x, level - data.offset, rcond=None)[0], dtype=np.float64
            )
        except np.linalg.LinAlgError:
            pass
    sums = functools.partial(glm_value_information_score, data)
    if np.isfinite(data.family.eta_upper):
        largest = functools.partial(largest_eta, data)
        intercept = int(ones[0]) if ones.size else None
        beta = feasible_glm_start(beta, level, intercept, largest, data.family)
        return bounded_glm_newton(
            beta, sums, largest, functools.partial(step_room, data), control, data.family
        )
    return glm_newton(beta, sums, control)


GLM_START_ROOM = 1.0
"""glm_start's fallback for a bounded link puts every row's eta at least this far inside the
bound (the log link: mu <= e^-1)."""


GLM_BOUND_MARGIN = 1e-6
"""The GLM start of a bounded link (log: eta <= 0) keeps every eta at least this far inside."""


def largest_eta(data: ModelData, beta: FloatArray) -> float:
    """max(X beta + offset) over the rows (-inf without rows)."""
    return float((data.x @ beta + data.offset).max(initial=-np.inf))


def step_room(data: ModelData, beta: FloatArray, step: FloatArray, limit: float) -> float:
    """The longest multiple t of `step` from beta that keeps every row's X beta + offset at or
    below `limit`: min over the rows the step raises of (limit - eta_i) / (x_i' step); inf
    where it raises none."""
    deta = data.x @ step
    rising = deta > 0
    eta = data.x @ beta + data.offset
    return float(((limit - eta[rising]) / deta[rising]).min(initial=np.inf))


def feasible_glm_start(
    beta: FloatArray,
    level: float,
    intercept: int | None,
    largest: Callable[[FloatArray], float],
    family: Family,
) -> FloatArray:
    """beta, or where it puts some row past the link's bound (family.eta_upper) and the model
    has an intercept column (its index), the intercept alone at `level` (the link of the
    overall rate) lowered so that every row lies GLM_START_ROOM inside the bound; largest(b):
    max(X b + offset) over the rows. Offsets that vary widely pull the least-squares intercept
    up and some rows past the bound (offsets -10 and 0 with the log link)."""
    upper = family.eta_upper
    if intercept is None or largest(beta) <= upper - GLM_BOUND_MARGIN:
        return beta
    out = np.zeros(len(beta))
    # largest at 0: the largest offset.
    out[intercept] = min(level, upper - GLM_START_ROOM - max(0.0, largest(out)))
    return out


def bounded_glm_newton(
    beta: FloatArray,
    sums: Callable[[FloatArray], tuple[float, FloatArray, FloatArray]],
    largest: Callable[[FloatArray], float],
    room: Callable[[FloatArray, FloatArray, float], float],
    control: OptimizerControl,
    family: Family,
) -> tuple[FloatArray, FloatArray]:
    """glm_newton with each step shortened so that max(X beta + offset) stays below
    family.eta_upper - GLM_BOUND_MARGIN (the log link's mu <= 1); ValueError when the start is
    not there. sums(b): the GLM's log-likelihood, information and score (glm_newton's);
    largest(b): max(X b + offset); room(b, step, limit): step_room's (sums over the rows in
    memory, or over a Dask fit's partitions)."""
    limit = family.eta_upper - GLM_BOUND_MARGIN
    if not largest(beta) <= limit:
        raise ValueError(
            f"link={family.link!r}: no starting values with every probability below 1 "
            "(the least-squares fit of the overall rate's link gives eta > 0 at some row); "
            "check the offset, or use another link"
        )
    n_fixed = len(beta)
    info_factor = np.eye(n_fixed)
    for _ in range(control.glm_max_iter):
        _, info, score = sums(beta)
        info_factor = cholesky_upper(info + 1e-12 * np.eye(n_fixed))
        step = cho_solve_upper(info_factor, score)
        fraction = min(1.0, 0.99 * room(beta, step, limit))
        beta = beta + fraction * step
        if float(np.abs(fraction * step).max(initial=0.0)) < control.glm_tol:
            break
    return beta, info_factor


@dataclass(frozen=True)
class StartPoint:
    """Where the outer optimization starts: theta, beta, and the upper Cholesky factor of an
    information on beta (the GLM's) that whitens beta when the fit's own fixed-effects
    information at the start is not available or not positive definite; theta_curvature:
    an approximation of the deviance's second derivative in each theta entry there
    (start_curvature; NaN where it has none), or None."""

    theta: FloatArray
    beta: FloatArray
    info_factor: FloatArray
    theta_curvature: FloatArray | None = None


def start_point(
    data: ModelData,
    control: OptimizerControl,
    theta: FloatArray | None = None,
    beta: FloatArray | None = None,
) -> StartPoint:
    """lme4's start (Lambda = I, beta from the GLM), or the given theta and beta (an earlier
    fit's estimates) with the GLM's information for the whitening (at the given beta: a
    refit from estimates, as the bootstrap and power simulations make, needs no GLM fit)."""
    if theta is not None and beta is not None and data.n_obs == data.x.shape[0]:
        given = np.asarray(beta, dtype=np.float64)
        _, information, _ = glm_value_information_score(data, given)
        return given_point(
            data, control, theta, given, information, lambda: glm_start(data, control)[1]
        )
    if theta is not None:
        theta = off_boundary(
            data, theta, control.zero_start, control.boundary_tol, control.saturation_start
        )
    beta_glm, info_factor = glm_start(data, control)
    theta_start = data.theta_start() if theta is None else np.asarray(theta, dtype=np.float64)
    curvature = None
    if theta is None and control.moment_start:
        scores = level_scores(data, beta_glm)
        theta_start, to_conditional = moment_theta(data, scores, theta_start)
        if control.approximate_theta_scale:
            curvature = start_curvature(data, scores, theta_start)
        if beta is None:
            # The GLM's coefficients are the marginal ones: towards the conditional scale.
            beta_glm = conditional_beta(beta_glm, to_conditional, offset_coefficients(data))
    elif theta is None:
        theta_start = link_scaled_start(data)
    if theta is None and data.family.n_parameters:
        # The family's parameters (log phi) from the moments about the GLM's fit.
        eta = data.x @ beta_glm + data.offset
        theta_start[data.family_slice] = data.family.start_parameters(
            eta, data.successes, data.trials
        )
    return StartPoint(
        theta_start,
        beta_glm if beta is None else np.asarray(beta, dtype=np.float64),
        info_factor,
        curvature,
    )


def link_scaled_start(data: ModelData) -> FloatArray:
    """lme4's start of theta (Lambda = I) on the link's own scale (the probit's eta is about
    0.55 times the logit's: family.start_scale), for the unstructured blocks whose theta is all
    scale; the other blocks' entries as ModelData.theta_start gives them."""
    theta = data.theta_start()
    scale = data.family.start_scale
    if scale != 1.0:
        for block, where in zip(data.blocks, data.theta_slices(), strict=True):
            if isinstance(block.covariance, Unstructured):
                theta[where] *= scale
    return theta


def given_point(
    data: ModelData,
    control: OptimizerControl,
    theta: FloatArray,
    beta: FloatArray,
    information: FloatArray,
    fallback: Callable[[], FloatArray],
) -> StartPoint:
    """The start of a search from given estimates: theta off the boundary (off_boundary with
    the control's zero_start, boundary_tol and saturation_start), beta as given, whitened by
    the Cholesky factor of the GLM's information at it (X'WX summed over the rows, in memory
    or over a Dask fit's partitions); fallback() gives the factor where that one does not
    exist (the GLM fit's)."""
    theta = off_boundary(
        data, theta, control.zero_start, control.boundary_tol, control.saturation_start
    )
    factor = information_factor(information)
    return StartPoint(theta, beta, fallback() if factor is None else factor)


def information_factor(information: FloatArray) -> FloatArray | None:
    """The upper Cholesky factor of the GLM's information X'WX (plus 1e-12 I, as glm_newton's)
    that whitens beta at a given start, or None where it is not positive definite or not
    finite."""
    try:
        factor = cholesky_upper(information + 1e-12 * np.eye(len(information)))
    except (np.linalg.LinAlgError, ValueError):
        return None
    return factor if np.isfinite(factor).all() else None


def offset_coefficients(data: ModelData) -> FloatArray:
    """lstsq(X, offset): the offset's projection on the fixed-effect columns (zeros without an
    offset)."""
    if not data.offset.any():
        return np.zeros(data.n_fixed)
    try:
        return np.asarray(np.linalg.lstsq(data.x, data.offset, rcond=None)[0], dtype=np.float64)
    except np.linalg.LinAlgError:
        return np.zeros(data.n_fixed)


def conditional_beta(beta_glm: FloatArray, factor: float, offset_part: FloatArray) -> FloatArray:
    """The GLM's (marginal) coefficients scaled up by the attenuation factor a towards the
    conditional ones, as the linear predictor: X beta + o ~ a (X beta_glm + o), the offset's
    coefficient 1 in both models, so beta = a beta_glm + (a - 1) lstsq(X, o) (offset_part).
    Moving a known effect c x into the offset then moves the start by -c, as it moves the
    fit (scaling beta_glm alone moved it by -a c)."""
    if not offset_part.any():
        return beta_glm * factor
    return beta_glm * factor + (factor - 1.0) * offset_part


def off_zero(data: ModelData, theta: FloatArray, value: float) -> FloatArray:
    """theta with each bounded entry (a diagonal entry of an unstructured Lambda) that is
    exactly zero set to `value`: the deviance is even in such an entry where the rest of its
    column is zero, so its gradient there is zero and no gradient-based search would leave
    it (a singular fit's estimates as the start of a refit to other data)."""
    theta = np.array(theta, dtype=np.float64)
    zero = np.isfinite(data.theta_lower_bounds()) & (theta == 0.0)
    theta[zero] = value
    return theta


def off_boundary(
    data: ModelData, theta: FloatArray, zero_start: float, tol: float, margin: float
) -> FloatArray:
    """A boundary fit's estimates made a start a search can leave the boundary from: exact
    zeros at zero_start (off_zero), and each structured correlation held at the end of its
    range (within tol) moved `margin` inside it (ModelData.theta_unsaturated: out there the
    deviance is flat in its parameter, and a refit to other data stayed at +-1), and a family
    parameter at its limit at its restart (ModelData.theta_off_limit: the beta-binomial's log
    phi, where the deviance is flat in it too)."""
    off = data.theta_unsaturated(off_zero(data, theta, zero_start), tol, margin)
    return data.theta_off_limit(off)


MOMENT_START_SD = (0.1, 3.0)
"""moment_theta keeps each SD within these bounds (link scale): a moment estimate of
zero would start the search where the deviance is flat in theta (it is even in each column of
Lambda), and a large one from few groups is noise."""


def level_scores(data: ModelData, beta: FloatArray) -> list[tuple[FloatArray, FloatArray] | None]:
    """Per block, each level's score U (n_levels x k) and information I (n_levels x k) at
    the GLM fit beta: U_jc = sum_i z_ic r_i and I_jc = sum_i z_ic^2 w_i over the level's rows
    (r, w: the start family's residuals dl/deta and Fisher weights at eta = X beta + offset);
    None for a block whose structure starts its SDs at 1 (CovarianceStructure.moment_start).
    Sums over rows: a Dask fit adds the partitions' answers."""
    eta = data.x @ beta + data.offset
    family = data.family.start_family
    w, r = family.fisher_weights_and_residual(
        eta, family.inverse_link(eta), data.successes, data.trials
    )
    out: list[tuple[FloatArray, FloatArray] | None] = []
    for block in data.blocks:
        if not block.covariance.moment_start:
            out.append(None)
            continue
        n_levels, k = block.n_levels, block.k
        score, information = np.empty((n_levels, k)), np.empty((n_levels, k))
        for c in range(k):
            zc = block.z[:, c]
            score[:, c] = np.bincount(block.codes, zc * r, minlength=n_levels)
            information[:, c] = np.bincount(block.codes, zc * zc * w, minlength=n_levels)
        out.append((score, information))
    return out


def moment_theta(
    data: ModelData, scores: list[tuple[FloatArray, FloatArray] | None], theta: FloatArray
) -> tuple[FloatArray, float]:
    """theta with each block's SDs set to moment estimates from level_scores' sums
    (CovarianceStructure.with_sds: an unstructured Lambda diagonal, a structured covariance's
    correlation as it is in `theta`; blocks without sums keep their entries of `theta`), and
    the factor (attenuation) by which the start's SDs and the GLM's coefficients are scaled.

    When b_jc ~ N(0, sd_c^2), Var(U_jc) is about I_jc + I_jc^2 sd_c^2, whence
    sd_c^2 = sum_j (U_jc^2 - I_jc) / sum_j I_jc^2. For the logit that first-order relation
    sees the SDs of a marginal (population-averaged) model, shrunk with the coefficients by
    about 1 / sqrt(1 + c^2 S) (Zeger, Liang and Albert 1988; c = 16 sqrt(3) / (15 pi), S the
    random intercepts' total variance; for the probit exactly so, with c = 1): both are scaled
    back up by that factor, S solved from
    the estimates' own total. The SDs are then clipped to MOMENT_START_SD. The search starts
    near the optimum's scale instead of at lme4's Lambda = I, which costs the outer search
    most of its steps (and the factor some more: 1,722 -> 1,451 evaluations on 240 random
    one-factor data sets, 25 -> 19 on VerbAgg)."""
    out = np.array(theta, dtype=np.float64)
    estimates: list[FloatArray | None] = []
    intercept_variance = 0.0
    for block, sums in zip(data.blocks, scores, strict=True):
        if sums is None:
            estimates.append(None)
            continue
        score, information = sums
        denominator = (information * information).sum(axis=0)
        excess = (score * score - information).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            sds = np.where(denominator > 0, np.sqrt(np.maximum(excess, 0.0) / denominator), np.nan)
        estimates.append(sds)
        # The random intercepts' variances (a slope's SD is per unit of its column).
        intercepts = [c for c, term in enumerate(block.terms) if term == "(Intercept)"]
        intercept_variance += float(np.nansum(sds[intercepts] ** 2))
    factor = attenuation(data, intercept_variance)
    low, high = MOMENT_START_SD
    for block, where, found in zip(data.blocks, data.theta_slices(), estimates, strict=True):
        if found is None:
            continue
        start_sds = np.clip(np.where(np.isnan(found), 1.0, found * factor), low, high)
        out[where] = block.covariance.with_sds(out[where], start_sds)
    return out, factor


def start_curvature(
    data: ModelData, scores: list[tuple[FloatArray, FloatArray] | None], theta: FloatArray
) -> FloatArray:
    """An approximation of the deviance's second derivative in each theta entry at theta
    that is a diagonal entry of an unstructured block's Lambda (at the moment start each
    column's SD s, the off-diagonal entries zero), NaN for every other entry: with
    level_scores' information sums I_j of the column, a level's score is about N(0, I_j +
    I_j^2 s^2) (moment_theta), whose expected information on s makes the deviance's curvature
    about sum_j 4 s^2 I_j^2 / (1 + s^2 I_j)^2 (the block's columns taken one at a time). It
    only sets the scale of the search in s (minimize_deviance), where a forward difference of
    the gradient costs an evaluation per entry; on VerbAgg it is 631 and 427 where the
    difference gives 615 and 553."""
    out = np.full(len(theta), np.nan)
    for block, where, sums in zip(data.blocks, data.theta_slices(), scores, strict=True):
        if sums is None or not isinstance(block.covariance, Unstructured):
            # A structured covariance's log SDs: none (forward differences instead).
            continue
        rows, cols = block.lower_indices()
        entries = theta[where]
        values = np.full(len(rows), np.nan)
        for t in np.flatnonzero(rows == cols):
            information = sums[1][:, rows[t]]
            sd2 = float(entries[t]) ** 2
            values[t] = float((4.0 * sd2 * information**2 / (1.0 + sd2 * information) ** 2).sum())
        out[where] = values
    return out


LOGIT_ATTENUATION = 16.0 * np.sqrt(3.0) / (15.0 * np.pi)
"""c of the logistic-normal approximation logit E[mu | x] ~ eta / sqrt(1 + c^2 S) (the logistic
CDF matched by a normal one), S the random effects' variance."""

MAX_ATTENUATED_SHARE = 0.75
"""attenuation solves S from the marginal estimate S_m = S / (1 + c^2 S) as S_m / (1 - c^2
S_m), with c^2 S_m held at most at this (factor at most 2): beyond, the estimate is noise or
the approximation's limits."""


def attenuation(data: ModelData, marginal_variance: float) -> float:
    """sqrt(1 + c^2 S) for the binomial logit (c = LOGIT_ATTENUATION) and probit (c = 1:
    exact, the normal CDF averaged over a normal effect is the normal CDF of eta / sqrt(1 +
    S)), S the conditional variance whose marginal estimate is marginal_variance
    (moment_theta's); 1 for other families and links."""
    constant = {"logit": LOGIT_ATTENUATION, "probit": 1.0}.get(data.family.link)
    if data.family.name != "binomial" or constant is None:
        return 1.0
    share = min(constant**2 * marginal_variance, MAX_ATTENUATED_SHARE)
    return float(np.sqrt(1.0 + share / (1.0 - share)))


@dataclass
class Estimates:
    theta: FloatArray
    beta: FloatArray
    deviance: float
    hessian: FloatArray | None  # of the deviance in (theta, beta), natural units
    summary: OptSummary


class SearchEnd(NamedTuple):
    """Where a pass of minimize_deviance's search ended (whitened): the point, its deviance,
    gradient and Hessian, the free coordinates, whether the polish stepped, the message."""

    z: FloatArray
    value: float
    grad: FloatArray
    hessian: FloatArray
    free: NDArray[np.bool_]
    polished: bool
    message: str


@dataclass(frozen=True)
class EndChecks:
    """What the checks at the end of a search (turned_fall, taken_over_fall) read, as
    minimize_deviance sets them up: the model's structure (data), the deviance and its
    gradient in the whitened z (fun), (theta, beta) of z (natural: x = x0 + scale z), the
    Hessian in z (hessian_at: exact, or finite differences of the gradient), one diagonal entry
    of it (curvature_at(z, gradient, j): the same value, from one column of differences where
    there is no exact Hessian) and the controls."""

    data: ModelData
    fun: Callable[[FloatArray], tuple[float, FloatArray]]
    natural: Callable[[FloatArray], tuple[FloatArray, FloatArray]]
    scale: FloatArray
    x0: FloatArray
    hessian_at: Callable[[FloatArray, FloatArray], FloatArray]
    curvature_at: Callable[[FloatArray, FloatArray, int], float]
    control: OptimizerControl

    def whitened(self, theta: FloatArray, beta: FloatArray) -> FloatArray:
        """The z of (theta, beta), theta made canonical."""
        return whitened(self.scale, self.x0, canonical_theta(self.data, theta), beta)

    def checked(self, z: FloatArray, free: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """The coordinates held_check leaves alone at z: the free ones and the structured
        correlations saturated there (held by the polish, no zero variances)."""
        out = free.copy()
        n_theta = self.data.n_theta
        out[:n_theta] |= self.data.theta_saturated(self.natural(z)[0], self.control.boundary_tol)
        return out


class KnownEnd(NamedTuple):
    """An earlier search's converged end in this search's whitened coordinates: the point,
    its deviance, the coordinates free there (not a variance at zero or a correlation at an
    end of its range), the Hessian over those with its upper Cholesky factor, and the held
    theta entries: on the boundary, saturated (with the sign of their parameter there)."""

    z: FloatArray
    value: float
    free: NDArray[np.bool_]
    hessian: FloatArray
    chol: FloatArray
    at_boundary: NDArray[np.bool_]
    saturated: NDArray[np.bool_]
    theta: FloatArray


def known_ends(
    data: ModelData,
    control: OptimizerControl,
    ends: Sequence[Estimates],
    scale: FloatArray,
    x0: FloatArray,
) -> list[KnownEnd]:
    """The converged ends among `ends` whose Hessian over the coordinates free there is finite
    and positive definite, in the coordinates z of x = x0 + scale z (H_z = scale' H_x scale;
    theta's part of scale is diagonal, so a theta entry is held in z as in x)."""
    out = []
    n_theta = data.n_theta
    for end in ends:
        if not end.summary.converged or end.hessian is None or not np.isfinite(end.deviance):
            continue
        at_boundary = data.theta_at_boundary(end.theta, control.boundary_tol)
        saturated = data.theta_saturated(end.theta, control.boundary_tol)
        free = np.ones(len(x0), dtype=bool)
        free[:n_theta] = ~(at_boundary | saturated)
        hessian = (scale.T @ end.hessian @ scale)[np.ix_(free, free)]
        if not np.isfinite(hessian).all():
            continue
        try:
            chol = cholesky_upper(hessian)
        except (np.linalg.LinAlgError, ValueError):
            continue
        z = whitened(scale, x0, end.theta, end.beta)
        out.append(
            KnownEnd(z, end.deviance, free, hessian, chol, at_boundary, saturated, end.theta)
        )
    return out


def in_known_basin(
    data: ModelData,
    ends: Sequence[KnownEnd],
    z: FloatArray,
    theta: FloatArray,
    value: float,
    grad: FloatArray,
    control: OptimizerControl,
) -> bool:
    """Whether a search's point z (theta there, deviance value, gradient grad) lies in the
    basin of one of `ends`: its theta entries held at that end are nearly so at z too (a
    variance below snap_tol, a correlation within it of the same end of its range: where
    running_to_end stops a search to try the ends), and over the free coordinates that end's
    quadratic model predicts an excess q = d' H d / 2 (d = z - the end) of at most
    control.basin_merge_decrement, with the point's deviance excess and gradient matching
    the model's (q and H d) to within control.basin_merge_tol, relative (the gradient in the
    H^{-1} norm, where ||H d||^2 = 2 q), each plus control.decrement_tol: the search would go
    on to that end. Where the end holds entries, the excess is only bounded below so (a point
    lower than the model says may be on its way elsewhere) and above by
    basin_merge_decrement (the held entries add what they still lose on the way to their
    ends)."""
    tol = control.basin_merge_tol
    at_boundary, saturated = None, None
    for end in ends:
        held = bool(end.at_boundary.any() or end.saturated.any())
        if held:
            if at_boundary is None or saturated is None:
                at_boundary = data.theta_at_boundary(theta, control.snap_tol)
                saturated = data.theta_saturated(theta, control.snap_tol)
            same_end = np.sign(theta) == np.sign(end.theta)
            if not (
                at_boundary[end.at_boundary].all() and (saturated & same_end)[end.saturated].all()
            ):
                continue
        step = (z - end.z)[end.free]
        predicted = end.hessian @ step
        q = 0.5 * float(step @ predicted)
        if not q <= control.basin_merge_decrement:
            continue
        miss = grad[end.free] - predicted
        gradient_error = float(miss @ cho_solve_upper(end.chol, miss))
        excess = value - end.value
        # The held entries, not yet at their ends, add to the excess what they lose on the
        # way there (an SD of 0.01 or a correlation 0.01 from its end: 1e-3 and more where
        # q is 1e-5): there the excess is bounded above by basin_merge_decrement only.
        high = control.basin_merge_decrement if held else q + tol * q + control.decrement_tol
        if (
            gradient_error <= tol**2 * 2.0 * q + control.decrement_tol
            and q - tol * q - control.decrement_tol <= excess <= high
        ):
            return True
    return False


def minimize_deviance(
    data: ModelData,
    deviance_and_gradient: DevianceAndGradient,
    control: OptimizerControl,
    counters: object,
    objective_name: str,
    start: StartPoint,
    fixed_information: Callable[[FloatArray, FloatArray], FloatArray] | None = None,
    exact_hessian: Callable[[FloatArray, FloatArray], FloatArray] | None = None,
    newton_from_start: bool = False,
    ends: Sequence[Estimates] = (),
) -> Estimates:
    """Minimize deviance(theta, beta) from `start` (start_point: lme4's start, Lambda = I and
    beta from the GLM, or an earlier fit's estimates). data gives the structure only (theta's
    layout and bounds), so a Dask fit passes a model without rows.

    The search runs in whitened coordinates z, (theta, beta) = start + M z with M block
    diagonal: theta scaled by the curvature of the deviance along each theta at the start
    (the exact Hessian's diagonal when exact_hessian is given, else forward differences of
    the gradient), beta by the inverse Cholesky factor of half the exact Hessian in beta, or
    of fixed_information(theta, beta) (the same up to the change of W with beta), else of
    start.info_factor. theta is unconstrained: the
    deviance does not change when a column of Lambda_t changes sign, so the diagonal of each
    Lambda_t is made non-negative afterwards (lme4's bounds, without a bound-constrained search).

    newton_from_start (where exact_hessian costs about an evaluation): Newton's method on
    the exact Hessian from the start (newton_search), whose first Hessian is the start's own;
    when it ends at a verified optimum off the boundary, that is the estimate, else the
    quasi-Newton search and the polish go on from where it stopped.

    ends (earlier searches' estimates, better_of_basins): the quasi-Newton search stops where
    it enters one's basin (in_known_basin), and the estimates returned are that point's, not
    converged, message IN_KNOWN_BASIN.
    """
    started = time.perf_counter()
    n_theta = data.n_theta
    theta0, beta0, info_factor = start.theta, start.beta, start.info_factor

    if not control.exact_hessian:
        exact_hessian = None
    start_hessian = None
    if exact_hessian is not None:
        try:
            start_hessian = exact_hessian(theta0, beta0)
        except np.linalg.LinAlgError:
            start_hessian = None
        if start_hessian is not None and not np.isfinite(start_hessian).all():
            start_hessian = None
    if start_hessian is not None:
        # Half the exact Hessian in beta: the fixed effects' information at the start.
        try:
            info_factor = whitening_factor(0.5 * start_hessian[n_theta:, n_theta:], control)
        except (np.linalg.LinAlgError, ValueError):
            start_hessian = None
    if start_hessian is None and fixed_information is not None:
        try:
            info_factor = whitening_factor(fixed_information(theta0, beta0), control)
        except (np.linalg.LinAlgError, ValueError):
            pass
    if info_factor is start.info_factor:
        # The GLM's information (AGQ, and where the others failed): floored alike.
        info_factor = floored_factor(info_factor, control)
    x0 = np.concatenate([theta0, beta0])
    scale = np.eye(len(x0))
    scale[n_theta:, n_theta:] = solve_upper(info_factor, np.eye(len(beta0)))

    def natural(z: FloatArray) -> tuple[FloatArray, FloatArray]:
        x = x0 + scale @ z
        return x[:n_theta], x[n_theta:]

    # The optimizer's last point is evaluated again by the polish: remember a few points.
    cache: dict[bytes, tuple[float, FloatArray]] = {}
    # The lowest finite deviance evaluated, for a search that ends where it is not finite.
    lowest: list[tuple[float, FloatArray, FloatArray]] = []

    def fun(z: FloatArray) -> tuple[float, FloatArray]:
        key = np.asarray(z, dtype=np.float64).tobytes()
        if key in cache:
            value, grad = cache[key]
            return value, grad.copy()
        theta, beta = natural(z)
        value, g_theta, g_beta = deviance_or_none(deviance_and_gradient, theta, beta)
        if not np.isfinite(value):
            grad = np.zeros_like(z)
        else:
            grad = scale.T @ np.concatenate([g_theta, g_beta])
            if not lowest or value < lowest[0][0]:
                lowest[:] = [(value, np.array(z, dtype=np.float64), grad.copy())]
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))
        cache[key] = (value, grad)
        return value, grad.copy()

    z0 = np.zeros(len(x0))
    value0, grad0 = fun(z0)
    # The start carries an approximation only with control.approximate_theta_scale.
    approximate = start.theta_curvature
    for j in range(n_theta if control.theta_scale_step > 0 else 0):
        if start_hessian is not None:
            curvature = abs(float(start_hessian[j, j]))
        elif approximate is not None and 0.0 < approximate[j] < np.inf:
            curvature = float(approximate[j])
        else:
            e = np.zeros(len(x0))
            e[j] = control.theta_scale_step
            curvature = abs(fun(z0 + e)[1][j] - grad0[j]) / control.theta_scale_step
        # Clipped so that a flat or noisy start cannot make the scale absurd.
        scale[j, j] = float(np.clip(1.0 / np.sqrt(max(curvature, 1e-12)), 1e-2, 1e2))
    cache.clear()
    # The start in the rescaled coordinates: theta's scale was 1, so its gradient entries just
    # take the new scale (no second evaluation there).
    grad0[:n_theta] *= np.diag(scale)[:n_theta]
    cache[z0.tobytes()] = (value0, grad0)

    def hessian_at(z: FloatArray, grad: FloatArray) -> FloatArray:
        if exact_hessian is not None:
            try:
                # H_z = M' H_x M for x = x0 + M z.
                return scale.T @ exact_hessian(*natural(z)) @ scale
            except np.linalg.LinAlgError:
                # The mode's factor failed (its search from the last mode ran into a Lambda
                # too far out): the deviance's own evaluations, which count that as no
                # deviance, give the Hessian by differences.
                pass
        return _hessian(fun, z, grad, control)

    def curvature_at(z: FloatArray, grad: FloatArray, j: int) -> float:
        if exact_hessian is None:
            # hessian_at's (j, j) entry from its column j alone.
            return float(_hessian(fun, z, grad, control, columns=(j,))[j, j])
        return float(hessian_at(z, grad)[j, j])

    checks = EndChecks(data, fun, natural, scale, x0, hessian_at, curvature_at, control)
    basins = known_ends(data, control, ends, scale, x0) if control.basin_merge_tol > 0 else []

    def entered_basin(z: FloatArray, value: float, grad: FloatArray) -> bool:
        theta = natural(z)[0]
        # The ends are canonical: a point with a column of Lambda flipped is compared as
        # another point (no merge) rather than mapped.
        if not np.array_equal(canonical_theta(data, theta), theta):
            return False
        return in_known_basin(data, basins, z, theta, value, grad, control)

    flat_end_tried = False
    log_sds = data.theta_log_sds()
    log_sd_index = np.flatnonzero(log_sds)
    log_snap = log_tolerance(control.snap_tol)
    # Once per search: the pass stopped where a structured SD below snap_tol still falls
    # towards zero, or a correlation within snap_tol of an end of its range still runs out
    # towards it, the rest near its optimum (running_to_end), and range_end tried the ends.
    end_tried = False
    family_index = np.arange(n_theta)[data.family_slice]
    # Only these have ends to run to (every structure with a correlation has log SDs).
    has_ends = bool(log_sd_index.size or family_index.size)
    family_running = False

    def running_to_end(z: FloatArray, grad: FloatArray) -> bool:
        # Near zero SD the deviance in a log SD s goes as c e^{2s}, near an end of rho's
        # range as c e^{-|phi|} in its parameter: the quasi-Newton steps move s by about
        # 1/2, phi by about 1 an iteration (dozens of iterations to gtol); the end is tried
        # instead. theta's scale is positive, so the gradient's signs are theta's.
        nonlocal family_running
        if end_tried or not has_ends:
            return False
        theta = natural(z)[0]
        running = np.zeros(len(z), dtype=bool)
        running[log_sd_index] = (theta[log_sd_index] < log_snap) & (grad[log_sd_index] > 0.0)
        near = data.theta_saturated(theta, control.snap_tol)
        running[:n_theta] |= near & (np.sign(theta) * grad[:n_theta] < 0.0)
        # A family parameter on its way to its limit (the beta-binomial's log phi, as
        # c e^{-log phi}: about 1 an iteration) once within boundary_tol of it on its own
        # scale (overdispersion 1 / phi).
        family_near = data.family_near_limit(theta, control.boundary_tol)
        running[family_index] = family_near & (grad[family_index] < 0.0)
        if not running.any():
            return False
        family_running = bool(running[family_index].any())
        return float(np.abs(grad[~running]).max(initial=0.0)) <= control.end_gtol

    stopped_for = ""

    def stop_search(z: FloatArray, value: float, grad: FloatArray) -> bool:
        nonlocal stopped_for
        if basins and entered_basin(z, value, grad):
            stopped_for = "basin"
        elif running_to_end(z, grad):
            stopped_for = "end"
        else:
            return False
        return True

    def fall_at_flat_end(z: FloatArray, value: float) -> FloatArray | None:
        # taken_over_fall, then saturated_fall, then zero_sd_fall, where a flat direction
        # ends a pass: once per search.
        nonlocal flat_end_tried
        if flat_end_tried:
            return None
        flat_end_tried = True
        lower = taken_over_fall(checks, z, value)
        if lower is None:
            lower = saturated_fall(checks, z, value)
        return lower if lower is not None else zero_sd_fall(checks, z, value, log_sds)

    # In z the deviance Hessian is near 2 I in beta (whitened by half of it) and near 1 in
    # theta (scaled by its curvature): the search's first B^{-1}.
    inverse_hessian = np.diag(np.concatenate([np.ones(n_theta), np.full(len(beta0), 0.5)]))
    z = z0
    iterations = 0
    optimizer = "BFGS, whitened, + Newton polish"
    newton = None
    if newton_from_start and start_hessian is not None and control.newton_max_steps > 0:
        newton = newton_search(
            fun,
            z0,
            value0,
            grad0,
            scale.T @ start_hessian @ scale,
            hessian_at,
            control,
            min(control.newton_max_steps, control.max_iter),
        )
        z, iterations = newton.z, newton.steps
        optimizer = "Newton, whitened, exact Hessian"
        if newton.verified and not np.any(
            data.theta_at_boundary(canonical_theta(data, natural(z)[0]), control.boundary_tol)
        ):
            value, grad, hessian_z = newton.value, newton.grad, newton.hessian
            free = np.ones(len(z), dtype=bool)
            converged, polished, failure = True, newton.steps > 0, ""
            message = newton.message
            grad_norm = float(np.abs(grad).max(initial=0.0))
        else:
            optimizer = "Newton, then BFGS, whitened, + Newton polish"
            # The quasi-Newton search goes on with the last Hessian's inverse as its B^{-1}.
            try:
                chol = cholesky_upper(newton.hessian)
                inverse_hessian = cho_solve_upper(chol, np.eye(len(z)))
            except (np.linalg.LinAlgError, ValueError):
                pass
            newton = None
    # A quasi-Newton search still going after control.polar_after_iter iterations goes on with
    # each vector term's rows of Lambda in polar coordinates (numerics.polar), once: a nearly
    # singular covariance makes a valley curved in Lambda's entries and straight in those.
    polar = PolarRows.of(data) if control.polar_after_iter > 0 else None
    restart = None
    restarted = False
    unsaturated = False
    # zero_sd_fall may restart the search as many times as there are structured SDs: the
    # search from one released SD can end with another held at zero whose release lowers the
    # deviance further (at first order, its covariance with the released one's term).
    probes_left = int(np.count_nonzero(log_sds))
    saddle: SearchEnd | None = None
    saddle_taken_over = False
    saddle_entry: int | None = None
    unverified: SearchEnd | None = None
    ended = False
    passes = [control.gtol, control.fallback_gtol] if newton is None else []
    while passes:
        gtol = passes.pop(0)
        if restart is not None:
            z, restart = restart, None
        remaining = control.max_iter - iterations
        result = minimize_bfgs(
            fun,
            z,
            inverse_hessian,
            gtol=gtol,
            ftol=control.ftol,
            max_iter=remaining if polar is None else min(remaining, control.polar_after_iter),
            max_step=control.max_step,
            armijo=control.armijo,
            max_backtracks=control.max_backtracks,
            # Only where it can hold: the test costs each iteration a few array operations.
            stop=stop_search if basins or has_ends else None,
        )
        iterations += result.nit
        inverse_hessian = result.inverse_hessian
        end_stopped = result.message == STOPPED and stopped_for == "end"
        if end_stopped:
            end_tried = True
        if result.message == STOPPED and stopped_for == "basin":
            # Another search would reach that end again: no polish, no end checks.
            theta, beta = natural(result.x)
            summary = search_summary(
                optimizer,
                objective_name,
                control,
                counters,
                started,
                False,
                IN_KNOWN_BASIN,
                iterations,
            )
            return Estimates(canonical_theta(data, theta), beta, result.fun, None, summary)
        end = result.x
        if (
            polar is not None
            and not result.success
            and not end_stopped
            and result.nit >= control.polar_after_iter
        ):
            optimizer = "BFGS, then BFGS in polar coordinates, whitened, + Newton polish"
            search = SearchCoordinates(polar, result.x, theta0, np.diag(scale)[:n_theta], fun)
            result = minimize_bfgs(
                search.fun,
                np.zeros(len(z)),
                search.inverse_hessian(inverse_hessian),
                gtol=gtol,
                ftol=control.ftol,
                max_iter=control.max_iter - iterations,
                max_step=control.max_step,
                armijo=control.armijo,
                max_backtracks=control.max_backtracks,
            )
            iterations += result.nit
            end = search.to_z(result.x)
            polar = None
        if end_stopped:
            # Straight to the ends, which range_end and limit_end polish there: a polish here
            # would only step on towards them.
            other = range_end(checks, end, result.fun, RUNNING_TO_END, log_sds, control.snap_tol)
            if other is None and family_running:
                other = limit_end(checks, end, result.fun, RUNNING_TO_END, log_sds)
            if other is None:
                # The ends did not verify: the same pass goes on from here.
                z = end
                passes.insert(0, gtol)
                continue
            ended = True
            z, value, grad, hessian_z, free, polished, message = other
            converged, failure = True, ""
        else:
            z, value, grad, hessian_z, free, polished = newton_polish(
                data, fun, natural, scale, x0, end, control, hessian_at
            )
            converged = bool(result.success)
            message = result.message
            # The end point, not the search's stopping rule, decides: a line search that gave
            # up near the optimum is converged once the polish has verified it, and a
            # "success" is not unless the point passes the checks.
            failure = optimum_check(value, grad[free], hessian_z[np.ix_(free, free)], control)
        grad_norm = float(np.abs(grad[free]).max()) if free.any() else 0.0
        saturated = data.theta_saturated(natural(z)[0], control.boundary_tol) & free[:n_theta]
        if failure and saturated.any() and not ended:
            # A correlation run out towards an end of its range, the deviance still falling
            # in its parameter (ever more slowly): the end itself, before a search crawls
            # there (hundreds of iterations for a few 1e-5 of deviance).
            other = range_end(checks, z, value, message, log_sds)
            ended = other is not None
            if other is not None:
                z, value, grad, hessian_z, free, polished, message = other
                failure = ""
        if failure and not passes and saturated.any():
            # After the last pass, a correlation at the end of its range that the polish left
            # free (its last Hessian factored, the deviance flat in it to rounding) is held
            # there, as the polish holds it. (Earlier, the search goes on: the deviance may
            # still fall towards the end.)
            free[:n_theta] &= ~saturated
            failure = optimum_check(value, grad[free], hessian_z[np.ix_(free, free)], control)
        if not failure:
            # Saturated correlations (held by the polish) are no zero variances to check.
            checked = checks.checked(z, free)
            failure, held, inwards = held_check(
                grad, hessian_z, checked, n_theta, control, True, log_sds
            )
            if held is not None and not restarted:
                # The next pass starts off the saddle (one more if this was the last), or
                # with a log SD that falls towards the boundary at its floor (SD 0 in effect).
                restart = np.array(z, dtype=np.float64)
                target = (
                    np.log(control.boundary_tol) - LOG_SD_DROP if inwards else control.zero_start
                )
                restart[held] = (target - x0[held]) / scale[held, held]
                restarted = True
                passes = passes or [control.fallback_gtol]
                if (
                    held_check(grad, hessian_z, checked, n_theta, control, False, log_sds)[1]
                    is None
                ):
                    # A saddle only across the free coordinates (a zero SD whose column's
                    # other entries turn about it on a flat deviance: the direction bends,
                    # and the quadratic model may promise a fall that is not there): kept
                    # as the estimate unless the search from off it ends lower.
                    saddle = SearchEnd(z, value, grad, hessian_z, free, polished, message)
                    saddle_entry = None if log_sds[held] else int(held)
            elif held is None and iterations < control.max_iter:
                lower = None
                if not restarted:
                    fall = "a turned column of Lambda at the boundary hid a fall"
                    lower = turned_fall(checks, z, value)
                    if lower is None:
                        lower = taken_over_fall(checks, z, value)
                    restarted = lower is not None
                if lower is None and not unsaturated:
                    # Once per search, and apart from the restarts above: a saddle found
                    # after it still gets its own.
                    fall = "a correlation at the end of its range hid a fall"
                    lower = saturated_fall(checks, z, value)
                    unsaturated = lower is not None
                if lower is None and probes_left > 0:
                    fall = "a structured SD held at zero hid a fall"
                    lower = zero_sd_fall(checks, z, value, log_sds)
                    probes_left -= lower is not None
                if lower is not None:
                    # A zero SD whose column turned into the later ones hid a fall (seen
                    # only once the column is folded), or a correlation held at an end of
                    # its range one inwards: the search goes on from the lower point, this
                    # one kept unless it ends lower.
                    saddle = SearchEnd(z, value, grad, hessian_z, free, polished, message)
                    restart = lower
                    passes = passes or [control.fallback_gtol]
                    failure = fall
        elif not passes and not restarted:
            # The last pass ended unverified.
            checked = checks.checked(z, free)
            held_entries = np.flatnonzero(~checked[:n_theta])
            restart = None
            if held_entries.size:
                # A zero SD next to a flat direction (its column's other entries turning
                # about it, the free Hessian indefinite or nearly singular): the saddle
                # held_check weighs, but without a verified point. The search goes on from
                # off the boundary; the lower end is kept.
                restart = np.array(z, dtype=np.float64)
                restart[held_entries] = (control.zero_start - x0[held_entries]) / np.diag(scale)[
                    held_entries
                ]
                unverified = SearchEnd(z, value, grad, hessian_z, free, polished, failure)
            elif nearly_singular(hessian_z[np.ix_(free, free)], control.saddle_tol):
                lower, flat = flat_direction(fun, z, value, grad, hessian_z, free, control)
                if lower is not None:
                    restart = lower
                elif flat:
                    message += FLAT_END
                    restart = fall_at_flat_end(z, value)
                    if restart is None:
                        failure = ""
                    else:
                        # The flat end is kept unless the search from the lower point ends
                        # lower still.
                        saddle = SearchEnd(z, value, grad, hessian_z, free, polished, message)
            if restart is not None:
                restarted = True
                passes = [control.fallback_gtol]
        if saddle is not None and restart is None:
            if not value < saddle.value - control.decrement_tol:
                z, value, grad, hessian_z, free, polished, message = saddle
                grad_norm = float(np.abs(grad[free]).max()) if free.any() else 0.0
                failure = ""
                if not saddle_taken_over and iterations < control.max_iter:
                    # The search from off a saddle at a zero diagonal entry came back to it
                    # (the fall lies along the column's turn into a later one, a flat
                    # circle the search does not follow): that column taking over the later
                    # one's entries may show the fall at first order. Once per search.
                    saddle_taken_over = True
                    restart = taken_over_fall(checks, z, value)
                    fall = "a zero column of Lambda taking over a later one hid a fall"
                    if restart is None and saddle_entry is not None:
                        # Or the fall lies beyond the saddle's flat neighbourhood, which the
                        # restart at zero_start did not leave: once more from farther off.
                        j = saddle_entry
                        restart = np.array(z, dtype=np.float64)
                        restart[j] = (control.saddle_far_start - x0[j]) / scale[j, j]
                        fall = "a saddle at a zero diagonal entry of Lambda"
                    if restart is not None:
                        passes = [control.fallback_gtol]
                        failure = fall
                        saddle = SearchEnd(z, value, grad, hessian_z, free, polished, message)
            if restart is None:
                saddle = None
        if unverified is not None and restart is None:
            if failure and value > unverified.value:
                z, value, grad, hessian_z, free, polished, failure = unverified
                grad_norm = float(np.abs(grad[free]).max()) if free.any() else 0.0
            if failure and nearly_singular(hessian_z[np.ix_(free, free)], control.saddle_tol):
                # The search from off the boundary came back no lower: the direction of the
                # smallest eigenvalue is weighed as without a variance held (flat_direction).
                if flat_direction(fun, z, value, grad, hessian_z, free, control)[1]:
                    message += FLAT_END
                    restart = fall_at_flat_end(z, value)
                    if restart is None:
                        failure = ""
                    else:
                        passes = [control.fallback_gtol]
                        saddle = SearchEnd(z, value, grad, hessian_z, free, polished, message)
            unverified = None
        if not failure or not np.isfinite(value) or iterations >= control.max_iter:
            break
        # Not verified after the early hand-over (a variance on its way to zero, where the
        # deviance is flat): the search goes on to the tight tolerance, then polishes again.
    if np.isfinite(value) and iterations < control.max_iter:
        # A family parameter run far out towards its limit (the beta-binomial's phi without
        # overdispersion): the limit itself, where it is no worse. Else, unverified where a
        # column with its diagonal entry at zero turns with the later columns: the same
        # covariance written another way may verify.
        other = limit_end(checks, z, value, message, log_sds)
        if other is None and failure:
            other = rewritten_end(checks, z, value, message, log_sds)
        if other is not None:
            z, value, grad, hessian_z, free, polished, message = other
            failure = ""
        # A structured correlation run far out towards an end of its range: the end itself.
        other = None if ended else range_end(checks, z, value, message, log_sds)
        if other is not None:
            z, value, grad, hessian_z, free, polished, message = other
            failure = ""
        grad_norm = float(np.abs(grad[free]).max()) if free.any() else 0.0
    if not np.isfinite(value) and lowest:
        # The search ended where the deviance is not finite (the mode search failed there
        # after a warm start that had succeeded, far out on an SD running away): the lowest
        # finite deviance it evaluated is where it stopped, unconverged.
        z = lowest[0][1]
        value, grad = fun(z)
        if not np.isfinite(value):
            # Evaluated again from another warm start, the mode search can fail there too
            # (fuzz_dask_log 50 at the log link's bound): the value and gradient it had.
            value, grad = lowest[0][0], lowest[0][2].copy()
        hessian_z = hessian_at(z, grad)
        free = np.ones(len(z), dtype=bool)
        grad_norm = float(np.abs(grad).max())
        failure = (
            "the search ended where the deviance is not finite; the estimates are at the "
            "lowest finite deviance it evaluated"
        )
    if failure:
        converged, message = False, failure
    elif not converged:
        converged, message = True, message + " (optimum verified after the Newton polish)"

    theta, beta = natural(z)
    # A polish step cannot flip a sign (it is short), but keep the reported theta canonical.
    signs = np.sign(canonical_theta(data, theta)) * np.sign(theta)
    signs[signs == 0] = 1.0
    theta = canonical_theta(data, theta)
    # Back to natural units: x = x0 + M z, so H_x = M^{-T} H_z M^{-1}; sign flips of theta
    # entries flip the matching rows and columns.
    scale_inv = np.linalg.inv(scale)
    hessian = scale_inv.T @ hessian_z @ scale_inv
    flip = np.concatenate([signs, np.ones(len(beta))])
    hessian = hessian * np.outer(flip, flip)
    summary = search_summary(
        optimizer,
        objective_name,
        control,
        counters,
        started,
        converged,
        message,
        iterations,
        grad_norm,
        polished,
    )
    return Estimates(theta, beta, value, hessian, summary)


def search_summary(
    optimizer: str,
    objective_name: str,
    control: OptimizerControl,
    counters: object,
    started: float,
    converged: bool,
    message: str,
    iterations: int,
    grad_norm: float = float("nan"),
    polished: bool = False,
) -> OptSummary:
    """minimize_deviance's OptSummary: the counters' totals so far (evaluations, gradients,
    mode iterations and failures), the controls, the seconds since `started`; grad_norm the
    final gradient's largest free entry (nan where there is no final point, a search
    stopped early), polished whether the Newton polish stepped."""
    return OptSummary(
        optimizer=optimizer,
        objective=objective_name,
        converged=converged,
        message=message,
        iterations=iterations,
        evaluations=int(getattr(counters, "evaluations", 0)),
        gradient_evaluations=int(getattr(counters, "gradients", 0)),
        pirls_iterations=int(getattr(counters, "pirls_iterations", 0)),
        pirls_failures=int(getattr(counters, "pirls_failures", 0)),
        final_gradient_norm=grad_norm,
        newton_polish=polished,
        tolerances=control.tolerances(),
        seconds=time.perf_counter() - started,
    )


def search_with_basins(
    data: ModelData,
    deviance_and_gradient: DevianceAndGradient,
    control: OptimizerControl,
    counters: object,
    objective_name: str,
    start: StartPoint,
    reset: Callable[[], None],
    other_starts: bool,
    fixed_information: Callable[[FloatArray, FloatArray], FloatArray] | None = None,
    exact_hessian: Callable[[FloatArray, FloatArray], FloatArray] | None = None,
    newton_from_start: bool = False,
) -> Estimates:
    """minimize_deviance from `start` (the other arguments as there), then, with
    other_starts (a fit without a given start), better_of_basins' searches from other
    starts. reset() (the objective's: its mode searches start from u = 0) runs before every
    search, so that each search's path is its start's alone, not where earlier ones ended."""

    def search(point: StartPoint, ends: Sequence[Estimates] = ()) -> Estimates:
        reset()
        return minimize_deviance(
            data,
            deviance_and_gradient,
            control,
            counters,
            objective_name,
            point,
            fixed_information=fixed_information,
            exact_hessian=exact_hessian,
            newton_from_start=newton_from_start,
            ends=ends,
        )

    estimates = search(start)
    if not other_starts:
        return estimates
    return better_of_basins(
        data,
        control,
        estimates,
        lambda theta, beta, ends: search(start_point(data, control, theta, beta), ends),
    )


RUNNING_TO_END = "a structured SD or correlation, or a family parameter, running out to its end"
"""minimize_deviance's message where a pass stopped for running_to_end (before range_end's)."""

IN_KNOWN_BASIN = "stopped in the basin of an earlier search's end"
"""minimize_deviance's message where its search entered one of `ends`' basins."""

OTHER_BASIN = " (from another start: a structured covariance's other basin)"
"""Added to the search's message where better_of_basins took the end of a search from a
structure's other basin or face (cs, ar1)."""

MIRRORED_RESTART = " (from the singular end with a correlation's sign turned)"
"""Added to the search's message where better_of_basins took the end of a search from a
singular end's mirror (ModelData.theta_mirror_starts)."""

SINGULAR_RESTART = " (from lme4's start, after a singular end)"
"""Added to the search's message where better_of_basins took the end of the search from
lme4's start after a singular end (ModelData.theta_singular_restart)."""


LOCAL_OPTIMUM = "; a converged end above it, deviance {deviance:.6g}, is a local optimum only"
"""Added to the search's message where better_of_basins took an unconverged end lower than a
converged one."""


def better_of_basins(
    data: ModelData,
    control: OptimizerControl,
    estimates: Estimates,
    search: Callable[[FloatArray, FloatArray | None, Sequence[Estimates]], Estimates],
) -> Estimates:
    """estimates, or the lowest end of further searches (search(theta, beta, ends): from theta and
    estimates' beta, or the GLM's where beta is None, its mode searches from u = 0) where the
    deviance is known to have optima elsewhere: for structures with optima of other kinds (cs,
    ar1), from ModelData.theta_other_basin's start (an end with rho at an end of its range: cs's
    twin at the other end of rho with an SD at zero, ar1's optimum at the other end) and from
    each of ModelData.theta_face_starts (one term's SD near zero); with
    control.singular_restart, at a singular end of a vector term (unstructured, diag), from
    lme4's start (ModelData.theta_singular_restart) and, for an unstructured term, from the end
    with each column's correlations negated in turn (ModelData.theta_mirror_starts; where that
    search finds no lower end, once more from the GLM's fixed effects). An end is
    taken when lower by more than control.decrement_tol, also when its search did not converge:
    a converged end above it is then only a local optimum, and the fit reports the lower end as
    not converged (its message names the local optimum's deviance; LOCAL_OPTIMUM). Only with
    control.basin_starts. Each search is given the ends so far (minimize_deviance's `ends`: it
    stops where it would reach one of them again). The summary counts every search."""
    if not control.basin_starts or not np.isfinite(estimates.deviance):
        return estimates
    theta = estimates.theta
    other = data.theta_other_basin(theta, control.boundary_tol)
    starts = [] if other is None else [(other, OTHER_BASIN)]
    starts += [(s, OTHER_BASIN) for s in data.theta_face_starts(theta, control.boundary_tol)]
    if control.singular_restart:
        # An unconverged end's SDs have not settled: judged by boundary_tol alone, two searches
        # stopping on either side of it restart differently (fuzz_dask_log 143: the same end
        # in memory and on Dask, a third theta entry 0.8e-4 and 1.1e-4 internally; only
        # memory restarted, and its end was 0.007 higher in logLik).
        tol = control.boundary_tol
        if not estimates.summary.converged:
            tol = max(tol, control.unconverged_restart_tol)
        restart = data.theta_singular_restart(theta, tol)
        starts += [] if restart is None else [(restart, SINGULAR_RESTART)]
        mirrors = data.theta_mirror_starts(theta, tol)
        starts += [(m, MIRRORED_RESTART) for m in mirrors]
    if not starts:
        return estimates
    chosen, last, note = estimates, estimates, ""
    ends = [estimates]
    iterations, seconds = estimates.summary.iterations, estimates.summary.seconds
    for start, why in starts:
        last = search(start, estimates.beta, ends)
        better = last.summary.converged and last.deviance < chosen.deviance - control.decrement_tol
        if why == MIRRORED_RESTART and not better:
            # The end's fixed effects are conditional on random effects of the other sign
            # pattern (with a slope's correlation at +1 rather than -1 the intercept can
            # differ by 2), from where the search can go back to that end: again from the
            # GLM's fixed effects (None).
            iterations += last.summary.iterations
            seconds += last.summary.seconds
            last = search(start, None, ends)
        if last.summary.converged:
            ends.append(last)
        iterations += last.summary.iterations
        seconds += last.summary.seconds
        # An unconverged end counts too where it is lower: under the log link the likelihood
        # can rise from a converged zero-variance end towards the bound mu = 1 (fuzz_dask_log
        # 32, 44, 81: 1.1 to 3.1 in logLik), and that end is then no maximum.
        if np.isfinite(last.deviance) and last.deviance < chosen.deviance - control.decrement_tol:
            chosen, note = last, why
    if not chosen.summary.converged:
        local = [e.deviance for e in ends if e.summary.converged and e.deviance > chosen.deviance]
        if local:
            note += LOCAL_OPTIMUM.format(deviance=min(local))
    summary = dataclasses.replace(
        chosen.summary,
        message=chosen.summary.message + note,
        iterations=iterations,
        # The counters run on over the searches: the last one's are the totals.
        evaluations=last.summary.evaluations,
        gradient_evaluations=last.summary.gradient_evaluations,
        pirls_iterations=last.summary.pirls_iterations,
        pirls_failures=last.summary.pirls_failures,
        seconds=seconds,
    )
    return dataclasses.replace(chosen, summary=summary)


@dataclass(frozen=True)
class NewtonResult:
    """Where newton_search stopped: z, the deviance, gradient and Hessian (whitened) there,
    the steps taken, whether the point is a verified optimum, and why it stopped."""

    z: FloatArray
    value: float
    grad: FloatArray
    hessian: FloatArray
    steps: int
    verified: bool
    message: str


NEWTON_ARMIJO = 1e-4
"""newton_search accepts a step length t when the deviance falls by at least this fraction of
what the slope promises (t times the gradient along the step)."""

NEWTON_BACKTRACKS = 20
"""newton_search shortens a step at most this many times before it hands over."""


def noise_step(
    value: float,
    trial_value: float,
    trial_grad: FloatArray,
    chol: FloatArray,
    decrement: float,
    control: OptimizerControl,
) -> bool:
    """Whether a whole Newton step whose deviance did not fall enough is taken anyway: near
    the optimum the deviance is known only to the mode search's tolerance (about 1e-7 when the
    modes are far from zero), so a step is taken when its deviance rises by at most
    max(control.polish_noise_tol, the decrement g' H^{-1} g / 2 it expected to gain) and the
    decrement at the trial point, on the same Hessian, is under a quarter of that (Newton's
    quadratic convergence: the step went where the gradient says the optimum is)."""
    if trial_value > value + max(control.polish_noise_tol, decrement):
        return False
    trial_decrement = 0.5 * float(trial_grad @ cho_solve_upper(chol, trial_grad))
    return trial_decrement < 0.25 * decrement


def newton_search(
    fun: Callable[[FloatArray], tuple[float, FloatArray]],
    z: FloatArray,
    value: float,
    grad: FloatArray,
    hessian: FloatArray,
    hessian_at: Callable[[FloatArray, FloatArray], FloatArray],
    control: OptimizerControl,
    max_steps: int,
) -> NewtonResult:
    """Newton's method from z, whose deviance, gradient and Hessian are given (whitened units),
    with steps no longer than a radius and backtracking (the quadratic through the deviance,
    its slope and the trial, as the quasi-Newton line search) to sufficient decrease. The
    radius (step_length.StepRadius, as the quasi-Newton search's) starts at control.max_step
    and grows while cut steps are taken whole and as the quadratic model expects (a start far
    out on a flat deviance, where every Newton step is cut). A whole uncut step is also taken
    where the rounding of the deviance hides its decrease (noise_step).

    The Hessian is recomputed after each step (it costs less than an evaluation, and the
    standard errors come from the last one). The search ends at a point whose Newton step is
    shorter than control.newton_step_tol (not taken), or after a step shorter than
    control.polish_step_tol, verified when the point passes optimum_check. It also ends, not
    verified, when the Hessian is not positive definite (far from the optimum, or a variance
    going to zero), when no step length decreases the deviance, or after max_steps steps."""
    steps = 0
    radius = StepRadius(control.max_step)
    while steps < max_steps:
        try:
            chol = cholesky_upper(hessian)
        except (np.linalg.LinAlgError, ValueError):
            return NewtonResult(
                z, value, grad, hessian, steps, False, "the Hessian is not positive definite"
            )
        step = -cho_solve_upper(chol, grad)
        if float(np.abs(step).max(initial=0.0)) < control.newton_step_tol:
            failure = optimum_check(value, grad, hessian, control)
            message = failure or "Newton step below newton_step_tol (Newton's method)"
            return NewtonResult(z, value, grad, hessian, steps, not failure, message)
        step, slope = radius.cut(step, float(grad @ step))
        if not (np.isfinite(radius.length) and slope < 0.0):
            break
        decrement = -0.5 * slope
        t = 1.0
        for _ in range(NEWTON_BACKTRACKS):
            trial = z + t * step
            trial_value, trial_grad = fun(trial)
            if np.isfinite(trial_value) and (
                trial_value <= value + NEWTON_ARMIJO * t * slope
                or (
                    t == 1.0
                    and not radius.capped
                    and noise_step(value, trial_value, trial_grad, chol, decrement, control)
                )
            ):
                break
            t = backtracked(t, value, float(trial_value), slope)
        else:
            return NewtonResult(
                z, value, grad, hessian, steps, False, "the line search found no decrease"
            )
        steps += 1
        radius.taken(t == 1.0, trial_value - value)
        z, value, grad = trial, trial_value, trial_grad
        # The Hessian at every point reached, the last one's for the standard errors.
        hessian = hessian_at(z, grad)
        if float(np.abs(t * step).max()) < control.polish_step_tol:
            failure = optimum_check(value, grad, hessian, control)
            message = failure or "Newton decrement below decrement_tol (Newton's method)"
            return NewtonResult(z, value, grad, hessian, steps, not failure, message)
    return NewtonResult(
        z, value, grad, hessian, steps, False, f"no verified optimum after {steps} Newton steps"
    )


POLISH_CUTS = (0.1, 0.01)
"""newton_polish's shortened steps (fractions of the Newton step) after a full step that does
not lower the deviance while its Newton decrement is above decrement_tol."""


def newton_polish(
    data: ModelData,
    fun: Callable[[FloatArray], tuple[float, FloatArray]],
    natural: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
    scale: FloatArray,
    x0: FloatArray,
    z: FloatArray,
    control: OptimizerControl,
    hessian_at: Callable[[FloatArray, FloatArray], FloatArray],
) -> tuple[FloatArray, float, FloatArray, FloatArray, NDArray[np.bool_], bool]:
    """Newton steps from z on the Hessian of the exact gradient over the free coordinates (a
    variance at zero is held there: the Hessian is singular in that direction), theta first
    made canonical. Returns z, the deviance and gradient there, the Hessian (computed again
    after a step longer than control.polish_step_tol; hessian_at(z, gradient): exact, or
    finite differences of the gradient), the free coordinates and whether a step was taken.

    Where the Hessian of the free coordinates is not positive definite and a diagonal entry of
    Lambda lies within control.snap_tol of zero (a variance that the search left just above
    boundary_tol on a flat deviance), the point with that entry at zero is taken when its
    deviance is no worse (polish_noise_tol), the smallest such entry first (boundary_points),
    once: the entry is then held at the boundary like any other zero variance. Failing that, a
    structured covariance's correlation within boundary_tol of an end of its range
    (ModelData.theta_saturated) is held where it is. A full step that does not lower the
    deviance while the Newton decrement is above decrement_tol is cut to POLISH_CUTS of it,
    the first that lowers it taken."""
    n_theta = data.n_theta
    z = np.asarray(z, dtype=np.float64)
    theta, beta = natural(z)
    canonical = canonical_theta(data, theta)
    if not np.array_equal(canonical, theta):
        # A column of Lambda changed sign: back to z (the search's own point is kept
        # otherwise, whose deviance and gradient are at hand: no second mode search).
        theta = canonical
        z = whitened(scale, x0, theta, beta)
    free = np.ones(len(z), dtype=bool)
    free[:n_theta] = ~data.theta_at_boundary(theta, control.boundary_tol)
    value, grad = fun(z)
    hessian_z = hessian_at(z, grad)
    polished = False
    snapped = False
    steps = 0
    # Only Newton steps count against polish_max_steps: a variance snapped to zero or a
    # correlation held at its end leaves the other coordinates still to be polished.
    while steps < control.polish_max_steps:
        hf = hessian_z[np.ix_(free, free)]
        try:
            chol = cholesky_upper(hf)
        except (np.linalg.LinAlgError, ValueError):
            # Not positive definite: a variance on its way to zero where the deviance is flat
            # (its search stopped short of the boundary) is held at zero, once, if no worse.
            boundary = None
            if not snapped:
                points = boundary_points(data, natural, scale, x0, z, control)
                boundary = first_no_worse(fun, points, value + control.polish_noise_tol)
            snapped = True
            if boundary is None:
                # A structured covariance's correlation run out to the end of its range (its
                # parameter far out, the deviance flat in it): held there, as a zero variance.
                saturated = data.theta_saturated(natural(z)[0], control.boundary_tol)
                saturated &= free[:n_theta]
                if not saturated.any():
                    break
                free[:n_theta] &= ~saturated
                continue
            z, value, grad = boundary
            polished = True
            free[:n_theta] = ~data.theta_at_boundary(natural(z)[0], control.boundary_tol)
            hessian_z = hessian_at(z, grad)
            continue
        step = np.zeros_like(z)
        step[free] = -cho_solve_upper(chol, grad[free])
        steps += 1
        trial = z + step
        trial_value, trial_grad = fun(trial)
        # g' H^{-1} g: twice the Newton decrement here.
        expected = float(grad[free] @ -step[free])
        # Within polish_noise_tol the deviance cannot tell (the mode is found to a tolerance):
        # there the smaller Newton decrement on the same Hessian decides.
        closer = float(trial_grad[free] @ cho_solve_upper(chol, trial_grad[free])) < expected
        if not (
            trial_value < value or (trial_value <= value + control.polish_noise_tol and closer)
        ):
            if 0.5 * expected <= control.decrement_tol:
                break
            # A valley the quadratic model cannot see (the full step overshoots its bend).
            for t in POLISH_CUTS:
                trial = z + t * step
                trial_value, trial_grad = fun(trial)
                if trial_value < value:
                    break
            else:
                break
            step = t * step
        z, value, grad, polished = trial, trial_value, trial_grad, True
        # A short step leaves the Hessian (used for the standard errors) accurate enough.
        if float(np.abs(step).max()) < control.polish_step_tol:
            break
        hessian_z = hessian_at(z, grad)
    return z, value, grad, hessian_z, free, polished


def boundary_points(
    data: ModelData,
    natural: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
    scale: FloatArray,
    x0: FloatArray,
    z: FloatArray,
    control: OptimizerControl,
) -> list[FloatArray]:
    """z with one variance that is not at the boundary but within control.snap_tol of it (an
    SD) put on it (ModelData.theta_snaps: a diagonal entry of an unstructured Lambda to zero,
    a structure's log SD below log(boundary_tol)), one point per such entry, the smallest SD
    first (x = x0 + scale z, scale diagonal in theta)."""
    theta, _ = natural(z)
    points = []
    snaps = data.theta_snaps(theta, control.snap_tol, control.boundary_tol)
    for j, value, _ in sorted(snaps, key=lambda snap: snap[2]):
        point = np.array(z, dtype=np.float64)
        point[j] = (value - x0[j]) / scale[j, j]
        points.append(point)
    return points


def first_no_worse(
    fun: Callable[[FloatArray], tuple[float, FloatArray]], points: list[FloatArray], limit: float
) -> tuple[FloatArray, float, FloatArray] | None:
    """The first of `points` whose deviance is at most `limit`, with its deviance and gradient
    (the later points are not evaluated), or None."""
    for point in points:
        value, grad = fun(point)
        if value <= limit:
            return point, value, grad
    return None


def held_check(
    grad: FloatArray,
    hessian: FloatArray,
    free: NDArray[np.bool_],
    n_theta: int,
    control: OptimizerControl,
    net: bool = True,
    log_sds: NDArray[np.bool_] | None = None,
) -> tuple[str, int | None, bool]:
    """Why a point that passed optimum_check over its free parameters is no minimum along a
    theta entry held at the boundary (a variance at zero), and that entry; ("", None) when
    none. Moving entry j off the boundary by t while the free coordinates follow at their
    optimum, the deviance changes by about g t + h t^2 / 2 (whitened units), with g and h
    entry j's gradient and curvature net of the free coordinates' (g_j - H_jf H_ff^{-1} g_f,
    the Schur complement H_jj - H_jf H_ff^{-1} H_fj): it falls by more than
    control.decrement_tol where h < -control.saddle_tol (a saddle: at an exact zero the
    deviance is even in the entry, g_j = 0, and only the curvature shows it) or where h > 0
    and g^2 / (2 h) exceeds decrement_tol. The free coordinates count: with a variance at
    zero, the entries below it in its column of Lambda can turn freely (the deviance flat
    along them), and the saddle lies across the two (a covariance with nothing to covary).
    net=False: the entry alone (g_j, H_jj), the free coordinates held. The third value: the
    fall is towards the boundary, on an entry of `log_sds` (a structured covariance's log SD,
    whose boundary is at -inf; its covariances with the other terms are linear in the SD, so
    the deviance can fall all the way to SD 0, which the log reaches only in the limit)."""
    held = np.flatnonzero(~free[:n_theta])
    free_index = np.flatnonzero(free)
    factor = None
    if net and len(held) and len(free_index):
        try:
            factor = cholesky_upper(hessian[np.ix_(free_index, free_index)])
        except (np.linalg.LinAlgError, ValueError):
            factor = None  # not verified over the free coordinates: their coupling unknown
    for j in held:
        g, h = float(grad[j]), float(hessian[j, j])
        if factor is not None:
            coupling = hessian[free_index, j]
            solved = cho_solve_upper(factor, coupling)
            g -= float(solved @ grad[free_index])
            h -= float(coupling @ solved)
        if h < -control.saddle_tol or (h > 0.0 and g * g / (2.0 * h) > control.decrement_tol):
            if log_sds is not None and bool(log_sds[j]) and h > 0.0 and g > 0.0:
                return (
                    f"the deviance falls towards the boundary along theta[{j}] (gradient "
                    f"{g:.3g}, curvature {h:.3g}, whitened units)",
                    int(j),
                    True,
                )
            return (
                f"the deviance falls away from the boundary along theta[{j}], held there "
                f"(gradient {g:.3g}, curvature {h:.3g}, whitened units): a saddle point",
                int(j),
                False,
            )
    return "", None, False


def positive_definite(matrix: FloatArray) -> bool:
    """Whether a symmetric matrix has a Cholesky factor (True for an empty one)."""
    try:
        cholesky_upper(matrix)
    except (np.linalg.LinAlgError, ValueError):
        return False
    return True


def nearly_singular(matrix: FloatArray, tol: float) -> bool:
    """Whether a symmetric matrix's smallest eigenvalue is below `tol` (not positive
    definite, or nearly singular: a direction the quadratic model cannot be trusted along, as
    its Newton step along it is long); False for an empty one."""
    if not positive_definite(matrix):
        return True
    return bool(matrix.size) and float(np.linalg.eigvalsh(matrix)[0]) < tol


LOG_SD_DROP = 20.0
"""A log SD held near the boundary whose deviance still falls towards it (held_check) restarts
this far below log(boundary_tol): an SD of 2e-13 at the default, zero in every covariance."""

FLAT_END = " (a flat direction: no fall along it)"
"""Added to the search's message where a flat direction (flat_direction) ends it verified."""

FLAT_STEPS = (0.1, 0.3, 1.0, 3.0)
"""flat_direction's trial steps (whitened units, both signs) along the eigenvector of the
smallest eigenvalue."""


def turned_fall(checks: EndChecks, z: FloatArray, value: float) -> FloatArray | None:
    """At a verified point (whitened z, deviance value) where a column of an unstructured
    Lambda has its diagonal entry at the boundary but not the entries below it, a point
    lower by more than control.decrement_tol, canonical, or None.

    Such a column turns with the later columns on a flat deviance, and with its diagonal
    entry held no check sees a fall that needs the column turned out of the way first (a
    zero intercept SD whose slope entries a later column can take over). Folded
    (ModelData.theta_turned: the same covariance, the column zero), the deviance is even in
    the column's entries and its Hessian there shows the fall: trial steps along the
    eigenvector of its smallest eigenvalue over every coordinate (flat_direction), the
    folded point taken when its deviance is within polish_noise_tol of value."""
    control = checks.control
    theta, beta = checks.natural(z)
    turned = checks.data.theta_turned(theta, control.boundary_tol)
    if turned is None:
        return None
    point = whitened(checks.scale, checks.x0, turned, beta)
    point_value, point_grad = checks.fun(point)
    if not point_value <= value + control.polish_noise_tol:
        return None
    hessian = checks.hessian_at(point, point_grad)
    if positive_definite(hessian):
        return None
    every = np.ones(len(point), dtype=bool)
    lower, _ = flat_direction(checks.fun, point, value, point_grad, hessian, every, control)
    if lower is None:
        return None
    return checks.whitened(*checks.natural(lower))


def taken_over_fall(checks: EndChecks, z: FloatArray, value: float) -> FloatArray | None:
    """At an end point (whitened z, deviance value) where a column of an unstructured Lambda
    has its diagonal entry within control.snap_tol of zero before a column that is not zero:
    a point lower by more than control.decrement_tol, canonical, or None.

    The column, folded or put at zero, takes over a later column's entries
    (ModelData.theta_taken_over: the same covariance but for entries below snap_tol), and
    there its diagonal entry has a first-order effect: the covariance of its
    term with the later column's terms moves, which no move of the point itself can do
    without the covariance of the zero column's term growing first (Lambda's entries above
    the diagonal are zero). The fall a Newton step along that entry expects (from the
    Hessian's diagonal there) is tried when it exceeds decrement_tol; a zero-SD column whose
    term keeps its covariances with the later terms at the optimum shows none."""
    control = checks.control
    theta, beta = checks.natural(z)
    for candidate, j in checks.data.theta_taken_over(theta, control.snap_tol):
        point = whitened(checks.scale, checks.x0, candidate, beta)
        # The same covariance but for entries below snap_tol put at 0: the trial below must
        # beat value itself, so the point's own value is not checked.
        point_grad = checks.fun(point)[1]
        slope = float(point_grad[j])
        if not np.isfinite(slope):
            continue
        curvature = checks.curvature_at(point, point_grad, j)
        if not (curvature > 0.0 and 0.5 * slope * slope / curvature > control.decrement_tol):
            continue
        for cut in (1.0, *POLISH_CUTS):
            trial = point.copy()
            trial[j] -= cut * slope / curvature
            if checks.fun(trial)[0] < value - control.decrement_tol:
                return checks.whitened(*checks.natural(trial))
    return None


ZERO_SD_PROBES = (0.01, 0.1, 1.0)
"""zero_sd_fall's trial SDs for a structured covariance's log SD held at the boundary."""


def zero_sd_probes(spread: float) -> tuple[float, ...]:
    """ZERO_SD_PROBES, and for an SD that scales columns of largest |z| = spread other than 1
    also the SDs that move eta as much (probe / spread): a structured term keeps its own
    columns (no internal scaling), and on z = 3 time + 7 (spread 22) the fall from SD 0 lay
    between 0.001 and 0.01, where SD 0.01 was already too far."""
    if not (np.isfinite(spread) and spread > 0.0) or spread == 1.0:
        return ZERO_SD_PROBES
    return tuple(dict.fromkeys((*ZERO_SD_PROBES, *(p / spread for p in ZERO_SD_PROBES))))


def zero_sd_fall(
    checks: EndChecks, z: FloatArray, value: float, log_sds: NDArray[np.bool_]
) -> FloatArray | None:
    """At an end point (whitened z, deviance value) where a structured covariance's log SD is
    held at the boundary (its SD below control.boundary_tol): the lowest of the points with
    that SD at each of ZERO_SD_PROBES, one SD at a time (and, where a structure's correlation
    does not enter the model there, with it near each end of its range as well:
    ModelData.theta_correlation_trials), when lower than value by more than
    control.decrement_tol; else None.

    The deviance is even in an SD (its random effect's sign is free), so at SD 0 only its
    curvature in the SD says whether the deviance falls away from zero, which held_check
    weighs for an unstructured term's Lambda entries. In the log SD that curvature is
    invisible: the gradient there is the SD times the slope in it, about the curvature times
    SD^2, which vanishes as the SD goes to zero, and a search that ran the SD down past the
    optimum (a flat deviance in the log) stops there with its gradient below gtol. Trial SDs
    see the fall."""
    control = checks.control
    theta, beta = checks.natural(z)
    held = np.flatnonzero(log_sds & checks.data.theta_at_boundary(theta, control.boundary_tol))
    best, best_value = None, value - control.decrement_tol
    # A correlation that does not enter the model at the end (its SDs at zero) was left
    # wherever the search dropped it: the trial SDs go with it near each end of its range too
    # (ar1's fall from SD 0 may be there only: ar1:2285).
    bases = [theta]
    if len(held):
        bases += checks.data.theta_correlation_trials(theta, control.boundary_tol)
    spreads = checks.data.theta_sd_spreads()
    for base in bases:
        for j in held:
            for sd in zero_sd_probes(float(spreads[j])):
                trial_theta = base.copy()
                trial_theta[j] = np.log(sd)
                point = checks.whitened(trial_theta, beta)
                trial = checks.fun(point)[0]
                if trial < best_value:
                    best, best_value = point, trial
    return best


LIMIT_END = " (a family parameter at its limit)"
"""Added to the search's message where limit_end's point is the estimate."""


def limit_end(
    checks: EndChecks, z: FloatArray, value: float, message: str, log_sds: NDArray[np.bool_]
) -> SearchEnd | None:
    """At an end point (whitened z, deviance value) of a family with a parameter limit (the
    beta-binomial's log phi, the binomial at LOG_PHI_LIMIT): the point with the family's
    parameters at their limits, polished with them held there (newton_polish: at the limit
    they are on the boundary), when its deviance is within polish_noise_tol of value or below
    and it passes optimum_check and held_check; else None.

    Without overdispersion the deviance falls all the way to phi -> inf, ever more slowly:
    the search stops where its gradient in log phi is below gtol (phi of 1e7 to 1e13), up to
    decrement_tol short of the limit, with a phi that is where it stopped, not an estimate."""
    theta, beta = checks.natural(z)
    limit = checks.data.theta_at_limit(theta)
    if limit is None:
        return None
    return moved_end(checks, theta, limit, beta, value, message + LIMIT_END, log_sds)


RANGE_END = " (a structured correlation or SD put at the end of its range)"
"""Added to the search's message where range_end's point is the estimate."""

RANGE_END_GAP = 1e-12
"""range_end puts a saturated correlation this far from the end of its range (its parameter
far out: ar1's phi about 7e5, cs's about 28) and a structured SD near zero at this SD, where
the deviance is the end's to rounding."""


def range_end(
    checks: EndChecks,
    z: FloatArray,
    value: float,
    message: str,
    log_sds: NDArray[np.bool_],
    reach: float | None = None,
) -> SearchEnd | None:
    """At an end point (whitened z, deviance value) where a structured covariance's
    correlation lies within `reach` (default control.boundary_tol) of an end of its range, or
    a structured SD is below control.snap_tol: the point with those at RANGE_END_GAP from
    their ends
    (ModelData.theta_at_ends; where that is worse or fails the checks, with only the SDs
    below boundary_tol moved), polished with them held there, when its deviance is within
    polish_noise_tol of value or below and it passes optimum_check and held_check; else
    None.

    Towards the end of its range the deviance falls ever more slowly in the correlation's
    parameter (glmmTMB's phi: d rho / d phi vanishes), as the beta-binomial's in log phi and
    an SD's in its log: the search stops where that gradient is below gtol, up to about 4e-5
    short of the end in logLik (ar1 on 350 rows), with a correlation or SD that is where it
    stopped."""
    theta, beta = checks.natural(z)
    control = checks.control
    # The SDs below snap_tol with the rest, else those on the boundary only: an SD near zero
    # may have its optimum there, and a correlation's end should not wait for it.
    reach = control.boundary_tol if reach is None else reach
    candidates = [
        checks.data.theta_at_ends(theta, reach, near, RANGE_END_GAP)
        for near in (control.snap_tol, control.boundary_tol)
    ]
    # Then each SD below snap_tol alone, the smallest first: not every such SD is at zero (on
    # z = 3 time + 7, up to 22, an SD of 0.0095 moves eta by 0.2), and one that is not kept
    # the others from theirs (an SD left at 1.00002e-4, just above boundary_tol, unflagged).
    gap = float(np.log(RANGE_END_GAP))
    small = np.flatnonzero(log_sds & (theta < log_tolerance(control.snap_tol)) & (theta > gap))
    for j in small[np.argsort(theta[small], kind="stable")]:
        single = np.array(theta, dtype=np.float64)
        single[j] = gap
        candidates.append(single)
    tried: list[FloatArray] = []
    for moved in candidates:
        if any(np.array_equal(moved, other) for other in tried):
            continue
        tried.append(moved)
        end = moved_end(checks, theta, moved, beta, value, message + RANGE_END, log_sds)
        if end is not None:
            return end
    return None


def moved_end(
    checks: EndChecks,
    theta: FloatArray,
    moved: FloatArray,
    beta: FloatArray,
    value: float,
    message: str,
    log_sds: NDArray[np.bool_],
) -> SearchEnd | None:
    """polished_end from (moved, beta), an end's theta with some entries moved to their
    limits, when moved differs from theta and its deviance there is already within
    polish_noise_tol of value or below; else None."""
    if np.array_equal(moved, theta):
        return None
    start = checks.whitened(moved, beta)
    if not checks.fun(start)[0] <= value + checks.control.polish_noise_tol:
        return None
    return polished_end(checks, start, value, message, log_sds)


def polished_end(
    checks: EndChecks, start: FloatArray, value: float, message: str, log_sds: NDArray[np.bool_]
) -> SearchEnd | None:
    """newton_polish from `start` (whitened): its end when its deviance is within
    polish_noise_tol of value or below and it passes optimum_check and held_check (a verified
    optimum, no worse than the end it replaces); else None."""
    control = checks.control
    point, point_value, grad, hessian, free, _ = newton_polish(
        checks.data,
        checks.fun,
        checks.natural,
        checks.scale,
        checks.x0,
        start,
        control,
        checks.hessian_at,
    )
    if not point_value <= value + control.polish_noise_tol:
        return None
    if optimum_check(point_value, grad[free], hessian[np.ix_(free, free)], control):
        return None
    n_theta = checks.data.n_theta
    checked = checks.checked(point, free)
    if held_check(grad, hessian, checked, n_theta, control, True, log_sds)[1] is not None:
        return None
    return SearchEnd(point, point_value, grad, hessian, free, True, message)


REWRITTEN_END = " (the covariance written with a zero-variance column moved)"
"""Added to the search's message where rewritten_end verified the end."""


def rewritten_end(
    checks: EndChecks,
    z: FloatArray,
    value: float,
    message: str,
    log_sds: NDArray[np.bool_],
) -> SearchEnd | None:
    """At an end point (whitened z, deviance value) that failed the checks, where a column of
    an unstructured Lambda has its diagonal entry within control.snap_tol of zero: the same
    covariance written with that column folded into the later ones (ModelData.theta_turned)
    or a later column moved into it (theta_taken_over), each polished (newton_polish); the
    first that passes optimum_check and held_check at a deviance within polish_noise_tol of
    value, or None.

    With that diagonal entry held near zero the entries below it turn with the later columns
    on a circle along which the deviance is flat but for the entry's own small covariance
    term: the Hessian there can be indefinite by more than saddle_tol while no fall beyond
    decrement_tol exists along the circle. Where the covariance is singular, one of its
    rewritings holds the flat direction at the boundary and verifies; elsewhere none does and
    the verdict stands."""
    control = checks.control
    theta, beta = checks.natural(z)
    candidates = []
    turned = checks.data.theta_turned(theta, control.snap_tol)
    if turned is not None:
        candidates.append(turned)
    candidates.extend(point for point, _ in checks.data.theta_taken_over(theta, control.snap_tol))
    for candidate in candidates:
        start = checks.whitened(candidate, beta)
        end = polished_end(checks, start, value, message + REWRITTEN_END, log_sds)
        if end is not None:
            return end
    return None


def saturated_fall(checks: EndChecks, z: FloatArray, value: float) -> FloatArray | None:
    """At an end point (whitened z, deviance value) where a structured covariance's
    correlation lies within control.boundary_tol of an end of its range: the point with it
    control.saturation_start inside (ModelData.theta_unsaturated), when that is lower by more
    than control.decrement_tol, canonical; else None.

    Out there the deviance is flat in the correlation's parameter (glmmTMB's phi: d rho /
    d phi vanishes), so no gradient check sees a deviance that falls as rho itself moves
    inwards; the one evaluation does."""
    control = checks.control
    theta, beta = checks.natural(z)
    inside = checks.data.theta_unsaturated(theta, control.boundary_tol, control.saturation_start)
    if np.array_equal(inside, theta):
        return None
    point = checks.whitened(inside, beta)
    if checks.fun(point)[0] < value - control.decrement_tol:
        return point
    return None


def whitening_raise(diagonal: FloatArray, control: OptimizerControl) -> FloatArray:
    """What each diagonal entry of the fixed effects' information is raised by: up to
    control.whitening_floor times the largest, 0 for a column with information of its own."""
    floor = control.whitening_floor * float(np.max(diagonal, initial=0.0))
    return np.maximum(floor - diagonal, 0.0)


def whitening_factor(information: FloatArray, control: OptimizerControl) -> FloatArray:
    """Upper Cholesky factor of the fixed effects' information with its diagonal raised
    (whitening_raise; the search's beta is whitened by its inverse)."""
    return cholesky_upper(information + np.diag(whitening_raise(np.diag(information), control)))


def floored_factor(factor: FloatArray, control: OptimizerControl) -> FloatArray:
    """whitening_factor of the information R'R whose upper Cholesky factor R is given; R
    itself where no diagonal entry of R'R is raised."""
    if whitening_raise(np.sum(factor**2, axis=0), control).any():
        return whitening_factor(factor.T @ factor, control)
    return factor


def whitened(scale: FloatArray, x0: FloatArray, theta: FloatArray, beta: FloatArray) -> FloatArray:
    """The search's z of (theta, beta): x = x0 + scale z."""
    x = np.concatenate([theta, beta])
    return np.asarray(np.linalg.solve(scale, x - x0), dtype=np.float64)


def flat_direction(
    fun: Callable[[FloatArray], tuple[float, FloatArray]],
    z: FloatArray,
    value: float,
    grad: FloatArray,
    hessian: FloatArray,
    free: NDArray[np.bool_],
    control: OptimizerControl,
) -> tuple[FloatArray | None, bool]:
    """At a point z (deviance value, gradient, Hessian, whitened) whose free Hessian is not
    positive definite: trial steps of FLAT_STEPS along the eigenvector of its smallest
    eigenvalue. (the lowest trial, False) when one lies below value by more than
    control.decrement_tol (the search goes on from it); else (None, flat): flat when that
    eigenvalue is above -control.saddle_tol and the Newton decrement on the Hessian with its
    eigenvalues raised to saddle_tol is at most decrement_tol, a direction the deviance is
    flat along (to rounding: the mode is found to a tolerance) with no fall seen on it."""
    index = np.flatnonzero(free)
    block = hessian[np.ix_(index, index)]
    if not np.isfinite(block).all():
        # No direction to weigh (a mode search that failed at a neighbouring point of the
        # finite differences): the end stays unverified.
        return None, False
    eigenvalues, vectors = np.linalg.eigh(block)
    direction = np.zeros(len(z))
    direction[index] = vectors[:, 0]
    best, best_value = None, value - control.decrement_tol
    for step in FLAT_STEPS:
        for sign in (1.0, -1.0):
            point = z + sign * step * direction
            trial = fun(point)[0]
            if trial < best_value:
                best, best_value = point, trial
    if best is not None:
        return best, False
    along = vectors.T @ grad[index]
    decrement = 0.5 * float(np.sum(along**2 / np.maximum(eigenvalues, control.saddle_tol)))
    flat = bool(eigenvalues[0] >= -control.saddle_tol and decrement <= control.decrement_tol)
    return None, flat


def optimum_check(
    value: float, grad: FloatArray, hessian: FloatArray, control: OptimizerControl
) -> str:
    """Why (value, grad, hessian) of the free parameters is not a verified minimum, or "".

    Fails on a non-finite deviance or gradient, a Hessian that is not positive definite, and
    a Newton decrement g' H^{-1} g / 2 (the deviance decrease a Newton step expects) above
    control.decrement_tol."""
    if not np.isfinite(value):
        return f"the deviance is not finite ({value}) at the final point"
    if not np.isfinite(grad).all() or not np.isfinite(hessian).all():
        return "the gradient or Hessian is not finite at the final point"
    if len(grad) == 0:
        return ""
    try:
        chol = cholesky_upper(hessian)
    except (np.linalg.LinAlgError, ValueError):
        smallest = float(np.linalg.eigvalsh(hessian).min())
        return (
            "the Hessian of the free parameters is not positive definite at the final point "
            f"(smallest eigenvalue {smallest:.3g})"
        )
    decrement = 0.5 * float(grad @ cho_solve_upper(chol, grad))
    if not decrement <= control.decrement_tol:
        return (
            f"the gradient is not small relative to the curvature: Newton decrement "
            f"{decrement:.3g} > decrement_tol {control.decrement_tol:g} (deviance units)"
        )
    return ""


def canonical_theta(data: ModelData, theta: FloatArray) -> FloatArray:
    """theta in each covariance structure's canonical form (unstructured: every column of each
    Lambda_t whose diagonal entry is negative negated; the covariances are unchanged)."""
    return data.canonical_theta(theta)


def _hessian(
    fun: Callable[[FloatArray], tuple[float, FloatArray]],
    z: FloatArray,
    grad: FloatArray,
    control: OptimizerControl,
    columns: tuple[int, ...] | None = None,
) -> FloatArray:
    """Hessian of the deviance in the whitened coordinates z: finite differences of the exact
    gradient with the absolute step control.hessian_step (z is on a common scale); columns:
    only those differenced (gradient_hessian's)."""
    return gradient_hessian(
        lambda v: fun(v)[1],
        z,
        control.hessian_step,
        scheme=control.hessian_scheme,
        gradient_at_x=grad,
        columns=columns,
    )


class SearchCoordinates:
    """Coordinates p of the quasi-Newton search about a point z_at of minimize_deviance's
    whitened z: the theta entries in PolarRows' rows as polar coordinates (numerics.polar)
    relative to their values at z_at, whitened by the scales those theta entries had
    (PolarRows.scales); every other entry as z has it (p = z - z_at there).

    z's theta part is theta0 + theta_scale * z (minimize_deviance's diagonal scale), and
    fun(z) -> (deviance, gradient in z)."""

    def __init__(
        self,
        polar: PolarRows,
        z_at: FloatArray,
        theta0: FloatArray,
        theta_scale: FloatArray,
        fun: Callable[[FloatArray], tuple[float, FloatArray]],
    ) -> None:
        self.polar = polar
        self.z_at = np.array(z_at, dtype=np.float64)
        self.theta0 = theta0
        self.theta_scale = theta_scale
        self.z_fun = fun
        self.n_theta = len(theta0)
        self.y_at = polar.to_polar(theta0 + theta_scale * self.z_at[: self.n_theta])
        self.y_scale = polar.scales(self.y_at, theta_scale)

    def inverse_hessian(self, z_inverse: FloatArray) -> FloatArray:
        """The quasi-Newton B^{-1} of z at z_at carried to p = 0: T^{-1} B^{-1} T^{-T} with
        T = dz/dp there; B^{-1} as it is where T is singular (a row of Lambda at zero)."""
        t = np.eye(len(self.z_at))
        for idx, jac in zip(self.polar.rows, self.polar.jacobians(self.y_at), strict=True):
            t[np.ix_(idx, idx)] = jac * self.y_scale[idx][None, :] / self.theta_scale[idx][:, None]
        try:
            t_inv = np.linalg.inv(t)
        except np.linalg.LinAlgError:
            return np.array(z_inverse, dtype=np.float64)
        carried = t_inv @ z_inverse @ t_inv.T
        if not np.isfinite(carried).all():
            return np.array(z_inverse, dtype=np.float64)
        return 0.5 * (carried + carried.T)

    def to_z(self, p: FloatArray) -> FloatArray:
        """The z of the point p (p = 0: z_at itself, not its round trip through the polar
        coordinates, so that the search's first point is the evaluation at hand)."""
        z = self.z_at + p
        if p[: self.n_theta].any():
            theta = self.polar.to_theta(self.y_at + self.y_scale * p[: self.n_theta])
            z[: self.n_theta] = (theta - self.theta0) / self.theta_scale
        return z

    def fun(self, p: FloatArray) -> tuple[float, FloatArray]:
        """The deviance and its gradient in p."""
        value, grad = self.z_fun(self.to_z(p))
        if np.isfinite(value):
            y = self.y_at + self.y_scale * p[: self.n_theta]
            g_theta = grad[: self.n_theta] / self.theta_scale
            grad[: self.n_theta] = self.y_scale * self.polar.pull_back(y, g_theta)
        return value, grad
