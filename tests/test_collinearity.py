"""Variance inflation factors (glmm_binomial.results.collinearity) against car's vif()."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_reference, quiet_fit

import glmm_binomial as g

VIF = load_reference("vif")


@pytest.mark.parametrize("reference", VIF, ids=lambda r: r["formula"][0])
def test_matches_car(reference):
    """car's vif() of glmer fits (bobyqa, rhoend 1e-10): the same terms and Df, GVIF within
    5e-3 (relative; glmer's covariance comes from a finite-difference Hessian)."""
    result = quiet_fit(reference["formula"][0], "contraception")
    table = g.vif(result)
    assert list(table.index) == reference["terms"]
    assert list(table["Df"]) == reference["df"]
    np.testing.assert_allclose(table["GVIF"], reference["gvif"], rtol=5e-3)
    np.testing.assert_allclose(table["GVIF^(1/(2*Df))"], reference["scaled"], rtol=5e-3)


def test_one_column_terms_are_the_usual_vif():
    """With one column per term, GVIF is 1 / (1 - R^2) of the estimate on the others: the
    diagonal of the inverse correlation matrix."""
    result = quiet_fit("use ~ age + I(age^2) + urban + (1 | district)", "contraception")
    covariance = result.vcov.to_numpy()[1:, 1:]
    scale = np.sqrt(np.diag(covariance))
    inverse = np.linalg.inv(covariance / np.outer(scale, scale))
    np.testing.assert_allclose(g.vif(result)["GVIF"], np.diag(inverse), rtol=1e-10)


def test_refusals_and_warnings():
    with pytest.raises(ValueError, match="fewer than 2 fixed-effects terms"):
        g.vif(quiet_fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp"))
    with pytest.warns(g.GLMMWarning, match="No intercept"):
        table = g.vif(quiet_fit("use ~ 0 + livch + age + (1 | district)", "contraception"))
    assert list(table.index) == ["livch", "age"]
    with pytest.raises(ValueError, match="takes a GLMMResult"):
        g.vif(None)
