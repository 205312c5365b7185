"""Marginal effects (slopes, comparisons and their averages) against marginaleffects 0.11.0
(tests/reference/slopes.json, make_slopes.R), and their exact properties.

References: marginaleffects on glmmTMB fits (at the optimum, which ours reach: logLik within
1e-9) and on glmer fits with glmmTMB's covariance of the fixed effects. Estimates are checked
against glmmTMB's (observed gap at most 1e-6: the optima differ by that much). Standard errors:
against glmmTMB's where the prediction leaves out the random effects or the estimate is a
link-scale difference (observed 1e-4 relative: the covariances differ by that much), and against
glmer's effects with glmmTMB's covariance where the random effects enter the estimate (glmmTMB's
predictions at a perturbed beta find the random effects afresh, lme4's and ours hold them at
their modes; observed 5e-4 relative, glmer's beta being a little off the optimum).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference, quiet_fit
from hypothesis import given, settings
from hypothesis import strategies as st

import glmm_binomial as g

REFERENCE = load_reference("slopes")

EST_ATOL = 5e-6  # estimates against glmmTMB's (same optimum)
SE_RTOL_TMB = 3e-4  # SEs against glmmTMB's, random effects out or link scale
SE_RTOL_GLMER = 1e-3  # SEs against glmer's effects with glmmTMB's covariance


def _data(name: str) -> pd.DataFrame:
    data = g.datasets.load(name)
    if name == "cbpp":
        return data.assign(failures=data["size"] - data["incidence"])
    return data.assign(urban_yes=data["urban"] == "Y", w=data["age"] + 20)


_FITS: dict[tuple[str, str, str], g.GLMMResult] = {}


def _fit(case: dict[str, Any]) -> g.GLMMResult:
    key = (case["data"], case["formula"], case["link"])
    if key not in _FITS:
        _FITS[key] = quiet_fit(case["formula"], _data(case["data"]), link=case["link"])
    return _FITS[key]


def _label(text: str) -> str:
    """marginaleffects 0.11 writes contrasts within by groups as mean(a) - mean(b)."""
    return re.sub(r"mean\(([^()]*)\)", r"\1", text)


def _same_values(ours: pd.Series, theirs: np.ndarray) -> None:
    """Group values against R's as.character of them: numbers as numbers, logical values in
    R's spelling, the rest as text."""
    try:
        numbers = np.asarray(theirs, dtype=float)
    except ValueError:
        numbers = None
    if numbers is not None and not pd.api.types.is_bool_dtype(ours):
        np.testing.assert_allclose(np.asarray(ours, dtype=float), numbers, rtol=1e-12)
        return
    text = [str(v).upper() if isinstance(v, (bool, np.bool_)) else str(v) for v in ours]
    assert text == list(theirs)


CALLS = [
    pytest.param(case, call, id=f"{case['formula']}|{i}")
    for case in REFERENCE
    for i, call in enumerate(case["calls"])
]


def _arguments(call: dict[str, Any], fit: g.GLMMResult) -> dict[str, Any]:
    names = ("variables", "by", "type", "re", "comparison", "slope", "wts", "hypothesis")
    out = {k: call[k] for k in names if k in call}
    if isinstance(out.get("variables"), dict):
        out["variables"] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in out["variables"].items()
        }
    if "datagrid" in call:  # R's list() arrives as []
        out["newdata"] = g.datagrid(fit, **(call["datagrid"] or {}))
    return out


def _same_grid(ours: pd.DataFrame, theirs: dict[str, Any]) -> None:
    """Our datagrid against marginaleffects': the same columns but the response (which ours
    leaves out), the same values."""
    assert set(theirs) - set(ours.columns) <= {"use", "incidence", "failures"}
    assert set(ours.columns) <= set(theirs)
    for column in ours.columns:
        _same_values(ours[column], np.atleast_1d(theirs[column]))


def _r_2sd_label(label: str) -> str:
    """marginaleffects 0.11.0 labels a "2sd" change (x - sd) - (x + sd), the estimate being
    (x + sd) - (x - sd) (its NEWS: fixed later); ours is labelled as the later versions do."""
    return (
        label.replace("(x - sd)", "(x ? sd)")
        .replace("(x + sd)", "(x - sd)")
        .replace("(x ? sd)", "(x + sd)")
    )


@pytest.mark.parametrize(("case", "call"), CALLS)
def test_against_marginaleffects(case: dict[str, Any], call: dict[str, Any]) -> None:
    fit = _fit(case)
    assert fit.loglik == pytest.approx(case["loglik"]["glmmTMB"], abs=1e-6)
    arguments = _arguments(call, fit)
    if "wts" in arguments and str(arguments.get("comparison", "")).endswith("avg"):
        # marginaleffects 0.11.0's "ratioavgwts" (and lnratioavgwts) call its weighted mean
        # without the weights: an unweighted ratio of averages; ours is weighted (checked
        # against replicated rows in test_weights_are_replicated_rows). Compare unweighted.
        del arguments["wts"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = getattr(g, call["fn"])(fit, **arguments)
    tmb, mer = call["glmmTMB"], call["glmer_tmb_vcov"]
    if "rowid" in tmb:  # unit-level: the reference keeps the first six rows of each contrast
        out = out[out["row"] < 6].reset_index(drop=True)
        np.testing.assert_array_equal(out["row"] + 1, np.atleast_1d(tmb["rowid"]))
    if "grid" in tmb:
        _same_grid(arguments["newdata"], tmb["grid"])
    hypothesis = call.get("hypothesis")
    null = hypothesis if isinstance(hypothesis, (int, float)) else 0.0
    # our rows' positions among the reference's, and the sign of their estimates there
    order, sign = np.arange(len(out)), np.ones(len(out))
    if hypothesis is not None and not isinstance(hypothesis, (int, float)):
        # the tested functions replace the rows: their labels
        assert list(out.columns[:2]) == ["term", "estimate"]
        order, sign = _matched_tests(list(out["term"]), list(np.atleast_1d(tmb["term"])))
    elif call["fn"] in ("avg_predictions", "predictions"):
        for column, values in (tmb.get("keys") or {}).items():
            _same_values(out[column], np.atleast_1d(values))
    elif "rowid" in tmb:
        # unit-level: marginaleffects orders a grid's terms as the grid's columns, ours
        # alphabetically: rows matched by (term, contrast, row)
        # (marginaleffects 0.11.0 gives a slope's rows no contrast column: "dY/dX" in ours)
        terms = np.atleast_1d(tmb["term"])
        contrasts = tmb.get("contrast") or ["dY/dX"] * len(terms)
        theirs = list(
            zip(
                terms,
                [_r_2sd_label(_label(c)) for c in np.atleast_1d(contrasts)],
                np.atleast_1d(tmb["rowid"]),
                strict=True,
            )
        )
        mine = list(zip(out["term"], out["contrast"], out["row"] + 1, strict=True))
        assert sorted(mine) == sorted(theirs)
        order = np.asarray([theirs.index(key) for key in mine])
    else:
        assert list(out["term"]) == list(np.atleast_1d(tmb["term"]))
    if tmb.get("contrast") is not None and "rowid" not in tmb:
        expected = [_r_2sd_label(_label(c)) for c in np.atleast_1d(tmb["contrast"])]
        assert [_label(c) for c in out["contrast"]] == expected
    if "by" in call and hypothesis is None:
        _same_values(out[call["by"]], np.atleast_1d(tmb["by_values"]))
    np.testing.assert_allclose(
        out["estimate"], sign * np.atleast_1d(tmb["estimate"])[order], atol=EST_ATOL
    )
    # glmmTMB's SEs are comparable where its refound random effects do not enter: without
    # them, or in link-scale differences (where they cancel).
    held = call.get("re") == "exclude" or (
        call.get("type") == "link" and not call["fn"].endswith("predictions")
    )
    reference_se = np.atleast_1d(tmb["std_error"] if held else mer["std_error"])[order]
    rtol = SE_RTOL_TMB if held else SE_RTOL_GLMER
    np.testing.assert_allclose(out["std_error"], reference_se, rtol=rtol)
    # p-values and intervals follow from the estimate and SE as marginaleffects makes them.
    z = (out["estimate"] - null) / out["std_error"]
    np.testing.assert_allclose(out["z"], z, rtol=1e-12)
    # p-values as R's (against the null value): where they are not tiny (there a small
    # difference in the SE moves them far, relatively)
    theirs = np.atleast_1d(np.asarray(mer["p_value"], dtype=float))[order]
    large = theirs > 1e-4
    np.testing.assert_allclose(out["p_value"][large], theirs[large], rtol=0.05)
    q = 1.959963984540054
    np.testing.assert_allclose(out["ci_lower"], out["estimate"] - q * out["std_error"], rtol=1e-9)


def _matched_tests(ours: list[str], theirs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each of our tests' position among marginaleffects' and the sign of its estimate there.
    marginaleffects 0.11.0 sorts the tests by label, and its avg_comparisons(by=) numbers the
    by groups in their order of appearance in the data though it shows them sorted (its b1 is
    the first group met, ours the first row shown): a keyword's pair may come reversed there,
    "0 - 3+" for our "3+ - 0", with the estimate negated."""
    order, sign = [], []
    for label in ours:
        if label in theirs:
            order.append(theirs.index(label))
            sign.append(1.0)
            continue
        first, second = label.split(" - ", 1)
        order.append(theirs.index(f"{second} - {first}"))
        sign.append(-1.0)
    assert sorted(order) == list(range(len(theirs)))
    return np.asarray(order), np.asarray(sign)


@pytest.fixture(scope="module")
def contraception() -> pd.DataFrame:
    return g.datasets.load("contraception")


@pytest.fixture(scope="module")
def linear_fit(contraception: pd.DataFrame) -> g.GLMMResult:
    return quiet_fit("use ~ age + urban + livch + (1 | district)", contraception)


def test_link_scale_effects_are_the_coefficients(linear_fit: g.GLMMResult) -> None:
    """On the link scale a linear term's slope is its coefficient and a factor's contrast the
    difference of its coefficients, with their Wald SEs."""
    out = g.avg_slopes(linear_fit, type="link").set_index("contrast")
    params, bse, vcov = linear_fit.params, linear_fit.bse, linear_fit.vcov
    assert out.loc["dY/dX", "estimate"] == pytest.approx(params["age"], rel=1e-7)
    assert out.loc["dY/dX", "std_error"] == pytest.approx(bse["age"], rel=1e-7)
    assert out.loc["Y - N", "estimate"] == pytest.approx(params["urbanY"], rel=1e-12)
    assert out.loc["Y - N", "std_error"] == pytest.approx(bse["urbanY"], rel=1e-12)
    pairs = g.avg_comparisons(linear_fit, "livch", type="link").set_index("contrast")
    pairs = g.avg_comparisons(linear_fit, {"livch": "pairwise"}, type="link")
    row = pairs.set_index("contrast").loc["3+ - 1"]
    assert row["estimate"] == pytest.approx(params["livch3+"] - params["livch1"], rel=1e-12)
    var = vcov.loc["livch3+", "livch3+"] + vcov.loc["livch1", "livch1"]
    var -= 2 * vcov.loc["livch3+", "livch1"]
    assert row["std_error"] == pytest.approx(np.sqrt(var), rel=1e-10)


@settings(max_examples=15, deadline=None)
@given(d=st.floats(0.01, 30.0))
def test_link_scale_comparison_is_linear_in_the_change(linear_fit: g.GLMMResult, d: float) -> None:
    out = g.avg_comparisons(linear_fit, {"age": d}, type="link")
    assert out["estimate"].iloc[0] == pytest.approx(d * linear_fit.params["age"], rel=1e-9)
    assert out["std_error"].iloc[0] == pytest.approx(d * linear_fit.bse["age"], rel=1e-9)


def test_spread_changes(linear_fit: g.GLMMResult, contraception: pd.DataFrame) -> None:
    """ "sd", "2sd" and "iqr" set every row to two values measured on the fit's rows (also
    with newdata): on the link scale of a linear term, the change times the coefficient."""
    age = contraception["age"]
    spreads = {
        "sd": age.std(),
        "2sd": 2 * age.std(),
        "iqr": age.quantile(0.75) - age.quantile(0.25),
    }
    beta = linear_fit.params["age"]
    for change, spread in spreads.items():
        for newdata in (None, contraception.iloc[:20]):
            out = g.avg_comparisons(linear_fit, {"age": change}, type="link", newdata=newdata)
            assert out["estimate"].iloc[0] == pytest.approx(spread * beta, rel=1e-10), change
    rows = g.comparisons(linear_fit, {"age": "sd"}, newdata=contraception.iloc[:5])
    # every row at the same two ages: the rows differ only by their other covariates
    same = contraception.iloc[:5].assign(age=contraception["age"].iloc[0])
    again = g.comparisons(linear_fit, {"age": "sd"}, newdata=same)
    np.testing.assert_allclose(rows["estimate"], again["estimate"], rtol=1e-12)


def test_custom_change(linear_fit: g.GLMMResult, contraception: pd.DataFrame) -> None:
    """A function of the rows' values gives their low and high values (a pair, or two
    columns); on the link scale x -/+ 1 is twice the coefficient."""
    pair = g.avg_comparisons(linear_fit, {"age": lambda x: (x - 1, x + 1)}, type="link")
    assert pair["contrast"].iloc[0] == "custom"
    assert pair["estimate"].iloc[0] == pytest.approx(2 * linear_fit.params["age"], rel=1e-9)
    columns = g.avg_comparisons(
        linear_fit, {"age": lambda x: np.column_stack([x - 1, x + 1])}, type="link"
    )
    pd.testing.assert_frame_equal(pair, columns)
    two = g.comparisons(
        linear_fit, {"age": lambda x: (x, x + 2)}, newdata=contraception.iloc[:2], type="link"
    )
    np.testing.assert_allclose(two["estimate"], 2 * linear_fit.params["age"], rtol=1e-9)
    with pytest.raises(ValueError, match="two values per row"):
        g.avg_comparisons(linear_fit, {"age": lambda x: x})
    with pytest.raises(ValueError, match="failed or returned no numbers"):
        g.avg_comparisons(linear_fit, {"age": lambda x: ("a", "b")})


def test_averages_are_means_of_the_rows(linear_fit: g.GLMMResult) -> None:
    """avg_ is the mean of the unit-level estimates; by groups weighted by their sizes give
    the overall average."""
    units = g.comparisons(linear_fit, ["urban", "age"])
    overall = g.avg_comparisons(linear_fit, ["urban", "age"])
    means = units.groupby(["term", "contrast"], sort=False)["estimate"].mean()
    np.testing.assert_allclose(means.to_numpy(), overall["estimate"], rtol=1e-12)
    assert len(units) == 2 * linear_fit.nobs
    data = g.datasets.load("contraception")
    by = g.avg_comparisons(linear_fit, "urban", by="livch")
    sizes = data["livch"].value_counts().reindex(by["livch"]).to_numpy()
    weighted = np.sum(by["estimate"].to_numpy() * sizes) / sizes.sum()
    assert weighted == pytest.approx(overall.set_index("term").loc["urban", "estimate"])


def test_slope_is_the_derivative(linear_fit: g.GLMMResult) -> None:
    """The forward difference with a small step approaches the derivative mu(1 - mu) beta."""
    mu = linear_fit.fitted()
    exact = np.mean(mu * (1 - mu)) * linear_fit.params["age"]
    out = g.avg_slopes(linear_fit, "age", eps=1e-7)
    assert out["estimate"].iloc[0] == pytest.approx(exact, rel=1e-5)


JACOBIAN_CASES = [
    ("avg_slopes", {"variables": "age"}),
    ("avg_slopes", {"variables": "age", "slope": "eyex"}),
    ("avg_slopes", {"variables": "age", "slope": "eydx", "by": "livch"}),
    ("avg_slopes", {"variables": "age", "slope": "dyex"}),
    ("avg_comparisons", {"variables": "urban", "comparison": "ratio"}),
    ("avg_comparisons", {"variables": "urban", "comparison": "ratioavg"}),
    ("avg_comparisons", {"variables": "livch", "comparison": "lnor", "by": "urban"}),
    ("avg_comparisons", {"variables": {"age": 3.0}, "comparison": "lnratioavg"}),
    ("avg_comparisons", {"variables": "urban", "comparison": "lnoravg", "re": "exclude"}),
    ("comparisons", {"variables": "urban", "comparison": "lnratio"}),
    ("avg_predictions", {"variables": "urban", "by": "livch"}),
    ("avg_predictions", {"variables": {"age": [-5.0, 5.0]}, "type": "link"}),
]


@pytest.fixture(scope="module")
def slope_fit(contraception: pd.DataFrame) -> g.GLMMResult:
    return quiet_fit("use ~ age * urban + I(age^2) + livch + (1 + urban | district)", contraception)


@pytest.mark.parametrize(("function", "arguments"), JACOBIAN_CASES)
def test_exact_jacobian_matches_finite_differences(
    slope_fit: g.GLMMResult, contraception: pd.DataFrame, function: str, arguments: dict
) -> None:
    """Each SE is sqrt(J V J') with the exact Jacobian: against central differences of the
    estimates in beta (the random effects held at their modes)."""
    call = getattr(g, function)
    out = call(slope_fit, **arguments)
    output = slope_fit.fit_output
    beta = np.asarray(output.beta, dtype=float)

    def estimates(b: np.ndarray) -> np.ndarray:
        moved = slope_fit.with_fit(slope_fit.model, dataclasses.replace(output, beta=b))
        return call(moved, newdata=contraception, **arguments)["estimate"].to_numpy()

    np.testing.assert_allclose(estimates(beta), out["estimate"], rtol=1e-12)
    h = 1e-5
    jacobian = np.column_stack(
        [(estimates(beta + h * e) - estimates(beta - h * e)) / (2 * h) for e in np.eye(len(beta))]
    )
    se = np.sqrt(np.einsum("ij,jk,ik->i", jacobian, np.asarray(slope_fit.vcov), jacobian))
    np.testing.assert_allclose(out["std_error"], se, rtol=1e-5)


def test_average_predictions(linear_fit: g.GLMMResult, contraception: pd.DataFrame) -> None:
    """avg_predictions is the mean of predict()'s values: over the fit's rows, by groups, and
    with every row set to each level (standardization); the averaged comparisons are their
    differences and ratios."""
    overall = g.avg_predictions(linear_fit)
    assert list(overall.columns[:2]) == ["estimate", "std_error"]
    assert overall["estimate"].iloc[0] == pytest.approx(linear_fit.fitted().mean(), rel=1e-12)
    excluded = g.avg_predictions(linear_fit, re="exclude")
    mean = linear_fit.predict(contraception, re="exclude").mean()
    assert excluded["estimate"].iloc[0] == pytest.approx(mean, rel=1e-12)
    by = g.avg_predictions(linear_fit, by="urban")
    expected = pd.Series(linear_fit.fitted()).groupby(contraception["urban"].to_numpy()).mean()
    np.testing.assert_allclose(by["estimate"], expected.to_numpy(), rtol=1e-12)
    levels = g.avg_predictions(linear_fit, variables="urban")
    assert list(levels["urban"]) == ["N", "Y"]
    for level, estimate in zip(levels["urban"], levels["estimate"], strict=True):
        mean = linear_fit.predict(contraception.assign(urban=level)).mean()
        assert estimate == pytest.approx(mean, rel=1e-12)
    ratio = g.avg_comparisons(linear_fit, "urban", comparison="ratioavg")
    assert ratio["contrast"].iloc[0] == "mean(Y) / mean(N)"
    assert ratio["estimate"].iloc[0] == pytest.approx(
        levels["estimate"].iloc[1] / levels["estimate"].iloc[0], rel=1e-12
    )
    difference = g.avg_comparisons(linear_fit, "urban", comparison="differenceavg")
    plain = g.avg_comparisons(linear_fit, "urban")
    assert difference["estimate"].iloc[0] == pytest.approx(plain["estimate"].iloc[0], rel=1e-12)
    assert difference["std_error"].iloc[0] == pytest.approx(plain["std_error"].iloc[0], rel=1e-9)
    crossed = g.avg_predictions(linear_fit, variables={"urban": "Y", "age": [0, -10]})
    assert list(crossed.columns[:2]) == ["urban", "age"] and list(crossed["age"]) == [-10, 0]


def test_unit_predictions(linear_fit: g.GLMMResult, contraception: pd.DataFrame) -> None:
    """predictions(): one row per data row (per value of variables), the model's variables
    shown; their mean is avg_predictions; by= averages; on the link scale without random
    effects the SE is predict()'s."""
    rows = g.predictions(linear_fit)
    assert len(rows) == linear_fit.nobs
    assert list(rows.columns[:5]) == ["row", "age", "urban", "livch", "district"]
    np.testing.assert_allclose(rows["estimate"], linear_fit.fitted(), rtol=1e-12)
    assert rows["estimate"].mean() == pytest.approx(
        g.avg_predictions(linear_fit)["estimate"].iloc[0], rel=1e-12
    )
    pd.testing.assert_frame_equal(
        g.predictions(linear_fit, by="livch"), g.avg_predictions(linear_fit, by="livch")
    )
    some = contraception.iloc[:4]
    set_urban = g.predictions(linear_fit, variables="urban", newdata=some)
    assert list(set_urban["urban"]) == ["N"] * 4 + ["Y"] * 4
    assert list(set_urban["row"]) == list(some.index) * 2
    link = g.predictions(linear_fit, newdata=some, type="link", re="exclude")
    expected = linear_fit.predict(some, type="link", re="exclude", se_fit=True)
    np.testing.assert_allclose(link["estimate"], expected["fit"], rtol=1e-12)
    np.testing.assert_allclose(link["std_error"], expected["se_fit"], rtol=1e-10)
    # the rows' hypothesis labels are their numbers
    tested = g.predictions(linear_fit, newdata=some, hypothesis="sequential")
    assert list(tested["term"]) == ["Row 2 - Row 1", "Row 3 - Row 2", "Row 4 - Row 3"]


def test_rows_of_the_fit(contraception: pd.DataFrame) -> None:
    """Rows the fit dropped (a missing value) or left out (subset=) are not averaged; the
    caller's frame is not modified."""
    data = contraception.copy()
    data.loc[[3, 10, 50], "age"] = np.nan
    before = data.copy()
    fit = quiet_fit("use ~ age + urban + (1 | district)", data, subset="livch != '0'")
    units = g.slopes(fit, "age")
    assert len(units) == fit.nobs
    kept = data[(data["livch"] != "0") & data["age"].notna()]
    assert list(units["row"]) == list(kept.index)
    same = quiet_fit("use ~ age + urban + (1 | district)", kept.reset_index(drop=True))
    np.testing.assert_allclose(
        g.avg_slopes(same)["estimate"], g.avg_slopes(fit)["estimate"], rtol=1e-10
    )
    pd.testing.assert_frame_equal(data, before)


def test_newdata_and_offset(contraception: pd.DataFrame) -> None:
    offset = np.linspace(-0.5, 0.5, len(contraception))
    fit = quiet_fit("use ~ age + urban + (1 | district)", contraception, offset=offset)
    whole = g.avg_comparisons(fit, "urban")
    again = g.avg_comparisons(fit, "urban", newdata=contraception, offset=offset)
    np.testing.assert_allclose(whole["estimate"], again["estimate"], rtol=1e-12)
    with pytest.raises(ValueError, match="offset= values"):
        g.avg_comparisons(fit, "urban", newdata=contraception)
    some = contraception.iloc[:10]
    units = g.comparisons(fit, "urban", newdata=some, offset=offset[:10])
    assert list(units["row"]) == list(some.index)
    assert g.avg_comparisons(fit, "urban", newdata=some, offset=offset[:10])["estimate"].iloc[
        0
    ] == pytest.approx(units["estimate"].mean())


def test_deterministic_and_sorted(linear_fit: g.GLMMResult) -> None:
    first = g.avg_slopes(linear_fit, ["urban", "age"])
    second = g.avg_slopes(linear_fit, ["age", "urban"])
    pd.testing.assert_frame_equal(first, second)
    assert list(first["term"]) == ["age", "urban"]
    assert "probability scale" in first.attrs["notes"][0]


def test_bayesian_fit_says_so(contraception: pd.DataFrame) -> None:
    fit = quiet_fit("use ~ age + urban + (1 | district)", contraception, method="vb")
    out = g.avg_comparisons(fit, "urban")
    assert np.isfinite(out["std_error"]).all()
    assert any("posterior" in note for note in out.attrs["notes"])


def test_rank_deficient_fit(contraception: pd.DataFrame) -> None:
    data = contraception.assign(age2=2 * contraception["age"])
    fit = quiet_fit("use ~ age + age2 + urban + (1 | district)", data)
    assert fit.dropped_columns
    out = g.avg_comparisons(fit, "urban")
    assert np.isfinite(out[["estimate", "std_error"]].to_numpy()).all()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"variables": "district"}, "grouping factor"),
        ({"variables": "nope"}, "not a variable of the fixed part"),
        ({"variables": ["age", "age"]}, "twice"),
        ({"variables": 3}, "variables must be"),
        ({"variables": {"age": "std"}}, "number, two numbers or one of 'minmax', 'iqr'"),
        ({"variables": {"age": 0}}, "non-zero"),
        ({"variables": {"age": (1, 2, 3)}}, "two finite numbers"),
        ({"variables": {"urban": "all"}}, "'reference', 'sequential', 'pairwise'"),
        ({"type": "odds"}, "type must be"),
        ({"re": "district"}, "re must be"),
        ({"by": "nope"}, "not in the data"),
        ({"by": 3}, "by must be"),
        ({"conf_level": 1.5}, "conf_level"),
        ({"offset": 1.0}, "offset applies only with newdata"),
        ({"comparison": "odds"}, "comparison must be one of"),
    ],
)
def test_bad_arguments(linear_fit: g.GLMMResult, arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        g.avg_comparisons(linear_fit, **arguments)


def test_weights_are_replicated_rows(linear_fit: g.GLMMResult, contraception: pd.DataFrame) -> None:
    """Integer weights give the averages of the rows repeated that many times; equal weights
    the unweighted averages."""
    counts = np.arange(len(contraception)) % 3 + 1
    repeated = contraception.loc[contraception.index.repeat(counts)]
    for function, arguments in (
        (g.avg_comparisons, {"variables": "livch", "by": "urban"}),
        (g.avg_comparisons, {"variables": "urban", "comparison": "lnoravg"}),
        (g.avg_slopes, {"variables": "age"}),
        (g.avg_predictions, {"variables": "urban"}),
    ):
        weighted = function(linear_fit, wts=counts, **arguments)
        copies = function(linear_fit, newdata=repeated, **arguments)
        np.testing.assert_allclose(weighted["estimate"], copies["estimate"], rtol=1e-10)
        np.testing.assert_allclose(weighted["std_error"], copies["std_error"], rtol=1e-10)
        equal = function(linear_fit, wts=np.full(len(contraception), 2.5), **arguments)
        plain = function(linear_fit, **arguments)
        np.testing.assert_allclose(equal["estimate"], plain["estimate"], rtol=1e-12)
    data = contraception.assign(weight=counts)
    by_column = g.avg_slopes(linear_fit, "age", newdata=data, wts="weight")
    np.testing.assert_allclose(
        by_column["estimate"], g.avg_slopes(linear_fit, "age", wts=counts)["estimate"]
    )


@pytest.mark.parametrize(
    ("wts", "message"),
    [
        ("nope", "wts: column 'nope' not in the data"),
        ([1.0, 2.0], "one value per row"),
        ("urban", "finite non-negative"),
        (object(), "wts must be a column name or one number per row"),
    ],
)
def test_bad_weights(linear_fit: g.GLMMResult, wts: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        g.avg_comparisons(linear_fit, "urban", wts=wts)


def test_negative_or_zero_weights(linear_fit: g.GLMMResult) -> None:
    n = linear_fit.nobs
    with pytest.raises(ValueError, match="finite non-negative"):
        g.avg_predictions(linear_fit, wts=np.r_[-1.0, np.ones(n - 1)])
    with pytest.raises(ValueError, match="every weight is zero"):
        g.avg_slopes(linear_fit, "age", wts=np.zeros(n))


def test_bad_prediction_and_function_arguments(linear_fit: g.GLMMResult) -> None:
    with pytest.raises(ValueError, match="compares averages: use avg_comparisons"):
        g.comparisons(linear_fit, "urban", comparison="ratioavg")
    with pytest.raises(ValueError, match="slope must be one of"):
        g.avg_slopes(linear_fit, "age", slope="elasticity")
    with pytest.raises(ValueError, match="not a level of factor 'urban'"):
        g.avg_predictions(linear_fit, variables={"urban": "Q"})
    with pytest.raises(ValueError, match="must be finite numbers"):
        g.avg_predictions(linear_fit, variables={"age": [1.0, float("nan")]})
    with pytest.raises(ValueError, match="not a variable of the fixed part"):
        g.avg_predictions(linear_fit, variables={"nope": 1})
    with pytest.raises(ValueError, match="more than 1000"):
        g.avg_predictions(linear_fit, variables={"age": np.arange(2000.0)})


def test_bad_slope_arguments(linear_fit: g.GLMMResult, contraception: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="slopes take variable names"):
        g.avg_slopes(linear_fit, {"age": 1})
    for eps in (0.0, -1.0, float("inf"), True, "1"):
        with pytest.raises(ValueError, match="eps must be"):
            g.avg_slopes(linear_fit, "age", eps=eps)
    with pytest.raises(ValueError, match="newdata lacks"):
        g.avg_slopes(linear_fit, newdata=contraception.drop(columns="age"))
    with pytest.raises(ValueError, match="needs a fit"):
        g.avg_slopes("not a fit")
    constant = contraception.assign(c=1.0)
    fit = quiet_fit("use ~ age + c + (1 | district)", constant)
    with pytest.raises(ValueError, match="one value over the fit's rows"):
        g.avg_slopes(fit, "c")


def test_changed_or_missing_data(contraception: pd.DataFrame) -> None:
    data = contraception.copy()
    fit = quiet_fit("use ~ age + urban + (1 | district)", data)
    data.loc[0, "age"] = np.nan
    with pytest.raises(ValueError, match="changed after the fit"):
        g.avg_slopes(fit)
    g.avg_slopes(fit, newdata=contraception)  # newdata needs no kept data
    fit_model = g.fit_model(fit.model)
    with pytest.raises(ValueError, match="fitted from a formula"):
        g.avg_slopes(fit_model)
