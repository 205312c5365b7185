"""Dense BFGS with a backtracking line search, for the outer optimization's few parameters.

The outer problem has few parameters (theta and beta: tens at most) and an exact gradient in
coordinates already whitened (numerics.optimize), where the Hessian is near a known diagonal.
A dense BFGS that starts from that diagonal takes near-Newton steps from the first iteration,
where L-BFGS-B starts from a steepest-descent step of unit length; and its bookkeeping is a
few small matrix products per iteration instead of scipy's wrapper (the whole of a small fit
is a few milliseconds). It also keeps scipy.optimize out of the fit's imports.

Each iteration: the direction d = -B^{-1} g, shortened to a radius (Euclidean, in the whitened
units: far from the optimum the quadratic model overshoots) that starts at `max_step` and
doubles while cut steps are taken whole and change f as the quadratic model expects
(step_length.StepRadius: a start many standard errors out, as on large data); step lengths
t = 1, then
the minimum of the quadratic through f(0), its slope and f(t), kept within [0.1, 0.5] of t,
until f(x + t d) <= f(x) + armijo * t * g'd (a non-finite value shrinks t tenfold); then the
BFGS update of B^{-1} when s'y > 0 (else B^{-1} is kept: the curvature condition failed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.numerics.step_length import StepRadius, backtracked

FloatArray = NDArray[np.float64]


STOPPED = "stopped by the caller's test"
"""minimize_bfgs's message where its `stop` test held."""


@dataclass(frozen=True)
class QuasiNewtonResult:
    """Where the search stopped: x, f(x), the gradient there, whether a stopping rule was met
        (success) and which (message), iterations (nit), evaluations (nfev) and the last B^{-1}
    (a search continued from x may start from it)."""

    x: FloatArray
    fun: float
    grad: FloatArray
    success: bool
    message: str
    nit: int
    nfev: int
    inverse_hessian: FloatArray


def minimize_bfgs(
    fun: Callable[[FloatArray], tuple[float, FloatArray]],
    x0: FloatArray,
    inverse_hessian: FloatArray,
    *,
    gtol: float,
    ftol: float,
    max_iter: int,
    max_step: float,
    armijo: float = 1e-4,
    max_backtracks: int = 40,
    stop: Callable[[FloatArray, float, FloatArray], bool] | None = None,
) -> QuasiNewtonResult:
    """Minimize fun (returning the value and its gradient) from x0 by BFGS (module docstring)
    with B^{-1} starting at `inverse_hessian`.

    Stops with success when max |g| <= gtol or when an accepted step lowers f by at most
    ftol * max(|f|, 1) (relative reduction); without success after max_iter iterations, when
    no step length among max_backtracks satisfies the sufficient decrease (the line search
    failed: rounding near the optimum, or a non-finite f everywhere along d), when f(x0)
    is not finite, or (message STOPPED) where stop(x, f, g) holds at a point reached."""
    x = np.array(x0, dtype=np.float64)
    value, grad = fun(x)
    nfev = 1
    if not np.isfinite(value):
        return QuasiNewtonResult(
            x, value, grad, False, "f is not finite at the start", 0, nfev, inverse_hessian
        )
    h_inv = np.array(inverse_hessian, dtype=np.float64)
    identity = np.eye(len(x))
    radius = StepRadius(max_step)
    for iteration in range(1, max_iter + 1):
        if stop is not None and stop(x, value, grad):
            return QuasiNewtonResult(x, value, grad, False, STOPPED, iteration - 1, nfev, h_inv)
        if float(np.abs(grad).max(initial=0.0)) <= gtol:
            return QuasiNewtonResult(
                x, value, grad, True, "gradient below gtol", iteration - 1, nfev, h_inv
            )
        direction = -(h_inv @ grad)
        slope = float(grad @ direction)
        if not slope < 0.0:
            # B^{-1} lost positive definiteness to rounding: restart from the given one.
            h_inv = np.array(inverse_hessian, dtype=np.float64)
            direction = -(h_inv @ grad)
            slope = float(grad @ direction)
        direction, slope = radius.cut(direction, slope)
        step = 1.0
        accepted = False
        for _ in range(max_backtracks):
            trial = x + step * direction
            trial_value, trial_grad = fun(trial)
            nfev += 1
            if np.isfinite(trial_value) and trial_value <= value + armijo * step * slope:
                accepted = True
                break
            step = backtracked(step, value, float(trial_value), slope)
        if not accepted:
            return QuasiNewtonResult(
                x, value, grad, False, "the line search found no decrease", iteration, nfev, h_inv
            )
        radius.taken(step == 1.0, trial_value - value)
        s = trial - x
        y = trial_grad - grad
        reduction = value - trial_value
        x, value, grad = trial, trial_value, trial_grad
        sy = float(s @ y)
        if sy > 1e-10 * float(np.linalg.norm(s) * np.linalg.norm(y)):
            rho = 1.0 / sy
            left = identity - rho * np.outer(s, y)
            h_inv = left @ h_inv @ left.T + rho * np.outer(s, s)
        if reduction <= ftol * max(abs(value), 1.0):
            return QuasiNewtonResult(
                x, value, grad, True, "relative reduction below ftol", iteration, nfev, h_inv
            )
    return QuasiNewtonResult(
        x, value, grad, False, f"iteration limit max_iter={max_iter} reached", max_iter, nfev, h_inv
    )
