"""R's C() and contrast functions in a formula (model.r_contrasts): the names and values of R's
model matrix (tests/reference/make_model_matrix_names.R's model_matrix_factors.json)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import model_matrix_table
from hypothesis import given, settings
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.model.design import build_model
from glmm_binomial.model.formula import parse_formula
from glmm_binomial.model.r_contrasts import CONTRAST_FUNCTIONS, contrast_matrix
from glmm_binomial.model.transforms import materialize, rebuild

FACTORS = json.loads(
    (Path(__file__).parent / "reference" / "model_matrix_factors.json").read_text()
)
CONTRASTS = FACTORS["contrasts"]


@pytest.mark.parametrize("reference", CONTRASTS, ids=lambda r: r["rhs"][0])
def test_c_codes_and_names_columns_as_r(reference: dict[str, list]) -> None:
    """Every way R writes C()'s contrast (a bare name, a contrast function, its name as text,
    a contrast matrix with its column names, how.many, the contr keyword), indicators where R
    codes the factor in full, factor()'s own level order and an ordered factor recoded: R's
    names and every row of its model matrix, and the same rows rebuilt for new data that hold
    some levels only."""
    fixed = parse_formula("y " + reference["rhs"][0] + " + (1 | g)").fixed
    table = model_matrix_table()
    values, names, spec = materialize(fixed, table, "test")
    rows = np.asarray(reference["rows"])
    assert names == reference["columns"]
    np.testing.assert_allclose(values, rows, rtol=1e-13, atol=1e-14)
    some = table.iloc[[5, 1, 40]].reset_index(drop=True)
    np.testing.assert_allclose(rebuild(spec, some, "test"), rows[[5, 1, 40]], atol=1e-14)


def test_c_in_a_fit_is_a_reparametrization() -> None:
    """y ~ C(f, sum) is y ~ f coded otherwise: the same logLik, and the sum-coded intercept the
    mean of the levels' linear predictors; predictions on new data the same."""
    data = g.datasets.load("cbpp").assign(failures=lambda d: d["size"] - d["incidence"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = g.fit("cbind(incidence, failures) ~ period + (1 | herd)", data)
        summed = g.fit("cbind(incidence, failures) ~ C(period, sum) + (1 | herd)", data)
    assert list(summed.fixef().index) == [
        "(Intercept)",
        "C(period, sum)1",
        "C(period, sum)2",
        "C(period, sum)3",
    ]
    assert summed.loglik == pytest.approx(plain.loglik, abs=1e-8)
    b = plain.fixef().to_numpy()
    cells = b[0] + np.array([0.0, *b[1:]])
    assert summed.fixef().iloc[0] == pytest.approx(cells.mean(), abs=1e-5)
    new = data.iloc[:7]
    np.testing.assert_allclose(
        summed.predict(new, re="exclude"), plain.predict(new, re="exclude"), atol=1e-5
    )


def test_contrast_functions_as_r_defines_them() -> None:
    helmert = contrast_matrix("helmert", ["a", "b", "c", "d"])
    np.testing.assert_array_equal(
        helmert.values, [[-1, -1, -1], [1, -1, -1], [0, 2, -1], [0, 0, 3]]
    )
    assert helmert.names is None
    treatment = CONTRAST_FUNCTIONS.treatment(["u", "v", "w"], base=2)
    np.testing.assert_array_equal(treatment.values, [[1, 0], [0, 0], [0, 1]])
    assert treatment.names == ("u", "w")
    assert CONTRAST_FUNCTIONS.SAS(3).names == ("1", "2")
    np.testing.assert_array_equal(CONTRAST_FUNCTIONS.sum(3).values, [[1, 0], [0, 1], [-1, -1]])
    full = CONTRAST_FUNCTIONS.sum(["a", "b"], contrasts=False)
    assert full.names == ("a", "b")


@pytest.mark.parametrize(
    ("term", "message"),
    [
        ('C(f, "contr.bogus")', "unknown contrast 'contr.bogus'"),
        ("C(m, contr.sum(3))", "3 rows for 4 levels"),
        ("C(f, sum, 5)", "how.many = 5 is more than the contrast's 2 columns"),
        ("C(f, sum, 0)", "how.many must be a whole number"),
        ("C(f, contr.treatment(3, base = 5))", "baseline group number 5 out of range 1..3"),
        ("C(f, contr.treatment(base = 2))", "give n, the number of levels"),
        ("C(f, contr.sum(1))", "n must be a whole number of levels above 1"),
        ("C(f, contr.sum(3, base = 2))", "contr.sum\\(\\) has no argument base"),
        ("C(f, 2)", "the contrast must be one of treatment, sum"),
        ("C(f, contr.poly(3, contrasts = FALSE))", "contrasts = FALSE is not supported"),
    ],
)
def test_c_refuses_what_r_refuses(term: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(f"y ~ {term} + (1 | g)", model_matrix_table())


def test_a_contrast_name_is_not_read_as_a_column() -> None:
    """C(f, sum) names R's contr.sum, not a column sum (there is none); a column of that name
    elsewhere in the formula is still the column."""
    table = model_matrix_table().assign(treatment=np.arange(48.0) / 48)
    model, _ = build_model("y ~ C(f, treatment) + treatment + (1 | g)", table)
    assert list(model.fixed_names) == [
        "(Intercept)",
        "C(f, treatment)b",
        "C(f, treatment)c",
        "treatment",
    ]
    np.testing.assert_allclose(model.x[:, 3], table["treatment"])
    frame = pd.DataFrame(model.x, columns=model.fixed_names)
    assert frame["C(f, treatment)b"].sum() == 16


def test_levels_rev_rank_droplevels_and_pi_as_r() -> None:
    """factor(f, levels = rev(levels(f))), rank() (ties at their average rank), rev(),
    droplevels() and pi: R's names and every row of its model matrix."""
    reference = FACTORS["levels"]
    # build_model reads the text columns as factors (as R's data.frame holds them).
    model, info = build_model("y " + reference["rhs"][0] + " + (1 | g)", model_matrix_table())
    assert list(model.fixed_names) == reference["columns"]
    assert not info.dropped_columns
    np.testing.assert_allclose(model.x, np.asarray(reference["rows"]), rtol=1e-13, atol=1e-14)
    with pytest.raises(ValueError, match="droplevels\\(\\) needs a factor"):
        build_model("y ~ droplevels(x1) + (1 | g)", model_matrix_table())


ARGUMENT_CONTRASTS = [
    {"f": "contr.sum", "m": pd.DataFrame({"lin": [-3.0, -1.0, 1.0, 3.0]}), "k": "contr.SAS"},
    {"f": "contr.helmert", "m": "poly"},
]


@pytest.mark.parametrize("index", [0, 1])
def test_contrasts_argument_codes_as_r(index: int) -> None:
    """glmer's contrasts argument (model.matrix's contrasts.arg): names, a matrix with named
    columns, interactions, indicators where R codes a factor in full (no intercept), and the
    same coding for new data (the spec keeps it)."""
    reference = FACTORS["argument"][index]
    table = model_matrix_table()
    contrasts = ARGUMENT_CONTRASTS[index]
    model, info = build_model("y " + reference["rhs"][0] + " + (1 | g)", table, contrasts=contrasts)
    rows = np.asarray(reference["rows"])
    assert list(model.fixed_names) == reference["columns"]
    assert not info.dropped_columns
    np.testing.assert_allclose(model.x, rows, rtol=1e-13, atol=1e-14)
    some = table.iloc[[7, 2, 30]].reset_index(drop=True)
    np.testing.assert_allclose(rebuild(info.fixed_spec, some, "test"), rows[[7, 2, 30]])
    assert contrasts["f"] in ("contr.sum", "contr.helmert")  # the caller's dict not changed


def test_contrasts_argument_in_a_fit() -> None:
    """fit(contrasts=) reparametrizes: the same logLik as treatment coding, R's names; an
    absent variable is ignored with R's warning; bad values are refused naming the argument."""
    data = g.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    plain = g.fit(formula, data)
    summed = g.fit(formula, data, contrasts={"period": "contr.sum"})
    assert list(summed.fixef().index) == ["(Intercept)", "period1", "period2", "period3"]
    assert summed.loglik == pytest.approx(plain.loglik, abs=1e-8)
    np.testing.assert_allclose(
        summed.predict(data.iloc[:5], re="exclude"),
        plain.predict(data.iloc[:5], re="exclude"),
        atol=1e-5,
    )
    with pytest.warns(UserWarning, match="variable 'zz' is not a factor term"):
        g.fit(formula, data, contrasts={"zz": "contr.sum"})
    with pytest.raises(ValueError, match="contrasts\\['period'\\]: unknown contrast"):
        g.fit(formula, data, contrasts={"period": "contr.bogus"})
    with pytest.raises(ValueError, match="3 rows for 4 levels"):
        g.fit(formula, data, contrasts={"period": np.eye(3)})
    with pytest.raises(ValueError, match="contrasts must be a dict"):
        g.fit(formula, data, contrasts="contr.sum")
    with pytest.raises(ValueError, match="contrasts\\['size'\\]: size is not a factor"):
        g.fit(
            "cbind(incidence, size - incidence) ~ size + (1 | herd)",
            data,
            contrasts={"size": "contr.sum"},
        )


def test_contrasts_argument_is_refused_on_dask() -> None:
    dd = pytest.importorskip("dask.dataframe")
    data = dd.from_pandas(g.datasets.load("cbpp"), npartitions=2)
    with pytest.raises(
        ValueError, match="contrasts= and subset= are not available for a Dask DataFrame"
    ):
        g.fit(
            "cbind(incidence, size - incidence) ~ period + (1 | herd)",
            data,
            contrasts={"period": "contr.sum"},
        )


@settings(max_examples=40, deadline=None)
@given(
    levels=st.integers(2, 5),
    kind=st.sampled_from(["treatment", "sum", "helmert", "poly", "SAS"]),
    form=st.sampled_from(["C", "argument"]),
    rhs=st.sampled_from(["{f}", "{f} + x", "{f} * x", "0 + {f}", "x + {f}:x", "{f}:k"]),
    seed=st.integers(0, 2**16),
)
def test_every_contrast_spans_the_treatment_coding(
    levels: int, kind: str, form: str, rhs: str, seed: int
) -> None:
    """Whatever the contrast, C() or contrasts=, with or without an intercept or interactions:
    the same column space as the default (treatment) coding and as many columns, so the fit
    is a reparametrization of it."""
    rng = np.random.default_rng(seed)
    n = 40
    table = pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "f": np.array(list("abcde"))[np.arange(n) % levels],
            "k": rng.choice(["lo", "hi"], n),
            "x": rng.normal(size=n),
            "g": np.arange(n) % 4,
        }
    )
    plain, _ = build_model("y ~ " + rhs.format(f="f") + " + (1 | g)", table)
    if form == "C":
        coded, _ = build_model("y ~ " + rhs.format(f=f"C(f, {kind})") + " + (1 | g)", table)
    else:
        coded, _ = build_model(
            "y ~ " + rhs.format(f="f") + " + (1 | g)", table, contrasts={"f": kind}
        )
    assert coded.x.shape == plain.x.shape
    both = np.linalg.matrix_rank(np.hstack([plain.x, coded.x]))
    assert both == np.linalg.matrix_rank(plain.x) == np.linalg.matrix_rank(coded.x)
