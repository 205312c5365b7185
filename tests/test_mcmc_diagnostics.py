"""R-hat, bulk/tail ESS and MCSE against ArviZ's values (stored, and live when installed)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_reference

from glmm_binomial.methods import mcmc_diagnostics as diagnostics

STORED = load_reference("arviz_diagnostics")


@pytest.mark.parametrize("name", sorted(STORED["sets"]))
def test_summary_equals_arviz(name: str) -> None:
    case = STORED["sets"][name]
    ours = diagnostics.summarize(np.array(case["draws"]))
    for column in diagnostics.SUMMARY_COLUMNS:
        assert ours[column] == pytest.approx(case["summary"][column], rel=1e-10), column


def test_summary_equals_live_arviz() -> None:
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(5)
    draws = np.cumsum(rng.normal(size=(3, 300)), axis=1) * 0.1 + rng.normal(size=(3, 300))
    frame = az.summary(az.convert_to_inference_data(draws), round_to="none")
    ours = diagnostics.summarize(draws)
    for column in diagnostics.SUMMARY_COLUMNS:
        assert ours[column] == pytest.approx(float(frame[column].iloc[0]), rel=1e-10)


def test_constant_and_non_finite_draws() -> None:
    constant = np.ones((2, 50))
    assert diagnostics.effective_sample_size(constant) == 100.0
    bad = np.ones((2, 50))
    bad[0, 3] = np.nan
    assert np.isnan(diagnostics.rhat(bad))
    assert np.isnan(diagnostics.ess_bulk(bad))
    assert np.isnan(diagnostics.rhat(np.ones((1, 50))))  # one chain: no R-hat


def test_split_and_rank_normalize() -> None:
    draws = np.arange(10.0).reshape(2, 5)
    split = diagnostics.split_chains(draws)
    assert split.tolist() == [[0, 1], [5, 6], [3, 4], [8, 9]]  # the middle draw dropped
    scores = diagnostics.rank_normalize(np.array([[3.0, 1.0, 2.0, 2.0]]))
    assert scores[0, 1] < scores[0, 2] == scores[0, 3] < scores[0, 0]
