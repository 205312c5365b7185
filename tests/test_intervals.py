import numpy as np
import pytest
from conftest import CBPP, load_reference

import glmm_binomial as g


@pytest.fixture(scope="module")
def cbpp_fit():
    return g.fit(CBPP, g.datasets.load("cbpp"))


def test_wald_rows_match_lme4_confint(cbpp_fit):
    ref = load_reference("cbpp_inference")
    table = cbpp_fit.confint("wald")
    assert list(table.index) == [row["parameter"] for row in ref["wald"]]
    for row in ref["wald"]:
        if "lower" not in row:  # lme4 gives NA for the SD
            assert np.isnan(table.loc[row["parameter"], "lower"])
            continue
        # glmer's standard errors come from its own finite-difference Hessian, 0.6-1.5% below
        # glmmTMB's (which ours match, see below): the ends differ by up to 1.1e-2.
        assert table.loc[row["parameter"], "lower"] == pytest.approx(row["lower"], abs=1.2e-2)
        assert table.loc[row["parameter"], "upper"] == pytest.approx(row["upper"], abs=1.2e-2)


def test_wald_intervals_match_glmmtmb_within_1e3(cbpp_fit):
    tmb = load_reference("cbpp")["fits"]["glmmTMB_laplace"]
    table = cbpp_fit.confint("wald")
    for name, estimate in tmb["fixef"].items():
        half = 1.959963984540054 * tmb["se"][name]
        assert table.loc[name, "lower"] == pytest.approx(estimate - half, abs=1e-3)
        assert table.loc[name, "upper"] == pytest.approx(estimate + half, abs=1e-3)


def test_one_entry_point_for_intervals(cbpp_fit):
    profile = cbpp_fit.confint(which="theta_", conf_level=0.9)
    assert profile.index.tolist() == ["sd_(Intercept)|herd"]
    assert g.confint(cbpp_fit, "wald", 0.9).equals(cbpp_fit.confint(method="wald", conf_level=0.9))
    with pytest.raises(ValueError, match="method must be one of"):
        cbpp_fit.confint("bayes")
    with pytest.raises(ValueError, match="level"):
        cbpp_fit.confint("wald", conf_level=95)


def test_level_is_the_deprecated_name_of_conf_level(cbpp_fit):
    wald = cbpp_fit.confint("wald", conf_level=0.9)
    with pytest.warns(DeprecationWarning, match="conf_level") as caught:
        old = cbpp_fit.confint("wald", level=0.9)
    assert caught[0].filename == __file__  # the warning points at the caller
    assert old.equals(wald)
    with pytest.warns(DeprecationWarning, match="conf_level"):
        assert g.confint(cbpp_fit, "wald", level=0.9).equals(wald)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="conf_level only"):
        cbpp_fit.confint("wald", conf_level=0.8, level=0.9)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="level"):
        cbpp_fit.confint("wald", level=95)


def test_lme4_parm_and_method_spellings():
    from conftest import load_reference

    ref = load_reference("re_form")
    fitted = g.fit(ref["formula"], g.datasets.load("contraception"))
    wald = fitted.confint(method="Wald", parm="beta_")
    assert list(wald.index) == ref["wald_beta_names"]
    # glmer's SEs come from its finite-difference Hessian: the ends differ by up to 1.7e-4.
    np.testing.assert_allclose(wald["lower"], ref["wald_beta_lower"], atol=3e-4)
    np.testing.assert_allclose(wald["upper"], ref["wald_beta_upper"], atol=3e-4)
    np.testing.assert_allclose(
        fitted.confint(method="WALD", parm="age").loc["age"], ref["wald_age"], atol=3e-4
    )
    full = fitted.confint(method="wald")
    assert fitted.confint("wald", parm="theta_").equals(full.iloc[:2])
    assert fitted.confint("wald", parm=["urbanY", "age"]).equals(full.loc[["age", "urbanY"]])
    assert g.confint(fitted, "Wald", parm="beta_").equals(wald)
    # parm is the profile's which: only those are profiled.
    profiled = fitted.confint(parm="age")
    assert list(profiled.index) == ["age"]
    assert profiled.equals(fitted.confint(which="age"))
    for parm, fragment in [
        ("nope", "parm: unknown parameter"),
        ([], "parm names no parameter"),
        (3, "parm must be a parameter name"),
    ]:
        for method in ("wald", "profile", "boot"):
            with pytest.raises(ValueError, match=fragment):
                fitted.confint(method, parm=parm)
    with pytest.raises(ValueError, match="give parm or which"):
        fitted.confint(parm="age", which="age")


def test_a_variational_fits_default_interval_is_its_gaussian_posteriors(cbpp_fit):
    fitted = g.fit(cbpp_fit.formula, g.datasets.load("cbpp"), method="vb")
    default = fitted.confint()
    assert default.equals(fitted.confint("wald"))
    half = 1.959963984540054 * fitted.bse
    np.testing.assert_allclose(default.loc[fitted.params.index, "lower"], fitted.params - half)
    with pytest.raises(ValueError, match=r"not method 'vb'; confint\('wald'\) gives"):
        fitted.confint("profile")
