import pickle
import warnings

import pytest

import glmm_binomial as g
from glmm_binomial.diagnostics import FitWarning, SeparationWarning, as_fit_warning


def test_fit_warning_is_text_with_a_class():
    w = FitWarning("complete separation: x", SeparationWarning)
    assert w == "complete separation: x"
    assert w.category is SeparationWarning
    assert w.kind == "separation"
    assert pickle.loads(pickle.dumps(w)).category is SeparationWarning
    assert as_fit_warning(w) is w
    assert as_fit_warning("plain").kind == "warning"


def test_emit_uses_the_class():
    with pytest.warns(SeparationWarning, match="separation"):
        FitWarning("separation", SeparationWarning).emit()


def test_boundary_fit_records_a_boundary_warning():
    data = g.datasets.load("cbpp")
    # A second intercept term on a factor with no variation beyond the first is singular.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit(
            "cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | period)", data
        )
    kinds = {w.kind for w in result.warnings}
    assert result.singular == ("boundary" in kinds)
