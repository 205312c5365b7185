"""Malformed data frames and formulas: fit() answers with a result or a ValueError, nothing else,
and never modifies what it was given."""

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glmm_binomial as g

CELLS = st.one_of(
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from(["a", "b", "", "1"]),
    st.booleans(),
    st.none(),
)

FORMULAS = st.sampled_from(
    [
        "y ~ x + (1 | g)",
        "y ~ x + (x | g)",
        "y ~ x + (1 + x || g)",
        "cbind(y, n - y) ~ x + (1 | g)",
        "y ~ (1 | g) + (1 | h)",
        "y ~ x + (1 | g/h)",
        "y ~ x + (1 | g",
        "y ~ x",
        "y ~ nothere + (1 | g)",
        "~ x + (1 | g)",
        "y ~ x + ( | g)",
        "y ~ I(x^2) + (1 | g:h)",
    ]
)


@st.composite
def frames(draw):
    n = draw(st.integers(0, 12))
    columns = {}
    for name in ["y", "x", "g", "h", "n"]:
        if draw(st.booleans()) or name in ("y", "g"):
            columns[name] = draw(st.lists(CELLS, min_size=n, max_size=n))
    return pd.DataFrame(columns)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), FORMULAS, st.sampled_from(["laplace", "vb", "agq"]))
def test_fit_raises_only_value_error_and_leaves_input_alone(frame, formula, method):
    before = frame.copy(deep=True)
    try:
        result = g.fit(formula, frame, method=method)
    except ValueError as err:
        assert str(err)
    else:
        assert np.isfinite(result.loglik) or not result.converged
    pd.testing.assert_frame_equal(frame, before)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_valid_random_data_fits(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 60))
    frame = pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "x": rng.normal(size=n),
            "g": rng.integers(0, int(rng.integers(2, 6)), n),
        }
    )
    if frame["g"].nunique() < 2:
        return
    result = g.fit("y ~ x + (1 | g)", frame)
    assert np.isfinite(result.loglik)
    # A probability's log is at most 0; a completely separated response (seed 5100: every y 1)
    # reaches 0 on its diverging path up to rounding (4.9e-31).
    assert result.loglik <= 1e-12
