"""glmm_binomial.arguments: the shared checks of numeric arguments, and the functions that
use them refusing what they refused inconsistently before (found by bench/fuzz_workflow.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.arguments import fraction, non_negative, positive, positive_int

NOT_NUMBERS = [True, False, None, "0.5", [0.5], np.array([0.5]), float("nan"), float("inf")]


@pytest.mark.parametrize("value", NOT_NUMBERS + [0, 1, 0.0, 1.0, -0.1, 1.5])
def test_fraction_refuses_what_is_not_strictly_between_0_and_1(value):
    with pytest.raises(ValueError, match=r"^alpha must be strictly between 0 and 1, got "):
        fraction(value, "alpha")


@pytest.mark.parametrize("value", NOT_NUMBERS + [-1e-300, -1])
def test_non_negative_refuses_what_is_not_a_finite_number_of_at_least_0(value):
    with pytest.raises(ValueError, match=r"^sigma must be a non-negative number, got "):
        non_negative(value, "sigma")


@pytest.mark.parametrize("value", [*NOT_NUMBERS, 0, 0.0, -1e-300])
def test_positive_refuses_what_is_not_a_finite_number_above_0(value):
    with pytest.raises(ValueError, match=r"^dpi must be a positive number, got "):
        positive(value, "dpi")
    assert positive(np.float32(2.5), "dpi") == 2.5 and positive(3, "dpi") == 3.0


@pytest.mark.parametrize("value", [*NOT_NUMBERS, 0, -2, 2.0, np.float64(3.0)])
def test_positive_int_refuses_what_is_not_a_count(value):
    with pytest.raises(ValueError, match=r"^nsim must be a positive integer, got "):
        positive_int(value, "nsim")


@given(st.integers(min_value=1, max_value=2**62))
def test_positive_int_returns_a_python_int(value):
    for given_as in (value, np.int64(value)):
        out = positive_int(given_as, "n")
        assert type(out) is int and out == value


@given(st.floats(min_value=0.0, max_value=1.0, exclude_min=True, exclude_max=True))
def test_fraction_returns_a_float_equal_to_the_value(value):
    for given_as in (value, np.float32(value), np.float64(value)):
        if not 0.0 < float(given_as) < 1.0:
            continue  # float32 rounds to 0 or 1 at the ends
        out = fraction(given_as, "p")
        assert type(out) is float and out == float(given_as)


@given(st.one_of(st.integers(min_value=0, max_value=10**6), st.floats(0.0, 1e300)))
def test_non_negative_returns_a_float_equal_to_the_value(value):
    out = non_negative(value, "t")
    assert type(out) is float and out == float(value) and math.isfinite(out)
    assert non_negative(np.int64(3), "t") == 3.0


@pytest.fixture(scope="module")
def contraception_fit():
    return g.fit("use ~ age + urban + (1 | district)", g.datasets.load("contraception"))


def test_result_functions_refuse_a_level_given_as_text_or_none(contraception_fit):
    fit = contraception_fit
    with pytest.raises(ValueError, match="conf_level"):
        fit.fixed_effects_table("0.9")
    with pytest.raises(ValueError, match="conf_level"):
        g.confint(fit, conf_level="0.9")
    with pytest.raises(ValueError, match="alpha"):
        fit.conf_int(alpha="0.1")
    with pytest.raises(ValueError, match="conf_level"):
        g.emmeans(fit, "urban", conf_level=np.nan)
    with pytest.raises(ValueError, match="conf_level"):
        g.fit("use ~ age + (1 | district)", g.datasets.load("contraception"), conf_level="0.9")
    # Numbers of numpy's types are numbers.
    table = fit.fixed_effects_table(np.float32(0.9))
    assert np.isfinite(table[["ci_lower", "ci_upper"]].to_numpy()).all()


def test_tolerance_and_sigma_refuse_nan_and_infinity(contraception_fit):
    fit = contraception_fit
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="tolerance"):
            g.r2_nakagawa(fit, tolerance=bad)
        with pytest.raises(ValueError, match="tolerance"):
            g.icc(fit, tolerance=bad)
        with pytest.raises(ValueError, match="sigma"):
            g.emmeans(fit, "urban", type="response", bias_adjust=True, sigma=bad)


def test_counts_from_numpy_are_python_ints_on_the_control():
    control = g.McmcControl(draws=np.int64(20), warmup=10, chains=np.int32(2))
    assert type(control.draws) is int and type(control.chains) is int
    with pytest.raises(ValueError, match="draws must be a positive integer"):
        g.McmcControl(draws=20.0)


def test_refit_names_a_response_that_is_not_numbers(contraception_fit):
    fit = contraception_fit
    response = fit.model.successes.astype(object)
    response[3] = "x"
    with pytest.raises(ValueError, match="new_response must be numbers"):
        fit.refit(response)
    assert response[3] == "x"
