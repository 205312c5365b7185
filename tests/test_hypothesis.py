"""hypothesis= of the marginal-effect functions (results/hypothesis.py): what each form
computes, its exact derivative and its errors. Against marginaleffects 0.11.0 in
test_slopes.py (the calls with hypothesis in tests/reference/slopes.json)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import quiet_fit
from hypothesis import given, settings
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.results.hypothesis import KEYWORD_ROWS_LIMIT, apply_hypothesis


@pytest.fixture(scope="module")
def fit() -> g.GLMMResult:
    return quiet_fit("use ~ age + urban + livch + (1 | district)", g.datasets.load("contraception"))


@pytest.fixture(scope="module")
def by_livch(fit: g.GLMMResult) -> pd.DataFrame:
    return g.avg_predictions(fit, by="livch")


def _se_of_weights(fit: g.GLMMResult, weights: np.ndarray) -> float:
    """The SE of sum(w_i b_i) from the predictions' own Jacobian (the mean of d mu / d beta
    over each livch group), built here independently."""
    data = g.datasets.load("contraception")
    mu = fit.fitted()
    x = np.asarray(fit.model.x, dtype=float)
    rows = mu * (1 - mu)
    codes = data["livch"].cat.codes.to_numpy()
    jacobian = np.vstack([(rows[codes == k, None] * x[codes == k]).mean(axis=0) for k in range(4)])
    combined = weights @ jacobian
    return float(np.sqrt(combined @ np.asarray(fit.vcov) @ combined))


def test_forms_agree(fit: g.GLMMResult, by_livch: pd.DataFrame) -> None:
    """An equation, its weights as a vector, as a matrix column and as a DataFrame column give
    the same test; a matrix's columns are separate tests."""
    b = by_livch["estimate"].to_numpy()
    equation = g.avg_predictions(fit, by="livch", hypothesis="b1 + 0.5 * b3 = b2 - 0.5*b4")
    weights = np.array([1.0, -1.0, 0.5, 0.5])
    vector = g.avg_predictions(fit, by="livch", hypothesis=weights)
    matrix = g.avg_predictions(
        fit, by="livch", hypothesis=np.column_stack([weights, [0.0, 0.0, 1.0, -1.0]])
    )
    frame = g.avg_predictions(
        fit, by="livch", hypothesis=pd.DataFrame({"mine": weights, "other": [0, 0, 1, -1]})
    )
    assert equation["term"].tolist() == ["b1+0.5*b3=b2-0.5*b4"]
    assert vector["term"].tolist() == ["custom"]
    assert matrix["term"].tolist() == ["custom", "custom"]
    assert frame["term"].tolist() == ["mine", "other"]
    expected = weights @ b
    for table in (equation, vector, matrix.iloc[:1], frame.iloc[:1]):
        assert table["estimate"].iloc[0] == pytest.approx(expected, rel=1e-12)
        assert table["std_error"].iloc[0] == pytest.approx(_se_of_weights(fit, weights), rel=1e-9)
    assert matrix["estimate"].iloc[1] == pytest.approx(b[2] - b[3], rel=1e-12)


def test_keywords(fit: g.GLMMResult, by_livch: pd.DataFrame) -> None:
    """Each keyword's pairs and labels (the by column's values)."""
    b = by_livch["estimate"].to_numpy()
    expected = {
        "pairwise": (
            [b[0] - b[1], b[0] - b[2], b[0] - b[3], b[1] - b[2], b[1] - b[3], b[2] - b[3]]
        ),
        "revpairwise": [
            b[1] - b[0],
            b[2] - b[0],
            b[3] - b[0],
            b[2] - b[1],
            b[3] - b[1],
            b[3] - b[2],
        ],
        "reference": [b[1] - b[0], b[2] - b[0], b[3] - b[0]],
        "revreference": [b[0] - b[1], b[0] - b[2], b[0] - b[3]],
        "sequential": [b[1] - b[0], b[2] - b[1], b[3] - b[2]],
        "revsequential": [b[0] - b[1], b[1] - b[2], b[2] - b[3]],
    }
    for keyword, values in expected.items():
        out = g.avg_predictions(fit, by="livch", hypothesis=keyword)
        np.testing.assert_allclose(out["estimate"], values, rtol=1e-12, err_msg=keyword)
    assert g.avg_predictions(fit, by="livch", hypothesis="sequential")["term"].tolist() == [
        "1 - 0",
        "2 - 1",
        "3+ - 2",
    ]
    # one estimate per row and no label telling them apart: rows by number
    overall = g.avg_predictions(fit, newdata=g.datasets.load("contraception").iloc[:3], by=None)
    assert len(overall) == 1
    units = g.slopes(fit, "age", newdata=g.datasets.load("contraception").iloc[:3])
    out = g.slopes(
        fit, "age", newdata=g.datasets.load("contraception").iloc[:3], hypothesis="reference"
    )
    assert out["term"].tolist() == ["Row 2 - Row 1", "Row 3 - Row 1"]
    np.testing.assert_allclose(
        out["estimate"], units["estimate"].iloc[1:] - units["estimate"].iloc[0], rtol=1e-12
    )


def test_null_value(fit: g.GLMMResult) -> None:
    """A single number is the null value: estimates, SEs and intervals unchanged, z and p
    against it."""
    plain = g.avg_slopes(fit)
    tested = g.avg_slopes(fit, hypothesis=0.05)
    for column in ("term", "contrast", "estimate", "std_error", "ci_lower", "ci_upper"):
        pd.testing.assert_series_equal(plain[column], tested[column])
    np.testing.assert_allclose(
        tested["z"], (plain["estimate"] - 0.05) / plain["std_error"], rtol=1e-12
    )
    assert tested["p_value"].iloc[0] != plain["p_value"].iloc[0]


@settings(max_examples=20, deadline=None)
@given(
    a=st.floats(0.1, 3.0),
    power=st.sampled_from([2, 3, 0.5]),
    function=st.sampled_from(["exp", "log", "sqrt"]),
)
def test_equation_derivative_is_exact(a: float, power: float, function: str) -> None:
    """The equation's gradient in the estimates against central differences."""
    estimate = np.array([0.3, 0.7, 1.4])
    jacobian = np.eye(3)
    text = f"{function}(b1 * {a}) + b2^{power} / b3 - b1 = 0"
    tested = apply_hypothesis(text, estimate, jacobian, None, None)
    assert tested is not None
    h = 1e-6

    def value(b: np.ndarray) -> float:
        out = apply_hypothesis(text, b, jacobian, None, None)
        assert out is not None
        return float(out.estimate[0])

    numeric = [(value(estimate + h * e) - value(estimate - h * e)) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(tested.jacobian[0], numeric, rtol=1e-6, atol=1e-9)


def test_term_names(fit: g.GLMMResult) -> None:
    """Terms by name where they are distinct; rows b1, b2 in any table."""
    slopes = g.avg_slopes(fit, ["age", "urban"])
    by_name = g.avg_slopes(fit, ["age", "urban"], hypothesis="urban = 10 * age")
    by_row = g.avg_slopes(fit, ["age", "urban"], hypothesis="b2 = 10 * b1")
    assert by_name["term"].iloc[0] == "urban=10*age"
    assert by_name["estimate"].iloc[0] == pytest.approx(
        slopes["estimate"].iloc[1] - 10 * slopes["estimate"].iloc[0], rel=1e-12
    )
    assert by_row["estimate"].iloc[0] == by_name["estimate"].iloc[0]
    assert by_row["std_error"].iloc[0] == by_name["std_error"].iloc[0]


def test_not_finite_shows_nan(fit: g.GLMMResult) -> None:
    out = g.avg_predictions(fit, by="livch", hypothesis="log(b1 - b2) = 0")  # b1 < b2
    assert np.isnan(out["estimate"].iloc[0]) and np.isnan(out["std_error"].iloc[0])


@pytest.mark.parametrize(
    ("function", "arguments", "message"),
    [
        ("avg_predictions", {"by": "livch", "hypothesis": "pairs"}, "must be one of"),
        ("avg_predictions", {"by": "livch", "hypothesis": "b5 = b1"}, "b5 is not an estimate"),
        ("avg_predictions", {"by": "livch", "hypothesis": "b1 = b2 = b3"}, "one '='"),
        ("avg_predictions", {"by": "livch", "hypothesis": "b1 =="}, "one '='"),
        ("avg_predictions", {"by": "livch", "hypothesis": "b1 = foo(b2)"}, "'foo\\(b2\\)'"),
        ("avg_predictions", {"by": "livch", "hypothesis": "b1 = (b2"}, "cannot be read"),
        ("avg_predictions", {"by": "livch", "hypothesis": "urban = 0"}, "name the estimates b1"),
        ("avg_slopes", {"hypothesis": "livch = 0"}, "name the estimates b1"),
        ("avg_slopes", {"variables": "age", "hypothesis": "age = urban"}, "'urban' in"),
        ("avg_predictions", {"by": "livch", "hypothesis": [1, -1]}, "one per estimate \\(4\\)"),
        ("avg_predictions", {"by": "livch", "hypothesis": np.ones((3, 2))}, "a row per estimate"),
        ("avg_predictions", {"by": "livch", "hypothesis": [1, np.nan, 0, 0]}, "finite"),
        ("avg_predictions", {"by": "livch", "hypothesis": ["a", "b", "c", "d"]}, "weights"),
        ("avg_predictions", {"hypothesis": float("inf")}, "null value must be finite"),
        ("avg_predictions", {"hypothesis": "pairwise"}, "at least two estimates"),
        ("slopes", {"variables": "age", "hypothesis": "pairwise"}, f"at most {KEYWORD_ROWS_LIMIT}"),
    ],
)
def test_errors(fit: g.GLMMResult, function: str, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        getattr(g, function)(fit, **arguments)


def test_bad_hypothesis_is_said_first(fit: g.GLMMResult) -> None:
    """A hypothesis that cannot be one fails before any prediction (even with bad newdata)."""
    with pytest.raises(ValueError, match="hypothesis must be one of"):
        g.avg_slopes(fit, newdata=pd.DataFrame({"age": [1.0]}), hypothesis="nonsense")
