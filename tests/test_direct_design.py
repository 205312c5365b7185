"""model/direct_design.py: the numpy-built matrix of plain terms equals formulaic's."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from formulaic import model_matrix
from hypothesis import given, settings
from hypothesis import strategies as st

from glmm_binomial.model.direct_design import direct_matrix
from glmm_binomial.model.formula import r_name
from glmm_binomial.model.r_coding import MATERIALIZER, r_ordered_formula
from glmm_binomial.model.transforms import FORMULA_CONTEXT, materialize


def frame(seed: int = 0, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "k": rng.integers(0, 9, n),
            "f": pd.Categorical(
                rng.choice(["b", "a", "3+", "c d"], n), categories=["b", "a", "3+", "c d"]
            ),
            "h": pd.Categorical(rng.choice([2, 1], n)),
            "s": rng.choice(["u", "v"], n),
            "o": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), ["lo", "mid", "hi"], True),
        }
    )


def formulaic_matrix(expr: str, data: pd.DataFrame) -> tuple[np.ndarray, list[str], object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mm = model_matrix(
            r_ordered_formula(expr),
            data,
            na_action="ignore",
            context=FORMULA_CONTEXT,
            output="numpy",
            materializer=MATERIALIZER,
        )
    values = np.asarray(mm, dtype=np.float64)
    return (
        values.reshape(len(data), -1),
        [r_name(str(c)) for c in mm.model_spec.column_names],
        mm.model_spec,
    )


PLAIN = [
    "x + f",
    "1 + k + f + h",
    "0 + f + x",
    "f - 1 + h",
    "h + f",
    "x",
    "1",
    "f",
    # Stateless expressions of numeric columns, evaluated as formulaic evaluates them.
    "I(x ** 2) + f",
    "x + I(k ** 2) + log(k + 1) + np.exp(x / 2) + h",
    "0 + sqrt(abs(x)) + f",
    # Interactions of two columns: a numeric and a categorical, or two numerics.
    "x * f",
    "x:f",
    "0 + f:x",
    "x + k + x:k + h",
    "I(x ** 2) + f + k:h + f:k",
    # Interactions of two categoricals, with and without their main effects.
    "f:h",
    "f * h",
    "x + h:f + o:h",
]


@pytest.mark.parametrize("expr", PLAIN)
def test_plain_terms_equal_formulaic(expr: str) -> None:
    data = frame()
    direct = direct_matrix(expr, r_ordered_formula(expr), data, FORMULA_CONTEXT)
    assert direct is not None
    values, names, spec = direct
    ref_values, ref_names, ref_spec = formulaic_matrix(expr, data)
    assert names == ref_names
    assert np.array_equal(values, ref_values)
    assert spec.column_names == ref_spec.column_names
    assert spec.encoder_state == ref_spec.encoder_state
    assert spec.structure == ref_spec.structure
    # Again from the kept plan, on other rows of the same column types.
    other = frame(seed=1, n=57)
    again = direct_matrix(expr, r_ordered_formula(expr), other, FORMULA_CONTEXT)
    assert again is not None
    assert np.array_equal(again[0], formulaic_matrix(expr, other)[0])


@pytest.mark.parametrize(
    "expr",
    [
        "f + scale(x)",
        "I(x > 0) + f",
        "I(x ** 2):f",
        "s + x",
        "C(h)",
        "x:k:f",
        "poly(x, 2)",
        "x + factor(k)",  # levels from the data: formulaic's
        "x + C(k) + f",
    ],
)
def test_other_terms_go_to_formulaic(expr: str) -> None:
    data = frame()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The probe on made-up rows (scale of a constant column: 0 / 0) warns nobody.
        assert direct_matrix(expr, r_ordered_formula(expr), data, FORMULA_CONTEXT) is None
        values, names, _ = materialize(expr, data, "test")
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    ref_values, ref_names, _ = formulaic_matrix(expr, data)
    assert names == ref_names and np.array_equal(values, ref_values)


def test_an_expression_of_a_column_with_missing_values_equals_formulaic() -> None:
    data = frame()
    data.loc[[2, 9], "x"] = np.nan
    expr = "I(x ** 2) + log(k + 1) + f"
    direct = direct_matrix(expr, r_ordered_formula(expr), data, FORMULA_CONTEXT)
    assert direct is not None
    ref_values, ref_names, _ = formulaic_matrix(expr, data)
    assert direct[1] == ref_names
    assert np.array_equal(direct[0], ref_values, equal_nan=True)


def test_unused_category_and_missing_values_go_to_formulaic() -> None:
    data = frame()
    data["f"] = data["f"].cat.add_categories(["unused"])
    assert direct_matrix("x + f", r_ordered_formula("x + f"), data, FORMULA_CONTEXT) is None
    missing = frame()
    missing.loc[3, "f"] = np.nan
    assert direct_matrix("x + f", r_ordered_formula("x + f"), missing, FORMULA_CONTEXT) is None
    values, names, _ = materialize("x + f", missing, "test")
    ref_values, ref_names, _ = formulaic_matrix("x + f", missing)
    assert names == ref_names
    assert np.array_equal(values, ref_values, equal_nan=True)


TERMS = [
    "x",
    "k",
    "f",
    "h",
    "o",
    "I(x ** 2)",
    "log(k + 1)",
    "np.exp(x / 3)",
    "x:f",
    "k:h",
    "x:k",
    "h:x",
    "x:o",
    "f:h",
    "o:f",
]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(TERMS), min_size=1, max_size=5, unique=True),
    st.booleans(),
    st.integers(0, 2**31 - 1),
    st.integers(3, 40),
)
def test_every_plain_formula_equals_formulaic(terms, intercept, seed, n):
    # Any mix of plain terms, on rows where some level may come first or be rare: the numpy
    # build (when it takes the formula) is formulaic's matrix, names and spec.
    expr = ("1 + " if intercept else "0 + ") + " + ".join(terms)
    data = frame(seed=seed, n=n)
    data["f"] = data["f"].cat.remove_unused_categories()
    data["h"] = data["h"].cat.remove_unused_categories()
    data["o"] = data["o"].cat.remove_unused_categories()
    direct = direct_matrix(expr, r_ordered_formula(expr), data, FORMULA_CONTEXT)
    ref_values, ref_names, ref_spec = formulaic_matrix(expr, data)
    if direct is None:
        return
    values, names, spec = direct
    assert names == ref_names
    assert np.array_equal(values, ref_values)
    assert spec.encoder_state == ref_spec.encoder_state and spec.structure == ref_spec.structure
