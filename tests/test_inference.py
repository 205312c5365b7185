import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from _simulate import all_successes_group_frame, one_level_all_failures
from conftest import load_reference

import glmm_binomial as g
from glmm_binomial.results.inference import nested_in


def test_likelihood_ratio_test_matches_lme4():
    ref = load_reference("cbpp_inference")
    cbpp = g.datasets.load("cbpp")
    full = g.fit(ref["formula"], cbpp)
    reduced = g.fit(ref["reduced"], cbpp)
    table = g.anova(full, reduced)
    lrt = ref["lrt"]
    assert table["logLik"].iloc[0] == pytest.approx(lrt["logLik_reduced"], abs=1e-3)
    assert table["df"].iloc[1] == lrt["df"]
    # glmer's full-model logLik is 3e-4 below the optimum we reach, so chisq differs by ~6e-4.
    assert table["chisq"].iloc[1] == pytest.approx(lrt["chisq"], abs=2e-3)
    assert table["p"].iloc[1] == pytest.approx(lrt["p"], rel=1e-3)


def test_anova_rejects_bad_input():
    cbpp = g.datasets.load("cbpp")
    full = g.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    with pytest.raises(ValueError, match="at least two"):
        g.anova(full)
    with pytest.raises(ValueError, match="GLMMResult"):
        g.anova(full, "model")


@pytest.fixture(scope="module")
def contraception_fits():
    data = g.datasets.load("contraception")
    formulas = {
        "age": "use ~ age + (1 | district)",
        "urban": "use ~ urban + (1 | district)",
        "both": "use ~ age + urban + (1 | district)",
        "livch": "use ~ age + urban + livch + (1 | livch)",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", g.BoundaryWarning)  # (1 | livch) is singular
        return data, {key: g.fit(f, data) for key, f in formulas.items()}


def test_anova_gives_no_p_value_for_models_with_the_same_number_of_parameters(
    contraception_fits,
):
    # Item 6: non-nested, same npar: lme4 shows no p-value (we printed p = 1.0).
    _, fits = contraception_fits
    table = g.anova(fits["age"], fits["urban"])
    assert table["df"].iloc[1] == 0
    assert np.isnan(table["chisq"].iloc[1]) and np.isnan(table["p"].iloc[1])
    assert "same number of parameters" in table["note"].iloc[1]


def test_anova_gives_no_p_value_for_non_nested_models(contraception_fits):
    _, fits = contraception_fits
    # Different grouping factors: (1 | district) is not contained in (1 | livch).
    table = g.anova(fits["age"], fits["livch"])
    assert table["df"].iloc[1] > 0 and np.isnan(table["p"].iloc[1])
    assert "not nested" in table["note"].iloc[1]


def test_anova_tests_nested_models(contraception_fits):
    _, fits = contraception_fits
    table = g.anova(fits["both"], fits["age"])
    assert table["formula"].tolist() == [fits["age"].formula, fits["both"].formula]
    assert table["df"].iloc[1] == 1 and 0.0 <= table["p"].iloc[1] < 1e-3
    assert table["note"].tolist() == ["", ""]


def test_anova_gives_no_p_value_where_a_model_did_not_converge():
    """The log link's maximum on its bound (a group all successes): both fits end there, not
    converged, the larger one's logLik below the smaller's; anova gave chisq 0 and p 1 as a
    test. As drop1, it gives none and says why (FitOutput.at_supremum)."""
    frame = all_successes_group_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        larger = g.fit("y ~ x + (1 | g)", frame, link="log")
        smaller = g.fit("y ~ 1 + (1 | g)", frame, link="log")
    assert not larger.converged and not smaller.converged
    table = g.anova(smaller, larger)
    assert np.isnan(table["chisq"].iloc[1]) and np.isnan(table["p"].iloc[1])
    assert table["note"].iloc[1] == (
        "no test: the smaller model and this model did not converge (see warnings)"
    )


def test_anova_refuses_models_fitted_to_different_rows(contraception_fits):
    data, fits = contraception_fits
    fewer = g.fit("use ~ age + urban + (1 | district)", data.iloc[:-10])
    with pytest.raises(ValueError, match="different numbers of observations"):
        g.anova(fits["age"], fewer)
    flipped = g.fit("use ~ age + urban + (1 | district)", data.assign(use=1 - data["use"]))
    with pytest.raises(ValueError, match="different responses or rows"):
        g.anova(fits["age"], flipped)


def test_anova_refuses_models_fitted_by_different_methods(contraception_fits):
    data, fits = contraception_fits
    agq = g.fit("use ~ age + urban + (1 | district)", data, method="agq", n_agq=3)
    with pytest.raises(ValueError, match="different methods"):
        g.anova(fits["age"], agq)


@pytest.mark.filterwarnings("ignore::glmm_binomial.BoundaryWarning")
def test_nesting_looks_at_column_spaces_not_names():
    cbpp = g.datasets.load("cbpp")
    response = "cbind(incidence, size - incidence)"
    small = g.fit(f"{response} ~ 1 + (1 | herd)", cbpp).model
    large = g.fit(f"{response} ~ period + (1 | herd) + (1 | period)", cbpp).model
    assert nested_in(small, large) and not nested_in(large, small)


DROP1 = load_reference("drop1")


@pytest.mark.parametrize("reference", DROP1, ids=lambda r: r["formula"][0])
def test_drop1_matches_lme4(reference):
    """Single term deletions as lme4's drop1(test = "Chisq"): the same terms (marginality kept:
    age * urban drops only age:urban), npar, AIC and LRT (lme4's refits stop a little short of
    the optimum, so LRT agrees to 2e-3) and p."""
    data = g.datasets.load(reference["data"][0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit(reference["formula"][0], data)
        table = g.drop1(result)
    assert list(table.index) == reference["terms"]
    assert result.loglik >= reference["loglik"][0] - 1e-6
    assert np.isnan(table["npar"].iloc[0]) and np.isnan(table["LRT"].iloc[0])
    np.testing.assert_array_equal(table["npar"].iloc[1:], reference["npar"][1:])
    np.testing.assert_allclose(table["AIC"], reference["AIC"], atol=2e-3)
    np.testing.assert_allclose(table["LRT"].iloc[1:], reference["LRT"][1:], atol=2e-3)
    np.testing.assert_allclose(table["Pr(Chi)"].iloc[1:], reference["p"][1:], rtol=1e-3)
    assert (table["note"] == "").all()


def test_drop1_without_a_test():
    """lme4's drop1(test = "none"): the same npar and AIC, no LRT columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit(
            "cbind(incidence, size - incidence) ~ period + (1 | herd)", g.datasets.load("cbpp")
        )
    plain, tested = g.drop1(result, test="none"), g.drop1(result)
    assert list(plain.columns) == ["npar", "AIC", "note"]
    pd.testing.assert_frame_equal(plain, tested[["npar", "AIC", "note"]])
    with pytest.raises(ValueError, match="test must be 'Chisq' or 'none'"):
        g.drop1(result, test="F")


def test_drop1_refuses_what_it_cannot_refit():
    data = g.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vb = g.fit(formula, data, method="vb")
        penalized = g.fit(formula, data, priors="blme")
    with pytest.raises(ValueError, match="need maximum-likelihood fits"):
        g.drop1(vb)
    with pytest.raises(ValueError, match="penalized by priors"):
        g.drop1(penalized)
    with pytest.raises(ValueError, match="takes a GLMMResult"):
        g.drop1("m")


def test_drop1_of_a_completely_separated_fit_compares_the_limits():
    """Complete separation: the fit's log-likelihood tends to 0 along the diverging path (its
    supremum, not attained); the LRT of x compares the refit without it with that limit, that
    of z two separated fits (both at 0: LRT 0), each with a note saying so."""
    rng = np.random.default_rng(1)
    x, z = rng.normal(size=300), rng.normal(size=300)
    data = {"y": (x > 0).astype(int), "x": x, "z": z, "g": rng.integers(0, 12, 300)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit("y ~ x + z + (1 | g)", data)
        without_x = g.fit("y ~ z + (1 | g)", data)
        table = g.drop1(result)
    assert not result.converged and result.loglik == pytest.approx(0.0, abs=1e-6)
    assert table.loc["x", "LRT"] == pytest.approx(-2.0 * without_x.loglik, rel=1e-6)
    assert table.loc["z", "LRT"] == pytest.approx(0.0, abs=1e-6)
    assert table["note"].iloc[1:].str.contains("separated").all()


def test_drop1_of_a_quasi_separated_fit_is_that_of_the_mixed_rows():
    """Level a of f all failures: the separated fit's log-likelihood at its limit is the fit
    of the mixed rows' (the level-a rows contribute nothing there), so the LRT of z equals
    the mixed rows' own, to 1e-6."""
    frame = one_level_all_failures()
    mixed = frame[frame["f"] != "a"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = g.drop1(g.fit("y ~ f + z + (1 | g)", frame))
        lrt = 2.0 * (
            g.fit("y ~ f + z + (1 | g)", mixed).loglik - g.fit("y ~ f + (1 | g)", mixed).loglik
        )
    assert table.loc["z", "LRT"] == pytest.approx(lrt, rel=1e-6)
    assert np.isfinite(table.loc["f", "Pr(Chi)"])
    assert "the fit and the refit separated" in table.loc["z", "note"]


def test_only_a_converged_search_is_at_its_supremum():
    """FitOutput.at_supremum: a fit separated by the fixed effects whose search converged is at its
    limit; one whose search did not, or whose variance runs away, is not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        output = g.fit("y ~ f + z + (1 | g)", one_level_all_failures()).fit_output
    assert not output.converged and output.at_supremum
    stopped = dataclasses.replace(
        output, opt_summary=dataclasses.replace(output.opt_summary, converged=False)
    )
    assert not stopped.at_supremum
    grouped = dataclasses.replace(
        output, separation=dataclasses.replace(output.separation, columns=((0, 0),))
    )
    assert not grouped.at_supremum
