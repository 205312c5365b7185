"""Numerical building blocks shared by every method: the blocked Cholesky factor, penalized IRLS,
the outer optimizer, covariance parametrizations, finite-difference Hessians, BLAS thread
limits.
"""
