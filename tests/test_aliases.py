"""results/aliases.py: lme4's and statsmodels' names beside the package's, one meaning each."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import CBPP
from scipy import stats

import glmm_binomial as g
from glmm_binomial.results import aliases
from glmm_binomial.results.aliases import ResultAliases, renamed_level
from glmm_binomial.results.base import ResultBase


@pytest.fixture(scope="module")
def cbpp_fit():
    return g.fit(CBPP, g.datasets.load("cbpp"))


def table_names() -> list[str]:
    """The names in the first column of the module docstring's table (its rows are between
    the second and the third rule; a row's continuation lines start with spaces)."""
    lines = aliases.__doc__.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    assert len(rules) == 3
    names = []
    for line in lines[rules[1] + 1 : rules[2]]:
        if line and not line.startswith(" "):
            cell = line[:20].strip()
            names += [name.strip().split("(")[0] for name in cell.split(",")]
    return names


def test_every_alias_is_in_the_table_and_every_name_there_exists(cbpp_fit):
    defined = {name for name in vars(ResultAliases) if not name.startswith("_")}
    listed = set(table_names())
    assert defined <= listed
    for name in listed:
        assert hasattr(cbpp_fit, name), name


def test_the_aliases_only_forward(cbpp_fit):
    assert cbpp_fit.llf == cbpp_fit.logLik() == cbpp_fit.loglik
    pd.testing.assert_series_equal(cbpp_fit.fixef(), cbpp_fit.params)
    assert cbpp_fit.VarCorr.equals(cbpp_fit.varcorr)
    np.testing.assert_array_equal(cbpp_fit.fittedvalues, cbpp_fit.fitted())
    np.testing.assert_array_equal(cbpp_fit.residuals("pearson"), cbpp_fit.resid("pearson"))
    pd.testing.assert_series_equal(cbpp_fit.tvalues, cbpp_fit.zvalues)
    pd.testing.assert_frame_equal(
        cbpp_fit.conf_int(alpha=0.1),
        cbpp_fit.fixed_effects_table(0.9)[["ci_lower", "ci_upper"]],
    )
    pd.testing.assert_frame_equal(cbpp_fit.cov_params(), cbpp_fit.vcov)
    pd.testing.assert_frame_equal(
        cbpp_fit.t_test("period2 = 0, period3 = period4").table,
        cbpp_fit.wald_test("period2 = 0, period3 = period4").table,
    )
    for kind in ("deviance", "pearson", "response", "working"):
        np.testing.assert_array_equal(getattr(cbpp_fit, f"resid_{kind}"), cbpp_fit.resid(kind))
    assert cbpp_fit.isSingular() is cbpp_fit.singular
    pd.testing.assert_series_equal(cbpp_fit.fe_params, cbpp_fit.params)
    pd.testing.assert_series_equal(cbpp_fit.bse_fe, cbpp_fit.bse)
    assert cbpp_fit.ngrps() == cbpp_fit.ngroups == {"herd": 15}


def test_zvalues_are_wald_z_statistics(cbpp_fit):
    z = cbpp_fit.params / cbpp_fit.bse
    np.testing.assert_allclose(cbpp_fit.zvalues, z, rtol=1e-15)
    assert cbpp_fit.zvalues.name == "z"
    np.testing.assert_allclose(cbpp_fit.pvalues, 2 * stats.norm.sf(np.abs(z)), rtol=1e-12)


def test_an_alias_follows_an_override_of_what_it_forwards_to(cbpp_fit):
    class Shifted(type(cbpp_fit)):
        @property
        def loglik(self) -> float:
            return super().loglik + 1.0

        def resid(self, type: str = "deviance") -> np.ndarray:
            return np.zeros(3)

    shifted = Shifted(cbpp_fit.model, cbpp_fit.fit_output)
    assert shifted.llf == shifted.logLik() == cbpp_fit.loglik + 1.0
    assert shifted.residuals().tolist() == [0.0, 0.0, 0.0]


def test_the_facts_carry_no_alias():
    alias_names = {name for name in vars(ResultAliases) if not name.startswith("_")}
    assert alias_names and not alias_names & set(dir(ResultBase))


def test_renamed_level():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed_level(0.9, None) == 0.9
    with pytest.warns(DeprecationWarning, match="use conf_level"):
        assert renamed_level(0.95, 0.8) == 0.8
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="conf_level only"):
        renamed_level(0.9, 0.8)


@pytest.mark.parametrize(
    "function",
    [
        g.confint,
        g.profile,
        g.profile_confint,
        g.fit,
        g.BootstrapResult.confint,
        g.GLMMResult.confint,
        g.GLMMResult.profile,
        g.GLMMResult.fixed_effects_table,
        g.GLMMResult.plot_ranef,
        g.GLMMResult.plot_profile,
        g.emmeans,
        g.emtrends,
        g.contrast,
        g.pairs,
    ],
)
def test_one_name_for_the_confidence_level(function):
    parameters = inspect.signature(function).parameters
    assert "conf_level" in parameters
    assert "alpha" not in parameters
    if "level" in parameters:  # the released spelling, kept as a keyword-only alias
        assert parameters["level"].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters["level"].default is None


def test_emmeans_level_is_the_deprecated_name_of_conf_level(cbpp_fit):
    means = g.emmeans(cbpp_fit, "period", conf_level=0.9)
    with pytest.warns(DeprecationWarning, match="use conf_level"):
        old = g.emmeans(cbpp_fit, "period", level=0.9)
    pd.testing.assert_frame_equal(old.table, means.table)
    sloped = g.fit("use ~ age + urban + (1 | district)", g.datasets.load("contraception"))
    with pytest.warns(DeprecationWarning, match="use conf_level"):
        trends = g.emtrends(sloped, "urban", var="age", level=0.9)
    assert trends.level == 0.9
    pd.testing.assert_frame_equal(
        trends.table, g.emtrends(sloped, "urban", var="age", conf_level=0.9).table
    )
    pairs = g.pairs(means, conf_level=0.8)
    with pytest.warns(DeprecationWarning, match="use conf_level"):
        pd.testing.assert_frame_equal(g.pairs(means, level=0.8), pairs)
    with pytest.warns(DeprecationWarning, match="use conf_level"):
        pd.testing.assert_frame_equal(g.contrast(means, level=0.8), pairs)
    # The means' own level by default.
    pd.testing.assert_frame_equal(g.pairs(means), g.pairs(means, conf_level=0.9))
