"""R's functions in formulas (model.r_functions): the names and values of R's model matrix
(tests/reference/make_model_matrix_names.R's model_matrix_functions.json)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import model_matrix_table
from hypothesis import example, given, settings
from hypothesis import strategies as st

from glmm_binomial.model.design import build_model
from glmm_binomial.model.formula import parse_formula
from glmm_binomial.model.transforms import materialize, rebuild

FUNCTIONS = json.loads(
    (Path(__file__).parent / "reference" / "model_matrix_functions.json").read_text()
)
OPERATORS = json.loads(
    (Path(__file__).parent / "reference" / "model_matrix_operators.json").read_text()
)
STATISTICS = json.loads(
    (Path(__file__).parent / "reference" / "model_matrix_statistics.json").read_text()
)
SEQUENCES = json.loads(
    (Path(__file__).parent / "reference" / "model_matrix_sequences.json").read_text()
)
MATH = json.loads((Path(__file__).parent / "reference" / "model_matrix_math.json").read_text())
RELEVEL = json.loads(
    (Path(__file__).parent / "reference" / "model_matrix_relevel.json").read_text()
)


def test_lme4_dummy_is_an_indicator_number() -> None:
    data = model_matrix_table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = build_model('y ~ dummy(k, "lo") + dummy(f) + (1 | g)', data)
    assert list(model.fixed_names) == [
        "(Intercept)",
        'dummy(k, "lo")',
        "dummy(f)b",
        "dummy(f)c",
    ]
    np.testing.assert_array_equal(model.x[:, 1], (data["k"] == "lo").to_numpy(dtype=float))
    with pytest.raises(ValueError, match=r"levels to keep \['z'\] are not levels"):
        build_model('y ~ dummy(k, "z") + (1 | g)', data)


def test_r_functions_in_a_formula_give_r_columns() -> None:
    """R's log(x, base), pmin, pmax, ifelse, relevel, interaction, as.numeric, as.factor,
    floor, ceiling, %% and %/%, as.logical, ns and cut: the names and values of R's model matrix
    (the columns lme4 keeps; interaction(f, k) makes relevel(f)'s aliased)."""
    formula = "y " + FUNCTIONS["rhs"][0] + " + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, info = build_model(formula, model_matrix_table())
    assert set(info.dropped_columns) <= set(FUNCTIONS["columns"])
    kept = [FUNCTIONS["columns"].index(name) for name in model.fixed_names]
    assert [FUNCTIONS["columns"][j] for j in kept] == list(model.fixed_names)
    assert len(kept) + len(info.dropped_columns) == len(FUNCTIONS["columns"])
    reference = np.asarray(FUNCTIONS["rows"])[:, kept]
    np.testing.assert_allclose(model.x[:12], reference, rtol=1e-14, atol=1e-14)


def test_r_operators_inside_expressions_are_arithmetic_and_logic() -> None:
    """^, !, & and | with R's precedence (x1 > 0 & b is (x1 > 0) & b: Python's & binds
    tighter than a comparison, and the column was (b & x1) > 0 or a TypeError) and %in% as
    value matching, inside I(), ifelse(), log(), exp() and pmin(): the names and values of R's
    model matrix (every row; the columns lme4 keeps: I(!(x1 > 0 & b)) is aliased)."""
    formula = "y " + OPERATORS["rhs"][0] + " + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, info = build_model(formula, model_matrix_table())
    columns = OPERATORS["columns"]
    assert "I(!(x1 > 0 & b))TRUE" in info.dropped_columns
    kept = [columns.index(name) for name in model.fixed_names]
    assert sorted(kept + [columns.index(n) for n in info.dropped_columns]) == list(
        range(len(columns))
    )
    assert kept == sorted(kept)
    reference = np.asarray(OPERATORS["rows"])[:, kept]
    np.testing.assert_allclose(model.x, reference, rtol=1e-14, atol=1e-14)


def test_r_summaries_distributions_and_factor_arguments_give_r_columns() -> None:
    """mean, sd, median, max, min, var and sum inside I() (over the fit's rows, as R), sin,
    cos, plogis, qlogis, pnorm, qnorm, ordered() (orthogonal polynomial contrasts, .L .Q .C)
    and factor() with labels (one per level, or one R numbers) and levels: the names and
    values of R's model matrix (every row)."""
    formula = "y " + STATISTICS["rhs"][0] + " + (1 | g)"
    columns, rows = STATISTICS["columns"], np.asarray(STATISTICS["rows"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, info = build_model(formula, model_matrix_table())
    # The centred and scaled x1 and x2 are aliased with each other: lme4 keeps the first.
    kept = [columns.index(name) for name in model.fixed_names]
    assert kept == sorted(kept)
    assert sorted(kept + [columns.index(n) for n in info.dropped_columns]) == list(
        range(len(columns))
    )
    np.testing.assert_allclose(model.x, rows[:, kept], rtol=1e-13, atol=1e-14)
    # Each numeric term alone, so that the dropped ones are compared too.
    for term in STATISTICS["rhs"][0].removeprefix("~ ").split(" + "):
        if term in columns:
            fixed = parse_formula(f"y ~ 0 + {term}").fixed
            values, names, _ = materialize(fixed, model_matrix_table(), "test")
            assert names == [term]
            np.testing.assert_allclose(values[:, 0], rows[:, columns.index(term)], rtol=1e-13)
    with pytest.raises(ValueError, match="2 labels for 3 levels"):
        build_model('y ~ factor(f, labels = c("A", "B")) + (1 | g)', model_matrix_table())


def test_relevel_of_factor_gives_r_columns_and_keeps_the_fits_levels_for_new_data() -> None:
    """relevel(factor(x), ref) (was "relevel() needs a factor": factor()'s value is no
    categorical column), with factor()'s own levels' order, and of a factor in an interaction:
    the names and values of R's model matrix (every row); new data with some levels only is
    coded in the fit's, and a new level is named."""
    rhs = RELEVEL["rhs"][0]
    table = model_matrix_table()
    table["f"] = pd.Categorical(table["f"])  # as the reader reads text
    values, names, spec = materialize(rhs.removeprefix("~ "), table, "test")
    assert names == RELEVEL["columns"]
    np.testing.assert_allclose(values, np.asarray(RELEVEL["rows"]), rtol=1e-14, atol=1e-14)
    rows = [5, 7, 12]  # ii 1, 3, 0 and x2 1, 2, 2: neither ref level among them
    new = table.iloc[rows]
    np.testing.assert_allclose(
        rebuild(spec, new, "test"), np.asarray(RELEVEL["rows"])[rows], rtol=1e-14, atol=1e-14
    )
    with pytest.raises(ValueError, match=r"relevel\(\): new level\(s\) 7 not in the fit"):
        rebuild(spec, new.assign(ii=[1, 7, 0]), "test")
    with pytest.raises(ValueError, match="ref 'z' is not a level"):
        build_model('y ~ relevel(factor(ii), "z") + (1 | g)', model_matrix_table())


def test_r_trigonometric_hyperbolic_and_gamma_functions_give_r_columns() -> None:
    """asin (the arcsine transform), acos, atan, sinh .. atanh, gamma, lgamma, digamma,
    trigamma, factorial and lfactorial (were NameErrors): R's names and values, every row."""
    values, names, _ = materialize(MATH["rhs"][0].removeprefix("~ "), model_matrix_table(), "t")
    assert names == MATH["columns"]
    np.testing.assert_allclose(values, np.asarray(MATH["rows"]), rtol=1e-13, atol=1e-14)


def test_r_sequences_of_two_numbers_give_r_columns() -> None:
    """a:b of two numbers inside an expression (x %in% 1:2, -1:0, c(1:2, 3), 3:1) is R's
    sequence (was an interaction, or a parse error in a subset): R's names and values."""
    fixed = parse_formula("y " + SEQUENCES["rhs"][0]).fixed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values, names, _ = materialize(fixed, model_matrix_table(), "t")
    assert names == SEQUENCES["columns"]
    np.testing.assert_allclose(values, np.asarray(SEQUENCES["rows"]), rtol=0, atol=0)
    data = model_matrix_table()
    sequence = build_model("y ~ x1 + (1 | g)", data, subset="ii %in% 1:2")[0]
    listed = build_model("y ~ x1 + (1 | g)", data, subset="ii %in% c(1, 2)")[0]
    assert sequence.n_obs == listed.n_obs == 24


def test_r_operators_refuse_scalar_logic() -> None:
    with pytest.raises(ValueError, match="'&&' compares single values in R"):
        build_model("y ~ I(x1 > 0 && b) + (1 | g)", model_matrix_table())


def test_r_functions_refuse_what_r_refuses() -> None:
    data = model_matrix_table()
    with pytest.raises(ValueError, match="relevel\\(\\) needs a factor"):
        build_model("y ~ relevel(x1, 1) + (1 | g)", data)
    with pytest.raises(ValueError, match="ref 'z' is not a level"):
        build_model('y ~ relevel(f, "z") + (1 | g)', data)


def test_natural_spline_keeps_its_knots_for_new_data() -> None:
    """ns(x1, 3) on new values, two beyond the boundary knots (linear there): R's predict."""
    _, _, spec = materialize("0 + ns(x1, 3)", model_matrix_table(), "test")
    new = pd.DataFrame({"x1": FUNCTIONS["ns_new_x1"]})
    np.testing.assert_allclose(
        rebuild(spec, new, "test"), np.asarray(FUNCTIONS["ns_new"]), rtol=1e-12, atol=1e-14
    )


def test_r_functions_on_rows_left_after_missing_values() -> None:
    """Rows dropped for a missing value leave gaps in the index; each function's values stay
    with their rows."""
    data = model_matrix_table()
    data.loc[[2, 5], "x2"] = np.nan
    formula = "y " + FUNCTIONS["rhs"][0] + " + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, info = build_model(formula, data)
        full, _ = build_model(formula, model_matrix_table())
    keep = np.setdiff1d(np.arange(len(data)), [2, 5])
    assert info.n_dropped == 2 and list(model.fixed_names) == list(full.fixed_names)
    stateless = [j for j, n in enumerate(model.fixed_names) if not n.startswith(("ns(", "cut("))]
    np.testing.assert_allclose(model.x[:, stateless], full.x[keep][:, stateless], rtol=1e-14)


@pytest.mark.parametrize(
    "response",
    [
        "as.numeric(x1 > 0)",
        "ifelse(x1 > 0, 1, 0)",
        "factor(x1 > 0)",
        "I(x1 > 0)",
        "x1 > 0 & x2 > 0",
        "!(x1 <= 0)",
        "I(x1 > 0 | x2 < 0)",
        "as.numeric(x1 %in% x1[x1 > 0])",
    ],
)
def test_r_functions_in_the_response(response: str) -> None:
    data = model_matrix_table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = build_model(f"{response} ~ x2 + (1 | g)", data)
    np.testing.assert_array_equal(model.successes, (data["x1"] > 0).to_numpy(dtype=float))


LEAVES = {
    "x1 > 0": lambda d: d["x1"] > 0,
    "x2 < 2": lambda d: d["x2"] < 2,
    'f == "a"': lambda d: d["f"] == "a",
    "b": lambda d: d["b"],
    "ii >= 2": lambda d: d["ii"] >= 2,
    'k %in% c("lo")': lambda d: d["k"] == "lo",
}
PRECEDENCE = {"|": 1, "&": 2, "!": 3}


def _logical_trees() -> st.SearchStrategy[Any]:
    leaves = st.sampled_from(sorted(LEAVES))
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.tuples(st.just("!"), inner),
            st.tuples(st.sampled_from(["&", "|"]), inner, inner),
            st.tuples(st.just("()"), inner),  # parentheses R does not need
        ),
        max_leaves=6,
    )


def _r_source(tree: Any) -> tuple[str, int]:
    """R text of a tree with the parentheses R's precedence needs, and its precedence."""
    if isinstance(tree, str):
        return tree, 4
    if tree[0] == "()":
        return f"({_r_source(tree[1])[0]})", 4
    if tree[0] == "!":
        text, level = _r_source(tree[1])
        return "!" + (f"({text})" if level < 3 else text), 3
    operator, left, right = tree
    p = PRECEDENCE[operator]
    (lt, lp), (rt, rp) = _r_source(left), _r_source(right)
    lt = f"({lt})" if lp < p else lt
    rt = f"({rt})" if rp <= p else rt
    return f"{lt} {operator} {rt}", p


def _values(tree: Any, data: pd.DataFrame) -> np.ndarray:
    if isinstance(tree, str):
        return np.asarray(LEAVES[tree](data), dtype=bool)
    if tree[0] == "()":
        return _values(tree[1], data)
    if tree[0] == "!":
        return ~_values(tree[1], data)
    left, right = _values(tree[1], data), _values(tree[2], data)
    return left & right if tree[0] == "&" else left | right


@settings(max_examples=60, deadline=None)
@given(_logical_trees())
@example(("|", "x1 > 0", ("&", "x2 < 2", "b")))
@example(("&", ("|", "x1 > 0", "b"), ("!", "x2 < 2")))
@example(("!", ("&", "x1 > 0", ("|", "b", 'f == "a"'))))
@example(("&", ("()", ("!", "x1 > 0")), ("()", 'k %in% c("lo")')))
def test_r_logic_has_r_precedence_and_its_name_reads_back(tree: Any) -> None:
    """A random R logical expression of comparisons with !, & and | (R's precedence, the
    parentheses it needs and some it does not): its column is the expression's value row by
    row, named as R names it (I(text)TRUE, the parentheses as written), and the name read back
    as R gives the same column."""
    data = model_matrix_table()
    text, _ = _r_source(tree)
    expected = _values(tree, data)
    if expected.all() or not expected.any():
        return  # a constant column is aliased with the intercept
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = build_model(f"y ~ I({text}) + (1 | g)", data)
    np.testing.assert_array_equal(model.x[:, 1], expected.astype(float))
    name = model.fixed_names[1]
    assert name == f"I({text})TRUE"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again, _ = build_model(f"y ~ {name[: -len('TRUE')]} + (1 | g)", data)
    np.testing.assert_array_equal(again.x[:, 1], expected.astype(float))
    assert again.fixed_names[1] == name


def test_factor_labels_are_kept_for_new_data() -> None:
    """factor(f, labels = ...) and factor(ii, labels = "n") relabel the fit's levels; new
    rows holding some of them are coded as the fit's rows with the same values."""
    data = model_matrix_table()
    formula = 'y ~ factor(f, labels = c("A", "B", "C")) + factor(ii, labels = "n") + (1 | g)'
    _, _, spec = materialize(formula.split("~ ")[1].split(" + (")[0], data, "test")
    rows = data.iloc[[2, 5, 11]]  # f is c, c, c; ii is 2, 1, 3
    np.testing.assert_array_equal(
        rebuild(spec, rows.reset_index(drop=True), "test"),
        materialize(formula.split("~ ")[1].split(" + (")[0], data, "test")[0][[2, 5, 11]],
    )
    with pytest.raises(ValueError, match="not among the levels"):
        rebuild(spec, rows.assign(ii=[7, 1, 3]).reset_index(drop=True), "test")


def test_summaries_warn_nothing_on_the_design_checks_few_rows() -> None:
    """sd() of the one or two rows the design stage checks is NA, as R's, without numpy's
    RuntimeWarning reaching the user."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model, _ = build_model(
            "y ~ I(x1/sd(x1)) + I(x2 - median(x2)) + (1 | g)", model_matrix_table()
        )
    assert np.isfinite(model.x).all()
