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


SEPARATED = {
    "y": [0, 1, 0, 1, 1, 0, 0, 1],
    "x": [1, 2, 1.5, 2.5, 3, 1.2, 0.5, 4],
    "grp": [1, 1, 2, 2, 3, 3, 4, 4],
}


def test_fit_emits_its_warnings_with_their_classes_when_it_returns():
    import pandas as pd

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = g.fit("y ~ x + (1 | grp)", pd.DataFrame(SEPARATED))
    emitted = [(w.category, str(w.message)) for w in caught]
    assert emitted == [(w.category, str(w)) for w in result.warnings]
    assert g.SeparationWarning in {c for c, _ in emitted}
    # Reported at the caller's line, not inside the library.
    assert all(w.filename == __file__ for w in caught)


def test_users_can_filter_fit_warnings_by_class():
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("error", g.SeparationWarning)
        with pytest.raises(g.SeparationWarning):
            g.fit("y ~ x + (1 | grp)", pd.DataFrame(SEPARATED))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", g.GLMMWarning)
        result = g.fit("y ~ x + (1 | grp)", pd.DataFrame(SEPARATED))
    assert "separation" in result.summary()  # summary() prints result.warnings


def test_spreadsheet_never_raises_and_emits_nothing_on_a_separated_fit():
    rows = list(zip(SEPARATED["y"], SEPARATED["x"], SEPARATED["grp"], strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping the sheet would raise here
        for method in ("laplace", "agq", "vb"):
            table = g.glmm_binomial(
                [[r[0]] for r in rows],
                [[r[1]] for r in rows],
                [[r[2]] for r in rows],
                method=method,
            )
            assert isinstance(table, list)
            assert any(row[0] == "warning" for row in table) or method == "vb"


def _reference_cases():
    """Every reference model in tests/reference (lme4/glmmTMB fits) with the method and n_agq
    of its glmer fit. The VerbAgg models (1-2 s each) are left out to keep the suite fast;
    tests/test_api.py fits them and checks their convergence."""
    import json
    from pathlib import Path

    directory = Path(__file__).parent / "reference"
    cases = []
    for name in ("cbpp", "contraception_intercept", "contraception_slope"):
        ref = json.loads((directory / f"{name}.json").read_text())
        dataset = ref["dataset"].split("/")[-1].removesuffix(".csv")
        for key in ref["fits"]:
            if key == "glmer_laplace":
                cases.append((ref["formula"], dataset, "laplace", 1))
            elif key.startswith("glmer_agq") and name == "cbpp":
                cases.append((ref["formula"], dataset, "agq", int(key.removeprefix("glmer_agq"))))
    for record in json.loads((directory / "extra_models.json").read_text()):
        if record["dataset"] != "verbagg":
            cases.append((record["formula"], record["dataset"], "laplace", 1))
    return cases


@pytest.mark.parametrize(
    ("formula", "dataset", "method", "n_agq"), _reference_cases(), ids=lambda v: str(v)
)
def test_no_warning_on_reference_fits(formula, dataset, method, n_agq):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither a fit warning nor a numpy RuntimeWarning
        result = g.fit(formula, g.datasets.load(dataset), method=method, n_agq=n_agq)
        result.summary()
    assert result.warnings == ()
    assert result.converged


@pytest.mark.parametrize("scale", [1e8, 1e-6])
@pytest.mark.parametrize("method", ["laplace", "vb"])
def test_no_runtime_warning_from_covariates_in_extreme_units(method, scale):
    # Item 15: scipy's ill-conditioning warning (a RuntimeWarning) reached the CLI's stderr
    # from the vb start with x in units of 1e8; the system is now solved at unit diagonal.
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    x = rng.normal(size=60)
    y = (rng.random(60) < 1.0 / (1.0 + np.exp(-x))).astype(int)
    frame = pd.DataFrame({"y": y, "x": x * scale, "g": rng.integers(0, 5, 60)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", g.GLMMWarning)
        result = g.fit("y ~ x + (1 | g)", frame, method=method)
        result.summary()
