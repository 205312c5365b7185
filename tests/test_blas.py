import numpy as np
import pytest

import glmm_binomial as g
from glmm_binomial.numerics import blas


def test_thread_cap_is_applied_and_restored():
    libraries = blas._openblas_libraries()
    before = [getter() for _, getter in libraries]
    with blas.blas_threads(1):
        assert all(getter() == 1 for _, getter in libraries)
    assert [getter() for _, getter in libraries] == before


def test_fit_is_the_same_with_or_without_the_cap():
    cbpp = g.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    capped = g.fit(formula, cbpp)
    free = g.fit(formula, cbpp, blas_threads=None)
    np.testing.assert_allclose(capped.params, free.params, atol=1e-9)
    with pytest.raises(ValueError, match="blas_threads"):
        g.fit(formula, cbpp, blas_threads=0)


def test_the_libraries_are_looked_up_once_per_process():
    blas._controller.cache_clear()
    for _ in range(3):
        with blas.blas_threads(1):
            pass
    assert blas._controller.cache_info().misses == 1
