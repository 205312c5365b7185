"""Separation of the response by the fixed-effects design (no finite ML estimate).

A direction d != 0 with s_i x_i'd >= 0 for every signed row makes the binomial likelihood
increase without bound along d, so maximum likelihood has no finite estimate (Konis's linear
program). A row contributes +x_i if it has a success and -x_i if it has a failure (a binomial
row with both contributes both, and so can never be separated). Columns are scaled to max
|value| 1 and d kept in the unit box; a coefficient is affected when some separating direction
moves it. Complete separation: every signed row strictly positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

SEPARATION_TOL = 1e-7
"""Margins and objective values below this count as zero in the linear programs."""


@dataclass(frozen=True)
class Separation:
    """Coefficients with no finite maximum-likelihood estimate (empty if none)."""

    complete: bool
    coefficients: tuple[int, ...]


def detect_separation(x: FloatArray, successes: FloatArray, trials: FloatArray) -> Separation:
    """Separation of (successes, trials) by the columns of x (see the module docstring)."""
    scale = np.max(np.abs(x), axis=0)
    scale[scale == 0] = 1.0
    xs = x / scale
    signed = np.vstack([xs[successes > 0], -xs[successes < trials]])
    n, p = signed.shape
    bounds = [(-1.0, 1.0)] * p
    found = scipy.optimize.linprog(
        -np.sum(signed, axis=0), A_ub=-signed, b_ub=np.zeros(n), bounds=bounds, method="highs"
    )
    if found.status != 0 or not _separates(signed, np.asarray(found.x)):
        return Separation(False, ())
    affected = []
    for j in range(p):
        for sign in (1.0, -1.0):
            c = np.zeros(p)
            c[j] = -sign
            move = scipy.optimize.linprog(
                c, A_ub=-signed, b_ub=np.zeros(n), bounds=bounds, method="highs"
            )
            if (
                move.status == 0
                and -move.fun > SEPARATION_TOL
                and _separates(signed, np.asarray(move.x))
            ):
                affected.append(j)
                break
    # Complete separation: maximize t with s_i x_i'd >= t, t <= 1.
    c = np.zeros(p + 1)
    c[-1] = -1.0
    strict = scipy.optimize.linprog(
        c,
        A_ub=np.column_stack([-signed, np.ones(n)]),
        b_ub=np.zeros(n),
        bounds=[*bounds, (None, 1.0)],
        method="highs",
    )
    complete = bool(strict.status == 0 and -strict.fun > SEPARATION_TOL)
    return Separation(complete, tuple(affected))


def _separates(signed: FloatArray, d: FloatArray) -> bool:
    """d separates: some s_i x_i'd clearly positive and none clearly negative."""
    margins = signed @ d
    largest = float(np.max(margins)) if margins.size else 0.0
    return largest > SEPARATION_TOL and float(np.min(margins)) >= -SEPARATION_TOL * largest


def looks_divergent(x: FloatArray, beta: FloatArray, limit: float) -> bool:
    """Some coefficient moves the log-odds by more than `limit` across its column's range:
    the cheap screen before the linear programs (which are costly on very large data)."""
    spread = np.max(np.abs(x), axis=0)
    return bool(np.any(np.abs(beta) * spread > limit))
