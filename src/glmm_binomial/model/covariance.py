"""Covariance structures of a random-effect term: how theta parametrizes Lambda_t.

The random effects of term t have covariance Sigma_t = Lambda_t Lambda_t' (relative to the unit
scale of the binomial GLMM, so relative = absolute). A structure maps its slice of theta to the
k x k lower-triangular Lambda_t, gives theta's bounds and lme4's start, puts theta in canonical
form, and carries the chain rule from the deviance's gradient in the entries of Lambda_t to its
gradient in theta, so the exact gradients of every method work for any structure: the
factorization and the objectives see only Lambda_t, never theta.

``Unstructured`` is lme4's parametrization: theta holds the lower triangle of Lambda_t column by
column (k (k + 1) / 2 entries, the diagonal non-negative). A new structure is one subclass here
(and its spelling in the formula parser).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


class CovarianceStructure(ABC):
    """Lambda_t as a function of the term's theta (k x k, lower triangular)."""

    k: int
    name: str

    @property
    @abstractmethod
    def n_theta(self) -> int:
        """Number of parameters."""

    @property
    def linear(self) -> bool:
        """Whether Lambda is linear in theta (then Lambda(theta) - Lambda(theta0) =
        Lambda(theta - theta0))."""
        return False

    @abstractmethod
    def lambda_matrix(self, theta: FloatArray) -> FloatArray:
        """Lambda (k x k, lower triangular) at theta."""

    @abstractmethod
    def theta_gradient(self, lam: FloatArray, grad_lambda: FloatArray) -> FloatArray:
        """d f / d theta at the theta whose Lambda is `lam`, given d f / d Lambda[r, c]
        (k x k; only the lower triangle is used)."""

    @abstractmethod
    def lower_bounds(self) -> FloatArray:
        """Lower bounds of theta (-inf where unbounded)."""

    @abstractmethod
    def start(self) -> FloatArray:
        """The optimizer's start (lme4's: Lambda = I where the structure allows)."""

    def canonical(self, theta: FloatArray) -> FloatArray:
        """theta in canonical form (the same covariance; e.g. a non-negative diagonal)."""
        return np.array(theta, dtype=np.float64)


@dataclass(frozen=True)
class Unstructured(CovarianceStructure):
    """lme4's general positive semi-definite covariance: Lambda's lower triangle, column by
    column, is theta."""

    k: int
    name: str = "us"

    @property
    def n_theta(self) -> int:
        return self.k * (self.k + 1) // 2

    @property
    def linear(self) -> bool:
        return True

    @cached_property
    def _indices(self) -> tuple[IntArray, IntArray]:
        rows, cols = [], []
        for c in range(self.k):
            for r in range(c, self.k):
                rows.append(r)
                cols.append(c)
        return np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)

    def lower_indices(self) -> tuple[IntArray, IntArray]:
        """Row and column indices of theta's entries in Lambda, column-major lower triangle."""
        rows, cols = self._indices
        return rows.copy(), cols.copy()

    def lambda_matrix(self, theta: FloatArray) -> FloatArray:
        lam = np.zeros((self.k, self.k))
        rows, cols = self._indices
        lam[rows, cols] = theta
        return lam

    def theta_gradient(self, lam: FloatArray, grad_lambda: FloatArray) -> FloatArray:
        rows, cols = self._indices
        return np.asarray(grad_lambda[rows, cols], dtype=np.float64)

    def lower_bounds(self) -> FloatArray:
        rows, cols = self._indices
        return np.where(rows == cols, 0.0, -np.inf)

    def start(self) -> FloatArray:
        rows, cols = self._indices
        return np.where(rows == cols, 1.0, 0.0)

    def canonical(self, theta: FloatArray) -> FloatArray:
        """Every column of Lambda whose diagonal entry is negative negated: Lambda Lambda' is
        unchanged and the diagonal is non-negative."""
        rows, cols = self._indices
        values = np.array(theta, dtype=np.float64)
        for c in range(self.k):
            if values[(rows == c) & (cols == c)][0] < 0:
                values[cols == c] *= -1.0
        return values
