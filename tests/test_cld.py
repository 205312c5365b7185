"""Compact letter displays (results/cld.py) against emmeans 1.8.4's cld() with multcompView's
letters (tests/reference/emmeans_contrasts.json, "cld": made by make_emmeans_contrasts.R from
emmeans' own link-scale means and their covariance, so the p-values behind the letters are
emmeans')."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _emmeans_support import means_from_record
from conftest import load_reference, quiet_fit
from hypothesis import given, settings
from hypothesis import strategies as st

import glmm_binomial as g
from glmm_binomial.results.cld import letter_display

CLD = load_reference("emmeans_contrasts")["cld"]


@pytest.fixture(scope="module")
def cbpp_fit() -> g.GLMMResult:
    return quiet_fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", g.datasets.load("cbpp")
    )


@pytest.mark.parametrize(
    ("key", "means", "by", "kwargs"),
    [
        ("default", "means", (), {}),
        ("reversed", "means", (), {"reversed": True}),
        ("sidak", "means", (), {"alpha": 0.1, "adjust": "sidak"}),
        ("by_agegrp", "by_means", ("agegrp",), {}),
    ],
)
def test_letters_are_emmeans(key: str, means: str, by: tuple[str, ...], kwargs: Any) -> None:
    """Twelve means of livch x agegrp (66 Tukey comparisons; 3 and 4 symbols, shared in
    overlapping runs), reversed, with sidak at alpha 0.1 (the means' intervals simultaneous
    too), and by agegrp: the same order, estimates, intervals and symbols as emmeans'."""
    theirs = CLD[key]
    table = g.cld(means_from_record(CLD[means], by), **kwargs)
    for name, values in theirs["grid"].items():
        assert list(table[name].astype(str)) == values
    np.testing.assert_allclose(table["estimate"], theirs["estimate"], rtol=1e-12)
    np.testing.assert_allclose(table["ci_lower"], theirs["lower"], rtol=1e-9)
    np.testing.assert_allclose(table["ci_upper"], theirs["upper"], rtol=1e-9)
    assert list(table[".group"]) == theirs["group"]


def test_a_fit_gives_emmeans_letters(cbpp_fit: g.GLMMResult) -> None:
    """cbpp's four periods from our fit: period 1 apart from the rest, as emmeans' letters
    from glmer's fit (the fits differ by 6e-4 in the estimates, not in the letters)."""
    table = g.cld(g.emmeans(cbpp_fit, "period"))
    theirs = CLD["cbpp"]
    assert list(table["period"].astype(str)) == theirs["grid"]["period"]
    assert list(table[".group"]) == theirs["group"]
    assert any("alpha = 0.05" in n for n in table.attrs["notes"])


def test_letter_display_is_multcompletters() -> None:
    """multcompLetters' own cases: nothing separated (one symbol), a chain a-b-c where only
    the ends differ, and symbols beyond the last (its makeLtrs: the last prefixed)."""
    assert letter_display(3, []) == ["1", "1", "1"]
    assert letter_display(3, [(0, 2)]) == ["1 ", "12", " 2"]
    many = letter_display(70, [(i, j) for j in range(70) for i in range(j)])
    assert len(set(many)) == 70
    assert many[60].strip() == "y" and many[61].strip() == "z1" and many[-1].strip() == "z9"


def test_bad_input_names_the_argument(cbpp_fit: g.GLMMResult) -> None:
    emm = g.emmeans(cbpp_fit, "period")
    with pytest.raises(ValueError, match="alpha"):
        g.cld(emm, alpha=1.5)
    with pytest.raises(ValueError, match="adjust"):
        g.cld(emm, adjust="bogus")
    with pytest.raises(ValueError, match="letters"):
        g.cld(emm, letters="aa")
    with pytest.raises(ValueError, match="EMMeans"):
        g.cld(emm.table)


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(2, 7),
    data=st.data(),
)
def test_symbols_separate_exactly_the_significant_pairs(k: int, data: Any) -> None:
    """Whatever pairs are separated: two means share a symbol unless their pair was
    separated, and each separated pair shares none (the display is exact)."""
    everything = [(i, j) for j in range(k) for i in range(j)]
    separated = data.draw(st.lists(st.sampled_from(everything), unique=True))
    shown = letter_display(k, separated)
    symbols = [set(s.replace(" ", "")) if len(s) else set() for s in shown]
    width = {len(s) for s in shown}
    assert len(width) == 1  # monospaced
    for i, j in everything:
        apart = (i, j) in separated or (j, i) in separated
        assert (not (symbols[i] & symbols[j])) == apart
