"""The variance parameters' factor of structured variational Bayes: exact gradients and the
LKJ prior in partial-correlation coordinates."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate
import scipy.special

from glmm_binomial.methods.variance_factor import (
    VarianceFactor,
    cholesky_from_partials,
    correlation_pairs,
    lkj_shapes,
    lower_inverse,
)
from glmm_binomial.model.data import ModelData, RandomBlock


@pytest.mark.parametrize("k", [1, 2, 3])
def test_variance_terms_gradient_is_exact(k):
    rng = np.random.default_rng(k)
    n_levels = 25
    block = RandomBlock(
        "g",
        tuple(f"z{c}" for c in range(k)),
        np.arange(50) % 25,
        tuple(range(n_levels)),
        rng.normal(size=(50, k)),
    )
    data = ModelData(np.zeros(50), np.ones(50), np.ones((50, 1)), np.zeros(50), ("a",), (block,))
    factor = VarianceFactor(data, 1.0, 2.0)
    phi = factor.start() + 0.2 * rng.normal(size=factor.size)
    root = rng.normal(size=(k, k))
    second = [n_levels * (root @ root.T + np.eye(k))]
    value, grad = factor.terms(phi, second)
    step = 1e-6
    for j in range(factor.size):
        up, down = phi.copy(), phi.copy()
        up[j] += step
        down[j] -= step
        numeric = (factor.terms(up, second)[0] - factor.terms(down, second)[0]) / (2 * step)
        assert grad[j] == pytest.approx(numeric, rel=1e-6, abs=1e-6), j
    # tr(E[Sigma^{-1}] A) / 2 is the part the precisions give.
    psi = factor.precisions(phi)[0]
    assert np.all(np.linalg.eigvalsh(psi) > 0)


def test_lkj_prior_in_partial_correlation_coordinates():
    """log p(y) = sum log(2^(1 - 2b) / B(b, b)) - 2 b log cosh y is LKJ(eta)'s density
    det(R)^(eta - 1) carried to y by the Jacobian of y -> R's off-diagonal entries, up to a
    constant (k = 3, eta = 2), and each factor integrates to 1."""
    k, eta = 3, 2.0
    shapes = lkj_shapes(k, eta)
    pairs = correlation_pairs(k)

    def log_p(y):
        return float(
            np.sum(
                (1 - 2 * shapes) * np.log(2)
                - scipy.special.betaln(shapes, shapes)
                - 2 * shapes * np.log(np.cosh(y))
            )
        )

    def offdiagonal(y):
        low = cholesky_from_partials(y[None, :], k)[0]
        r = low @ low.T
        return np.array([r[i, j] for i, j in pairs]), r

    differences = []
    for seed in range(4):
        y = np.random.default_rng(seed).normal(scale=0.7, size=len(pairs))
        _, r = offdiagonal(y)
        np.testing.assert_allclose(np.diag(r), 1.0)
        jacobian = np.empty((len(pairs), len(pairs)))
        for j in range(len(pairs)):
            step = np.zeros(len(pairs))
            step[j] = 1e-6
            jacobian[:, j] = (offdiagonal(y + step)[0] - offdiagonal(y - step)[0]) / 2e-6
        lkj = (eta - 1) * np.log(np.linalg.det(r)) + np.log(abs(np.linalg.det(jacobian)))
        differences.append(log_p(y) - lkj)
    np.testing.assert_allclose(differences, differences[0], atol=1e-7)
    for b in set(shapes):
        mass = scipy.integrate.quad(
            lambda y, b=b: 2 ** (1 - 2 * b) / scipy.special.beta(b, b) * np.cosh(y) ** (-2 * b),
            -50,
            50,
        )[0]
        assert mass == pytest.approx(1.0, abs=1e-9)


def test_lower_inverse():
    rng = np.random.default_rng(0)
    low = np.tril(rng.normal(size=(20, 4, 4))) + 3.0 * np.eye(4)
    np.testing.assert_allclose(lower_inverse(low), np.linalg.inv(low), atol=1e-14)
