"""GLMM_BINOMIAL on malformed spreadsheet input: never raises, never modifies its arguments, and
returns the same output for the same input."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmm_binomial.sheet import FIXED_HEADER, glmm_binomial

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# Anything a spreadsheet bridge (or a careless caller) might put in a cell.
cells = st.one_of(
    st.sampled_from([0, 1, 0.0, 1.0]),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -1e-308, 10**400]),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
    st.lists(st.integers(0, 1), max_size=2),
)

# Wrong shapes: scalars, empty lists, flat lists, ragged rows, 3D nesting, tuples.
ranges = st.one_of(
    cells,
    st.just([]),
    st.just([[]]),
    st.lists(cells, max_size=6),
    st.lists(st.lists(cells, min_size=0, max_size=3), max_size=7),
    st.lists(st.lists(st.lists(cells, max_size=2), max_size=2), max_size=4),
    st.lists(st.tuples(cells), max_size=6),
)

alphas = st.one_of(
    st.sampled_from([0.05, 0.1, 0.0, 1.0, -0.1, 1.5, float("nan"), float("inf")]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.just([[0.1]]),
    st.just([0.1, 0.2]),
)
flags = st.one_of(
    st.booleans(),
    st.none(),
    st.integers(-1, 2),
    st.text(max_size=3),
    st.just([[False]]),
    st.just([True, False]),
)
methods = st.one_of(
    st.sampled_from(["laplace", "vb", "agq", "Laplace", "", "ml"]),
    st.none(),
    st.integers(0, 2),
    st.booleans(),
)


@st.composite
def near_valid(draw):
    """Valid arguments with, most of the time, one defect: these reach the deeper checks and
    the fit itself (degenerate tiny data sets included)."""
    n = draw(st.integers(2, 8))
    p = draw(st.integers(1, 2))
    y = [[draw(st.sampled_from([0, 1]))] for _ in range(n)]
    x = [[draw(st.floats(-3, 3).map(lambda v: round(v, 2))) for _ in range(p)] for _ in range(n)]
    groups = [[draw(st.sampled_from([1, 2, 3, 1.5, "a"]))] for _ in range(n)]
    x_random = draw(st.one_of(st.none(), st.just([[row[0]] for row in x]), st.booleans()))
    arguments = {"y": y, "x": x, "groups": groups, "x_random": x_random}
    defect = draw(st.sampled_from(["none"] * 4 + ["cell", "drop_row", "ragged", "replace"]))
    name = draw(st.sampled_from(sorted(arguments)))
    target = arguments[name]
    if defect == "cell" and isinstance(target, list):
        row = draw(st.integers(0, len(target) - 1))
        target[row][0] = draw(cells)
    elif defect == "drop_row" and isinstance(target, list):
        del target[draw(st.integers(0, len(target) - 1))]
    elif defect == "ragged" and isinstance(target, list):
        target[draw(st.integers(0, len(target) - 1))].append(1)
    elif defect == "replace":
        arguments[name] = draw(ranges)
    scalars_valid = draw(st.booleans())
    return (
        arguments["y"],
        arguments["x"],
        arguments["groups"],
        arguments["x_random"],
        draw(st.booleans() if scalars_valid else flags),
        draw(st.sampled_from([0.05, 0.2]) if scalars_valid else alphas),
        draw(st.sampled_from(["laplace", "vb", "agq"]) if scalars_valid else methods),
    )


def check(arguments):
    before = copy.deepcopy(arguments)
    first = glmm_binomial(*arguments)
    assert repr(arguments) == repr(before)  # repr: NaN compares equal to itself there
    if isinstance(first, str):
        assert first.startswith(("Invalid input: ", "Error fitting GLMM: ")), first
    else:
        assert isinstance(first, list)
        assert first[0] == list(FIXED_HEADER)
        assert all(isinstance(row, list) and len(row) == 9 for row in first)
    assert glmm_binomial(*arguments) == first


@settings(SETTINGS, max_examples=100)  # these reach the fit: fewer, to keep the suite quick
@given(near_valid())
def test_near_valid_input_never_raises(arguments):
    check(arguments)


@SETTINGS
@given(ranges, ranges, ranges, st.one_of(st.none(), ranges), flags, alphas, methods)
def test_malformed_input_never_raises(y, x, groups, x_random, fit_intercept, alpha, method):
    check((y, x, groups, x_random, fit_intercept, alpha, method))


# --- garbage of every shape (issue 18): a clear message naming an argument, never an exception.

garbage = st.recursive(
    st.one_of(
        cells,
        st.binary(max_size=3),
        st.complex_numbers(max_magnitude=10),
        st.just(object()),
        st.just(Ellipsis),
        st.dictionaries(st.text(max_size=2), st.integers(0, 1), max_size=2),
        st.sets(st.integers(0, 2), max_size=2),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.lists(st.lists(inner, max_size=3), max_size=4),
    ),
    max_leaves=12,
)
GENERIC = "could not be read ("  # the fallback message that names a Python exception


@SETTINGS
@given(garbage, garbage, garbage, st.one_of(st.none(), garbage), garbage, garbage, garbage)
def test_garbage_gives_a_clear_message(y, x, groups, x_random, fit_intercept, alpha, method):
    arguments = (y, x, groups, x_random, fit_intercept, alpha, method)
    out = glmm_binomial(*arguments)
    assert isinstance(out, (str, list))
    if isinstance(out, str):
        assert out.startswith(("Invalid input: ", "Error fitting GLMM: ")), out
        assert GENERIC not in out, out


def test_all_blank_ranges_name_y():
    for blank in (None, [[None]], [[""]], [[None], [""]]):
        out = glmm_binomial(blank, blank, blank)
        assert out.startswith("Invalid input: y is empty"), out
        assert "IndexError" not in out
