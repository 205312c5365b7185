"""GLMM_BINOMIAL, the spreadsheet function: table layout, messages, input forms, references."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from _spec_examples import EXAMPLES, XR, Y1, Y2, G, X
from conftest import load_reference

import glmm_binomial as g
from glmm_binomial import datasets, sheet
from glmm_binomial.methods.registry import method_class
from glmm_binomial.sheet import GLMM_BINOMIAL, glmm_binomial

EXAMPLE_FIXED = {1: ["intercept", "x1"], 2: ["intercept", "x1"], 3: ["x1"], 4: ["intercept", "x1"]}
EXAMPLE_RANDOM = {1: ["intercept"], 2: ["intercept", "random_x1"], 3: ["intercept"]}
EXAMPLE_RANDOM[4] = EXAMPLE_RANDOM[2]

AVAILABLE = sheet._available_methods()
METHODS_HERE = [m for m in sheet.METHODS if m in AVAILABLE]
#: method "mcmc" with few draws: these tests check the table, not the sampler (test_mcmc.py).
FEW_DRAWS = {"draws": 60, "warmup": 40, "chains": 2, "seed": 5}


@pytest.fixture(autouse=True)
def few_mcmc_draws(monkeypatch):
    monkeypatch.setattr(sheet, "MCMC_SETTINGS", FEW_DRAWS)


def call(*args, method):
    """Call with method in the seventh position, other omitted arguments at their defaults."""
    defaults = [None, True, 0.05]
    rest = list(args[3:]) + defaults[len(args) - 3 :]
    return glmm_binomial(*args[:3], *rest, method)


def rows_by_label(table):
    """First-cell label -> row, for the rows after the random-effects block."""
    return {row[0]: row for row in table if row[0] is not None}


def check_layout(table, fixed, random, method):
    """The contract's table: header, fixed rows, header, random rows, then the criteria."""
    assert isinstance(table, list)
    assert all(isinstance(row, list) and len(row) == 9 for row in table)
    assert table[0] == list(sheet.FIXED_HEADER)
    p = len(fixed)
    assert [row[1] for row in table[1 : 1 + p]] == fixed
    assert all(row[0] is None for row in table[1 : 1 + p])
    assert table[1 + p] == ["random_effects", "parameter", "variance", "std_dev", *[None] * 5]
    r = len(random)
    assert [row[1] for row in table[2 + p : 2 + p + r]] == random
    assert [row[0] for row in table[2 + p + r : 5 + p + r]] == ["log_likelihood", "aic", "bic"]
    labels = rows_by_label(table)
    assert labels["method"][1] == method
    assert labels["n_obs"][1] == 6
    assert labels["n_groups"][1] == 3
    # Every cell a plain Python value: None, bool, int, float (finite) or str.
    for row in table:
        for cell in row:
            assert cell is None or type(cell) in (bool, int, float, str)
            if isinstance(cell, float):
                assert math.isfinite(cell)


@pytest.mark.parametrize("method", METHODS_HERE)
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_examples_return_tables(example, method):
    table = call(*EXAMPLES[example], method=method)
    assert not isinstance(table, str), table
    check_layout(table, EXAMPLE_FIXED[example], EXAMPLE_RANDOM[example], method)
    labels = rows_by_label(table)
    p, r = len(EXAMPLE_FIXED[example]), len(EXAMPLE_RANDOM[example])
    loglik = labels["log_likelihood"][1]
    # Real criteria: AIC and BIC count fixed effects plus variance components, n = rows.
    # A completely separated ML fit approaches the supremum 0 of the log-likelihood.
    assert loglik is not None and loglik <= 0.0
    assert labels["aic"][1] == pytest.approx(-2 * loglik + 2 * (p + r), abs=1e-9)
    assert labels["bic"][1] == pytest.approx(-2 * loglik + math.log(6) * (p + r), abs=1e-9)
    posterior = method_class(method).posterior
    separated_ml = example == 1 and not posterior
    for row in table[1 : 1 + p]:
        if separated_ml:
            assert row[2:] == [None] * 7
            continue
        beta, se, z, pval, lo, hi, odds = row[2:]
        assert se > 0.0
        assert z == pytest.approx(beta / se, rel=1e-12)
        assert 0.0 < pval <= 1.0
        assert odds == pytest.approx(math.exp(beta), rel=1e-12)
        level = 0.9 if example == 4 else 0.95
        if method == "mcmc":  # equal-tailed credible intervals: quantiles of the draws
            assert lo < beta < hi
            continue
        q = {0.9: 1.6448536269514722, 0.95: 1.959963984540054}[level]
        assert lo == pytest.approx(beta - q * se, rel=1e-9, abs=1e-12)
        assert hi == pytest.approx(beta + q * se, rel=1e-9, abs=1e-12)
    for row in table[2 + p : 2 + p + r]:
        if separated_ml:
            assert row[2:4] == [None, None]
            continue
        variance, std_dev = row[2:4]
        assert std_dev >= 0.0
        assert variance == pytest.approx(std_dev**2, rel=1e-12, abs=1e-300)
        assert row[4:] == [None] * 5


def test_agq_points_per_dimension():
    assert [sheet._n_agq(k) for k in (1, 2, 3, 4, 5, 8)] == [25, 10, 4, 3, 2, 2]
    if "agq" in AVAILABLE:
        assert rows_by_label(call(*EXAMPLES[1], method="agq"))["n_agq"][1] == 25
        assert rows_by_label(call(*EXAMPLES[2], method="agq"))["n_agq"][1] == 10


def test_default_method_is_vb():
    if "vb" not in AVAILABLE:
        pytest.skip("variational.fit_vb is not in this tree yet")
    assert glmm_binomial(Y1, X, G) == call(Y1, X, G, method="vb")
    assert GLMM_BINOMIAL is glmm_binomial


def test_separation_is_a_warning_not_an_estimate():
    table = call(*EXAMPLES[1], method="laplace")
    labels = rows_by_label(table)
    assert "complete separation" in labels["warning"][1]
    assert "intercept, x1" in labels["warning"][1]
    assert labels["converged"][1] is False
    # The supremum of a completely separated Bernoulli likelihood is 1.
    assert labels["log_likelihood"][1] == pytest.approx(0.0, abs=1e-6)
    if "vb" in AVAILABLE:
        vb = call(*EXAMPLES[1], method="vb")
        vb_labels = rows_by_label(vb)
        assert "prior" in vb_labels["warning"][1]
        assert all(abs(c) < 10 for c in (vb[1][2], vb[2][2]))


def test_quasi_separation_blanks_only_the_affected_coefficient():
    # x2 is 1 only on rows where y = 1: quasi-complete separation along x2 alone.
    rng = np.random.default_rng(5)
    n = 60
    x1 = rng.normal(size=n)
    y = (rng.random(n) < 0.5).astype(int)
    x2 = np.where((y == 1) & (np.arange(n) % 3 == 0), 1.0, 0.0)
    groups = np.arange(n) % 6
    table = call(
        [[int(v)] for v in y],
        [[a, b] for a, b in zip(x1.tolist(), x2.tolist(), strict=True)],
        [[int(g)] for g in groups],
        method="laplace",
    )
    assert [row[1] for row in table[1:4]] == ["intercept", "x1", "x2"]
    assert table[3][2:] == [None] * 7
    assert all(c is not None for c in table[1][2:] + table[2][2:])
    assert table[5][2] is not None  # variance still estimated (quasi-complete)
    labels = rows_by_label(table)
    assert labels["warning"][1].startswith("quasi-complete separation")
    assert "for x2," in labels["warning"][1]


def test_groups_separating_y_are_flagged():
    # Three groups of only 1s, three of only 0s, x overlapping: the ML random-intercept SD runs
    # away (the likelihood keeps rising as it grows); the table must say so.
    y = [[1]] * 9 + [[0]] * 9
    x = [[v] for v in [0.1, 0.5, -0.3, 0.7, -0.2, 0.4, 0.0, 0.3, -0.6] * 2]
    groups = [[i // 3] for i in range(18)]
    table = glmm_binomial(y, x, groups, method="laplace")
    assert table[4][3] > sheet.LARGE_SD
    texts = [row[1] for row in table if row[0] == "warning"]
    assert any("the random-effect SD of intercept is" in t for t in texts)
    if "vb" in AVAILABLE:
        vb = glmm_binomial(y, x, groups, method="vb")
        assert vb[4][3] < sheet.LARGE_SD
        assert not [row for row in vb if row[0] == "warning"]


# --- messages -------------------------------------------------------------------------------

KNOWN = [
    ((Y1[:-1] + [[2]], X, G), "Invalid input: y must contain only 0 or 1 values."),
    ((Y1[:-1] + [[0.5]], X, G), "Invalid input: y must contain only 0 or 1 values."),
    ((Y1, X, G, None, True, 0.0), "Invalid input: alpha must be between 0 and 1."),
    ((Y1, X, G, None, True, 1.0), "Invalid input: alpha must be between 0 and 1."),
    ((Y1, X, G, None, True, -0.5), "Invalid input: alpha must be between 0 and 1."),
    ((Y1, X[:5], G), "Invalid input: y, x, and groups must have the same number of rows."),
    ((Y1, X, G[:4]), "Invalid input: y, x, and groups must have the same number of rows."),
    ((Y1[:5], X, G), "Invalid input: y, x, and groups must have the same number of rows."),
    ((Y1, X, G, None, "yes"), "Invalid input: fit_intercept must be a boolean."),
    ((Y1, X, G, None, 2), "Invalid input: fit_intercept must be a boolean."),
    ((Y1, X, G, None, 0.5), "Invalid input: fit_intercept must be a boolean."),
]


@pytest.mark.parametrize(("args", "message"), KNOWN)
def test_known_messages_word_for_word(args, message):
    assert glmm_binomial(*args, method="laplace") == message


OWN = [
    # (arguments, expected message)
    (([], X, G), "Invalid input: y is empty."),
    (([[]], X, G), "Invalid input: y is empty: row 1 has no cells."),
    (
        ([0, 1, 0, 1, 1, 0], X, G),
        "Invalid input: y must be a 2D range (a list of rows, such as [[1], [0]]); "
        "got a flat list of values.",
    ),
    ((Y1, [[1], [2, 3], [1], [1], [1], [1]], G), "Invalid input: x must be rectangular: "),
    ((Y1, [[1], 2, [1], [1], [1], [1]], G), "Invalid input: x must be a 2D range: row 2 is not"),
    (([[0, 1]] * 6, X, G), "Invalid input: y must be a single column; it has 2 columns."),
    ((Y1, X, [[1, 1]] * 6), "Invalid input: groups must be a single column; it has 2 columns."),
    (([[0], [1], ["a"], [1], [1], [0]], X, G), "Invalid input: y must contain finite numbers: "),
    ((Y1, [[1], [2], [True], [1], [1], [1]], G), "row 3 is TRUE/FALSE (a boolean)"),
    ((Y1, [[1], [2], [""], [1], [1], [1]], G), "x must contain finite numbers: row 3 is blank."),
    ((Y1[:5] + [[None]], X, G), "Invalid input: y must contain finite numbers: row 6 is blank."),
    ((Y1, [[1, 2]] * 5 + [[3, None]], G), "x must contain finite numbers: row 6, column 2 is"),
    (
        (Y1, [[1] * 7] * 6, G),
        "Invalid input: x and the intercept have 8 coefficients to estimate but y has only 6 rows",
    ),
    ((Y1, [[1], [2], [None], [1], [1], [1]], G), "x must contain finite numbers: row 3 is blank."),
    ((Y1, [[1, 1]] * 5 + [[1, float("nan")]], G), "x must contain finite numbers: row 6, column 2"),
    ((Y1, [[1], [2], [float("inf")], [1], [1], [1]], G), "row 3 is infinite."),
    ((Y1, [[1], [2], [[3]], [1], [1], [1]], G), "row 3 is a list (a range inside a cell)."),
    ((Y1, X, [[1], [1], [""], [2], [3], [3]]), "groups must contain numbers or text labels: row 3"),
    ((Y1, X, [[1], [1], [None], [2], [3], [3]]), "groups must contain numbers or text labels"),
    ((Y1, X, [[1], [True], [2], [2], [3], [3]]), "row 2 is TRUE/FALSE"),
    ((Y1, X, [[1], [1], [float("nan")], [2], [3], [3]]), "row 3 is NaN"),
    ((Y1, X, G, XR[:5]), "Invalid input: x_random must have the same number of rows as y (6); "),
    ((Y1, X, G, [["a"]] * 6), "Invalid input: x_random must contain finite numbers: row 1 is"),
    (([[0]], [[1]], [[1]]), "Invalid input: y, x, and groups need at least 2 rows; they have 1."),
    ((0, 1, 1), "Invalid input: y, x, and groups need at least 2 rows; they have 1."),
    ((Y1, X, G, None, True, "0.1"), "Invalid input: alpha must be a number between 0 and 1"),
    ((Y1, X, G, None, True, True), "Invalid input: alpha must be a number between 0 and 1"),
    ((Y1, X, G, None, True, float("nan")), "Invalid input: alpha must be a finite number"),
    ((Y1, X, G, None, True, float("inf")), "Invalid input: alpha must be a finite number"),
    ((Y1, [[1], [1]] * 3, G), "Invalid input: x column 1 is a linear combination of the intercept"),
    (
        (Y1, [[v[0], 2 * v[0]] for v in X], G),
        "x column 2 is a linear combination of the intercept,",
    ),
    ((Y1, [[0]] * 6, G), "Invalid input: x column 1 is all zero"),
    ((Y1, X, G, True, False), "Invalid input: x_random is TRUE, read as fit_intercept, but"),
    ((np.zeros((6, 1, 1)), X, G), "Invalid input: y must be a 2D range; got an array with 3"),
    (([[[0]], [[1]]], X[:2], G[:2]), "Invalid input: y must contain finite numbers: row 1 is a"),
]


@pytest.mark.parametrize(("args", "message"), OWN)
def test_each_check_has_its_own_message(args, message):
    out = glmm_binomial(*args, method="laplace")
    assert isinstance(out, str)
    assert out.startswith("Invalid input: ")
    assert message in out


@pytest.mark.parametrize(
    ("method", "message"),
    [
        (
            "ml",
            'Invalid input: method must be one of "vb", "laplace", "agq", "vb_meanfield", '
            "\"mcmc\"; got 'ml'.",
        ),
        (
            3,
            'Invalid input: method must be text, one of "vb", "laplace", "agq", '
            '"vb_meanfield", "mcmc"; got 3.',
        ),
        (
            True,
            'Invalid input: method must be text, one of "vb", "laplace", "agq", '
            '"vb_meanfield", "mcmc"; got True.',
        ),
    ],
)
def test_method_messages(method, message):
    assert glmm_binomial(Y1, X, G, method=method) == message


def test_unavailable_agq_names_the_available_methods(monkeypatch):
    monkeypatch.setattr(sheet, "_available_methods", lambda: ("vb", "laplace"))
    assert glmm_binomial(Y2, X, G, method="agq") == (
        'Invalid input: method "agq" is not available in this version; available: "vb", "laplace".'
    )


def test_fit_failure_is_a_message(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("PIRLS diverged")

    monkeypatch.setattr("glmm_binomial.api.fit_estimates", broken)
    assert glmm_binomial(Y2, X, G, method="laplace") == "Error fitting GLMM: PIRLS diverged"


# --- input forms ----------------------------------------------------------------------------


def test_scalars_and_one_by_one_ranges_and_case():
    base = glmm_binomial(Y2, X, G, None, False, 0.1, "laplace")
    assert glmm_binomial(Y2, X, G, None, [[False]], [[0.1]], [["Laplace "]]) == base
    assert glmm_binomial(Y2, X, G, None, np.bool_(False), np.float64(0.1), "LAPLACE") == base
    assert glmm_binomial(np.array(Y2), np.array(X), np.array(G), None, False, 0.1, "laplace") == (
        base
    )
    # Tuples are ranges too; None means an omitted argument.
    assert glmm_binomial(tuple(map(tuple, Y2)), X, G, None, None, None, "laplace") == (
        glmm_binomial(Y2, X, G, method="laplace")
    )


def test_boolean_in_x_random_position_is_fit_intercept_and_shifts():
    expected = glmm_binomial(Y2, X, G, None, False, 0.1, "laplace")
    assert glmm_binomial(Y2, X, G, False, 0.1, "laplace") == expected
    assert glmm_binomial(Y2, X, G, False, 0.1, method="laplace") == expected
    assert glmm_binomial(Y2, X, G, False, alpha=0.1, method="laplace") == expected
    assert glmm_binomial(Y2, X, G, [[False]], None, 0.1, "laplace") == expected
    with_intercept = glmm_binomial(Y2, X, G, True, method="laplace")
    assert with_intercept == glmm_binomial(Y2, X, G, method="laplace")


def test_group_labels_are_exact():
    base = glmm_binomial(Y2, X, G, method="laplace")
    # 1 and 1.0 are one group; text labels work; the labels' names do not matter.
    same = [[1.0], [1], [2.0], [2], [np.int64(3)], [3.0]]
    assert glmm_binomial(Y2, X, same, method="laplace") == base
    text = [["b"], ["b"], ["a"], ["a"], ["c"], ["c"]]
    table = glmm_binomial(Y2, X, text, method="laplace")
    for got, want in zip(table, base, strict=True):
        assert got == pytest.approx(want, abs=1e-8) if got[1] != "parameter" else got == want
    # 1 and 1.5 are two groups (never rounded); the number 1 and the text "1" are one, as
    # R's as.character compares labels on every input path (the reader policy, frame.py).
    split = glmm_binomial(Y2, X, [[1], [1.5], [2], [2], [3], [3]], method="laplace")
    assert rows_by_label(split)["n_groups"][1] == 4
    mixed = glmm_binomial(Y2, X, [[1], ["1"], [2.0], ["2"], [3], [" 3"]], method="laplace")
    assert rows_by_label(mixed)["n_groups"][1] == 4  # " 3" is its own label (text as written)
    mixed = glmm_binomial(Y2, X, [[1], ["1"], [2.0], ["2"], [3], ["3"]], method="laplace")
    assert mixed == base


def test_inputs_are_not_modified_and_output_is_repeatable():
    args = (Y2, X, G, XR, True, 0.1)
    before = copy.deepcopy(args)
    first = glmm_binomial(*args, method="laplace")
    assert args == before
    assert glmm_binomial(*args, method="laplace") == first


def test_random_slopes_are_fitted():
    # Data with a strong group-specific slope: the random_x1 component must be estimated > 0.
    rng = np.random.default_rng(11)
    n_groups, per = 30, 40
    groups = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=n_groups * per)
    z = rng.normal(size=n_groups * per)
    slope = rng.normal(scale=1.5, size=n_groups)
    eta = -0.2 + 0.5 * x + slope[groups] * z
    y = (rng.random(len(eta)) < 1 / (1 + np.exp(-eta))).astype(int)
    table = glmm_binomial(
        [[int(v)] for v in y],
        [[a, b] for a, b in zip(x.tolist(), z.tolist(), strict=True)],
        [[int(g)] for g in groups],
        [[v] for v in z.tolist()],
        method="laplace",
    )
    assert table[5][1] == "intercept" and table[6][1] == "random_x1"
    assert table[6][3] == pytest.approx(1.5, abs=0.5)  # simulated slope SD 1.5


# --- against lme4 / glmmTMB -----------------------------------------------------------------


def cbpp_bernoulli():
    """cbpp expanded to one 0/1 row per animal; x = period dummies, groups = herd."""
    frame = datasets.load("cbpp")
    y, x, groups = [], [], []
    for herd, incidence, size, period in zip(
        frame["herd"], frame["incidence"], frame["size"], frame["period"], strict=True
    ):
        dummies = [1.0 if str(period) == level else 0.0 for level in ("2", "3", "4")]
        for animal in range(int(size)):
            y.append([1 if animal < incidence else 0])
            x.append(list(dummies))
            groups.append([int(herd)])
    return y, x, groups


def test_cbpp_bernoulli_matches_glmmtmb():
    reference = load_reference("cbpp")["fits"]["glmmTMB_laplace"]
    y, x, groups = cbpp_bernoulli()
    table = glmm_binomial(y, x, groups, method="laplace")
    assert not isinstance(table, str), table
    want = [reference["fixef"][name] for name in ("(Intercept)", "period2", "period3", "period4")]
    got = [row[2] for row in table[1:5]]
    np.testing.assert_allclose(got, want, atol=1e-3)
    want_se = [reference["se"][name] for name in ("(Intercept)", "period2", "period3", "period4")]
    np.testing.assert_allclose([row[3] for row in table[1:5]], want_se, rtol=1e-2)
    assert table[6][3] == pytest.approx(reference["varcorr"][0]["sdcor"], abs=1e-3)
    assert rows_by_label(table)["n_groups"][1] == 15


def contraception_arguments():
    """x = age, age^2, urban, livch dummies; groups = district (numbers, as a sheet has them)."""
    frame = datasets.load("contraception")
    age = frame["age"].to_numpy(dtype=float)
    urban = (frame["urban"].astype(str) == "Y").to_numpy(dtype=float)
    livch = frame["livch"].astype(str).to_numpy()
    columns = [age, age**2, urban] + [(livch == lv).astype(float) for lv in ("1", "2", "3+")]
    x = np.column_stack(columns).tolist()
    y = [[int(v)] for v in frame["use"]]
    groups = [[int(str(d))] for d in frame["district"]]
    return y, x, groups


@pytest.fixture(scope="module")
def contraception_laplace():
    return glmm_binomial(*contraception_arguments(), method="laplace")


def test_contraception_laplace_loglik(contraception_laplace):
    reference = load_reference("contraception_intercept")["fits"]["glmer_laplace"]
    labels = rows_by_label(contraception_laplace)
    assert labels["log_likelihood"][1] == pytest.approx(-1186.364, abs=1e-3)
    assert labels["aic"][1] == pytest.approx(reference["AIC"], abs=2e-3)
    assert labels["bic"][1] == pytest.approx(reference["BIC"], abs=2e-3)
    names = ("(Intercept)", "age", "I(age^2)", "urbanY", "livch1", "livch2", "livch3+")
    got = [row[2] for row in contraception_laplace[1:8]]
    np.testing.assert_allclose(got, [reference["fixef"][k] for k in names], atol=1e-3)
    assert contraception_laplace[9][3] == pytest.approx(reference["theta"], abs=1e-3)


@pytest.mark.skipif("vb" not in AVAILABLE, reason="variational.fit_vb is not in this tree yet")
def test_contraception_vb_means_near_maximum_likelihood(contraception_laplace):
    table = glmm_binomial(*contraception_arguments(), method="vb")
    assert not isinstance(table, str), table
    vb = [row[2] for row in table[1:8]]
    ml = [row[2] for row in contraception_laplace[1:8]]
    np.testing.assert_allclose(vb, ml, atol=0.1)
    assert table[9][3] == pytest.approx(contraception_laplace[9][3], abs=0.1)
    assert any(v != 0.0 for v in vb)  # the earlier engine's all-zero failure


def test_huge_x_values_are_an_input_error():
    message = glmm_binomial(Y1, [[1e300]] + X[1:], G, method="laplace")
    assert message == (
        "Invalid input: x values must be at most 1e+100 in absolute value: row 1 is 1e+300; "
        "rescale it."
    )


# --- what spreadsheets send (issue 11) -------------------------------------------------------


def test_spreadsheet_habits_give_tables():
    base = glmm_binomial(Y2, X, G, XR, True, 0.1, "laplace")
    assert not isinstance(base, str)
    booleans = [[bool(v[0])] for v in Y2]
    assert glmm_binomial(booleans, X, G, XR, True, 0.1, "laplace") == base
    assert glmm_binomial(Y2, X, G, XR, 1, 0.1, "laplace") == base
    assert glmm_binomial(Y2, X, G, XR, 1.0, [[0.1]], "laplace") == base
    # A selection longer than the data: trailing rows blank (None or "") in every range.
    tail = [[None], [""]]
    assert glmm_binomial(Y2 + tail, X + tail, G + tail, XR + tail, True, 0.1, "laplace") == base
    # ... or in some ranges only, the others ending with the data.
    assert glmm_binomial(Y2 + tail, X, G + tail, XR, True, 0.1, "laplace") == base
    wide = [[a[0], b[0]] for a, b in zip(X, XR, strict=True)]
    wide_base = glmm_binomial(Y2, wide, G, method="laplace")
    assert glmm_binomial(Y2 + tail, wide + [[None, ""], ["", None]], G, method="laplace") == (
        wide_base
    )
    # None / "" / an empty 1 x 1 range in a skipped optional argument means omitted.
    plain = glmm_binomial(Y2, X, G, method="laplace")
    for blank in (None, "", [[None]], [[""]]):
        assert glmm_binomial(Y2, X, G, blank, blank, blank, "laplace") == plain
    assert glmm_binomial(Y2, X, G, None, None, None, [[""]]) == glmm_binomial(Y2, X, G)


def test_zero_in_x_random_position_is_a_range_not_fit_intercept():
    # A number is a 1 x 1 range, so 0 there is an x_random of one row (not FALSE).
    out = glmm_binomial(Y2, X, G, 0.0, method="laplace")
    assert out == "Invalid input: x_random must have the same number of rows as y (6); it has 1."


def test_numpy_pandas_and_sequence_objects_are_ranges():
    import pandas as pd

    base = glmm_binomial(Y2, X, G, XR, method="laplace")

    class Range2D:
        """A 2D sequence object (as formulas' or other bridges' range types)."""

        def __init__(self, rows):
            self.rows = rows

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, i):
            return tuple(self.rows[i])

    from collections.abc import Sequence

    Sequence.register(Range2D)
    frame = pd.DataFrame({"y": [v[0] for v in Y2], "x": [v[0] for v in X]})
    assert (
        glmm_binomial(frame[["y"]], frame[["x"]], np.array(G), np.array(XR), method="laplace")[:3]
        == base[:3]
    )
    got = glmm_binomial(frame["y"], frame["x"], pd.Series([g[0] for g in G]), XR, method="laplace")
    assert got == base
    assert glmm_binomial(Range2D(Y2), Range2D(X), Range2D(G), Range2D(XR), method="laplace") == base
    assert glmm_binomial(np.array(Y2, dtype=bool), X, G, XR, method="laplace") == base


def test_blank_inside_the_data_names_the_cell():
    y = Y2[:2] + [[None]] + Y2[3:]
    assert glmm_binomial(y, X, G, method="laplace") == (
        "Invalid input: y must contain finite numbers: row 3 is blank."
    )
    groups = G[:4] + [[""]] + G[5:]
    assert glmm_binomial(Y2, X, groups, method="laplace") == (
        "Invalid input: groups must contain numbers or text labels: row 5 is blank."
    )


def test_tiny_alpha_gives_an_interval_or_a_warning():
    for alpha in (1e-16, 1e-17):
        table = glmm_binomial(Y2, X, G, None, True, alpha, "laplace")
        assert not isinstance(table, str), table
        assert all(row[6] is not None and row[7] is not None for row in table[1:3])
    table = glmm_binomial(Y2, X, G, None, True, 5e-324, "laplace")
    assert table[1][6] is None and table[1][2] is not None
    texts = [row[1] for row in table if row[0] == "warning"]
    assert any("alpha = 4.94066e-324" in t and "left blank" in t for t in texts)


@pytest.mark.skipif("vb" not in AVAILABLE, reason="variational.fit_vb is not in this tree yet")
def test_vb_table_says_its_standard_errors_are_posterior_summaries():
    note = rows_by_label(glmm_binomial(Y2, X, G))["note"][1]
    assert "posterior means, posterior SDs and credible intervals" in note
    assert "under the stated priors" in note and "N(0, 2^2)" in note
    meanfield = rows_by_label(glmm_binomial(Y2, X, G, method="vb_meanfield"))["note"][1]
    assert "mean-field" in meanfield and "understate uncertainty" in meanfield
    assert 'method "vb"' in meanfield and '"laplace"' in meanfield
    assert "note" not in rows_by_label(glmm_binomial(Y2, X, G, method="laplace"))


def test_mcmc_table_is_seeded_and_its_intervals_are_posterior_quantiles():
    """Method "mcmc": the same call gives the same table bit for bit (a fixed seed), the note
    row says what the numbers are, the intervals are quantiles alpha/2 and 1 - alpha/2 of the
    draws, and too small an alpha for the draws leaves them blank with a warning."""
    table = glmm_binomial(Y2, X, G, XR, True, 0.1, "mcmc")
    assert table == glmm_binomial(Y2, X, G, XR, True, 0.1, "mcmc")
    labels = rows_by_label(table)
    assert "equal-tailed credible intervals" in labels["note"][1]
    assert "seeded" in labels["note"][1]
    # The same fit through the API (its draws) gives the table's numbers.
    data = sheet._model_data(sheet._validate(Y2, X, G, XR, True, 0.1, "mcmc"))
    result = g.fit_model(data, method="mcmc", **FEW_DRAWS)
    draws = result.draws["x1"]
    assert table[2][2] == result.params["x1"]
    assert table[2][2] == pytest.approx(draws.mean(), rel=1e-12)
    assert table[2][6:8] == pytest.approx(np.quantile(draws, [0.05, 0.95]), rel=1e-12)
    assert [row[1] for row in table if row[0] is None][2:] == ["intercept", "random_x1"]
    tiny = glmm_binomial(Y2, X, G, XR, True, 1e-4, "mcmc")
    assert tiny[2][2] == table[2][2] and tiny[2][6] is None and tiny[2][7] is None
    assert any("too far in the tails" in str(row[1]) for row in tiny if row[0] == "warning")
    assert isinstance(sheet.MCMC_SETTINGS["seed"], int)


def test_large_ranges_are_converted_whole_not_cell_by_cell(monkeypatch):
    # Validation converts whole ranges with numpy; cells are looked at one by one only to word
    # an error. No timing: the per-cell functions must simply not run on clean data.
    def per_cell(*args):
        raise AssertionError("a clean range was scanned cell by cell")

    monkeypatch.setattr(sheet, "_cell_problem", per_cell)
    monkeypatch.setattr(sheet, "_group_key", per_cell)
    n = 20_000
    rng = np.random.default_rng(0)
    y = [[bool(v)] for v in rng.integers(0, 2, n)]  # TRUE/FALSE too
    x = rng.normal(size=(n, 2)).tolist()
    groups = [[int(g)] for g in rng.integers(0, 500, n)]
    x_random = [[v] for v in rng.normal(size=n).tolist()] + [[None], [""]]
    request = sheet._validate(y, x, groups, x_random, True, 0.05, "laplace")
    assert request.x.shape == (n, 2) and len(request.levels) == 500
    assert request.codes.max() == 499 and request.x_random.shape == (n, 1)
    text_groups = [[f"g{g[0]}"] for g in groups]
    assert len(sheet._validate(y, x, text_groups, None, 1, None, "").levels) == 500


def test_prior_argument_gives_a_penalized_fit():
    """The ninth argument (after link): a posterior mode under the priors, said so in rows
    after bic; separated coefficients get finite estimates under a fixed-effect prior."""
    prior = "fixef = t(df = 7, scale = 6.25); cov = wishart"
    table = glmm_binomial(*EXAMPLES[1][:3], None, None, None, "laplace", None, prior)
    labels = rows_by_label(table)
    assert all(isinstance(table[j][2], float) and abs(table[j][2]) < 10 for j in (1, 2))
    assert labels["converged"][1] is True
    assert "penalized" in labels["note"][1]
    priors = [row[1] for row in table if row[0] == "prior"]
    assert priors == [
        "fixef: t(df = 7, scale = 6.25)",
        "cov (groups: intercept): wishart(df = 3.5, scale = Inf)",
    ]
    assert labels["prior_deviance"][1] > 0
    assert "because of the prior" in labels["warning"][1]
    # The default is unchanged: no prior, the separated cells blank.
    plain = glmm_binomial(*EXAMPLES[1][:3], None, None, None, "laplace")
    assert plain[1][2] is None and "prior" not in rows_by_label(plain)
    assert glmm_binomial(*EXAMPLES[1][:3], None, None, None, "laplace", "logit", "none") == plain


def test_prior_argument_messages_and_bayesian_methods():
    args = (*EXAMPLES[2][:3], None, None, None, "laplace", None)
    assert glmm_binomial(*args, "fixef = normal(sd = c(1, 2, 3))").startswith(
        "Invalid input: prior: sd has 3 values"
    )
    assert glmm_binomial(*args, "wishart").startswith("Invalid input: prior: cannot read")
    assert glmm_binomial(*args, 3).startswith("Invalid input: prior must be text")
    assert glmm_binomial(*EXAMPLES[2][:3], None, None, None, "laplace", "identity").startswith(
        'Invalid input: link must be one of "logit", "probit", "cloglog", "cauchit"'
    )
    # The link and the prior together: a penalized probit fit.
    probit = glmm_binomial(*EXAMPLES[2][:3], None, None, None, "laplace", "probit", "blme")
    assert not isinstance(probit, str)
    rows = {row[0]: row[1] for row in probit if row[0]}
    assert rows["link"] == "probit" and "prior_deviance" in rows
    if "vb" in AVAILABLE:
        vb = glmm_binomial(*EXAMPLES[2][:3], None, None, None, "vb", None, "blme")
        assert any(row[0] == "note" and "ignored" in str(row[1]) for row in vb)
