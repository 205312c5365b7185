import numpy as np
import pandas as pd
import pytest

import glmm_binomial as g
from glmm_binomial.separation import detect_separation, looks_divergent

X = np.array([1, 2, 1.5, 2.5, 3, 1.2])
DESIGN = np.column_stack([np.ones(6), X])


def test_complete_separation():
    y = np.array([0, 1, 0, 1, 1, 0], dtype=float)  # y = 1 exactly when x >= 2
    found = detect_separation(DESIGN, y, np.ones(6))
    assert found.complete and found.coefficients == (0, 1)


def test_overlap_is_not_separated():
    y = np.array([0, 1, 1, 0, 1, 1], dtype=float)
    found = detect_separation(DESIGN, y, np.ones(6))
    assert not found.complete and found.coefficients == ()


def test_quasi_complete_separation_of_one_dummy():
    # All rows with the dummy set are successes; the others overlap.
    dummy = np.array([1, 1, 0, 0, 0, 0], dtype=float)
    design = np.column_stack([np.ones(6), dummy])
    y = np.array([1, 1, 0, 1, 0, 1], dtype=float)
    found = detect_separation(design, y, np.ones(6))
    assert not found.complete and found.coefficients == (1,)


def test_binomial_rows_with_both_outcomes_cannot_separate():
    successes = np.array([0, 1, 0, 2, 3, 0], dtype=float)
    trials = np.array([2, 2, 2, 3, 3, 2], dtype=float)  # row 2 has a success and a failure
    assert detect_separation(DESIGN, successes, trials).coefficients == ()
    assert detect_separation(DESIGN, successes, successes + (successes == 0)).complete


def test_divergence_screen():
    assert looks_divergent(DESIGN, np.array([0.1, 25.0]), limit=30.0)
    assert not looks_divergent(DESIGN, np.array([0.1, 2.0]), limit=30.0)


def test_fit_warns_of_separation():
    frame = pd.DataFrame(
        {
            "y": [0, 1, 0, 1, 1, 0, 0, 1],
            "x": [1, 2, 1.5, 2.5, 3, 1.2, 0.5, 4],
            "grp": [1, 1, 2, 2, 3, 3, 4, 4],
        }
    )
    result = g.fit("y ~ x + (1 | grp)", frame)
    assert any("separation" in w for w in result.warnings)
    assert not result.converged
    assert "separation" in result.summary()


def test_no_warning_on_ordinary_data():
    result = g.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", g.datasets.load("cbpp")
    )
    assert result.warnings == () and result.converged


@pytest.mark.parametrize("method", ["vb"])
def test_vb_is_finite_under_separation(method):
    frame = pd.DataFrame(
        {
            "y": [0, 1, 0, 1, 1, 0, 0, 1],
            "x": [1, 2, 1.5, 2.5, 3, 1.2, 0.5, 4],
            "grp": [1, 1, 2, 2, 3, 3, 4, 4],
        }
    )
    result = g.fit("y ~ x + (1 | grp)", frame, method=method)
    assert np.all(np.isfinite(result.params)) and np.all(np.abs(result.params) < 20)
