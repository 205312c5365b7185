"""plot_predictions, plot_slopes, plot_comparisons (results/effect_plots.py): the tables they
plot against marginaleffects 0.11.0's draw = FALSE (tests/reference/effect_plots.json,
make_effect_plots.R), the condition grid (results/datagrid.condition_grid) and the figures.

Estimates against glmmTMB's (same optimum; observed 1e-6), SEs against glmer's with glmmTMB's
covariance (the grid's rows include the modal district's random effect; see test_slopes.py).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference, quiet_fit

import glmm_binomial as g
from glmm_binomial.results.datagrid import CONDITION_POINTS, condition_grid

REFERENCE = load_reference("effect_plots")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return g.datasets.load("contraception")


@pytest.fixture(scope="module")
def fit(data: pd.DataFrame) -> g.GLMMResult:
    return quiet_fit(REFERENCE["formula"], data)


def _condition(value: Any) -> Any:
    return value if not isinstance(value, dict) else dict(value)


@pytest.mark.parametrize("call", REFERENCE["calls"], ids=lambda c: f"{c['fn']}")
def test_against_marginaleffects(fit: g.GLMMResult, call: dict[str, Any]) -> None:
    assert fit.loglik == pytest.approx(REFERENCE["loglik"], abs=1e-6)
    arguments: dict[str, Any] = {"draw": False}
    for key in ("variables", "condition", "by"):
        if key in call:
            arguments[key] = _condition(call[key])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = getattr(g, call["fn"])(fit, **arguments)
    tmb, mer = call["glmmTMB"], call["glmer_tmb_vcov"]
    # marginaleffects lists a factor's values in order of appearance in the data (ours: in
    # its levels' order) and labels shortcut values ("-SD", "Mean", ...): rows matched by key.
    shortcuts = call["condition"] if isinstance(call.get("condition"), dict) else {}
    ours = pd.DataFrame({"estimate": out["estimate"], "se": out["std_error"]})
    theirs = pd.DataFrame({"estimate": tmb["estimate"], "se": mer["std_error"]})
    keys = list(tmb["keys"]) + (["contrast"] if "contrast" in tmb else [])
    for column in keys:
        values = tmb["keys"].get(column, tmb.get("contrast"))
        # marginaleffects 0.11 writes contrasts within by groups as mean(a) - mean(b)
        theirs[column] = [
            re.sub(r"mean\(([^()]*)\)", r"\1", _text(v)) for v in np.atleast_1d(values)
        ]
        mine = out[column]
        labels = SHORTCUT_LABELS.get(shortcuts.get(column) or "")
        if labels is not None:  # our numbers in increasing order are R's labels
            ranks = {v: i for i, v in enumerate(sorted(set(mine)))}
            ours[column] = [labels[ranks[v]] for v in mine]
        else:
            ours[column] = [_text(v) for v in mine]
    ours = ours.sort_values(keys).reset_index(drop=True)
    theirs = theirs.sort_values(keys).reset_index(drop=True)
    assert ours[keys].equals(theirs[keys])
    np.testing.assert_allclose(ours["estimate"], theirs["estimate"], atol=5e-6)
    np.testing.assert_allclose(ours["se"], theirs["se"], rtol=1e-3)


SHORTCUT_LABELS = {
    "threenum": ["-SD", "Mean", "+SD"],
    "minmax": ["Min", "Max"],
    "quartile": ["Q1", "Q2", "Q3"],
}


def _text(value: Any) -> str:
    """A key as text, numbers to 10 significant digits (R's and ours then compare)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return f"{float(value):.10g}"
    return str(value)


def test_condition_grid(fit: g.GLMMResult, data: pd.DataFrame) -> None:
    """x over its range at CONDITION_POINTS values, a factor at its levels, a 0/1 variable at
    0 and 1, colours at fivenum; shortcuts; other variables typical."""
    grid, names = condition_grid(fit, ["age", "livch"])
    assert names == ["age", "livch"]
    assert len(grid) == CONDITION_POINTS * 4
    ages = np.unique(grid["age"])
    assert ages[0] == data["age"].min() and ages[-1] == pytest.approx(data["age"].max())
    assert (grid["urban"] == data["urban"].value_counts().idxmax()).all()
    grid, _ = condition_grid(fit, {"urban": None, "age": None})
    assert len(grid) == 2 * 5  # fivenum of age for each level of urban
    grid, _ = condition_grid(fit, {"livch": None, "age": [1.5, -2]})
    assert sorted(set(grid["age"])) == [-2.0, 1.5]
    binary = quiet_fit(
        "use ~ urbanY + (1 | district)", data.assign(urbanY=(data["urban"] == "Y").astype(int))
    )
    assert list(condition_grid(binary, "urbanY")[0]["urbanY"]) == [0, 1]


def test_predictions_table_is_the_grid_predicted(fit: g.GLMMResult) -> None:
    grid, _ = condition_grid(fit, ["urban", "livch"])
    table = g.plot_predictions(fit, condition=["urban", "livch"], draw=False)
    expected = g.predictions(fit, newdata=grid)
    pd.testing.assert_frame_equal(table, expected)


def test_figures(fit: g.GLMMResult) -> None:
    """A line (and band) per colour for a numeric x, error bars for a factor's, a panel per
    contrast and per facet value."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = g.plot_predictions(fit, condition=["age", "livch"])
    (ax,) = [a for a in figure.axes if a.get_visible()]
    assert len(ax.lines) == 4 and ax.get_xlabel() == "age"
    plt.close(figure)
    figure = g.plot_predictions(fit, by=["livch", "urban"])
    (ax,) = figure.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3+"]
    plt.close(figure)
    figure = g.plot_comparisons(fit, "livch", condition=["age", "urban"])
    assert sum(a.get_visible() for a in figure.axes) == 3  # one panel per contrast
    plt.close(figure)
    figure = g.plot_slopes(fit, "age", condition=["age", "urban", "livch"])
    assert sum(a.get_visible() for a in figure.axes) == 4  # one panel per livch
    plt.close(figure)


@pytest.mark.parametrize(
    ("function", "arguments", "message"),
    [
        ("plot_predictions", {}, "give one of condition= .* and by="),
        ("plot_predictions", {"condition": "age", "by": "urban"}, "not both"),
        ("plot_predictions", {"condition": ["a", "b", "c", "d"]}, "one to three"),
        ("plot_predictions", {"condition": "woman"}, "'woman' is not a variable"),
        ("plot_predictions", {"condition": {"age": "median"}}, "numbers or one of 'threenum'"),
        ("plot_predictions", {"condition": {"livch": "fivenum"}}, "applies to a numeric"),
        ("plot_predictions", {"condition": 3}, "condition must be"),
        ("plot_predictions", {"by": ["a", "b", "c", "d"]}, "one to three"),
        ("plot_slopes", {"variables": ["age", "urban"], "condition": "age"}, "one variable"),
        ("plot_comparisons", {"variables": 3, "by": "urban"}, "one variable"),
    ],
)
def test_errors(fit: g.GLMMResult, function: str, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        getattr(g, function)(fit, **arguments)
