"""Prediction on new data and formulas users bring from R (issue 9): each reproduction is now
right or a clear error."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import CBPP, polars_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.diagnostics import NewLevelsWarning, RankDeficiencyWarning
from glmm_binomial.model.formula import parse_formula

CONTRACEPTION = "use ~ age + urban + (1 | district)"


@pytest.fixture(scope="module")
def c():
    return g.datasets.load("contraception")


@pytest.fixture(scope="module")
def d():
    return g.datasets.load("cbpp")


@pytest.fixture(scope="module")
def m(c):
    return g.fit(CONTRACEPTION, c)


# --- item 1: an unseen factor level ----------------------------------------------------------
def test_unseen_factor_level_is_refused_naming_variable_and_level(c, m):
    with pytest.raises(ValueError, match=r"factor 'urban' has new level\(s\) 'Z'"):
        m.predict(c.head(1).assign(urban=["Z"]))
    fitted = g.fit("use ~ factor(livch) + (1 | district)", c)
    with pytest.raises(ValueError, match="'livch'.*'9'"):
        fitted.predict(c.head(2).assign(livch=["0", "9"]))


# --- item 2: offsets -------------------------------------------------------------------------
def test_offset_column_is_taken_from_newdata_and_required(d):
    data = d.assign(o=0.5)
    fitted = g.fit(CBPP, data, offset="o")
    link = fitted.predict(data.head(1), type="link")
    assert link.iloc[0] == pytest.approx(fitted.predict(type="link")[0], abs=1e-12)
    shifted = fitted.predict(data.head(1).assign(o=1.5), type="link")
    assert shifted.iloc[0] - link.iloc[0] == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="lacks column.*'o'"):
        fitted.predict(d.head(1))


def test_offset_values_must_be_given_again_for_newdata(d):
    fitted = g.fit(CBPP, d, offset=np.full(len(d), 0.5))
    with pytest.raises(ValueError, match="pass offset="):
        fitted.predict(d.head(2))
    link = fitted.predict(d.head(2), offset=[0.5, 0.5], type="link")
    np.testing.assert_allclose(link, fitted.predict(type="link")[:2], atol=1e-12)


def test_offset_term_in_the_formula(d):
    data = d.assign(n=d["size"])
    fitted = g.fit(
        "cbind(incidence, size - incidence) ~ period + offset(log(n)) + (1 | herd)", data
    )
    assert fitted.fixed_names == ["(Intercept)", "period2", "period3", "period4"]
    np.testing.assert_allclose(fitted.model.offset, np.log(data["size"]))
    doubled = fitted.predict(data.head(1).assign(n=2 * data["size"].iloc[0]), type="link")
    same = fitted.predict(data.head(1), type="link")
    assert doubled.iloc[0] - same.iloc[0] == pytest.approx(np.log(2.0), abs=1e-12)
    with pytest.raises(ValueError, match="'n'"):
        fitted.predict(d.head(1))


# --- item 3: group labels --------------------------------------------------------------------
def test_group_labels_match_as_in_the_fit(d):
    data = d.assign(herd=d["herd"].astype(str))
    fitted = g.fit(CBPP, data)
    expected = fitted.predict(data.head(3), type="link").to_numpy()
    for labels in ([1, 1, 1], [1.0, 1.0, 1.0], ["1", "1", "1"]):
        with warnings.catch_warnings():
            warnings.simplefilter("error", NewLevelsWarning)
            got = fitted.predict(data.head(3).assign(herd=labels), type="link")
        np.testing.assert_allclose(got, expected, atol=1e-12)
    # One rule in the fit too: 1, 1.0 and "1" in one column are one group.
    mixed = d.assign(herd=d["herd"].astype(int).astype(object))
    mixed.loc[mixed.index[:2], "herd"] = ["1", 1.0]
    assert g.fit(CBPP, mixed).ngroups["herd"] == 15


def test_new_group_levels_warn_and_get_zero_effect(d, m, c):
    fitted = g.fit(CBPP, d)
    new = d.head(2).assign(herd=["1", "99"])
    with pytest.warns(NewLevelsWarning, match="'herd' \\(1 row\\)"):
        link = fitted.predict(new, type="link")
    population = fitted.predict(new, re="exclude", type="link")
    assert link.iloc[1] == population.iloc[1]
    assert link.iloc[0] != population.iloc[0]


# --- item 5: %in% ----------------------------------------------------------------------------
def test_in_operator_builds_r_columns(c):
    fitted = g.fit("use ~ age %in% urban + (1 | district)", c)
    assert fitted.fixed_names == ["(Intercept)", "age:urbanN", "age:urbanY"]


# --- item 9: unused levels and aliased columns ------------------------------------------------
def test_unused_categorical_levels_are_dropped(c):
    subset = c[c["livch"].isin(["0", "1"])]
    assert len(subset["livch"].cat.categories) == 4
    fitted = g.fit("use ~ age + livch + (1 | district)", subset)
    assert fitted.fixed_names == ["(Intercept)", "age", "livch1"]
    assert fitted.dropped_columns == ()


def test_aliased_columns_are_dropped_with_a_warning_and_predict_handles_it(c):
    data = c.assign(age2=2.0 * c["age"] + 1.0)
    with pytest.warns(RankDeficiencyWarning, match="dropping 1 column / coefficient: 'age2'"):
        fitted = g.fit("use ~ age + urban + age2 + (1 | district)", data)
    assert fitted.dropped_columns == ("age2",)
    assert fitted.fixed_names == ["(Intercept)", "age", "urbanY"]
    assert any(w.kind == "rankdeficiency" for w in fitted.warnings)
    np.testing.assert_allclose(fitted.predict(data), fitted.predict(), atol=1e-12)


# --- item 11: object columns and absurd widths -----------------------------------------------
def test_object_column_of_numbers_is_numeric(c, m):
    as_object = c.assign(age=c["age"].astype(object))
    fitted = g.fit(CONTRACEPTION, as_object)
    assert fitted.fixed_names == m.fixed_names
    assert fitted.loglik == pytest.approx(m.loglik, abs=1e-9)
    as_text = c.assign(age=c["age"].map(repr).astype(object))
    assert g.fit(CONTRACEPTION, as_text).fixed_names == m.fixed_names


def test_absurdly_wide_design_is_refused_before_it_is_built():
    rng = np.random.default_rng(0)
    n = 1000
    frame = pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "x": pd.Series([f"id{i}" for i in range(n)], dtype=object),
            "f": rng.choice([f"L{i}" for i in range(20)], n),
            "g": rng.integers(0, 10, n),
        }
    )
    with pytest.raises(ValueError, match="about 21,021 columns.*'x' has 1,000 distinct"):
        g.fit("y ~ x * f + (1 | g)", frame)


# --- item 15: messages -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("formula", "fragment"),
    [
        ("use ~ age:(1 + ) + (1 | district)", "insuffient arguments"),
        ("use ~ my age + (1 | district)", "`my age`"),
        ("use ~ agee + (1 | district)", "'agee'"),
        ("use ~ age + mean(age) + (1 | district)", "use it inside an expression"),
    ],
)
def test_formula_errors_are_plain_text_and_say_what_to_do(c, formula, fragment):
    with pytest.raises(ValueError) as error:
        g.fit(formula, c)
    message = str(error.value)
    assert fragment in message
    assert "\x1b" not in message and "⧛" not in message


def test_missing_column_with_odd_names_suggests_backticks(c):
    data = c.rename(columns={"age": "age (years)"})
    with pytest.raises(ValueError, match="backticks, as in `age \\(years\\)`"):
        g.fit(CONTRACEPTION, data)
    fitted = g.fit("use ~ `age (years)` + urban + (1 | district)", data)
    assert fitted.fixed_names[1] == "age (years)"


# --- formulas users bring from R --------------------------------------------------------------
def test_transforms_match_r_columns(c):
    fitted = g.fit("use ~ poly(age, 2) + (1 | district)", c)
    assert fitted.fixed_names == ["(Intercept)", "poly(age, 2)1", "poly(age, 2)2"]
    spline = g.fit("use ~ bs(age, df = 3) + (1 | district)", c)
    assert spline.fixed_names[1:] == [f"bs(age, df = 3){j}" for j in (1, 2, 3)]
    x = fitted.model.x
    # R's poly(): orthonormal columns orthogonal to the intercept; R's scale(): sd with n - 1.
    np.testing.assert_allclose(x[:, 1:3].T @ x[:, 1:3], np.eye(2), atol=1e-12)
    np.testing.assert_allclose(x[:, 1:3].sum(axis=0), 0.0, atol=1e-12)
    scaled = g.fit("use ~ scale(age) + (1 | district)", c).model.x[:, 1]
    age = c["age"].to_numpy()
    np.testing.assert_allclose(scaled, (age - age.mean()) / age.std(ddof=1), atol=1e-12)


def test_r_poly_scale_bs_values():
    # Values printed by R 4 (stats::poly, base::scale, splines::bs) for the same x.
    frame = pd.DataFrame({"x": [1.5, 2, 3.25, 4, 7, 8.5, 10, 11], "y": [0, 1] * 4, "g": [1, 2] * 4})
    from glmm_binomial.model.design import build_model

    model, _ = build_model("y ~ poly(x, 2) + (1 | g)", frame)
    np.testing.assert_allclose(
        model.x[:3, 1:3],
        [
            [-0.4497293074, 0.4329458334],
            [-0.3986961945, 0.2351306496],
            [-0.2711134122, -0.1612837121],
        ],
        atol=1e-9,
    )
    model, _ = build_model("y ~ scale(x) + (1 | g)", frame)
    np.testing.assert_allclose(model.x[:3, 1], [-1.1898719046, -1.0548509793, -0.7172986659])
    model, _ = build_model("y ~ bs(x, df = 3) + (1 | g)", frame)
    np.testing.assert_allclose(
        model.x[1:3, 1:4],
        [
            [0.1417116198, 0.007872867765, 0.0001457938475],
            [0.3677832045, 0.083047820382, 0.0062509112115],
        ],
        atol=1e-9,
    )


def test_stateful_transforms_use_the_fit_parameters_on_new_data(c):
    rng = np.random.default_rng(0)
    data = c.assign(w=rng.uniform(1.0, 3.0, len(c)), v=rng.normal(size=len(c)))
    fitted = g.fit("use ~ scale(age) + poly(w, 2) + bs(v, df = 4) + (1 | district)", data)
    assert fitted.dropped_columns == ()
    for row in (5, 900):
        one = fitted.predict(data.iloc[[row]], type="link").iloc[0]
        assert one == pytest.approx(fitted.predict(type="link")[row], abs=1e-12)
    raw = g.fit(
        "use ~ poly(age, 2, raw = TRUE) + contr_test + (1 | district)",
        c.assign(contr_test=1.0 * (c["urban"] == "Y")),
    )
    assert raw.fixed_names[1:3] == ["poly(age, 2, raw = TRUE)1", "poly(age, 2, raw = TRUE)2"]
    summed = g.fit("use ~ C(urban, contr.sum) + (1 | district)", c)
    assert len(summed.fixed_names) == 2


def test_response_expressions_factor_and_dotted_names(c):
    data = c.assign(**{"age.c": c["age"] - c["age"].mean(), "use.y": c["use"]})
    dotted = g.fit("I(use.y == 1) ~ age.c + factor(livch) + (1 | district)", data)
    plain = g.fit("use ~ age + C(livch) + (1 | district)", c)
    assert dotted.fixed_names == [
        "(Intercept)",
        "age.c",
        "factor(livch)1",
        "factor(livch)2",
        "factor(livch)3+",
    ]
    assert dotted.loglik == pytest.approx(plain.loglik, abs=1e-8)
    assert parse_formula("y ~ crab.speciesS + (1 | g)").variables == ("crab.speciesS", "g", "y")


def test_polars_frames(c, m):
    pytest.importorskip("polars")
    pytest.importorskip("narwhals")
    frame = polars_frame(c.astype({"district": str, "urban": str, "livch": str, "woman": str}))
    fitted = g.fit(CONTRACEPTION, frame)
    assert fitted.loglik == pytest.approx(m.loglik, abs=1e-9)
    np.testing.assert_allclose(fitted.predict(frame), m.predict(), atol=1e-12)


def test_non_pandas_frame_without_narwhals_names_the_extra(monkeypatch, c):
    pytest.importorskip("polars")
    monkeypatch.setitem(sys.modules, "narwhals", None)
    monkeypatch.setitem(sys.modules, "narwhals.stable.v1", None)
    with pytest.raises(ValueError, match=r"glmm-binomial\[polars\]"):
        g.fit(CONTRACEPTION, polars_frame(c.head(50).astype(str)))


# --- also: re="exclude", NaN rows, Series output -----------------------------------------------
def test_exclude_needs_no_grouping_columns_and_nan_rows_predict_nan(c, m):
    new = c.head(4).drop(columns="district")
    population = m.predict(new, re="exclude", type="link")
    np.testing.assert_allclose(population, m.predict(re="exclude", type="link")[:4], atol=1e-12)
    with pytest.raises(ValueError, match="lacks column.*'district'"):
        m.predict(new)
    holes = c.head(5).set_index(pd.Index(list("abcde")))
    holes.loc["c", "age"] = np.nan
    holes.loc["d", "district"] = np.nan
    predicted = m.predict(holes)
    assert isinstance(predicted, pd.Series) and list(predicted.index) == list("abcde")
    assert predicted.isna().tolist() == [False, False, True, True, False]
    np.testing.assert_allclose(predicted.iloc[[0, 1, 4]], m.predict()[[0, 1, 4]], atol=1e-12)


# --- property: the training frame as new data gives the fitted values ---------------------------
FEATURES = [
    ("y ~ scale(x) + center(w) + (1 | g)", None),
    ("y ~ poly(x, 2) + log(w) + (1 | g)", None),
    ("y ~ bs(x, df = 3) + (1 | g)", None),
    ("y ~ x + offset(log(w)) + (1 | g)", None),
    ("y ~ x + (1 | g)", "o"),
    ("y ~ factor(k) + x %in% f + (1 | g)", None),
    ("cbind(s, n - s) ~ f + (1 | g)", None),
    ("I(y == 1) ~ x.c + (1 | a/b)", None),
    ("y ~ x + (1 | g) + (1 | h)", None),
    ("y ~ x + (1 + x | g)", None),
    ("y ~ x + (x || g)", None),
    ("y ~ center(w) + (1 + scale(x) | g)", None),
    ("y ~ x + x2 + f + (1 | g)", None),
]


def _simulated(seed: int, n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g_codes = rng.integers(0, 6, n)
    x = rng.normal(size=n)
    eta = 0.5 * x + rng.normal(scale=0.8, size=6)[g_codes]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    trials = rng.integers(1, 5, n)
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "x.c": x - x.mean(),
            "x2": 2.0 * x + 1.0,
            "w": rng.uniform(0.5, 2.0, n),
            "o": rng.normal(scale=0.3, size=n),
            "k": rng.integers(0, 3, n),
            "f": rng.choice(["p", "q"], n),
            "n": trials,
            "s": rng.binomial(trials, 0.4),
            "g": g_codes,
            "h": rng.choice(["h1", "h2", "h3", "h4"], n),
            "a": rng.integers(0, 3, n),
            "b": rng.integers(0, 3, n),
        }
    )


@pytest.mark.parametrize(("formula", "offset"), FEATURES)
@settings(
    max_examples=2, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(seed=st.integers(0, 2**16), shuffle=st.booleans())
def test_training_frame_as_newdata_gives_the_fitted_values(formula, offset, seed, shuffle):
    frame = _simulated(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = g.fit(formula, frame, offset=offset)
    order = (
        np.random.default_rng(seed).permutation(len(frame)) if shuffle else np.arange(len(frame))
    )
    new = frame.iloc[order]
    for re in ("include", "exclude"):
        expected = fitted.predict(re=re, type="link")[order]
        got = fitted.predict(new, re=re, type="link")
        assert list(got.index) == list(new.index)
        np.testing.assert_allclose(got.to_numpy(), expected, rtol=0, atol=1e-10)


# --- against lme4: names, estimates and predictions on new rows --------------------------------
def _reference_cases():
    from conftest import load_reference

    reference = load_reference("predict_newdata")
    return [(reference, fit) for fit in reference["cases"]]


@pytest.mark.parametrize(
    ("reference", "case"), _reference_cases(), ids=lambda v: v.get("formula", "ref")
)
def test_predictions_on_new_rows_match_lme4(reference, case, c, d):
    data = d if case["formula"].startswith("cbind") else c.assign(age2=2.0 * c["age"] + 1.0)
    new = data.iloc[case["rows"]].copy()
    if data is d:
        new["size"] = reference["new_cbpp_size"]
    else:
        new["age"] = reference["new_contraception_age"]
        new["age2"] = 2.0 * new["age"] + 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficiencyWarning)
        fitted = g.fit(case["formula"], data)
    assert fitted.fixed_names == list(case["fixef"])
    assert fitted.loglik >= case["logLik"] - 1e-4
    np.testing.assert_allclose(fitted.params, list(case["fixef"].values()), rtol=1e-3, atol=1e-3)
    population = fitted.predict(new, re="exclude", type="link")
    conditional = fitted.predict(new, type="link")
    np.testing.assert_allclose(population, case["link_population"], atol=2e-3)
    np.testing.assert_allclose(conditional, case["link_conditional"], atol=2e-3)


@pytest.fixture(scope="module")
def cbpp_fit(d):
    return g.fit(CBPP, d)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(
    rows=st.lists(st.integers(0, 55), min_size=1, max_size=8),
    form=st.sampled_from(["int", "float", "str", "category", "object"]),
)
def test_group_label_representation_does_not_change_predictions(d, cbpp_fit, rows, form):
    new = d.iloc[rows]
    expected = cbpp_fit.predict(new, type="link").to_numpy()
    herd = new["herd"].astype(int)
    relabelled = {
        "int": herd,
        "float": herd.astype(float),
        "str": herd.astype(str),
        "category": herd.astype("category"),
        "object": herd.astype(object),
    }[form]
    got = cbpp_fit.predict(new.assign(herd=relabelled), type="link")
    np.testing.assert_array_equal(got.to_numpy(), expected)


# --- issue 10 item 3: partial re (lme4's re.form) and standard errors -------------------------
CROSSED = "y ~ x + (1 + x | g) + (1 | h)"


def _crossed(seed: int = 5, n: int = 240) -> pd.DataFrame:
    """Binary data with a random slope on g crossed with an intercept on h."""
    rng = np.random.default_rng(seed)
    g_codes = rng.integers(0, 8, n)
    h_codes = rng.integers(0, 5, n)
    x = rng.normal(size=n)
    b = rng.normal(scale=[0.9, 0.4], size=(8, 2))
    eta = -0.2 + 0.6 * x + b[g_codes, 0] + b[g_codes, 1] * x + rng.normal(size=5)[h_codes]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return pd.DataFrame(
        {"y": y, "x": x, "g": [f"g{i}" for i in g_codes], "h": [f"h{i}" for i in h_codes]}
    )


@pytest.fixture(scope="module")
def crossed():
    data = _crossed()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return data, g.fit(CROSSED, data)


def _by_hand(fitted, rows):
    """Link-scale parts by hand: X beta, each factor's z b and z' Cov(b | y) z, and x' V x."""
    x = np.column_stack([np.ones(len(rows)), rows["x"].to_numpy()])
    z = {"g": x, "h": np.ones((len(rows), 1))}
    ranef = fitted.ranef(condvar=True)
    parts, variances = {}, {}
    for name in ("g", "h"):
        frame = ranef[name]
        terms = list(frame.columns[: z[name].shape[1]])
        position = frame.index.get_indexer(rows[name])
        parts[name] = np.einsum("ic,ic->i", z[name], frame[terms].to_numpy()[position])
        cov = frame.attrs["condvar"][position]
        variances[name] = np.einsum("ic,icd,id->i", z[name], cov, z[name])
    fixed = x @ fitted.params.to_numpy()
    fixed_var = np.einsum("ij,jk,ik->i", x, fitted.vcov.to_numpy(), x)
    return fixed, fixed_var, parts, variances


def test_partial_re_adds_only_the_named_factors(crossed):
    data, fitted = crossed
    rows = data.iloc[::7]
    fixed, _, parts, _ = _by_hand(fitted, rows)
    for names, expected in [
        (["g"], fixed + parts["g"]),
        (["h"], fixed + parts["h"]),
        (["g", "h"], fixed + parts["g"] + parts["h"]),
        ([], fixed),
    ]:
        link = fitted.predict(rows, re=names, type="link")
        np.testing.assert_allclose(link, expected, rtol=1e-10, atol=1e-12)
    pd.testing.assert_series_equal(fitted.predict(rows, re=[]), fitted.predict(rows, re="exclude"))
    pd.testing.assert_series_equal(
        fitted.predict(rows, re=("h", "g")), fitted.predict(rows, re="include")
    )
    np.testing.assert_allclose(
        fitted.predict(re=["g"], type="link")[::7], fixed + parts["g"], rtol=1e-10, atol=1e-12
    )
    # the columns of factors left out are not needed
    only_g = fitted.predict(rows.drop(columns="h"), re=["g"])
    pd.testing.assert_series_equal(only_g, fitted.predict(rows, re=["g"]))
    with pytest.raises(ValueError, match=r"lacks column\(s\) 'g'.*chosen re"):
        fitted.predict(rows.drop(columns="g"), re=["g"])


def test_partial_re_names_of_nested_factors():
    data = _simulated(3, 120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = g.fit("y ~ x + (1 | a/b)", data)
    assert set(fitted.ngroups) == {"a", "b:a"}  # lme4's names
    both = fitted.predict(data, re=["a", "b:a"], type="link")
    pd.testing.assert_series_equal(both, fitted.predict(data, type="link"))
    outer = fitted.predict(data, re=["a"], type="link")
    modes = fitted.ranef()["a"]["(Intercept)"]
    expected = fitted.predict(data, re="exclude", type="link") + modes.reindex(data["a"]).to_numpy()
    np.testing.assert_allclose(outer, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("re", [["district", "zz"], ["District"], [1], "district"])
def test_unknown_re_name_is_refused_listing_the_factors(c, m, re):
    with pytest.raises(ValueError, match=r"re.*grouping factor.*'district'"):
        m.predict(c.head(2), re=re)


def test_se_fit_population_is_the_delta_method(crossed):
    data, fitted = crossed
    rows = data.iloc[::5]
    fixed, fixed_var, _, _ = _by_hand(fitted, rows)
    out = fitted.predict(rows, re="exclude", type="link", se_fit=True)
    assert list(out.columns) == ["fit", "se_fit"]
    pd.testing.assert_index_equal(out.index, rows.index)
    np.testing.assert_allclose(out["fit"], fixed, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["se_fit"], np.sqrt(fixed_var), rtol=1e-10)
    pd.testing.assert_series_equal(
        out["fit"], fitted.predict(rows, re="exclude", type="link"), check_names=False
    )


def test_se_fit_conditional_adds_the_conditional_variance(crossed):
    data, fitted = crossed
    rows = data.iloc[::5]
    fixed, fixed_var, parts, variances = _by_hand(fitted, rows)
    link = fitted.predict(rows, type="link", se_fit=True)
    np.testing.assert_allclose(link["fit"], fixed + parts["g"] + parts["h"], rtol=1e-10)
    expected = np.sqrt(fixed_var + variances["g"] + variances["h"])
    np.testing.assert_allclose(link["se_fit"], expected, rtol=1e-10)
    only_h = fitted.predict(rows, re=["h"], type="link", se_fit=True)
    np.testing.assert_allclose(only_h["se_fit"], np.sqrt(fixed_var + variances["h"]), rtol=1e-10)
    # type="response": the delta method through the inverse logit
    response = fitted.predict(rows, se_fit=True)
    mu = 1.0 / (1.0 + np.exp(-link["fit"].to_numpy()))
    np.testing.assert_allclose(response["fit"], mu, rtol=1e-12)
    np.testing.assert_allclose(response["se_fit"], expected * mu * (1.0 - mu), rtol=1e-10)


def test_se_fit_training_frame_matches_newdata_none(crossed):
    data, fitted = crossed
    for re in ("include", "exclude", ["g"]):
        for kind in ("link", "response"):
            whole = fitted.predict(re=re, type=kind, se_fit=True)
            assert isinstance(whole, np.ndarray) and whole.shape == (len(data), 2)
            np.testing.assert_allclose(
                whole[:, 0], fitted.predict(re=re, type=kind), rtol=1e-12, atol=1e-15
            )
            frame = fitted.predict(data, re=re, type=kind, se_fit=True)
            np.testing.assert_allclose(frame.to_numpy(), whole, rtol=1e-10, atol=1e-15)


def test_se_fit_new_levels_and_missing_rows(crossed):
    data, fitted = crossed
    rows = data.head(3).assign(g=["new", "g1", "g1"], x=[0.3, np.nan, 0.3])
    with pytest.warns(NewLevelsWarning):
        out = fitted.predict(rows, type="link", se_fit=True)
    # a new level of g: zero effect and zero conditional variance, so only h is added
    only_h = fitted.predict(rows, re=["h"], type="link", se_fit=True)
    np.testing.assert_allclose(out.iloc[0], only_h.iloc[0], rtol=1e-12)
    assert out.iloc[1].isna().all()
    assert out.iloc[2].notna().all()
    array = fitted.predict(rows.to_dict("list"), re="exclude", se_fit=True)
    assert isinstance(array, np.ndarray) and array.shape == (3, 2)
    np.testing.assert_allclose(
        array, fitted.predict(rows, re="exclude", se_fit=True).to_numpy(), equal_nan=True
    )


def test_prediction_intervals():
    """conf_level adds the Wald interval of each prediction: eta -+ z se on the link scale, and
    for probabilities those limits through the inverse link (inside (0, 1), around the fit)."""
    from scipy import special, stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = g.datasets.load("contraception")
        m = g.fit("use ~ age + urban + livch + (1 | district)", data)
    new = data.head(6)
    link = m.predict(new, type="link", conf_level=0.9)
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(link["ci_lower"], link["fit"] - z * link["se_fit"], rtol=1e-12)
    np.testing.assert_allclose(link["ci_upper"], link["fit"] + z * link["se_fit"], rtol=1e-12)
    response = m.predict(new, conf_level=0.9)
    pd.testing.assert_frame_equal(
        response[["fit", "se_fit"]], m.predict(new, se_fit=True), check_exact=False, rtol=1e-14
    )
    np.testing.assert_allclose(response["ci_lower"], special.expit(link["ci_lower"]))
    assert (
        (response["ci_lower"] < response["fit"]) & (response["fit"] < response["ci_upper"])
    ).all()
    rows = m.predict(conf_level=0.95)  # the fit's rows: an array of four columns
    assert rows.shape == (m.nobs, 4)
    with pytest.raises(ValueError, match="conf_level must be strictly between 0 and 1"):
        m.predict(new, conf_level=1.5)


def test_a_dict_of_single_values_is_one_row_of_newdata(m):
    # Was "If using all scalar values, you must pass an index" (pandas).
    result = m
    row = {"age": 30.0, "urban": "Y", "district": 1}
    frame = pd.DataFrame([row])
    np.testing.assert_array_equal(result.predict(row), result.predict(frame).to_numpy())
    np.testing.assert_array_equal(
        result.predict({"age": 30.0, "urban": "Y"}, re="exclude"),
        result.predict(frame, re="exclude").to_numpy(),
    )


@pytest.mark.parametrize(
    ("renamed", "shown"),
    [
        ("\ufeffuse", r"'use' is '\\ufeffuse'"),
        (" age", r"'age' is ' age'"),
        ("Age", "'age' is 'Age'"),
    ],
)
def test_a_missing_column_spelled_otherwise_in_data_is_pointed_at(c, m, renamed, shown):
    # A header read with its byte-order mark or a space after the separator was listed among
    # the available columns, where neither shows.
    data = c.rename(columns={renamed.strip("\ufeff ").lower(): renamed})
    with pytest.raises(ValueError, match=shown + r" in data \(a byte-order mark"):
        g.fit(CONTRACEPTION, data)
    if renamed.strip("\ufeff ").lower() != "use":  # the response is not needed by predict
        with pytest.raises(ValueError, match=shown + r" in newdata \(a byte-order mark"):
            m.predict(data.head())


# --- lme4's spellings: re.form and allow.new.levels ---------------------------------------------
@pytest.fixture(scope="module")
def two_terms(c):
    """lme4's model with two terms per grouping factor (reference re_form.json)."""
    from conftest import load_reference

    ref = load_reference("re_form")
    return ref, g.fit(ref["formula"], c), c.iloc[ref["rows"]]


def test_re_form_gives_lme4_predictions(two_terms):
    ref, fitted, rows = two_terms
    # glmer stops 2.6e-5 short in logLik, so its modes differ from ours by up to 4e-5.
    assert fitted.loglik >= ref["logLik"]
    cases = {
        "link_all": {},
        "link_none": {"re_form": "NA"},
        "link_intercept": {"re_form": "~(1 | district)"},
        "link_age": {"re_form": "~ (0 + age|district)"},
    }
    for key, arguments in cases.items():
        got = fitted.predict(rows, type="link", **arguments)
        np.testing.assert_allclose(got.to_numpy(), ref[key], atol=1e-4, err_msg=key)
    # R's NA and "~0" are re="exclude"; a term selects its block only (not the factor's other).
    excluded = fitted.predict(rows, re="exclude")
    for none in ("~0", " ~ 0 ", "NA", float("nan"), pd.NA):
        pd.testing.assert_series_equal(fitted.predict(rows, re_form=none), excluded)
    np.testing.assert_array_equal(fitted.predict(re_form="~0"), fitted.predict(re="exclude"))
    both = fitted.predict(rows, re_form="~(1 | district) + (0 + age | district)")
    pd.testing.assert_series_equal(both, fitted.predict(rows))
    intercept = fitted.predict(rows, re_form="~(1 | district)").to_numpy()
    assert not np.allclose(intercept, both.to_numpy())


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"re_form": "~(1 + age | district)"}, r"not a random-effect term of the fit \(its terms"),
        ({"re_form": "~ age + (1 | district)"}, "other than random-effect terms"),
        ({"re_form": "(1 | district)"}, "starting with '~'"),
        ({"re_form": 0}, "re_form must be a one-sided formula"),
        ({"re_form": "~0", "re": "exclude"}, "give re or re_form"),
        ({"allow_new_levels": "no"}, "allow_new_levels must be True or False"),
    ],
)
def test_re_form_errors_name_the_argument(two_terms, arguments, fragment):
    _, fitted, rows = two_terms
    with pytest.raises(ValueError, match=fragment):
        fitted.predict(rows, **arguments)


def test_allow_new_levels_false_refuses_new_levels_as_lme4(two_terms):
    ref, fitted, rows = two_terms
    assert ref["new_level_error"].startswith("new levels detected")
    new = rows.assign(district=999)
    with pytest.raises(ValueError, match=r"levels of 'district' \(5 rows\) not seen"):
        fitted.predict(new, allow_new_levels=False)
    # Without the random effects there is nothing to refuse; True is the default's warning.
    population = fitted.predict(rows, re_form="NA")
    pd.testing.assert_series_equal(
        fitted.predict(new, re_form="NA", allow_new_levels=False), population
    )
    with pytest.warns(NewLevelsWarning):
        fitted.predict(new, allow_new_levels=True)


def test_re_form_of_a_fit_without_a_formula(two_terms):
    _, fitted, _ = two_terms
    numeric = g.fit_model(fitted.model)
    np.testing.assert_array_equal(numeric.predict(re_form=" ~ 0 "), numeric.predict(re="exclude"))
    with pytest.raises(ValueError, match="re_form needs a model fitted from a formula"):
        numeric.predict(re_form="~(1 | district)")
