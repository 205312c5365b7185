"""ModelData: the frozen numerical description of one binomial GLMM.

    eta = X beta + sum_t Z_t[i, :] b_t[g_t(i), :] + offset,   b_t[j] = Lambda_t u_t[j],
    u ~ N(0, I),   successes_i ~ Binomial(trials_i, expit(eta_i)).

Each random-effect block t has a grouping factor (integer codes 0..n_levels-1), a dense n x k_t
matrix of its columns (no dense n x q matrix is ever formed) and a lower-triangular relative
covariance factor Lambda_t whose k_t (k_t + 1) / 2 lower-triangle entries, taken column by
column as lme4 does, are the block's slice of theta. Nothing here knows about pandas or text:
the front ends build ModelData and the numerical modules consume it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.family import BINOMIAL_LOGIT, Family, log_binomial_coefficient

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

LARGEST_VALUE = 1e100
"""Design values beyond this in absolute value overflow the fit's products (x' W x); the front
ends refuse them with a message to rescale."""


@dataclass(frozen=True)
class RandomBlock:
    """One random-effect term: (terms | group)."""

    group: str
    terms: tuple[str, ...]
    codes: IntArray
    levels: tuple[object, ...]
    z: FloatArray

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def k(self) -> int:
        return int(self.z.shape[1])

    @property
    def n_theta(self) -> int:
        return self.k * (self.k + 1) // 2

    def lower_indices(self) -> tuple[IntArray, IntArray]:
        """Row and column indices of theta's entries in Lambda, column-major lower triangle."""
        rows, cols = [], []
        for c in range(self.k):
            for r in range(c, self.k):
                rows.append(r)
                cols.append(c)
        return np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)

    def lambda_matrix(self, theta: FloatArray) -> FloatArray:
        """Lambda_t (k x k lower triangular) from this block's slice of theta."""
        lam = np.zeros((self.k, self.k))
        rows, cols = self.lower_indices()
        lam[rows, cols] = theta
        return lam


@dataclass(frozen=True)
class ModelData:
    """Response, fixed-effects design and random-effect blocks of one model, and its family
    (the distribution of a row given eta, and the link; glmm_binomial.family)."""

    successes: FloatArray
    trials: FloatArray
    x: FloatArray
    offset: FloatArray
    fixed_names: tuple[str, ...]
    blocks: tuple[RandomBlock, ...]
    log_binomial_constant: float = field(default=float("nan"))
    family: Family = BINOMIAL_LOGIT

    def __post_init__(self) -> None:
        if np.isnan(self.log_binomial_constant):
            object.__setattr__(
                self,
                "log_binomial_constant",
                log_binomial_coefficient(self.successes, self.trials),
            )

    @property
    def n_obs(self) -> int:
        return int(self.successes.shape[0])

    @property
    def n_fixed(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_theta(self) -> int:
        return sum(b.n_theta for b in self.blocks)

    def theta_slices(self) -> list[slice]:
        """Where each block's parameters sit in theta."""
        out, start = [], 0
        for b in self.blocks:
            out.append(slice(start, start + b.n_theta))
            start += b.n_theta
        return out

    def theta_lower_bounds(self) -> FloatArray:
        """0 for diagonal entries of each Lambda_t, -inf for off-diagonal ones (as lme4)."""
        lower: list[float] = []
        for b in self.blocks:
            rows, cols = b.lower_indices()
            lower.extend(np.where(rows == cols, 0.0, -np.inf))
        return np.array(lower, dtype=np.float64)

    def theta_start(self) -> FloatArray:
        """lme4's start: Lambda_t = I."""
        return np.where(np.isfinite(self.theta_lower_bounds()), 1.0, 0.0)

    def take(self, rows: IntArray) -> ModelData:
        """The same model with its rows in the order `rows` (a permutation)."""
        blocks = tuple(
            RandomBlock(
                b.group, b.terms, np.take(b.codes, rows), b.levels, np.take(b.z, rows, axis=0)
            )
            for b in self.blocks
        )
        return ModelData(
            successes=np.take(self.successes, rows),
            trials=np.take(self.trials, rows),
            x=np.take(self.x, rows, axis=0),
            offset=np.take(self.offset, rows),
            fixed_names=self.fixed_names,
            blocks=blocks,
            log_binomial_constant=self.log_binomial_constant,
            family=self.family,
        )

    def lambdas(self, theta: FloatArray) -> list[FloatArray]:
        return [
            b.lambda_matrix(theta[s]) for b, s in zip(self.blocks, self.theta_slices(), strict=True)
        ]
