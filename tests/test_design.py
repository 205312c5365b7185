"""Formula + data -> ModelData: responses, grouping factors, missing values, errors."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.model.design import (
    ALIAS_TOLERANCE,
    aliased_columns,
    build_model,
    clearly_full_rank,
    design_null_basis,
)


def small_frame(seed=0, n=60):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "x": rng.normal(size=n),
            "g": rng.integers(0, 6, n),
            "h": rng.choice(["a", "b", "c"], n),
        }
    )


def test_cbpp_model_data():
    model, info = build_model(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", g.datasets.load("cbpp")
    )
    assert model.fixed_names == ("(Intercept)", "period2", "period3", "period4")
    assert model.blocks[0].n_levels == 15
    assert model.successes.sum() == 99 and model.trials.sum() == 842
    assert info.n_dropped == 0


def test_random_terms_expand_as_lme4():
    frame = small_frame()
    model, _ = build_model("y ~ x + (1 + x || g) + (1 | g:h)", frame)
    assert [(b.group, b.terms) for b in model.blocks] == [
        ("g", ("(Intercept)",)),
        ("g", ("x",)),
        ("g:h", ("(Intercept)",)),
    ]
    model, _ = build_model("y ~ x + (x | g)", frame)
    assert model.blocks[0].terms == ("(Intercept)", "x") and model.n_theta == 3
    model, _ = build_model("y ~ x + (1 | h/g)", frame)
    assert [b.group for b in model.blocks] == ["h", "g:h"]  # lme4's name of h/g's inner term


def test_grouping_labels_of_any_dtype_give_the_same_codes():
    frame = small_frame()
    as_int, _ = build_model("y ~ x + (1 | g)", frame)
    as_str, _ = build_model("y ~ x + (1 | g)", frame.assign(g=frame["g"].map("L{}".format)))
    as_cat, _ = build_model("y ~ x + (1 | g)", frame.assign(g=frame["g"].astype("category")))
    np.testing.assert_array_equal(as_int.blocks[0].codes, as_str.blocks[0].codes)
    np.testing.assert_array_equal(as_int.blocks[0].codes, as_cat.blocks[0].codes)


def test_two_level_factor_and_bool_responses():
    frame = small_frame()
    base, _ = build_model("y ~ x + (1 | g)", frame)
    labels = frame.assign(y=pd.Categorical(np.where(frame.y == 1, "yes", "no")))
    as_factor, _ = build_model("y ~ x + (1 | g)", labels)
    as_bool, _ = build_model("y ~ x + (1 | g)", frame.assign(y=frame.y.astype(bool)))
    np.testing.assert_array_equal(base.successes, as_factor.successes)
    np.testing.assert_array_equal(base.successes, as_bool.successes)


def test_proportion_with_weights_equals_cbind():
    cbpp = g.datasets.load("cbpp")
    a, _ = build_model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    b, _ = build_model(
        "p ~ period + (1 | herd)", cbpp.assign(p=cbpp.incidence / cbpp["size"]), weights="size"
    )
    np.testing.assert_allclose(a.successes, b.successes)
    np.testing.assert_array_equal(a.trials, b.trials)


def test_missing_values_are_dropped_and_counted():
    frame = small_frame().astype({"x": float})
    frame.loc[[3, 7], "x"] = np.nan
    frame.loc[11, "g"] = None
    frame = frame.astype({"g": "object"})
    frame.loc[11, "g"] = None
    model, info = build_model("y ~ x + (1 | g)", frame)
    assert info.n_dropped == 3 and model.n_obs == len(frame) - 3


def test_no_complete_rows_says_which_columns_are_missing():
    # Found by bench/fuzz_workflow.py: weights of NaN only left no row, and the message did
    # not say why.
    frame = small_frame().astype({"x": float})
    frame.loc[: len(frame) - 2, "x"] = np.nan
    frame = frame.astype({"g": "object"})
    frame.loc[[0, 1], "g"] = None
    with pytest.raises(ValueError, match=r"of 60 rows, missing values in g \(2\), x \(59\)$"):
        build_model("y ~ x + (1 | g)", frame)
    weights = np.full(len(frame), np.nan)
    with pytest.raises(ValueError, match=r"missing values in weights \(60\)$"):
        build_model("y ~ h + (1 | g)", small_frame(), weights=weights)


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ x + h + (1 | g)",  # plain terms: the matrix built with numpy
        "y ~ I(x**2) + h:x + (1 + x | g)",  # formulaic on the table's DataFrame
    ],
)
def test_missing_rows_and_a_repeated_index_give_the_clean_frame_s_design(formula):
    frame = small_frame().astype({"x": float})
    frame["extra"] = 1.0  # a column the formula does not use
    frame.loc[[3, 7], "x"] = np.nan
    frame.loc[5, "h"] = None
    odd = frame.set_axis([i // 2 for i in range(len(frame))])  # labels repeated
    model, info = build_model(formula, odd)
    clean, clean_info = build_model(formula, frame.dropna().reset_index(drop=True))
    assert info.n_dropped == 3 and model.n_obs == len(frame) - 3
    np.testing.assert_array_equal(model.x, clean.x)
    np.testing.assert_array_equal(model.blocks[0].z, clean.blocks[0].z)
    np.testing.assert_array_equal(model.blocks[0].codes, clean.blocks[0].codes)
    np.testing.assert_array_equal(model.successes, clean.successes)
    assert model.fixed_names == clean.fixed_names
    assert info.columns == clean_info.columns and info.variables == clean_info.variables


def test_inputs_are_not_modified():
    frame = small_frame()
    before = frame.copy(deep=True)
    weights = np.ones(len(frame))
    g.fit("y ~ x + (1 | g)", frame, weights=weights)
    pd.testing.assert_frame_equal(frame, before)
    np.testing.assert_array_equal(weights, np.ones(len(frame)))


@pytest.mark.parametrize(
    ("formula", "change", "fragment"),
    [
        ("y ~ z + (1 | g)", None, "'z'"),
        ("y ~ x + (1 | nothere)", None, "'nothere'"),
        ("y ~ x + (1 | one)", "one", "'one'"),
        ("y ~ x + (1 | g)", "y_outside", "response 'y'"),
        ("y ~ x + (1 | g)", "x_inf", "'x'"),
        ("cbind(s, f) ~ x + (1 | g)", "cbind", "successes exceed trials"),
        ("cbind(s, t - s) ~ x + (1 | g)", "cbind", "successes exceed trials"),
        ("y ~ x + (1 | g)", "y_three", "two levels"),
        ("y ~ x", None, "random-effect"),
        ("y ~ x + (1 | g", None, "("),
    ],
)
def test_errors_name_the_column_or_term(formula, change, fragment):
    frame = small_frame()
    if change == "one":
        frame["one"] = 1
    elif change == "y_outside":
        frame.loc[4, "y"] = 2
    elif change == "x_inf":
        frame.loc[5, "x"] = np.inf
    elif change == "cbind":
        frame["s"] = 3
        frame["f"] = -1
        frame["t"] = 2
    elif change == "y_three":
        frame["y"] = np.array(["a", "b", "c"] * 20)
    with pytest.raises(ValueError, match=None) as err:
        g.fit(formula, frame)
    assert fragment in str(err.value)


def test_error_for_proportion_without_weights_and_rank_deficiency():
    frame = small_frame().astype({"y": float})
    frame.loc[0, "y"] = 0.5
    with pytest.raises(ValueError, match="weights"):
        g.fit("y ~ x + (1 | g)", frame)
    frame = small_frame().assign(x2=lambda d: 2 * d.x)
    with pytest.warns(g.diagnostics.RankDeficiencyWarning, match="dropping 1 column.*'x2'"):
        result = g.fit("y ~ x + x2 + (1 | g)", frame)
    assert result.dropped_columns == ("x2",)


def test_bad_options():
    frame = small_frame()
    with pytest.raises(ValueError, match="method"):
        g.fit("y ~ x + (1 | g)", frame, method="pql")
    with pytest.raises(ValueError, match="conf_level"):
        g.fit("y ~ x + (1 | g)", frame, conf_level=1.5)
    with pytest.raises(ValueError, match="weights"):
        g.fit("y ~ x + (1 | g)", frame, weights=np.ones(3))


def test_huge_predictor_values_are_refused_with_a_message():
    frame = small_frame().astype({"x": float})
    frame.loc[2, "x"] = 1e300
    with pytest.raises(ValueError, match="'x' has the value 1e\\+300 at row 2.*rescale"):
        g.fit("y ~ x + (1 | g)", frame)


@settings(max_examples=60)
@given(
    rows=st.integers(2, 40),
    columns=st.integers(1, 6),
    alias=st.sampled_from([None, 0.0, 1e-9, 1e-6, 1e-3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_gram_quick_exit_never_passes_an_aliased_design(rows, columns, alias, seed):
    # The cheap check (Cholesky of the normalized X'X) may say "unsure", never "full rank"
    # where the QR rule finds an aliased column.
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, columns))
    if alias is not None and columns > 1:
        x[:, -1] = x[:, 0] - x[:, 1 % columns] + alias * rng.standard_normal(rows)
    norms = np.linalg.norm(x, axis=0)
    r = np.abs(np.diag(np.linalg.qr(x, mode="r")))
    by_qr = [j for j in range(min(rows, columns)) if not r[j] > ALIAS_TOLERANCE * norms[j]]
    if clearly_full_rank(x, norms):
        assert rows >= columns and by_qr == []
        assert aliased_columns(x) == []


def test_aliased_and_zero_columns_are_still_found():
    x = np.column_stack([np.ones(10), np.arange(10.0), 2 * np.arange(10.0), np.zeros(10)])
    assert not clearly_full_rank(x, np.linalg.norm(x, axis=0))
    assert aliased_columns(x) == [2, 3]


@settings(max_examples=40)
@given(
    rows=st.integers(8, 40),
    free=st.integers(1, 4),
    aliases=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_null_basis_spans_the_aliased_columns_combinations(rows, free, aliases, seed):
    """design_null_basis: orthonormal, X N = 0 and one column per aliased column, so a linear
    function of the kept columns alone (0 on the aliased ones) is estimable exactly when it
    gives the same value for every coefficient vector that fits X equally."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((rows, free))
    extra = base @ rng.standard_normal((free, aliases))
    x = np.column_stack([base, extra])[:, rng.permutation(free + aliases)]
    dropped = aliased_columns(x)
    assert len(dropped) == aliases
    basis = design_null_basis(x, dropped)
    assert basis.shape == (free + aliases, aliases)
    np.testing.assert_allclose(basis.T @ basis, np.eye(aliases), atol=1e-10)
    np.testing.assert_allclose(x @ basis, 0.0, atol=1e-9 * np.abs(x).max())
    # A row of X is estimable; a unit vector on an aliased column is not.
    row = x[0]
    assert np.sum((row @ basis) ** 2) < 1e-8 * row @ row
    unit = np.zeros(free + aliases)
    unit[dropped[0]] = 1.0
    assert np.sum((unit @ basis) ** 2) > 1e-8


def test_distinct_count_is_nunique() -> None:
    from glmm_binomial.model.design import distinct_count

    cat = pd.Series(pd.Categorical(["a", None, "b", "a"], categories=["b", "a", "unused"]))
    for series in (cat, cat.astype(object), pd.Series([1.0, np.nan, 2.0, 1.0])):
        assert distinct_count(series) == series.nunique()


def test_model_data_counts_follow_a_replaced_model() -> None:
    """ModelData caches n_theta and the blocks' theta slices; a model made from it by
    dataclasses.replace (another family, other blocks) has its own."""
    import dataclasses

    from glmm_binomial.family import make_family

    model, _ = build_model(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", g.datasets.load("cbpp")
    )
    assert model.n_theta == 1 and model.theta_slices() == [slice(0, 1)]
    beta_binomial = dataclasses.replace(model, family=make_family("betabinomial"))
    assert beta_binomial.n_theta == 2 and beta_binomial.family_slice == slice(1, 2)
    doubled = dataclasses.replace(model, blocks=model.blocks * 2)
    assert doubled.n_theta == 2 and doubled.theta_slices() == [slice(0, 1), slice(1, 2)]
    assert model.n_theta == 1


@pytest.mark.parametrize("name", ["base", "stats", "contr", "math", "splines"])
def test_a_column_named_as_a_namespace_is_a_column(name: str) -> None:
    """base, stats, contr .. are prefixes of qualified calls (base::log, contr.sum) only when
    followed by a dot: a column of that name is read (it raised a TypeError from formulaic).
    (A formula with such a column and a qualified call of the same package is not read.)"""
    rng = np.random.default_rng(3)
    data = pd.DataFrame(
        {
            "y": rng.integers(0, 2, 60),
            name: rng.normal(size=60),
            "g": np.repeat(np.arange(6), 10),
        }
    )
    model, _ = build_model(f"y ~ {name} + C(g, sum) + (1 | g)", data)
    assert list(model.fixed_names)[:2] == ["(Intercept)", name]
    np.testing.assert_allclose(model.x[:, 1], data[name])


def test_subset_is_glmers_subset() -> None:
    """subset= as R code of the columns (R's operators) or one logical per row: the same fit
    as the rows filtered first; missing values leave a row out; bad values are refused
    naming the argument."""
    import warnings

    data = g.datasets.load("contraception")
    rows = (data["age"] > -10) & (data["urban"] == "Y")
    formula = "use ~ age + urban + (1 | district)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_text = g.fit(formula, data, subset="age > -10 & urban == 'Y'")
        by_mask = g.fit(formula, data, subset=rows.to_numpy())
        filtered = g.fit(formula, data[rows])
        assert by_text.nobs == by_mask.nobs == filtered.nobs == int(rows.sum())
        assert by_text.loglik == by_mask.loglik == filtered.loglik
        assert by_text.n_dropped == 0
        with_missing = rows.astype(object).where(data["livch"] != "0", None)
        partial = g.fit(formula, data, subset=with_missing)
        assert partial.nobs == int((rows & (data["livch"] != "0")).sum())
    for bad, message in [
        ("agee > 1", "uses column\\(s\\) not in data: 'agee'"),
        ("age +", "is not an R expression"),
        ("age", "subset must be logical"),
        (np.ones(5, dtype=bool), "one value per row of data \\(1934\\), got 5"),
        (data["age"].iloc[:10] > 0, "a value for every row label"),
    ]:
        with pytest.raises(ValueError, match=message):
            g.fit(formula, data, subset=bad)


def test_r_code_given_as_weights_or_offset_says_where_it_goes() -> None:
    """R's glmer(offset = log(n)) evaluates code; here weights= and offset= name a column or
    give values, and the error says where an expression can go."""
    data = g.datasets.load("cbpp")
    formula = "incidence / size ~ period + (1 | herd)"
    with pytest.raises(ValueError, match="write offset\\(log\\(size\\)\\) in the formula"):
        g.fit(formula, data, offset="log(size)")
    with pytest.raises(ValueError, match="for an expression give its values"):
        g.fit(formula, data, weights="size * 1")
    with pytest.raises(ValueError, match="'sizee', which is not in data$"):
        g.fit(formula, data, weights="sizee")


def test_no_row_with_information_is_refused_not_fitted() -> None:
    # Was a "fit" with every estimate at its start, flagged only as not converged.
    cbpp = g.datasets.load("cbpp")
    with pytest.raises(ValueError, match="weights are all zero on the rows used"):
        g.fit("incidence / size ~ period + (1 | herd)", cbpp, weights=np.zeros(len(cbpp)))
    none = cbpp.assign(size=0, incidence=0)
    with pytest.raises(
        ValueError, match=r"cbind\(incidence, size - incidence\) has zero trials \(successes"
    ):
        g.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", none)
    # Some rows without trials are fine (they add nothing).
    some = cbpp.assign(incidence=cbpp["incidence"].where(cbpp.index > 2, 0))
    some = some.assign(size=cbpp["size"].where(cbpp.index > 2, 0))
    fitted = g.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", some)
    assert fitted.converged and np.isfinite(fitted.loglik)
