"""results/effect_rows.py: the marginal-effect functions of a fit with posterior draws (method
"mcmc") summarize the draws of their estimates (medians and equal-tailed credible intervals,
marginaleffects' summary of a brms fit), computed at each draw of the fixed effects."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_binomial as g
from glmm_binomial.results import effect_rows


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return g.datasets.load("contraception")


@pytest.fixture(scope="module")
def sampled(data: pd.DataFrame) -> g.GLMMResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few draws: the sampler says its ESS is low
        return g.fit(
            "use ~ age + urban + livch + (1 | district)",
            data,
            method="mcmc",
            draws=300,
            warmup=100,
            chains=2,
            seed=5,
        )


def _summary(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    tail = (1 - level) / 2
    lower, upper = np.quantile(values, [tail, 1 - tail])
    return float(np.median(values)), float(lower), float(upper)


def test_linear_comparisons_are_the_coefficient_draws(sampled: g.GLMMResult) -> None:
    """On the link scale without random effects a factor's comparison is its coefficient: the
    summary of its draws, exactly."""
    out = g.avg_comparisons(sampled, "urban", type="link", re="exclude")
    assert list(out.columns) == ["term", "contrast", "estimate", "ci_lower", "ci_upper"]
    expected = _summary(sampled.draws["urbanY"].ravel())
    np.testing.assert_allclose(out.iloc[0, 2:].to_numpy(dtype=float), expected, rtol=1e-10)
    pairs = g.avg_comparisons(sampled, {"livch": "pairwise"}, type="link", re="exclude")
    row = pairs.set_index("contrast").loc["3+ - 1"]
    difference = sampled.draws["livch3+"].ravel() - sampled.draws["livch1"].ravel()
    values = row[["estimate", "ci_lower", "ci_upper"]].to_numpy(dtype=float)
    np.testing.assert_allclose(values, _summary(difference))
    assert any("posterior draws" in note for note in out.attrs["notes"])


def test_hypotheses_of_the_draws(sampled: g.GLMMResult) -> None:
    table = g.hypotheses(sampled, conf_level=0.9).set_index("term")
    for name in sampled.fixed_names:
        expected = _summary(sampled.draws[name].ravel(), 0.9)
        np.testing.assert_allclose(table.loc[name].to_numpy(dtype=float), expected, rtol=1e-10)
    # an equation at each draw; a monotone transform of the summary
    ratio = g.hypotheses(sampled, "exp(b3) = 0")
    draws = np.exp(sampled.draws["urbanY"].ravel())
    np.testing.assert_allclose(ratio.iloc[0, 1:].to_numpy(dtype=float), _summary(draws))
    odds = g.hypotheses(sampled, "urbanY = 0", transform="exp")
    np.testing.assert_allclose(odds.iloc[0, 1:].to_numpy(dtype=float), _summary(draws))


def test_blocks_and_repeats_give_the_same(
    sampled: g.GLMMResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = g.avg_slopes(sampled, by="urban")
    pd.testing.assert_frame_equal(first, g.avg_slopes(sampled, by="urban"))
    monkeypatch.setattr(effect_rows, "DRAW_BLOCK", 7)
    pd.testing.assert_frame_equal(first, g.avg_slopes(sampled, by="urban"), rtol=1e-12)


def test_predictions_of_the_draws(sampled: g.GLMMResult, data: pd.DataFrame) -> None:
    """A row's predicted probability: the inverse logit of each draw's linear predictor, the
    district's random effect at its posterior mean."""
    rows = data.iloc[:3]
    out = g.predictions(sampled, newdata=rows)
    eta = np.asarray(sampled.predict(rows, type="link"))
    beta = np.asarray(sampled.params)
    draws = np.column_stack([sampled.draws[n].ravel() for n in sampled.fixed_names])
    design = sampled.model.x[:3]
    values = 1 / (1 + np.exp(-(eta[:, None] + design @ (draws - beta).T)))
    for k in range(3):
        np.testing.assert_allclose(
            out.loc[k, ["estimate", "ci_lower", "ci_upper"]], _summary(values[k])
        )
    averaged = g.avg_predictions(sampled, newdata=rows)
    assert averaged.loc[0, "estimate"] == pytest.approx(np.median(values.mean(axis=0)))


@pytest.mark.parametrize(
    "arguments",
    [{"equivalence": 0.1}, {"p_adjust": "holm"}, {"hypothesis": 0.1}, {"df": 10.0}],
)
def test_z_test_arguments_refused(sampled: g.GLMMResult, arguments: dict) -> None:
    with pytest.raises(ValueError, match="posterior draws"):
        g.avg_slopes(sampled, **arguments)


def test_parts_and_whole_agree(sampled: g.GLMMResult) -> None:
    """Summarized contrast by contrast (no hypothesis) or as one matrix (identity weights):
    the same numbers."""
    parts = g.avg_slopes(sampled)
    whole = g.avg_slopes(sampled, hypothesis=np.eye(len(parts)))
    columns = ["estimate", "ci_lower", "ci_upper"]
    np.testing.assert_allclose(whole[columns], parts[columns], rtol=1e-12)
