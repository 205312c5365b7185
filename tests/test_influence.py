"""Deletion diagnostics (glmm_binomial.results.influence) against lme4's influence()."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _dask_support import rows_on_cluster
from _simulate import one_level_all_failures
from conftest import load_reference, quiet_fit

import glmm_binomial as g

INFLUENCE = load_reference("influence")


@pytest.mark.parametrize("reference", INFLUENCE, ids=lambda r: f"{r['data'][0]}-{r['groups'][0]}")
def test_matches_lme4_influence(reference):
    """lme4's influence(model, groups) with bobyqa at rhoend 1e-10: the same units and
    columns; dfbeta within 2.5e-3 (lme4's refits stop a little short: its logLik 2e-4 below
    ours on these fits); dfbetas and Cook's distance within 3% of their largest value (both
    divide by covariances, and glmer's come from a finite-difference Hessian: its Wald
    statistics differ from glmmTMB's by up to 2%); the variance components within 4e-3."""
    groups = reference["groups"][0]
    result = quiet_fit(reference["formula"][0], reference["data"][0])
    assert result.loglik >= reference["loglik"][0] - 1e-6
    infl = result.influence(None if groups == "row" else groups)
    assert infl.groups == groups
    assert list(infl.fixed_effects.index) == reference["fixed"]
    labels = [str(u) for u in infl.fixed_effects_deleted.index]
    if groups == "row":  # ours are row positions, R's the data's row names (from 1)
        labels = [str(int(u) + 1) for u in labels]
    assert labels == reference["units"]
    dfbeta = np.array(reference["dfbeta"])
    np.testing.assert_allclose(infl.dfbeta(), dfbeta, atol=2.5e-3)
    dfbetas = np.array(reference["dfbetas"])
    np.testing.assert_allclose(infl.dfbetas(), dfbetas, atol=3e-2 * np.abs(dfbetas).max())
    cooks = np.array(reference["cooks"])
    np.testing.assert_allclose(infl.cooks_distance(), cooks, atol=3e-2 * cooks.max())
    np.testing.assert_allclose(
        infl.var_cov_deleted, np.array(reference["var_cov_deleted"]), atol=4e-3
    )
    assert infl.converged.all() and (infl.note == "").all()


def test_cooks_distance_is_lme4s_formula(cbpp_fit):
    infl = g.influence(cbpp_fit, "herd")
    change = infl.dfbeta().to_numpy()
    n, p = change.shape
    inverse = np.linalg.inv(cbpp_fit.vcov.to_numpy())
    expected = [(n - p) / (n * p) * d @ inverse @ d for d in change]
    np.testing.assert_allclose(infl.cooks_distance(), expected, rtol=1e-10)
    deleted = infl.fixed_effects_deleted.loc["3"]
    np.testing.assert_allclose(infl.dfbeta().loc["3"], deleted - cbpp_fit.params)
    se = np.sqrt(np.diag(infl.vcov_deleted["3"]))
    np.testing.assert_allclose(infl.dfbetas().loc["3"], (deleted - cbpp_fit.params) / se)
    np.testing.assert_allclose(
        infl.dfbeta("var.cov").to_numpy().ravel(),
        infl.var_cov_deleted.to_numpy().ravel() - cbpp_fit.varcorr["variance"].iloc[0],
    )


def test_a_deletion_is_the_fit_without_that_group(cbpp_fit):
    """Each refit is the model fitted to the other groups' rows (levels left empty dropped),
    to the optimizer's tolerance (a variance's deviance is flat: 1e-5)."""
    infl = cbpp_fit.influence("herd")
    data = g.datasets.load("cbpp")
    without = quiet_fit(cbpp_fit.formula, data[data["herd"].astype(str) != "7"])
    np.testing.assert_allclose(infl.fixed_effects_deleted.loc["7"], without.params, atol=1e-6)
    np.testing.assert_allclose(
        infl.var_cov_deleted.loc["7"].iloc[0], without.varcorr["variance"].iloc[0], atol=1e-5
    )


def test_repr_is_short(cbpp_fit):
    text = repr(cbpp_fit.influence("herd"))
    assert text.startswith("Influence: the fit refitted without each herd (15 refits")
    assert "largest Cook's distances: 11 0.318" in text and "\n" not in text


def test_workers_give_the_same_numbers(cbpp_fit):
    one = cbpp_fit.influence("herd")
    two = cbpp_fit.influence("herd", n_jobs=2)
    pd.testing.assert_frame_equal(one.fixed_effects_deleted, two.fixed_effects_deleted)
    pd.testing.assert_frame_equal(one.var_cov_deleted, two.var_cov_deleted)


def test_a_level_seen_only_in_the_deleted_group_has_no_estimate():
    rng = np.random.default_rng(1)
    n = 200
    data = pd.DataFrame({"g": np.repeat(np.arange(10), 20), "x": rng.normal(size=n)})
    data["f"] = np.where(data["g"] == 0, "c", np.where(rng.random(n) < 0.5, "a", "b"))
    data["y"] = rng.integers(0, 2, n)
    result = quiet_fit("y ~ f + x + (1 | g)", data)
    infl = result.influence("g")
    first = infl.fixed_effects_deleted.loc[0]
    assert np.isnan(first["fc"]) and np.isfinite(first.drop("fc")).all()
    assert "fc cannot be estimated (aliased)" in infl.note.loc[0]
    assert np.isnan(infl.cooks_distance().loc[0])
    assert np.isfinite(infl.cooks_distance().drop(0)).all()


def test_vector_terms_are_named_as_lme4_names_them():
    result = quiet_fit("use ~ age + urban + (1 + urban | district) + (1 | livch)", "contraception")
    infl = result.influence("livch")
    assert list(infl.var_cov.index) == [
        "district:v[(Intercept)]",
        "district:C[urbanY,(Intercept)]",
        "district:v[urbanY]",
        "livch:v[(Intercept)]",
    ]
    lam = result.covariance_matrices()[0]
    np.testing.assert_allclose(infl.var_cov.iloc[:3], [lam[0, 0], lam[1, 0], lam[1, 1]])
    assert list(infl.fixed_effects_deleted.index) == ["0", "1", "2", "3+"]


def test_refusals(cbpp_fit):
    with pytest.raises(ValueError, match="groups must name a grouping factor of the model"):
        cbpp_fit.influence("period")
    with pytest.raises(ValueError, match="n_jobs"):
        cbpp_fit.influence("herd", n_jobs=0)
    with pytest.raises(ValueError, match="which must be 'fixed' or 'var.cov'"):
        cbpp_fit.influence("herd").dfbeta("random")
    with pytest.raises(ValueError, match="takes a GLMMResult"):
        g.influence("a fit", "herd")
    with pytest.raises(ValueError, match="influence needs the rows of the fit"):
        g.influence(rows_on_cluster(cbpp_fit), "herd")
    vb = quiet_fit(cbpp_fit.formula, "cbpp", method="vb")
    with pytest.raises(ValueError, match="not available for method 'vb'"):
        vb.influence("herd")


@pytest.fixture(scope="module")
def cbpp_fit():
    return quiet_fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp")


def test_a_refit_separated_without_a_unit_is_noted_as_such():
    # Level a's one success lies in one group: without that group the refit is separated
    # by the fixed effects (the intercept, fb and fc diverge; z stays finite). Its end is
    # the limit's, so it is noted as diverging, not as a refit that did not converge.
    frame = one_level_all_failures()
    first = frame.index[frame["f"] == "a"][0]
    frame.loc[first, "y"] = 1
    unit = frame.loc[first, "g"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = g.fit("y ~ f + z + (1 | g)", frame)
        deleted = g.influence(result, groups="g")
    assert result.converged
    assert deleted.note[unit] == (
        "some fixed effects of the refit diverge (separation without this unit)"
    )
    assert not deleted.converged[unit]
    row = deleted.fixed_effects_deleted.loc[unit]
    assert row[["(Intercept)", "fb", "fc"]].isna().all() and np.isfinite(row["z"])
    assert (deleted.note.drop(unit) == "").all()
