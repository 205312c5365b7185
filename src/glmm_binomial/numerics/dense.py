"""Cholesky factorization and solves of small dense symmetric positive definite matrices
(the outer problem's Hessians and informations: tens of rows at most), straight through
LAPACK.

These are the routines scipy.linalg.cholesky, cho_solve and solve_triangular call (dpotrf,
dpotrs, dtrtrs), with the same numbers; scipy's wrappers spend 10-30 us a call validating and
batching their arguments, which on a small fit is most of the cost of the factorization itself.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import lapack

FloatArray = NDArray[np.float64]


def cholesky_upper(a: FloatArray) -> FloatArray:
    """The upper triangular R with R' R = a (a symmetric; only its upper triangle is read;
    the strict lower triangle of R is zero). ValueError when a has a non-finite entry,
    numpy.linalg.LinAlgError when a is not positive definite (as scipy.linalg.cholesky)."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("the matrix has non-finite entries")
    factor, info = lapack.dpotrf(a, lower=0, clean=1, overwrite_a=0)
    if info > 0:
        raise np.linalg.LinAlgError(f"the leading minor of order {info} is not positive definite")
    if info < 0:
        raise ValueError(f"dpotrf: illegal value in argument {-info}")
    return np.asarray(factor, dtype=np.float64)


def cho_solve_upper(factor: FloatArray, b: FloatArray) -> FloatArray:
    """x with R' R x = b for R = cholesky_upper(a) (b a vector or a matrix of columns)."""
    b = np.asarray(b, dtype=np.float64)
    if b.shape[0] == 0:
        return np.zeros(b.shape)
    x, info = lapack.dpotrs(factor, b, lower=0)
    if info != 0:
        raise ValueError(f"dpotrs: illegal value in argument {-info}")
    return np.asarray(x, dtype=np.float64)


def solve_upper(factor: FloatArray, b: FloatArray) -> FloatArray:
    """x with R x = b for an upper triangular R (b a vector or a matrix of columns);
    numpy.linalg.LinAlgError when R has a zero on its diagonal."""
    b = np.asarray(b, dtype=np.float64)
    if b.shape[0] == 0:
        return np.zeros(b.shape)
    x, info = lapack.dtrtrs(factor, b, lower=0)
    if info > 0:
        raise np.linalg.LinAlgError(f"singular triangular matrix: diagonal entry {info} is 0")
    if info < 0:
        raise ValueError(f"dtrtrs: illegal value in argument {-info}")
    return np.asarray(x, dtype=np.float64)
