"""The benchmark's simulated data sets: deterministic from the seed, with the stated shape."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import simulate  # noqa: E402

SMALL = {
    "slope_100k": dict(n=600, n_groups=30),
    "crossed_100k": dict(n=600, n_levels1=40, n_levels2=7),
    "intercept_1m": dict(n=800, n_groups=50),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_frame_other_seed_other_frame(name):
    make = getattr(simulate, name)
    first = make(seed=11, **SMALL[name])
    pd.testing.assert_frame_equal(first, make(seed=11, **SMALL[name]))
    assert not first.equals(make(seed=12, **SMALL[name]))


def test_slope_set_shape():
    frame = simulate.slope_100k(seed=5, **SMALL["slope_100k"])
    assert list(frame.columns) == ["y", "x1", "x2", "g"]
    assert frame.shape == (600, 4)
    assert set(np.unique(frame["y"])) == {0, 1}
    assert set(np.unique(frame["x2"])) == {0.0, 1.0}
    np.testing.assert_array_equal(np.unique(frame["g"]), np.arange(30))


def test_crossed_set_shape():
    frame = simulate.crossed_100k(seed=5, **SMALL["crossed_100k"])
    assert list(frame.columns) == ["y", "x1", "x2", "g1", "g2"]
    assert frame.shape == (600, 5)
    np.testing.assert_array_equal(np.unique(frame["g1"]), np.arange(40))
    np.testing.assert_array_equal(np.unique(frame["g2"]), np.arange(7))


def test_intercept_set_shape_and_default_sizes_are_the_issue_sizes():
    frame = simulate.intercept_1m(seed=5, **SMALL["intercept_1m"])
    assert list(frame.columns) == ["y", "x1", "x2", "g"]
    assert frame.shape == (800, 4)
    np.testing.assert_array_equal(np.unique(frame["g"]), np.arange(50))
    # The defaults are the sizes in issue 5 (checked on the signature, without generating 1M rows).
    import inspect

    defaults = {
        name: {
            k: p.default for k, p in inspect.signature(getattr(simulate, name)).parameters.items()
        }
        for name in SMALL
    }
    assert defaults["slope_100k"]["n"] == 100_000 and defaults["slope_100k"]["n_groups"] == 1000
    assert defaults["crossed_100k"]["n_levels1"] == 1000
    assert defaults["crossed_100k"]["n_levels2"] == 100
    assert defaults["intercept_1m"]["n"] == 1_000_000
    assert defaults["intercept_1m"]["n_groups"] == 10_000


def test_too_few_rows_for_the_levels_is_an_error():
    with pytest.raises(ValueError, match="number of levels"):
        simulate.intercept_1m(seed=1, n=10, n_groups=20)


def test_write_csv_round_trips(tmp_path):
    frame = simulate.crossed_100k(seed=3, **SMALL["crossed_100k"])
    back = pd.read_csv(simulate.write_csv(frame, tmp_path / "crossed.csv"))
    # x2 (0.0/1.0) comes back as integers; values must be exact, floats written at full precision.
    pd.testing.assert_frame_equal(back, frame, check_dtype=False, check_exact=True)
