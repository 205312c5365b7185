from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference, reference_names
from formulaic import model_matrix
from hypothesis import given
from hypothesis import strategies as st

from glmm_binomial import datasets
from glmm_binomial.model.design import build_model
from glmm_binomial.model.formula import (
    ParsedFormula,
    RandomTerm,
    ResponseSpec,
    parse_formula,
    r_name,
    r_text,
    update_formula,
)
from glmm_binomial.model.transforms import materialize


def terms(parsed: ParsedFormula) -> list[tuple[str, tuple[str, ...]]]:
    return [(term.expr, term.group) for term in parsed.random]


# ---------------------------------------------------------------------------------------------
# Reference formulas
# ---------------------------------------------------------------------------------------------

EXPECTED = {
    "cbind(incidence, size - incidence) ~ period + (1 | herd)": ParsedFormula(
        text="cbind(incidence, size - incidence) ~ period + (1 | herd)",
        response=ResponseSpec("cbind", "incidence", "size - incidence"),
        fixed="period",
        random=(RandomTerm("1", ("herd",), "(1 | herd)"),),
        variables=("herd", "incidence", "period", "size"),
    ),
    "cbind(incidence, size - incidence) ~ 1 + (1 | herd)": ParsedFormula(
        text="cbind(incidence, size - incidence) ~ 1 + (1 | herd)",
        response=ResponseSpec("cbind", "incidence", "size - incidence"),
        fixed="1",
        random=(RandomTerm("1", ("herd",), "(1 | herd)"),),
        variables=("herd", "incidence", "size"),
    ),
    "use ~ age + I(age^2) + urban + livch + (1 | district)": ParsedFormula(
        text="use ~ age + I(age^2) + urban + livch + (1 | district)",
        response=ResponseSpec("column", "use", None),
        fixed="age + I(age**2) + urban + livch",
        random=(RandomTerm("1", ("district",), "(1 | district)"),),
        variables=("age", "district", "livch", "urban", "use"),
    ),
    "use ~ age + I(age^2) + urban + livch + (1 + urban | district)": ParsedFormula(
        text="use ~ age + I(age^2) + urban + livch + (1 + urban | district)",
        response=ResponseSpec("column", "use", None),
        fixed="age + I(age**2) + urban + livch",
        random=(RandomTerm("1 + urban", ("district",), "(1 + urban | district)"),),
        variables=("age", "district", "livch", "urban", "use"),
    ),
    "use ~ age + urban + livch + (1 + urban | district)": ParsedFormula(
        text="use ~ age + urban + livch + (1 + urban | district)",
        response=ResponseSpec("column", "use", None),
        fixed="age + urban + livch",
        random=(RandomTerm("1 + urban", ("district",), "(1 + urban | district)"),),
        variables=("age", "district", "livch", "urban", "use"),
    ),
    "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)": ParsedFormula(
        text="r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
        response=ResponseSpec("column", "r2", None),
        fixed="Anger + Gender + btype + situ",
        random=(
            RandomTerm("1", ("id",), "(1 | id)"),
            RandomTerm("1", ("item",), "(1 | item)"),
        ),
        variables=("Anger", "Gender", "btype", "id", "item", "r2", "situ"),
    ),
    "use ~ age + urban + (1 + age || district)": ParsedFormula(
        text="use ~ age + urban + (1 + age || district)",
        response=ResponseSpec("column", "use", None),
        fixed="age + urban",
        random=(
            RandomTerm("1", ("district",), "(1 | district)"),
            RandomTerm("0 + age", ("district",), "(0 + age | district)"),
        ),
        variables=("age", "district", "urban", "use"),
    ),
    "r2 ~ Anger + Gender + btype + situ + (1 | id)": ParsedFormula(
        text="r2 ~ Anger + Gender + btype + situ + (1 | id)",
        response=ResponseSpec("column", "r2", None),
        fixed="Anger + Gender + btype + situ",
        random=(RandomTerm("1", ("id",), "(1 | id)"),),
        variables=("Anger", "Gender", "btype", "id", "r2", "situ"),
    ),
}


def reference_formulas() -> list[str]:
    formulas: list[str] = []
    for name in reference_names():
        reference = load_reference(name)
        for key in ("formula", "reduced"):
            if key in reference and reference[key] not in formulas:
                formulas.append(reference[key])
    return formulas


def test_every_reference_formula_is_covered() -> None:
    assert set(reference_formulas()) == set(EXPECTED)


@pytest.mark.parametrize("formula", sorted(EXPECTED))
def test_reference_formula(formula: str) -> None:
    assert parse_formula(formula) == EXPECTED[formula]


@pytest.mark.parametrize("name", reference_names())
def test_reference_fixed_part_gives_r_coefficient_names(name: str) -> None:
    """The fixed part, materialized by formulaic and renamed, gives R's fixef names in order."""
    reference = load_reference(name)
    if "fits" not in reference or "formula" not in reference:
        pytest.skip("no single-model fits in this reference file")
    parsed = parse_formula(reference["formula"])
    data = datasets.load(reference["dataset"].removeprefix("data/").removesuffix(".csv"))
    matrix = model_matrix(parsed.fixed, data)
    names = [r_name(column) for column in matrix.columns]
    for fit in reference["fits"].values():
        assert names == list(fit["fixef"])
    assert set(parsed.variables) <= set(data.columns)


# ---------------------------------------------------------------------------------------------
# Response
# ---------------------------------------------------------------------------------------------


def test_column_response() -> None:
    assert parse_formula("use ~ 1 + (1 | g)").response == ResponseSpec("column", "use", None)


def test_expression_response() -> None:
    parsed = parse_formula("np.log(y / n) ~ x + (1 | g)")
    assert parsed.response == ResponseSpec("column", "np.log(y/n)", None)
    assert parsed.variables == ("g", "n", "x", "y")


def test_cbind_response() -> None:
    parsed = parse_formula("cbind(hits,n-hits)~x+(1|g)")
    assert parsed.response == ResponseSpec("cbind", "hits", "n - hits")
    assert parsed.variables == ("g", "hits", "n", "x")


@pytest.mark.parametrize("response", ["cbind(a)", "cbind(a, b, c)", "cbind(a, )", "cbind()"])
def test_cbind_needs_two_arguments(response: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(response))):
        parse_formula(f"{response} ~ x + (1 | g)")


def test_cbind_column_names_are_dropped() -> None:
    """R's cbind(dead = k, alive = n - k) names its columns; the counts are the same."""
    parsed = parse_formula("cbind(dead = k, alive=n - k) ~ x + (1 | g)")
    assert parsed.response == ResponseSpec("cbind", "k", "n - k")
    assert parsed.variables == ("g", "k", "n", "x")


def test_cbind_nested_commas_are_not_arguments() -> None:
    parsed = parse_formula("cbind(f(a, b), n - f(a, b)) ~ (1 | g)")
    assert parsed.response == ResponseSpec("cbind", "f(a, b)", "n - f(a, b)")
    assert parsed.variables == ("a", "b", "g", "n")


# ---------------------------------------------------------------------------------------------
# Random-effect bars
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bar", "expr"),
    [
        ("(x | g)", "x"),
        ("(1 + x | g)", "1 + x"),
        ("(0 + x | g)", "0 + x"),
        ("(x - 1 | g)", "x - 1"),
        ("(-1 + x | g)", "-1 + x"),
        ("(1 | g)", "1"),
    ],
)
def test_bar_left_side_kept_as_written(bar: str, expr: str) -> None:
    parsed = parse_formula(f"y ~ z + {bar}")
    assert parsed.random == (RandomTerm(expr, ("g",), f"({expr} | g)"),)
    assert parsed.fixed == "z"


def test_double_bar_expands_per_column() -> None:
    parsed = parse_formula("y ~ x + (1 + x || g)")
    assert parsed.random == (
        RandomTerm("1", ("g",), "(1 | g)"),
        RandomTerm("0 + x", ("g",), "(0 + x | g)"),
    )


def test_double_bar_implicit_intercept() -> None:
    assert terms(parse_formula("y ~ (x + z || g)")) == [
        ("1", ("g",)),
        ("0 + x", ("g",)),
        ("0 + z", ("g",)),
    ]


@pytest.mark.parametrize("lhs", ["0 + x + z", "x + z - 1", "-1 + x + z"])
def test_double_bar_without_intercept(lhs: str) -> None:
    assert terms(parse_formula(f"y ~ ({lhs} || g)")) == [("0 + x", ("g",)), ("0 + z", ("g",))]


def test_double_bar_expands_interactions_and_powers() -> None:
    assert terms(parse_formula("y ~ (I(x^2) * z || g)")) == [
        ("1", ("g",)),
        ("0 + I(x**2)", ("g",)),
        ("0 + z", ("g",)),
        ("0 + I(x**2):z", ("g",)),
    ]


def test_interaction_group() -> None:
    parsed = parse_formula("y ~ (1 | a:b)")
    assert parsed.random == (RandomTerm("1", ("a", "b"), "(1 | a:b)"),)


def test_nested_group() -> None:
    parsed = parse_formula("y ~ (1 | a/b)")
    assert parsed.random == (
        RandomTerm("1", ("a",), "(1 | a)"),
        RandomTerm("1", ("b", "a"), "(1 | b:a)"),  # lme4's name
    )


def test_doubly_nested_group() -> None:
    assert [term.group for term in parse_formula("y ~ (x | a/b/c)").random] == [
        ("a",),
        ("b", "a"),
        ("c", "b", "a"),  # glmmTMB's c:b:a (lme4 writes c:(b:a))
    ]


def test_double_bar_and_nesting_combine() -> None:
    assert terms(parse_formula("y ~ (1 + x || a/b)")) == [
        ("1", ("a",)),
        ("1", ("b", "a")),
        ("0 + x", ("a",)),
        ("0 + x", ("b", "a")),
    ]


def test_crossed_terms_stay_separate() -> None:
    parsed = parse_formula("y ~ x + (1 | a) + (1 | b)")
    assert terms(parsed) == [("1", ("a",)), ("1", ("b",))]


def test_bars_anywhere_in_order() -> None:
    parsed = parse_formula("y ~ (1 | a) + x + (z | b) + w")
    assert parsed.fixed == "x + w"
    assert terms(parsed) == [("1", ("a",)), ("z", ("b",))]


def test_redundant_parentheses_around_bar() -> None:
    assert parse_formula("y ~ x + ((1 | g))").random == (RandomTerm("1", ("g",), "(1 | g)"),)


def test_backticked_group() -> None:
    parsed = parse_formula("y ~ (1 | `my group`)")
    assert parsed.random == (RandomTerm("1", ("my group",), "(1 | `my group`)"),)
    assert parsed.variables == ("my group", "y")


# ---------------------------------------------------------------------------------------------
# Fixed part
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rhs", "fixed"),
    [
        ("(1 | g)", "1"),
        ("(1 | g) + (1 | h)", "1"),
        ("1 + (1 | g)", "1"),
        ("0 + (1 | g)", "0"),
        ("0 + x + (1 | g)", "0 + x"),
        ("x - 1 + (1 | g)", "x - 1"),
        ("-1 + x + (1 | g)", "-1 + x"),
        ("(1 | g) + x", "x"),
        ("x*z + (1 | g)", "x * z"),
        ("a:b + (1 | g)", "a:b"),
        ("I(age^2) + (1 | g)", "I(age**2)"),
        ("I((age - 1)^2) + (1 | g)", "I(r_paren(age - 1)**2)"),
        ("np.log(age) + (1 | g)", "np.log(age)"),
    ],
)
def test_fixed_part(rhs: str, fixed: str) -> None:
    assert parse_formula(f"y ~ {rhs}").fixed == fixed


def test_power_outside_i_is_left_alone() -> None:
    assert parse_formula("y ~ (a + b)^2 + (1 | g)").fixed == "(a + b)^2"


def test_power_in_random_expr() -> None:
    assert parse_formula("y ~ (1 + I(t^2) | g)").random[0].expr == "1 + I(t**2)"


def test_variables_exclude_function_names() -> None:
    parsed = parse_formula("y ~ I(age^2) + np.log(w) + f(v) + C(c) + (1 + I(t^2) | g)")
    assert parsed.variables == ("age", "c", "g", "t", "v", "w", "y")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("formula", "quoted"),
    [
        ("y x + (1 | g)", "y x + (1 | g)"),
        (" ~ x + (1 | g)", "~ x"),
        ("y ~ ", "y ~"),
        ("y ~ x ~ z", "~ z"),
        ("y ~ x + (1 | g", "(1 | g"),
        ("y ~ x + 1 | g)", "1 | g)"),
        ("y ~ x + ( | g)", "( | g)"),
        ("y ~ x + (1 | )", "(1 | )"),
        ("y ~ x + (1 | a + b)", "(1 | a + b)"),
        ("y ~ x + (1 | a | b)", "(1 | a | b)"),
        ("y ~ x + 1 | g", "1 | g"),
        ("y ~ x + (1 | g):z", "(1 | g):z"),
        ("y ~ x - (1 | g)", "(1 | g)"),
        ("y ~ x + (0 | g)", "(0 | g)"),
        ("y ~ x +", "+"),
        ("y ~ x $ z", "$ z"),
    ],
)
def test_errors_quote_the_offending_part(formula: str, quoted: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_formula(formula)
    assert quoted in str(error.value)


def test_non_string() -> None:
    with pytest.raises(TypeError):
        parse_formula(3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

FORMULAS = [*EXPECTED, "y ~ (1 + x || a/b) + I(z^2)", "cbind(s, n - s) ~ 0 + x*z + (x - 1 | a:b)"]


def _respace(formula: str, spaces: list[int]) -> str:
    """Reinsert whitespace between tokens of a canonical formula."""
    pieces = re.findall(r"\*\*|\|\||[A-Za-z_.][A-Za-z0-9_.]*|\d+|\S", formula)
    out = []
    for index, piece in enumerate(pieces):
        out.append(piece)
        out.append(" " * spaces[index % len(spaces)])
    return "".join(out)


@given(
    formula=st.sampled_from(FORMULAS),
    spaces=st.lists(st.sampled_from([0, 1, 2]), min_size=1, max_size=20),
)
def test_whitespace_insensitive(formula: str, spaces: list[int]) -> None:
    expected = parse_formula(formula)
    parsed = parse_formula(_respace(formula, spaces))
    assert (parsed.response, parsed.fixed, parsed.random, parsed.variables) == (
        expected.response,
        expected.fixed,
        expected.random,
        expected.variables,
    )


NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda name: name not in {"cbind", "and", "or", "not", "in", "is", "if", "else"}
)


@given(outer=NAMES, inner=NAMES, lhs=st.sampled_from(["1", "x", "1 + x", "0 + x"]))
def test_slash_expands_to_two_terms(outer: str, inner: str, lhs: str) -> None:
    parsed = parse_formula(f"y ~ ({lhs} | {outer}/{inner})")
    assert parsed.random == (
        RandomTerm(lhs, (outer,), f"({lhs} | {outer})"),
        RandomTerm(lhs, (inner, outer), f"({lhs} | {inner}:{outer})"),
    )


# ---------------------------------------------------------------------------------------------
# R names of formulaic columns
# ---------------------------------------------------------------------------------------------


def test_formulaic_column_names_observed() -> None:
    """Pins what formulaic produces, which r_name relies on."""
    data = datasets.load("contraception")
    matrix = model_matrix("age + I(age**2) + urban + livch", data)
    assert list(matrix.columns) == [
        "Intercept",
        "age",
        "I(age ** 2)",
        "urban[T.Y]",
        "livch[T.1]",
        "livch[T.2]",
        "livch[T.3+]",
    ]
    assert [r_name(column) for column in matrix.columns] == [
        "(Intercept)",
        "age",
        "I(age^2)",
        "urbanY",
        "livch1",
        "livch2",
        "livch3+",
    ]


@pytest.mark.parametrize(
    ("formulaic", "r"),
    [
        ("Intercept", "(Intercept)"),
        ("age", "age"),
        ("urban[T.Y]", "urbanY"),
        ("livch[T.3+]", "livch3+"),
        ("livch[3+]", "livch3+"),
        ("I(age ** 2)", "I(age^2)"),
        ("I(age**2)", "I(age^2)"),
        ("urban[T.Y]:age", "urbanY:age"),
        ("urban[N]:livch[T.1]", "urbanN:livch1"),
        ("a[T.x]:b", "ax:b"),
        ("I(a ** 2):g[T.b]", "I(a^2):gb"),
        ("np.log(age + 20)", "np.log(age + 20)"),
    ],
)
def test_r_name(formulaic: str, r: str) -> None:
    assert r_name(formulaic) == r


def test_r_name_interactions_and_full_dummies() -> None:
    data = pd.DataFrame(
        {
            "urban": pd.Categorical(["N", "Y", "N", "Y"]),
            "livch": pd.Categorical(["0", "1", "3+", "0"], categories=["0", "1", "3+"]),
            "age": [1.0, 2.0, 3.0, 4.0],
        }
    )
    assert [r_name(c) for c in model_matrix("0 + livch", data).columns] == [
        "livch0",
        "livch1",
        "livch3+",
    ]
    assert [r_name(c) for c in model_matrix("urban * age", data).columns] == [
        "(Intercept)",
        "urbanY",
        "age",
        "urbanY:age",
    ]


# ---------------------------------------------------------------------------------------------
# R spellings (issue 9)
# ---------------------------------------------------------------------------------------------


def test_r_spellings_are_translated() -> None:
    parsed = parse_formula("y ~ age %in% urban + age.c + offset(log(n)) + (1 | g.id)")
    assert parsed.fixed == "age:urban + `age.c`"
    assert parsed.offsets == ("log(n)",)
    assert parsed.random[0].group == ("g.id",)
    assert parsed.variables == ("age", "age.c", "g.id", "n", "urban", "y")
    raw = parse_formula("y ~ poly(x, 2, raw = TRUE) + np.log(w) + C(f, contr.sum) + (1 | g)")
    assert raw.fixed == "poly(x, 2, raw = True) + np.log(w) + C(f, contr.sum)"
    assert raw.variables == ("f", "g", "w", "x", "y")


def test_transform_arguments_are_variables() -> None:
    parsed = parse_formula("y ~ scale(a) + center(b) + poly(c, 2) + bs(d, df = 3) + (1 | g)")
    assert parsed.variables == ("a", "b", "c", "d", "g", "y")


@pytest.mark.parametrize(
    ("formula", "fragment"),
    [
        ("y ~ x:(1 + ) + (1 | g)", "insuffient"),
        ("y ~ my x + (1 | g)", "`my x`"),
        ("y ~ x - offset(o) + (1 | g)", "'+ offset(log(n))'"),
        # Was formulaic's "Formula ended before quote context was closed. Expected: %".
        ("y ~ x %% 2 + (1 | g)", "I(x %% 2)"),
        ("y ~ z + x %/% 10 + (1 | g)", "I(x %/% 10)"),
    ],
)
def test_errors_are_plain_text(formula: str, fragment: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_formula(formula)
    assert fragment in str(error.value)
    assert "\x1b" not in str(error.value)


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ . + (1 | g)",
        "y ~ . - g + (1 | g)",
        "y ~ x + (. | g)",
        "y ~ x + (. || g)",
        "y ~ x + offset(.) + (1 | g)",
    ],
)
def test_a_dot_for_every_other_column_is_refused_by_name(formula: str) -> None:
    # Was formulaic's "The `.` operator requires additional context ..." (or its parser's).
    with pytest.raises(ValueError, match=r"uses '\.' \(R's 'every other column'\)"):
        parse_formula(formula)
    # A point inside a number, a name or quoted text is no such dot.
    parse_formula('y ~ I(x * 1.5) + I(x + .5) + x.y + relevel(f, ".") + (1 | g.h)')


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ x + toep(0 + factor(t) | g)",
        "y ~ x + homdiag(1 + x | g) + (1 | h)",
        "y ~ exp(x) + ou(0 + factor(t) | g)",
    ],
)
def test_glmmtmbs_other_covariance_structures_are_refused_by_name(formula: str) -> None:
    # Was "no random-effect term such as (1 | group)", or formulaic's NameError for the call.
    with pytest.raises(
        ValueError, match=r"covariance structure \w+\(\) in '.*' is one of glmmTMB's"
    ):
        parse_formula(formula)
    # exp() of a column, and | inside I(), are R's calls as before.
    assert parse_formula("y ~ exp(x) + I(x > 0 | b) + (1 | g)").fixed.startswith("exp(x)")


def test_r_short_logicals_as_argument_values_are_true_and_false() -> None:
    # Was "uses column(s) not in data: 'T'". R's T and F where no column is meant.
    short = parse_formula("y ~ poly(x, 2, raw = T) + scale(z, center = F) + (1 | g)")
    assert short.variables == ("g", "x", "y", "z")
    table = pd.DataFrame({"x": [0.5, 1.0, 2.0, 3.5], "z": [1.0, 2.0, 4.0, 8.0]})
    values, names, _ = materialize(short.fixed, table, "test")
    full, _, _ = materialize("poly(x, 2, raw = True) + scale(z, center = False)", table, "t")
    np.testing.assert_array_equal(values, full)
    # Named as R names them (raw powers numbered from 1).
    assert names == [
        "(Intercept)",
        "poly(x, 2, raw = T)1",
        "poly(x, 2, raw = T)2",
        "scale(z, center = F)",
    ]
    # A column named T or F as a term, or inside an expression, is still a column.
    assert parse_formula("y ~ T + I(F * 2) + (1 | g)").variables == ("F", "T", "g", "y")


def test_invisible_characters_of_a_pasted_formula_are_spaces() -> None:
    # A byte-order mark (a formula read from a file) or a zero-width space (a web page) was
    # "unexpected character '\ufeff'".
    plain = parse_formula("use ~ I(age^2) + urban + (1 | district)")
    pasted = parse_formula("\ufeffuse ~ I(age\u200b^2) + urban\u2060 + (1\u200c|\u200ddistrict)")
    assert pasted.variables == plain.variables
    assert pasted.random == plain.random
    assert "".join(pasted.fixed.split("\u200b")) == plain.fixed


def test_factor_around_a_grouping_variable_is_the_variable() -> None:
    # (1 | factor(id)), common in R code, was "grouping factor must be variable names".
    plain = parse_formula("y ~ x + (1 | id) + (1 + x | a:b)")
    wrapped = parse_formula("y ~ x + (1 | factor(id)) + (1 + x | as.factor(a):b)")
    assert wrapped.random == plain.random
    assert wrapped.variables == plain.variables
    with pytest.raises(ValueError, match="grouping factor must be variable names"):
        parse_formula("y ~ x + (1 | factor(id, levels = 1:3))")


def test_r_names_of_transform_columns() -> None:
    assert r_name("bs(x, df=3)[1]") == "bs(x, df = 3)1"
    assert r_name("poly(x, 2, raw=True)[0]") == "poly(x, 2, raw = TRUE)1"
    assert r_name("factor(k)[T.2]") == "factor(k)2"


def test_glmmtmb_structured_terms() -> None:
    parsed = parse_formula("cbind(k, n - k) ~ time + ar1(timef + 0 | id) + (1 | site)")
    assert parsed.random == (
        RandomTerm("timef + 0", ("id",), "ar1(timef + 0 | id)", "ar1"),
        RandomTerm("1", ("site",), "(1 | site)", "us"),
    )
    assert parsed.fixed == "time"
    nested = parse_formula("y ~ cs(f + 0 | a/b) + us(0 + f | c) + diag(x | d)").random
    assert [(t.structure, t.text) for t in nested] == [
        ("cs", "cs(f + 0 | a)"),
        ("cs", "cs(f + 0 | b:a)"),
        ("us", "us(0 + f | c)"),
        ("diag", "diag(x | d)"),
    ]
    with pytest.raises(ValueError, match="single bar"):
        parse_formula("y ~ ar1(f + 0 || id)")
    with pytest.raises(ValueError, match="cannot be subtracted"):
        parse_formula("y ~ x - cs(f | g)")


def test_r_text_spells_python_as_r() -> None:
    assert r_text("as_numeric(f) + I(x ** 2) + I(i // 2) + I(i % 2)") == (
        "as.numeric(f) + I(x^2) + I(i%/%2) + I(i%%2)"
    )
    assert r_text("poly(x, 2, raw=True) + dummy(u, 'Y') + exp(x / 3)") == (
        'poly(x, 2, raw = TRUE) + dummy(u, "Y") + exp(x/3)'
    )


def test_unbuildable_term_is_quoted_as_written_in_r() -> None:
    data = datasets.load("contraception")
    with pytest.raises(ValueError, match=r"term 'as.numeric\(urban\) \+ nothere\(age\)'"):
        build_model("use ~ as.numeric(urban) + nothere(age) + (1 | district)", data)


def test_comments_are_dropped_as_r_drops_them() -> None:
    """R's parser drops # to the end of a line (as.formula of a pasted multi-line formula);
    a # inside a string stays."""
    parsed = parse_formula("y ~ x1 + # the slope\n  x2 + (1 | g)  # groups")
    assert parsed.fixed == "x1 + x2" and [t.group for t in parsed.random] == [("g",)]
    assert parse_formula('y ~ I(f == "#a") + (1 | g)').fixed == 'I(f == "#a")'


@pytest.mark.parametrize(("pasted", "typed"), [("\u2212", "-"), ("\u201c", '"'), ("\u00d7", "*")])
def test_a_typographic_character_is_named_with_the_one_to_type(pasted: str, typed: str) -> None:
    with pytest.raises(ValueError, match=f"type {typed!r}".replace("*", r"\*")):
        parse_formula(f"y ~ x1 {pasted} x2 + (1 | g)")


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (". ~ . - age:urban", "use ~ age + urban + livch + (1 | district)"),
        (". ~ . - urban - 1", "use ~ age + livch + age:urban - 1 + (1 | district)"),
        (". ~ . + I(age^2)", "use ~ age * urban + livch + I(age^2) + (1 | district)"),
        (". ~ . - livch", "use ~ age * urban + (1 | district)"),
        (
            "~ . - (1|district) + (urban | district)",
            "use ~ age * urban + livch + (urban | district)",
        ),
        (". ~ . + (1 | district)", "use ~ age * urban + livch + (1 | district)"),
        ("log(.) ~ .", "log(use) ~ age * urban + livch + (1 | district)"),
        ("y ~ . - 1", "y ~ age * urban + livch - 1 + (1 | district)"),
        (". ~ 1 + (1 | district)", "use ~ 1 + (1 | district)"),
    ],
)
def test_update_formula_as_r(new: str, expected: str) -> None:
    """R's update.formula: "." is that side of the old formula; a term given with the other
    sign is cancelled, another taken away leaves the expansion's terms written out (as R's
    update writes them), a random-effect term is added once or dropped where it matches."""
    old = "use ~ age * urban + livch + (1 | district)"
    assert update_formula(old, new) == expected
    assert parse_formula(update_formula(old, new)).text == expected


@pytest.mark.parametrize(
    ("new", "message"),
    [(". ~ - .", "would drop every term"), ("x", "must have one '~'"), (". ~ (.", "unbalanced")],
)
def test_update_formula_refuses(new: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        update_formula("y ~ x + (1 | g)", new)
