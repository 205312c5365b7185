"""hypothesis= of the marginal-effect functions (results/hypothesis.py): what each form
computes, its exact derivative and its errors. Against marginaleffects 0.11.0 in
test_slopes.py (the calls with hypothesis in tests/reference/slopes.json)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference, quiet_fit
from hypothesis import given, settings
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.results.hypothesis import (
    KEYWORD_ROWS_LIMIT,
    apply_hypothesis,
    equivalence_tests,
)
from glmm_binomial.results.multiplicity import P_ADJUST_METHODS, p_adjust

REFERENCE = load_reference("hypotheses")
COLUMNS = {  # ours: marginaleffects'
    "p_value": "p_value",
    "z_noninf": "statistic_noninf",
    "z_nonsup": "statistic_nonsup",
    "p_value_noninf": "p_value_noninf",
    "p_value_nonsup": "p_value_nonsup",
    "p_value_equiv": "p_value_equiv",
}


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


@pytest.fixture(scope="module")
def reference_fit() -> g.GLMMResult:
    return quiet_fit(REFERENCE["formula"], g.datasets.load("contraception"))


@pytest.mark.parametrize("call", REFERENCE["calls"], ids=lambda c: c["fn"])
def test_against_marginaleffects(reference_fit: g.GLMMResult, call: dict) -> None:
    """hypotheses() of the coefficients, equivalence= and p_adjust= against marginaleffects
    0.11.0 (tests/reference/hypotheses.json): estimates against glmmTMB's (same optimum),
    SEs and the tests' statistics against glmer's with glmmTMB's covariance (where the random
    effects enter a prediction; glmmTMB's own elsewhere, the same there)."""
    assert reference_fit.loglik == pytest.approx(REFERENCE["loglik"], abs=1e-6)
    names = ("variables", "by", "hypothesis", "equivalence", "p_adjust", "comparison", "cross")
    names += ("df",)
    arguments = {k: call[k] for k in names if k in call}
    if call.get("newdata") == "first rows":
        arguments["newdata"] = g.datasets.load("contraception").iloc[:6]
    out = getattr(g, call["fn"])(reference_fit, **arguments)
    tmb, mer = call["glmmTMB"], call["glmer_tmb_vcov"]
    if call["fn"] == "hypotheses" and "hypothesis" not in call:
        # marginaleffects 0.11.0 names the coefficients b1, b2, ...; ours by their names
        assert list(np.atleast_1d(tmb["term"])) == [f"b{i + 1}" for i in range(len(out))]
        assert list(out["term"]) == reference_fit.fixed_names
    elif call["fn"] != "avg_comparisons":
        assert list(out["term"]) == list(np.atleast_1d(tmb["term"]))
    if "p_adjust" in call:  # no intervals beside adjusted p-values, as marginaleffects
        assert "ci_lower" not in out and "ci_upper" not in out
    for column in [c for c in tmb if c.startswith("contrast_")]:
        # (marginaleffects 0.11 writes contrasts within by groups as mean(a) - mean(b))
        expected = [re.sub(r"mean\(([^()]*)\)", r"\1", v) for v in np.atleast_1d(tmb[column])]
        assert list(out[column]) == expected, column
    if "transform" in call:  # the name of a numpy function here
        arguments["transform"] = getattr(np, call["transform"])
        out = getattr(g, call["fn"])(reference_fit, **arguments)
        assert "std_error" not in out and "z" not in out
        for column in ("ci_lower", "ci_upper"):
            expected = np.atleast_1d(mer[column])
            np.testing.assert_allclose(out[column], expected, rtol=2e-3, err_msg=column)
        np.testing.assert_allclose(out["estimate"], np.atleast_1d(tmb["estimate"]), rtol=1e-5)
    else:
        np.testing.assert_allclose(out["estimate"], np.atleast_1d(tmb["estimate"]), atol=5e-6)
        np.testing.assert_allclose(out["std_error"], np.atleast_1d(mer["std_error"]), rtol=1e-3)
    if "df" in call:  # t intervals: estimate -/+ t quantile x SE, as R's
        np.testing.assert_allclose(out["ci_lower"], np.atleast_1d(mer["ci_lower"]), rtol=2e-3)
    for ours, theirs in COLUMNS.items():
        if theirs in mer:
            expected = np.atleast_1d(np.asarray(mer[theirs], dtype=float))
            # not where the value is tiny (a small SE difference moves it far, relatively)
            large = np.abs(expected) > 1e-4
            np.testing.assert_allclose(out[ours][large], expected[large], rtol=0.02, err_msg=ours)


@settings(max_examples=50, deadline=None)
@given(p=st.lists(st.one_of(st.floats(0.0, 1.0), st.just(float("nan"))), min_size=1, max_size=12))
def test_p_adjust_properties(p: list[float]) -> None:
    """Adjusted p-values are at least the raw ones and at most 1, keep NaN, keep the raw
    order, and order as the methods' strength: hommel <= hochberg <= holm <= bonferroni,
    BH <= BY."""
    raw = np.asarray(p)
    out = {method: p_adjust(raw, method) for method in P_ADJUST_METHODS}
    known = ~np.isnan(raw)
    for method, adjusted in out.items():
        assert np.array_equal(np.isnan(adjusted), ~known), method
        assert np.all(adjusted[known] >= raw[known] - 1e-15), method
        assert np.all(adjusted[known] <= 1.0), method
        order = np.argsort(raw[known], kind="stable")
        assert np.all(np.diff(adjusted[known][order]) >= -1e-15), method
    tol = 1e-12
    assert np.all(out["hommel"][known] <= out["hochberg"][known] + tol)
    assert np.all(out["hochberg"][known] <= out["holm"][known] + tol)
    assert np.all(out["holm"][known] <= out["bonferroni"][known] + tol)
    assert np.all(out["BH"][known] <= out["BY"][known] + tol)
    np.testing.assert_array_equal(out["fdr"], out["BH"])


def test_equivalence_and_adjustment_arguments(fit: g.GLMMResult) -> None:
    one = g.avg_slopes(fit, "age", equivalence=0.001)
    two = g.avg_slopes(fit, "age", equivalence=[0.001, 0.001])
    pd.testing.assert_frame_equal(one, two)
    assert one["p_value_equiv"].iloc[0] == max(
        one["p_value_noninf"].iloc[0], one["p_value_nonsup"].iloc[0]
    )
    for bad, message in [
        ({"equivalence": [1, 2, 3]}, "equivalence must be one or two"),
        ({"equivalence": "wide"}, "equivalence must be one or two"),
        ({"equivalence": [0, np.inf]}, "equivalence must be one or two"),
        ({"p_adjust": "tukey"}, "p_adjust must be one of"),
        ({"p_adjust": "holm", "equivalence": 0.1}, "cannot be used together"),
    ]:
        with pytest.raises(ValueError, match=message):
            g.avg_slopes(fit, **bad)
        with pytest.raises(ValueError, match=message):
            g.hypotheses(fit, **bad)


def test_equivalence_without_se_is_nan() -> None:
    out = equivalence_tests(np.array([0.1, 0.2]), np.array([0.0, np.nan]), (-0.5, 0.5))
    for values in out.values():
        assert np.isnan(values).all()


def test_transform(fit: g.GLMMResult) -> None:
    """transform="exp" of a log odds ratio: the odds ratio and its limits, p-values kept."""
    log_or = g.avg_comparisons(fit, "urban", comparison="lnoravg")
    odds = g.avg_comparisons(fit, "urban", comparison="lnoravg", transform="exp")
    for column in ("estimate", "ci_lower", "ci_upper"):
        np.testing.assert_allclose(odds[column], np.exp(log_or[column]), rtol=1e-12)
    np.testing.assert_allclose(odds["p_value"], log_or["p_value"], rtol=1e-12)
    assert "std_error" not in odds and "z" not in odds
    ratio = g.hypotheses(fit, "urbanY = 0", transform="exp")
    assert ratio["estimate"].iloc[0] == pytest.approx(np.exp(fit.params["urbanY"]), rel=1e-12)
    with pytest.raises(ValueError, match="transform must be 'exp' or a function"):
        g.avg_slopes(fit, transform="log")
    with pytest.raises(ValueError, match="one number per estimate"):
        g.avg_slopes(fit, transform=np.sum)


def test_cross(fit: g.GLMMResult) -> None:
    """cross=True changes the variables together: on the link scale of an additive model the
    crossed difference is the sum of the variables' own differences."""
    crossed = g.avg_comparisons(fit, {"urban": "reference", "age": 2.0}, cross=True, type="link")
    assert list(crossed.columns[:3]) == ["term", "contrast_urban", "contrast_age"]
    expected = fit.params["urbanY"] + 2.0 * fit.params["age"]
    assert crossed["estimate"].iloc[0] == pytest.approx(expected, rel=1e-9)
    assert len(g.avg_comparisons(fit, ["urban", "livch"], cross=True)) == 3
    with pytest.raises(ValueError, match="at least two variables"):
        g.avg_comparisons(fit, "urban", cross=True)
    with pytest.raises(ValueError, match="cross must be True or False"):
        g.avg_comparisons(fit, ["urban", "age"], cross="yes")


def test_degrees_of_freedom(fit: g.GLMMResult) -> None:
    """df: Student's t p-values and intervals; inf is the normal."""
    z = g.avg_comparisons(fit, "urban")
    t = g.avg_comparisons(fit, "urban", df=5)
    assert t["estimate"].iloc[0] == z["estimate"].iloc[0]
    assert t["p_value"].iloc[0] > z["p_value"].iloc[0]
    width = t["ci_upper"].iloc[0] - t["ci_lower"].iloc[0]
    assert width / (2 * t["std_error"].iloc[0]) == pytest.approx(2.570581835636314, rel=1e-10)
    pd.testing.assert_frame_equal(g.avg_comparisons(fit, "urban", df=np.inf), z)
    for bad in (0, -1, "30", True):
        with pytest.raises(ValueError, match="df must be a positive number"):
            g.avg_comparisons(fit, "urban", df=bad)
