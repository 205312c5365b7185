"""Penalized iteratively reweighted least squares: the conditional mode of u given (beta, theta).

The mode maximizes the penalized log-likelihood sum_i l_i(eta_i) - |u|^2 / 2, i.e. minimizes
the penalized deviance  -2 sum_i l_i(eta) + |u|^2  (binomial constants excluded), by Newton
steps  H delta = (Z Lambda)' l'(eta) - u  with step halving (``halving_step``, shared with the
Dask fit's joint search over partitions), H = (Z Lambda)' W (Z Lambda) + I and W the family's
observed weights -l''(eta) (for the logit link m mu (1 - mu)). A search starts from
``WarmStart``: the last converged mode, moved to first order to the new parameters where the
objective supplies that change.

Families whose row log-likelihood is not concave in eta (the cauchit link, the beta-binomial)
can have negative observed weights far from the data, where H need not be positive definite:
their Newton steps use the weights clipped at zero (H >= I, so every step is a descent
direction, and where no weight is negative, as near a mode fitted to data, it is Newton's own
step), and at the mode H is factored again with the observed weights, which the Laplace
approximation's log-determinant and the exact gradients need (glmmTMB's Hessian). A mode where
that H is not positive definite is no maximum: its penalized deviance is reported as inf.

A start where the likelihood is zero (the log link with some eta > 0) is replaced by u = 0; if
that is infeasible too, the mode search gives up at once with an infinite penalized deviance.
A step that would cross the log link's bound is first tried up to it (bounded_step); rows that
reach the bound are held on it while the rest converges (face_step), and the search ends there,
not converged (BOUND_GAP).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from glmm_binomial.family import Family
from glmm_binomial.model.data import ModelData
from glmm_binomial.numerics.factor import Factor, Structure
from glmm_binomial.numerics.step_length import backtracked

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class PirlsControl:
    """Stopping rules of the inner Newton iteration.

    tol: stop when the Newton decrement g' H^{-1} g (deviance units) falls below it. It is tight
        because the exact gradient of the Laplace deviance is only as accurate as the mode.
    stall_tol: a step that cannot lower the penalized deviance (rounding) still counts as
        converged when the decrement is below this.
    max_iter: cap on Newton steps per mode; max_halvings: cap on step reductions per step.
    max_predicted_step: the warm start moves the last mode to first order in the parameter
        change unless that moves some u by more than this (u is on the N(0, 1) scale).
    """

    tol: float = 1e-14
    stall_tol: float = 1e-8
    max_iter: int = 100
    max_halvings: int = 40
    max_predicted_step: float = 1.0


@dataclass
class Mode:
    """Conditional mode and everything evaluated there."""

    u1: FloatArray
    u2: FloatArray
    a1: FloatArray
    a2: FloatArray
    eta: FloatArray
    mu: FloatArray
    weights: FloatArray
    residual: FloatArray  # k - m mu
    factor: Factor
    penalized_deviance: float
    iterations: int
    converged: bool
    lambdas: list[FloatArray]
    # penalized_deviance + log det H at the exact mode, less their values here, to first order
    # in the last Newton step d (-g'd + grad_u(log det H) . d): the mode is found to a
    # decrement of PirlsControl.tol, which holds log det H only to about its square root.
    # 0 where it is not computed: a search that did not converge, and the general layout,
    # whose objective takes it from last_step (d) and last_decrement (g'd) with its gradient
    # (methods.laplace.mode_error).
    mode_error: float = 0.0
    last_step: tuple[FloatArray, FloatArray] | None = None
    last_decrement: float = 0.0


def penalized_deviance(
    eta: FloatArray,
    data: ModelData,
    u1: FloatArray,
    u2: FloatArray,
    scratch: tuple[FloatArray, FloatArray],
) -> tuple[float, FloatArray]:
    """-2 sum_i l_i(eta_i) + |u|^2 (binomial constants excluded), and mu at eta."""
    mu, loglik = data.family.mean_and_loglik(eta, data.successes, data.trials, scratch)
    return -2.0 * loglik + float((u1 * u1).sum() + (u2 * u2).sum()), mu


T = TypeVar("T")

SUFFICIENT_DECREASE = 1e-12
"""A trial step is accepted when its penalized deviance is at most the current one plus this
fraction of its magnitude (rounding of a converged search must not count as an increase)."""


def halving_step(
    pdev: float,
    decrement: float,
    trial: Callable[[float], tuple[float, T]],
    control: PirlsControl,
    first: float = 1.0,
) -> T | None:
    """Step halving along a Newton direction d with decrement g' H^{-1} g (slope of the penalized
    deviance -2 decrement at step 0): trial(step) evaluates the point u + step d and returns its
    penalized deviance and what the caller keeps of it, from step `first` (1: Newton's own; less
    where the link's bound cuts it, bounded_step). The first trial that does not raise the
    penalized deviance (SUFFICIENT_DECREASE) is returned; None when control.max_halvings trials
    found none (the caller decides whether that counts as converged, control.stall_tol)."""
    step = first
    for _ in range(control.max_halvings):
        new_pdev, point = trial(step)
        if new_pdev <= pdev + SUFFICIENT_DECREASE * abs(pdev):
            return point
        # The slope of the penalized deviance along the Newton direction is -2 * decrement.
        step = backtracked(step, pdev, new_pdev, -2.0 * decrement)
    return None


BOUND_GAP = 1e-8
"""A row within this of the link's bound that the Newton step pushes further is held there: the
penalized likelihood's maximum lies on the bound (a row with every trial a success pulls its eta
to 0, and has no failures to hold it back), with no stationary point. The search goes on along
the face where the held rows stay put (face_step) until its decrement is below PirlsControl.tol,
and ends there, not converged: the fit reports the link's active constraint
(methods.laplace.with_link_bound). Before, such a search took all PirlsControl.max_iter steps of
about ten trials each, ever closer to the bound, with the other groups' modes left where the
ever shorter steps stopped them."""

MAX_HELD_ROWS = 64
"""More rows than this at the bound at once end the mode search there (each held row costs a
solve with H)."""


BARRIER_FRACTION = 0.9
"""A row with failures has no likelihood at the log link's bound (its (m - k) log(1 - mu) runs
to -inf there): a first trial step takes it at most this fraction of its way to the bound (an
interior point method's fraction to the boundary), not to within BOUND_GAP of it, where its
weight (m - k) mu / (1 - mu)^2 (4e16 at half BOUND_GAP) left H with no positive definite
factor in rounding (metamorphic's log-link probes: a NaN log det in memory, on Dask a Schur
complement that would not factor)."""


def bounded_step(
    eta: FloatArray, deta: FloatArray, upper: float, barrier: NDArray[np.bool_] | None = None
) -> float:
    """The first trial step along a Newton direction that moves eta by deta, for a link whose
    eta must stay at or below `upper`: 1 where the whole step stays there, else the step that
    brings the first row to reach the bound to half BOUND_GAP below it (there the next step
    holds it, pushed_rows; shorter steps towards it would take one search step per factor they
    shorten the gap by), or a `barrier` row (one with failures) BARRIER_FRACTION of its way
    there. Rows already within BOUND_GAP are the held ones (their eta moves by rounding only)
    and are left to the step halving."""
    towards = (deta > 0.0) & (eta < upper - BOUND_GAP)
    if not towards.any():
        return 1.0
    room = upper - 0.5 * BOUND_GAP - eta[towards]
    if barrier is not None:
        room = np.where(barrier[towards], BARRIER_FRACTION * (upper - eta[towards]), room)
    reach = float(np.min(room / deta[towards]))
    return min(1.0, reach)


def barrier_rows(successes: FloatArray, trials: FloatArray) -> NDArray[np.bool_]:
    """The rows with failures (no likelihood at the log link's bound; bounded_step)."""
    return np.asarray(successes < trials)


START_GAP = 1e-2
"""below_bound_start's distance below the link's bound (a start only: the search then moves
every row's eta where the penalized deviance takes it, up to the bound)."""


def below_bound_start(
    structure: Structure, eta_fixed: FloatArray, a: FloatArray, upper: float
) -> FloatArray:
    """A start of the mode search (find_scalar_mode; find_mode along intercept_direction)
    where u = 0 leaves some row's eta = eta_fixed + a_i u_j past the link's bound `upper` (a
    fixed part past the log link's 0, which a negative random effect of the row's group
    brings back: the likelihood there is finite, and its mode unique, the penalized deviance
    being convex): each such group's u lowered to where its rows with a_i > 0 lie START_GAP
    below the bound, the other groups' u at 0 (n_levels x 1; a the rows' move per unit of u
    along the direction, Z Lambda v). Rows with a_i <= 0 are not moved (none along a random
    intercept, whose a_i = 1); the search then decides."""
    over = eta_fixed - (upper - START_GAP)
    moved = (a > 0.0) & (over > 0.0)
    u = np.zeros(structure.n1)
    np.minimum.at(u, structure.g1[moved], -over[moved] / a[moved])
    return u[:, None]


def intercept_direction(structure: Structure, lambda1: FloatArray) -> FloatArray:
    """The direction v in a level's u of the first part (k1) that moves the random intercept
    b = Lambda u alone (Lambda v = e_c, c its column of ones in Z), so every row's eta by the
    same amount (Z Lambda v = 1): below_bound_start's direction. Without such a column, or
    with its SD at zero, e_0 (the rows move by their first column of Z Lambda)."""
    k1 = structure.k1
    ones = np.flatnonzero((structure.z1 == 1.0).all(axis=0))
    unit = np.zeros(k1)
    if ones.size and lambda1[ones[0], ones[0]] != 0.0:
        unit[ones[0]] = 1.0
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = scipy.linalg.solve_triangular(lambda1, unit, lower=True)
        except np.linalg.LinAlgError:
            v = None
        # A later column's SD at zero (a correlation at +-1) ties the slope to the intercept.
        if v is not None and np.isfinite(v).all():
            return np.asarray(v, dtype=np.float64)
        unit[ones[0]] = 0.0
    unit[0] = 1.0
    return unit


def lowered_start(
    structure: Structure, eta_fixed: FloatArray, a1: FloatArray, lambda1: FloatArray, upper: float
) -> FloatArray:
    """find_mode's start where u = 0 has no likelihood: the first factor's effects (n1 x k1)
    lowered below the link's bound `upper` along its random intercept (below_bound_start along
    intercept_direction; a1 the first factor's Z Lambda)."""
    direction = intercept_direction(structure, lambda1)
    return below_bound_start(structure, eta_fixed, a1 @ direction, upper) * direction[None, :]


def step_bound(family: Family) -> float | None:
    """The bound on eta that the mode search steps up to and holds rows on (bounded_step,
    pushed_rows, face_step): the link's (the log link's 0), for the binomial and the
    beta-binomial alike; None for a link without one. (The beta-binomial once halved its steps
    instead: its likelihood was carried on flat past the bound at its value there, and the
    halving crawled along that flat stretch for all of a search's 100 steps.)"""
    upper = family.eta_upper
    return upper if np.isfinite(upper) else None


def pushed_rows(eta: FloatArray, deta: FloatArray, upper: float) -> IntArray:
    """The rows within BOUND_GAP of the link's bound that a Newton step moving eta by deta
    pushes further towards it."""
    return np.flatnonzero((deta > 0.0) & (eta >= upper - BOUND_GAP))


def face_step(
    structure: Structure,
    a1: FloatArray,
    a2: FloatArray,
    factor: Factor,
    d: tuple[FloatArray, FloatArray],
    deta: FloatArray,
    held: IntArray,
) -> tuple[FloatArray, FloatArray]:
    """Newton's step d = H^{-1} g projected on the face where the held rows' eta stays put:
    d - H^{-1} A' (A H^{-1} A')^{-1} A d, A the held rows of Z Lambda (A d = deta[held]); least
    squares where two held rows are the same constraint."""
    columns = [factor.solve(*structure.row_transpose(a1, a2, int(i))) for i in held]
    gram = np.array([structure.times_at(held, a1, a2, c1, c2) for c1, c2 in columns]).T
    weights = np.linalg.lstsq(gram, deta[held], rcond=None)[0]
    d1, d2 = d
    for weight, (c1, c2) in zip(weights, columns, strict=True):
        d1, d2 = d1 - weight * c1, d2 - weight * c2
    return d1, d2


def largest_move(*changes: FloatArray) -> float:
    """The largest |du| of a predicted change of the mode (the warm start's rule compares it with
    PirlsControl.max_predicted_step)."""
    return max((float(np.abs(c).max(initial=0.0)) for c in changes), default=0.0)


def prediction_accepted(largest: float, control: PirlsControl) -> bool:
    """Whether a first-order move of the last mode whose largest |du| is `largest` is used as the
    start (far from the last point the linear prediction can overshoot badly, as at the
    optimizer's trial steps: then the last mode itself is the start)."""
    return largest <= control.max_predicted_step


ModeChange = Callable[[Mode, FloatArray, FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
"""change(mode, theta, last_theta, d_beta): the first-order change (du1, du2) of the
conditional mode at `mode` (found at last_theta) when theta moves to `theta` and beta by d_beta
(the implicit function theorem on the mode equation; each objective solves it with its own
factor; theta and last_theta are given, not their difference, because Lambda need not be
linear in theta: model.data.ModelData.lambda_change)."""


@dataclass(frozen=True)
class WarmStart:
    """Where an objective's next mode search starts (a value: the objective replaces it).

    u1, u2: the last converged mode (zeros at first and after a failed search, which would
    poison the next start); last: (theta, beta, Mode) of that mode while it is kept, so that
    the same point again needs no search and the next start can be the mode moved to first
    order to the new parameters (one solve with the last factor; it usually saves a Newton
    step, and nearly all of them for the small steps of finite differences)."""

    u1: FloatArray
    u2: FloatArray
    last: tuple[FloatArray, FloatArray, Mode] | None = None

    @classmethod
    def zeros(cls, n1: int, k1: int, q2: int) -> WarmStart:
        """u = 0 (lme4's start of the first search)."""
        return cls(np.zeros((n1, k1)), np.zeros(q2))

    def reset(self) -> WarmStart:
        """u = 0 and nothing kept."""
        return WarmStart(np.zeros_like(self.u1), np.zeros_like(self.u2))

    def released(self) -> WarmStart:
        """The last mode's u without the rest of it (eta, mu, weights, factor: about 50 bytes per
        row), as a Dask partition keeps it between evaluations; the next start is then the last
        mode itself."""
        return WarmStart(self.u1, self.u2)

    def at(self, theta: FloatArray, beta: FloatArray) -> Mode | None:
        """The kept mode when (theta, beta) is its point (the start's information, then its
        gradient; the optimum, then its conditional modes), else None."""
        if (
            self.last is not None
            and same_values(theta, self.last[0])
            and same_values(beta, self.last[1])
        ):
            return self.last[2]
        return None

    def start(
        self,
        theta: FloatArray,
        beta: FloatArray,
        change: ModeChange | None,
        control: PirlsControl,
    ) -> tuple[FloatArray, FloatArray]:
        """The start of a search at (theta, beta): the kept mode moved by change(...) unless
        that moves some u by more than control.max_predicted_step; else (no mode kept, or no
        change given) the last mode's u."""
        if self.last is None or change is None:
            return self.u1, self.u2
        last_theta, last_beta, mode = self.last
        du1, du2 = change(mode, theta, last_theta, beta - last_beta)
        if not prediction_accepted(largest_move(du1, du2), control):
            return self.u1, self.u2
        return self.u1 + du1, self.u2 + du2

    def after(
        self, theta: FloatArray, beta: FloatArray, mode: Mode, keep_mode: bool = True
    ) -> WarmStart:
        """The warm start after a search at (theta, beta) that ended at `mode`: its u (and, with
        keep_mode, the mode itself) when it converged, else u = 0."""
        if not mode.converged:
            return self.reset()
        last = None
        if keep_mode:
            last = (np.array(theta, dtype=np.float64), np.array(beta, dtype=np.float64), mode)
        return WarmStart(mode.u1, mode.u2, last)


def same_values(a: FloatArray, b: FloatArray) -> bool:
    """Whether two float arrays hold the same values bit for bit (a cheap test, called at
    every evaluation: np.array_equal costs ten times as much on a few values; 0.0 and -0.0
    count as different, which only costs a search)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def find_mode(
    structure: Structure,
    data: ModelData,
    eta_fixed: FloatArray,
    lambdas: list[FloatArray],
    u1: FloatArray,
    u2: FloatArray,
    control: PirlsControl,
) -> Mode:
    """Newton iteration for u from the start (u1, u2); eta_fixed = X beta + offset."""
    if scalar_layout(structure) and data.family.log_concave:
        return find_scalar_mode(structure, data, eta_fixed, lambdas, u1, u2, control)
    a1, a2 = structure.z_lambda(data, lambdas)
    lambda1 = structure.first_lambda(lambdas)
    eta = eta_fixed + structure.times(a1, a2, u1, u2)
    scratch = (np.empty_like(eta), np.empty_like(eta))
    pdev, mu = penalized_deviance(eta, data, u1, u2, scratch)
    concave = data.family.log_concave
    upper = step_bound(data.family)
    barrier = None if upper is None else barrier_rows(data.successes, data.trials)
    if not np.isfinite(pdev):
        u1, u2 = np.zeros_like(u1), np.zeros_like(u2)
        eta = eta_fixed + structure.times(a1, a2, u1, u2)
        pdev, mu = penalized_deviance(eta, data, u1, u2, scratch)
        if not np.isfinite(pdev) and upper is not None:
            # As the scalar search: the first factor's effects lowered below the bound, along
            # its random intercept where it has one.
            u1 = lowered_start(structure, eta_fixed, a1, lambda1, upper)
            eta = eta_fixed + structure.times(a1, a2, u1, u2)
            pdev, mu = penalized_deviance(eta, data, u1, u2, scratch)
        if not np.isfinite(pdev):
            return _infeasible(structure, data, a1, a2, eta, mu, u1, u2, lambda1, lambdas)
    converged = False
    iteration = 0
    while True:
        w, residual = data.family.weights_and_residual(
            eta, mu, data.successes, data.trials, structure.unit_trials
        )
        # A family that is not log-concave (cauchit) has negative observed weights on some
        # rows: Newton's step on the observed H where it is positive definite (quadratic
        # convergence, the mode's own curvature), else on the weights clipped at zero (a
        # descent direction; linear convergence, which 100 steps did not always finish).
        observed = None
        if not concave and (w < 0.0).any():
            observed = observed_factor(structure, a1, a2, w, lambda1)
        w_newton = w if concave or observed is not None else np.maximum(w, 0.0)
        factor = (
            observed if observed is not None else structure.factorize(a1, a2, w_newton, lambda1)
        )
        g1, g2 = structure.transpose_times(a1, a2, residual)
        g1 = g1 - u1
        g2 = g2 - u2
        d1, d2 = factor.solve(g1, g2)
        at_bound, too_many, first = False, False, 1.0
        if upper is not None:
            deta = structure.times(a1, a2, d1, d2)
            held = pushed_rows(eta, deta, upper)
            at_bound = bool(held.size)
            too_many = held.size > MAX_HELD_ROWS
            newton, newton_deta = (d1, d2), deta
            while at_bound and not too_many:
                d1, d2 = face_step(structure, a1, a2, factor, newton, newton_deta, held)
                deta = structure.times(a1, a2, d1, d2)
                # The projection can push rows at the bound that Newton's step did not (a
                # step past the bound, which the halving then cut to nothing): held too.
                more = np.setdiff1d(pushed_rows(eta, deta, upper), held)
                if not more.size:
                    break
                held = np.union1d(held, more)
                too_many = held.size > MAX_HELD_ROWS
            first = bounded_step(eta, deta, upper, barrier)
        decrement = float((g1 * d1).sum() + (g2 * d2).sum())
        if too_many or decrement < control.tol or iteration >= control.max_iter:
            converged = decrement < control.tol and not at_bound
            break
        iteration += 1

        def trial(
            step: float,
            u1: FloatArray = u1,
            u2: FloatArray = u2,
            d1: FloatArray = d1,
            d2: FloatArray = d2,
        ) -> tuple[float, tuple[FloatArray, FloatArray, FloatArray, float, FloatArray]]:
            new_u1, new_u2 = u1 + step * d1, u2 + step * d2
            new_eta = eta_fixed + structure.times(a1, a2, new_u1, new_u2)
            new_pdev, new_mu = penalized_deviance(new_eta, data, new_u1, new_u2, scratch)
            return new_pdev, (new_u1, new_u2, new_eta, new_pdev, new_mu)

        accepted = halving_step(pdev, decrement, trial, control, first)
        if accepted is None:
            converged = decrement < control.stall_tol
            break
        u1, u2, eta, pdev, mu = accepted
    # The last step (not taken) where it is the converged search's Newton step on this factor.
    last_step = (d1, d2) if converged else None
    if w_newton is not w and (w < 0.0).any():
        last_step = None
        observed = observed_factor(structure, a1, a2, w, lambda1)
        if observed is None:
            pdev, converged = float("inf"), False
        else:
            factor = observed
    return Mode(
        u1,
        u2,
        a1,
        a2,
        eta,
        mu,
        w,
        residual,
        factor,
        pdev,
        iteration,
        converged,
        lambdas,
        last_step=last_step,
        last_decrement=decrement,
    )


def scalar_layout(structure: Structure) -> bool:
    """Whether the layout is one grouping factor with one column (a scalar random effect such
    as (1 | g)) and nothing else: H is then diagonal."""
    return structure.k1 == 1 and not structure.r2 and len(structure.levels) == 1


def find_scalar_mode(
    structure: Structure,
    data: ModelData,
    eta_fixed: FloatArray,
    lambdas: list[FloatArray],
    u1: FloatArray,
    u2: FloatArray,
    control: PirlsControl,
) -> Mode:
    """find_mode for a scalar random effect on one grouping factor (scalar_layout) and a
    log-concave family: the same Newton steps, halvings and stopping rules, with the diagonal
    H_jj = lambda^2 S_j + 1 (S_j = sum_i w_i z_i^2 over group j) inverted elementwise, in few
    array operations (small fits spend most of their time here)."""
    lambda1 = lambdas[structure.first]
    lam = float(lambda1[0, 0])
    a1 = structure.z1 * lam  # Z Lambda, n x 1 (the product z @ lambda gives these values)
    a = a1[:, 0]
    a2 = np.zeros((structure.n, 0))
    family, successes, trials = data.family, data.successes, data.trials
    level_values, level_sum = structure.level_values, structure.level_sum
    scratch = (np.empty_like(eta_fixed), np.empty_like(eta_fixed))
    upper = step_bound(family)
    barrier = None if upper is None else barrier_rows(successes, trials)

    def deviance_at(u: FloatArray) -> tuple[FloatArray, float, FloatArray]:
        eta = eta_fixed + a * level_values(u[:, 0])
        mu, loglik = family.mean_and_loglik(eta, successes, trials, scratch)
        return eta, -2.0 * loglik + float((u * u).sum()), mu

    eta, pdev, mu = deviance_at(u1)
    if not np.isfinite(pdev):
        u1 = np.zeros_like(u1)
        eta, pdev, mu = deviance_at(u1)
        if not np.isfinite(pdev) and upper is not None:
            u1 = below_bound_start(structure, eta_fixed, a, upper)
            eta, pdev, mu = deviance_at(u1)
        if not np.isfinite(pdev):
            return _infeasible(structure, data, a1, a2, eta, mu, u1, u2, lambda1, lambdas)
    converged = False
    iteration = 0
    while True:
        w, residual = family.weights_and_residual(eta, mu, successes, trials, structure.unit_trials)
        cross = structure.weighted_cross_products(w)
        root = np.sqrt(lam * cross * lam + 1.0)
        linv = 1.0 / root
        g1 = level_sum(a * residual)[:, None] - u1
        linv1 = linv[:, :, 0]
        d1 = linv1 * (linv1 * g1)
        at_bound, first = False, 1.0
        if upper is not None:
            deta = a * level_values(d1[:, 0])
            held = pushed_rows(eta, deta, upper)
            if held.size:
                # The face where the held rows' eta stays put: H is diagonal, so their
                # groups' u stay put (face_step's projection).
                at_bound = True
                d1 = d1.copy()
                d1[structure.g1[held]] = 0.0
                deta = a * level_values(d1[:, 0])
            first = bounded_step(eta, deta, upper, barrier)
        decrement = float((g1 * d1).sum() + 0.0)
        if decrement < control.tol or iteration >= control.max_iter:
            converged = decrement < control.tol and not at_bound
            break
        iteration += 1

        def trial(
            step: float, u1: FloatArray = u1, d1: FloatArray = d1
        ) -> tuple[float, tuple[FloatArray, FloatArray, float, FloatArray]]:
            new_u1 = u1 + step * d1
            new_eta, new_pdev, new_mu = deviance_at(new_u1)
            return new_pdev, (new_u1, new_eta, new_pdev, new_mu)

        accepted = halving_step(pdev, decrement, trial, control, first)
        if accepted is None:
            converged = decrement < control.stall_tol
            break
        u1, eta, pdev, mu = accepted
    logdet = 2.0 * float(np.log(root).sum())
    factor = Factor(structure, [linv], {}, [], None, logdet, cross)
    # d(log H_j)/du_j = sum_i a_i^3 w'_i / H_j over the level's rows (eta_i moves by a_i u_j).
    # Only at a converged mode, where the last step is small enough for first order to hold.
    mode_error = 0.0
    if converged:
        slope = family.weight_slope(eta, mu, w, successes, trials)
        gradient = level_sum(a * a * a * slope) * (linv1[:, 0] * linv1[:, 0])
        mode_error = float(gradient @ d1[:, 0]) - decrement
        if not np.isfinite(mode_error):
            mode_error = 0.0
    return Mode(
        u1,
        u2,
        a1,
        a2,
        eta,
        mu,
        w,
        residual,
        factor,
        pdev,
        iteration,
        converged,
        lambdas,
        mode_error,
    )


def observed_factor(
    structure: Structure, a1: FloatArray, a2: FloatArray, w: FloatArray, lambda1: FloatArray
) -> Factor | None:
    """The factor of H with the observed weights w (some negative), or None when that H is
    not positive definite."""
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = structure.factorize(a1, a2, w, lambda1)
    except (np.linalg.LinAlgError, ValueError):
        return None
    return factor if np.isfinite(factor.logdet) else None


def _infeasible(
    structure: Structure,
    data: ModelData,
    a1: FloatArray,
    a2: FloatArray,
    eta: FloatArray,
    mu: FloatArray,
    u1: FloatArray,
    u2: FloatArray,
    lambda1: FloatArray,
    lambdas: list[FloatArray],
) -> Mode:
    """A mode search that cannot start (zero likelihood at u = 0): infinite penalized
    deviance, not converged, with the Fisher weights' factor so that the Mode is complete."""
    w, residual = data.family.fisher_weights_and_residual(eta, mu, data.successes, data.trials)
    w = np.where(np.isfinite(w), np.maximum(w, 0.0), 0.0)
    factor = structure.factorize(a1, a2, w, lambda1)
    return Mode(u1, u2, a1, a2, eta, mu, w, residual, factor, float("inf"), 0, False, lambdas)
