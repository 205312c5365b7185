"""What a fit keeps of its fixed-part variables for reference grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glmm_binomial as g
from glmm_binomial.model.variable_summary import formula_order, summarize_variables


def test_summaries_of_each_kind() -> None:
    frame = pd.DataFrame(
        {
            "f": pd.Categorical(["b", "a", "b"], categories=["b", "a"]),
            "s": ["y", "x", "y"],
            "flag": [True, False, True],
            "x": [1.0, 2.0, 6.0],
            "d": [0, 1, 1],
            "c": [3.0, 3.0, 3.0],
        }
    )
    before = frame.copy()
    f, s, flag, x, d, c = summarize_variables(frame, ["f", "s", "flag", "x", "d", "c"])
    pd.testing.assert_frame_equal(frame, before)
    assert (f.kind, f.levels) == ("factor", ("b", "a"))
    assert (s.kind, s.levels) == ("factor", ("x", "y"))
    assert (flag.kind, flag.levels) == ("factor", (False, True))
    assert (x.kind, x.levels, x.mean, x.minimum, x.maximum) == ("numeric", (), 3.0, 1.0, 6.0)
    assert (d.kind, d.levels, d.mean) == ("numeric", (0.0, 1.0), pytest.approx(2 / 3))
    assert c.levels == (3.0,)


def test_formula_order() -> None:
    assert formula_order({"urban", "age", "livch"}, "age + I(age^2) + urban + livch") == [
        "age",
        "urban",
        "livch",
    ]
    assert formula_order({"b", "ab"}, "ab + b") == ["ab", "b"]


def test_fit_keeps_the_summaries_of_its_complete_rows() -> None:
    data = g.datasets.load("contraception").copy()
    data.loc[data.index[:10], "use"] = np.nan  # dropped rows do not count, as R's na.omit
    result = g.fit("use ~ age + I(age^2) + urban + livch + (1 | district)", data)
    assert result.design is not None
    summaries = {s.name: s for s in result.design.variables}
    assert list(summaries) == ["age", "urban", "livch"]
    kept = data.dropna(subset=["use"])
    assert summaries["age"].mean == pytest.approx(kept["age"].mean(), rel=1e-14)
    assert summaries["urban"].levels == ("N", "Y")
    assert summaries["livch"].levels == ("0", "1", "2", "3+")
