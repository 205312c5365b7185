"""Wald chi-square tests (glmm_binomial.results.wald) against car's Anova and linearHypothesis."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference, quiet_fit
from hypothesis import given, settings
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.results.wald import parse_hypotheses

WALD = load_reference("wald_tests")
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def fits():
    return {r["formula"]: quiet_fit(r["formula"], r["data"]) for r in WALD}


@pytest.fixture(scope="module")
def cbpp():
    return quiet_fit(CBPP, "cbpp")


def _vector(value):
    return np.atleast_1d(np.array(value, dtype=object))


@pytest.mark.parametrize("reference", WALD, ids=lambda r: r["formula"])
@pytest.mark.parametrize("kind", ["type2", "type3"])
def test_terms_match_car_anova(fits, reference, kind):
    """car's Anova(type = "II" / "III") on glmmTMB's fit (at the optimum, its covariance from
    the exact Hessian): the same terms in R's names and order, Df, and Chisq within 1e-3
    (relative). glmer's covariance comes from a finite-difference Hessian: within 3e-2 of ours.
    Where glmmTMB keeps an aliased column (urban:livch with 8 Df, glmer and we drop it: 7), it
    is compared with glmer's only."""
    result = fits[reference["formula"]]
    table = result.wald_test_terms("II" if kind == "type2" else "III")
    assert result.loglik >= reference["glmmTMB"]["loglik"] - 1e-6
    for engine, rtol in (("glmmTMB", 1e-3), ("glmer", 3e-2)):
        expected = reference[engine][kind]
        if list(_vector(expected["df"])) != list(table["Df"]):
            assert engine == "glmmTMB" and "urban:livch" in reference["formula"]
            continue
        assert list(table.index) == list(_vector(expected["terms"]))
        chisq = _vector(expected["chisq"]).astype(float)
        np.testing.assert_allclose(table["Chisq"], chisq, rtol=rtol)
        np.testing.assert_allclose(
            table["Pr(>Chisq)"], _vector(expected["p"]).astype(float), rtol=10 * rtol, atol=1e-12
        )
    assert (table["note"] == "").all()


@pytest.mark.parametrize("reference", WALD, ids=lambda r: r["formula"])
def test_linear_hypotheses_match_car(fits, reference):
    """car's linearHypothesis in the same text: Chisq within 1e-3 of glmmTMB's (3e-2 of
    glmer's), the same Df, p within 1e-2 relative."""
    result = fits[reference["formula"]]
    for engine, rtol in (("glmmTMB", 1e-3), ("glmer", 3e-2)):
        for expected in reference[engine]["hypotheses"]:
            test = result.wald_test(expected["hypothesis"])
            assert test.df == expected["df"]
            np.testing.assert_allclose(test.statistic, expected["chisq"], rtol=rtol)
            np.testing.assert_allclose(test.pvalue, expected["p"], rtol=10 * rtol)


def test_one_coefficient_is_its_squared_z(fits):
    result = fits["use ~ age * urban + livch + (1 | district)"]
    table = result.fixed_effects
    for name in result.fixed_names:
        test = g.wald_test(result, f"`{name}` = 0")
        np.testing.assert_allclose(test.statistic, table.loc[name, "z"] ** 2, rtol=1e-12)
        np.testing.assert_allclose(test.pvalue, table.loc[name, "p"], rtol=1e-9)
        assert test.df == 1 and test.note == ""


def test_type2_and_type3_agree_on_the_highest_order_term(fits):
    result = fits["use ~ age * urban + livch + (1 | district)"]
    two, three = result.wald_test_terms("II"), g.wald_test_terms(result, 3)
    assert two.loc["age:urban", "Chisq"] == pytest.approx(three.loc["age:urban", "Chisq"])
    assert "(Intercept)" in three.index and "(Intercept)" not in two.index
    # livch is contained in no other term: its Type II test is its columns all zero.
    assert two.loc["livch", "Chisq"] == pytest.approx(three.loc["livch", "Chisq"], rel=1e-10)


def test_text_matrix_and_dataframe_hypotheses_agree(cbpp):
    text = cbpp.wald_test("period2 - period3 = 0.1, 2 * period4 = -1")
    names = cbpp.fixed_names
    matrix = np.zeros((2, len(names)))
    matrix[0, names.index("period2")], matrix[0, names.index("period3")] = 1, -1
    matrix[1, names.index("period4")] = 2
    by_matrix = cbpp.wald_test(matrix, rhs=[0.1, -1])
    frame = pd.DataFrame({"period4": [0, 2], "period2": [1, 0], "period3": [-1, 0]})
    by_frame = cbpp.wald_test(frame, rhs=[0.1, -1])
    listed = cbpp.wald_test(["period2 - period3 = 0.1", "period4 * 2 = -1"])
    for other in (by_matrix, by_frame, listed):
        assert other.statistic == pytest.approx(text.statistic, rel=1e-12)
        assert other.df == 2
    assert text.hypotheses == ("period2 - period3 = 0.1", "2 period4 = -1")
    table = text.table
    np.testing.assert_allclose(table["estimate"], matrix @ cbpp.params - [0.1, -1])
    se = np.sqrt(np.diag(matrix @ cbpp.vcov.to_numpy() @ matrix.T))
    np.testing.assert_allclose(table["std_error"], se)
    np.testing.assert_allclose(table["z"], table["estimate"] / se)
    single = cbpp.wald_test("period2 - period3 = 0.1")
    assert table["p"].iloc[0] == pytest.approx(single.pvalue, rel=1e-9)
    assert "Chisq" in repr(text) and "period2 - period3 = 0.1" in repr(text)


def test_parser_reads_names_with_operators_and_numbers():
    names = ["(Intercept)", "I(age^2)", "livch3+", "age", "age:urbanY", "poly(x, 2)1"]
    rows = parse_hypotheses(
        "(Intercept) + I(age^2) / 2 = 1e-3, livch3+ - 0.5 * age = age:urbanY, "
        "`poly(x, 2)1` - 3 = 1",
        names,
    )
    np.testing.assert_array_equal(rows[0][0], [1, 0.5, 0, 0, 0, 0])
    assert rows[0][1] == pytest.approx(1e-3)
    np.testing.assert_array_equal(rows[1][0], [0, 0, 1, -0.5, -1, 0])
    assert rows[1][1] == 0
    np.testing.assert_array_equal(rows[2][0], [0, 0, 0, 0, 0, 1])
    assert rows[2][1] == 4
    # "age = 0" does not read "age:urbanY"'s prefix: the longest name wins.
    np.testing.assert_array_equal(parse_hypotheses("age:urbanY", names)[0][0], [0, 0, 0, 0, 1, 0])


@pytest.mark.parametrize(
    ("hypothesis", "message"),
    [
        ("period5 = 0", "'period5' is not a fixed effect; the fixed effects are"),
        ("period2 == 0", "write '=' \\(one\\)"),
        ("period2 * period3 = 0", "not linear in the fixed effects"),
        ("period2 = 0, period2 = 1", "not linearly independent"),
        ("period2 = period3, period3 = period2", "not linearly independent"),
        ("1 = 2", "without a fixed effect"),
        ("", "hypothesis is empty"),
        ("period2 +", "ends with an operator"),
        ("period2 = 0 = 1", "more than one '='"),
        ("period2 period3", "expected \\+ or -"),
        ("`period2 = 0", "backtick is not closed"),
        ([], "one column per fixed effect"),
        ({"period2": 1}, "hypothesis must be text"),
    ],
)
def test_bad_hypotheses_are_named(cbpp, hypothesis, message):
    with pytest.raises(ValueError, match=message):
        cbpp.wald_test(hypothesis)


def test_bad_matrices_and_arguments(cbpp):
    with pytest.raises(ValueError, match="one column per fixed effect"):
        cbpp.wald_test(np.eye(3))
    with pytest.raises(ValueError, match="one finite value per row"):
        cbpp.wald_test(np.eye(4)[:2], rhs=[1.0])
    with pytest.raises(ValueError, match="missing or infinite"):
        cbpp.wald_test(np.full((1, 4), np.nan))
    with pytest.raises(ValueError, match="rhs goes with a matrix"):
        cbpp.wald_test("period2 = 0", rhs=[1.0])
    with pytest.raises(ValueError, match="'zz' is not a fixed effect"):
        cbpp.wald_test(pd.DataFrame({"zz": [1.0]}))
    with pytest.raises(ValueError, match="type must be 'II' or 'III'"):
        cbpp.wald_test_terms("I")
    with pytest.raises(ValueError, match="takes a GLMMResult"):
        g.wald_test("not a fit", "x = 0")
    model = cbpp.model
    bare = g.fit_model(model)
    with pytest.raises(ValueError, match="needs the formula's terms"):
        bare.wald_test_terms()
    assert bare.wald_test("period2 = 0").statistic == pytest.approx(
        cbpp.wald_test("period2 = 0").statistic, rel=1e-6
    )


def test_a_separated_coefficient_gets_no_test():
    """A fixed effect with no finite estimate (every row of one level a success) has no Wald
    test (Hauck-Donner: its standard error grows faster than the estimate); a hypothesis
    without it is tested as usual."""
    rng = np.random.default_rng(3)
    n = 240
    data = pd.DataFrame(
        {
            "f": np.repeat(["a", "b", "c"], n // 3),
            "x": rng.normal(size=n),
            "g": np.tile(np.arange(12), n // 12),
        }
    )
    data["y"] = np.where(data["f"] == "c", 1, rng.integers(0, 2, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit("y ~ f + x + (1 | g)", data)
    assert "fc" in result.diverging
    test = result.wald_test("fc = 0")
    assert np.isnan(test.statistic) and "no finite estimate" in test.note
    assert np.isfinite(result.wald_test("x = 0").statistic)
    table = result.wald_test_terms()
    assert np.isnan(table.loc["f", "Chisq"]) and "separation" in table.loc["f", "note"]
    assert np.isfinite(table.loc["x", "Chisq"])
    # Type II of x and f under x:f needs x:f's covariance with fc, which is not finite: no
    # test, said so (not called aliased), the term's Df as car gives it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inter = g.fit("y ~ x * f + (1 | g)", data)
    table = inter.wald_test_terms()
    for term, df in (("x", 1), ("f", 2)):
        assert np.isnan(table.loc[term, "Chisq"]) and table.loc[term, "Df"] == df
        assert "fc has no finite estimate (separation)" in table.loc[term, "note"]


@settings(max_examples=25, deadline=None)
@given(
    weights=st.lists(st.floats(-3, 3).filter(lambda v: abs(v) > 1e-3), min_size=3, max_size=3),
    rhs=st.floats(-2, 2),
)
def test_a_hypothesis_does_not_depend_on_its_scale(cbpp, weights, rhs):
    """c (L beta - q) = 0 is the same hypothesis as L beta - q = 0: the same statistic."""
    a, b, c = weights
    text = f"{a!r} * period2 + {b!r} * period3 - {c!r} * period4 = {rhs!r}"
    scaled = f"{2 * a!r} * period2 + {2 * b!r} * period3 - {2 * c!r} * period4 = {2 * rhs!r}"
    one, two = cbpp.wald_test(text), cbpp.wald_test(scaled)
    assert one.statistic == pytest.approx(two.statistic, rel=1e-9)


def test_anova_of_one_model_points_to_the_tests_of_its_terms(cbpp):
    with pytest.raises(ValueError, match="wald_test_terms.*drop1"):
        g.anova(cbpp)


def test_a_model_without_terms_gets_an_empty_type2_table():
    result = quiet_fit("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", "cbpp")
    table = result.wald_test_terms()
    assert table.empty and list(table.columns) == ["Chisq", "Df", "Pr(>Chisq)", "note"]
    assert list(result.wald_test_terms("III").index) == ["(Intercept)"]


def test_type2_does_not_depend_on_the_coding():
    """car: Type II tests are invariant under a change of (full-rank) contrast coding; Type III
    ones are not (with sum-to-zero coding they test the averaged effects)."""
    formula = "use ~ urban * livch + age + (1 | district)"
    treatment = quiet_fit(formula, "contraception")
    coded = quiet_fit(
        formula, "contraception", contrasts={"urban": "contr.sum", "livch": "contr.helmert"}
    )
    assert treatment.loglik == pytest.approx(coded.loglik, abs=1e-8)
    two, other = treatment.wald_test_terms(), coded.wald_test_terms()
    np.testing.assert_allclose(two["Chisq"], other["Chisq"], rtol=1e-5)
    three = treatment.wald_test_terms("III")["Chisq"]
    assert abs(three["urban"] / coded.wald_test_terms("III")["Chisq"]["urban"] - 1) > 0.1


def test_type3_with_sum_contrasts_matches_car():
    """car::Anova(type = 3) of the glmer fit with options(contrasts = c("contr.sum",
    "contr.poly")): (Intercept) 17.5501, urban 33.6780, livch 71.4837, age 12.0125,
    urban:livch 2.5481 (glmer's covariance: within 1%)."""
    coded = quiet_fit(
        "use ~ urban * livch + age + (1 | district)",
        "contraception",
        contrasts={"urban": "contr.sum", "livch": "contr.sum"},
    )
    table = coded.wald_test_terms("III")
    assert list(table.index) == ["(Intercept)", "urban", "livch", "age", "urban:livch"]
    np.testing.assert_allclose(
        table["Chisq"], [17.5501, 33.6780, 71.4837, 12.0125, 2.5481], rtol=1e-2
    )
    assert list(table["Df"]) == [1, 1, 3, 1, 3]
