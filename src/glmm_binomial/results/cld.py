"""Compact letter displays of marginal means, as emmeans 1.8.4's cld() with multcompView's
multcompLetters (Piepho's insert-absorb algorithm).

The means are sorted by their estimate within each by group (ascending; estimates equal to
TIE_TOL keep their order), all pairs compared within the group (revpairwise, Tukey-adjusted
unless ``adjust`` says otherwise; each by group a family of its own, also where the means are
nested, where emmeans' families span every by group), and each
pair whose p-value is below ``alpha`` is separated: starting from one letter shared by every
mean, each significant pair (i, j) splits every letter column holding both into a copy
without i and one without j, and a column contained in another is absorbed; the columns are
then ordered by the first mean that holds them (ties broken the same way on the rows below,
as multcompLetters' sortCols) and named by the characters of ``letters`` in turn. Two means
that share a symbol could not be shown to differ; that does not show them equal. With an
explicit ``adjust`` the means' intervals are simultaneous too, as emmeans adjusts its summary
(tukey there becomes sidak: the means are not pairwise differences).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special

from glmm_binomial.arguments import fraction
from glmm_binomial.results.emmeans import EMMeans, by_groups, contrast, contrast_rank
from glmm_binomial.results.multiplicity import ADJUSTMENTS, critical_value

__all__ = ["LETTERS", "cld", "letter_display"]

LETTERS = "1234567890ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
"""emmeans' default grouping symbols, in the order they are used."""

BoolMatrix = NDArray[np.bool_]


def cld(
    emm: EMMeans,
    alpha: float = 0.05,
    adjust: str | None = None,
    sort: bool = True,
    reversed: bool = False,  # noqa: A002 - emmeans' name
    letters: str = LETTERS,
) -> pd.DataFrame:
    """emmeans' cld(emm): ``emm.table`` (sorted by estimate within each by group unless not
    ``sort``; highest first with ``reversed``) with a column ".group" of grouping symbols
    from the pairwise comparisons at level ``alpha`` (module docstring). A mean without a
    standard error gets no symbol. ``attrs["notes"]`` says how the symbols were made."""
    if not isinstance(emm, EMMeans):
        raise ValueError(f"emm must be an EMMeans (from emmeans()), got {type(emm).__name__}")
    alpha = fraction(alpha, "alpha")
    if adjust is not None and adjust not in ADJUSTMENTS:
        raise ValueError(
            f"adjust must be one of {', '.join(map(repr, ADJUSTMENTS))}, got {adjust!r}"
        )
    if not isinstance(letters, str) or len(set(letters)) != len(letters) or len(letters) < 2:
        raise ValueError(f"letters must be a text of two or more distinct symbols, got {letters!r}")
    by = list(emm.by)
    group = _group_codes(emm.grid, by)
    estimate = emm.table["estimate"].to_numpy(dtype=np.float64)
    order = np.lexsort((_tied(estimate), group)) if sort else np.arange(len(group))
    ordered = _reordered(emm, order)
    group = group[order]
    table = _means_table(ordered, group, adjust)
    sizes = np.bincount(group)
    pair_notes: list[str] = []
    significant = np.zeros(0, dtype=bool)
    if sizes.max() > 1:
        pairs = contrast(ordered, "revpairwise", adjust=adjust, by=by)
        significant = (pairs["p_value"] < alpha).to_numpy()  # NaN: not significant
        pair_notes = [n for n in pairs.attrs["notes"] if n.startswith("p-value adjustment")]
    symbols = np.full(len(table), "", dtype=object)
    start = 0
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        k = len(rows)
        n_pairs = k * (k - 1) // 2
        flags = significant[start : start + n_pairs]
        # contrast() gives a group of one mean a row of its own ("(nothing)").
        start += n_pairs if k > 1 else 1
        # Pairs in revpairwise order: (2, 1), (3, 1), (3, 2), (4, 1), ...
        separated = [
            (i, j) for (j, i), flag in zip(_revpairwise_pairs(k), flags, strict=True) if flag
        ]
        symbols[rows] = [" " + s for s in letter_display(k, separated, letters, reversed)]
    symbols[table["std_error"].isna().to_numpy()] = ""
    table[".group"] = symbols
    if sort and reversed:
        flipped = np.concatenate([np.flatnonzero(group == g)[::-1] for g in np.unique(group)])
        table = table.iloc[flipped].reset_index(drop=True)
    notes = [
        *emm.notes,
        *pair_notes,
        f"significance level used: alpha = {alpha:g}",
        "means that share a symbol could not be shown to differ; that does not show them equal",
    ]
    table.attrs.update({**table.attrs, "notes": tuple(notes)})
    return table


TIE_TOL = 1e-10
"""Estimates within TIE_TOL times the largest of each other keep their order when sorted (the
same mean reached through other rounding, as the trends of an additive model)."""


def _tied(estimate: NDArray[np.float64]) -> NDArray[np.float64]:
    """The estimates rounded to TIE_TOL of the largest (NaN kept: sorted last)."""
    finite = np.abs(estimate[np.isfinite(estimate)])
    scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return np.asarray(np.round(estimate / (TIE_TOL * scale)), dtype=np.float64)


def _group_codes(grid: pd.DataFrame, by: list[str]) -> NDArray[np.intp]:
    """Each row's by group (by_groups), numbered by first appearance."""
    codes = np.zeros(len(grid), dtype=np.intp)
    for code, rows in enumerate(by_groups(grid, by)):
        codes[rows] = code
    return codes


def _reordered(emm: EMMeans, order: NDArray[np.intp]) -> EMMeans:
    """``emm`` with its means in ``order``."""
    return replace(
        emm,
        grid=emm.grid.iloc[order].reset_index(drop=True),
        linfct=emm.linfct[order],
        offset=np.asarray(emm.offset)[order],
        linfct_full=None if emm.linfct_full is None else emm.linfct_full[order],
        empty=None if emm.empty is None else emm.empty[order],
    )


def _means_table(emm: EMMeans, group: NDArray[np.intp], adjust: str | None) -> pd.DataFrame:
    """emm.table, its intervals simultaneous within each by group when ``adjust`` is given
    (as emmeans' summary(adjust =): tukey becomes sidak)."""
    if adjust is None or adjust == "none":
        return emm.table.copy()
    method = "sidak" if adjust == "tukey" else adjust
    multiplier = np.full(len(group), float(special.ndtri(0.5 + 0.5 * emm.level)))
    covariance = emm.link_covariance
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        own = covariance[np.ix_(rows, rows)]
        rank = contrast_rank(emm.linfct[rows])
        multiplier[rows] = critical_value(emm.level, method, len(rows), len(rows), own, rank)
    return emm.table_with(multiplier).copy()


def _revpairwise_pairs(k: int) -> list[tuple[int, int]]:
    """(later, earlier) level indices of revpairwise's contrasts, in its order."""
    return [(i, j) for i in range(1, k) for j in range(i)]


def letter_display(
    k: int, separated: list[tuple[int, int]], letters: str = LETTERS, reversed: bool = False
) -> list[str]:
    """multcompLetters' monospaced symbols of k means (in order) where the pairs
    ``separated`` (index pairs, in the order they are inserted) differ: one letter for all
    when none do."""
    if not separated:
        return [letters[0]] * k
    matrix = np.ones((k, 1), dtype=bool)
    for a, b in separated:
        both = matrix[a] & matrix[b]
        if both.any():
            copy = matrix[:, both].copy()
            copy[a] = False
            matrix[b, both] = False
            matrix = _absorb(np.hstack([matrix, copy]))
    matrix = _sort_columns(matrix)
    if reversed:
        matrix = matrix[:, ::-1]
    names = _letter_names(matrix.shape[1], list(letters))
    return [
        "".join(name if on else " " * len(name) for name, on in zip(names, row, strict=True))
        for row in matrix
    ]


def _absorb(matrix: BoolMatrix) -> BoolMatrix:
    """Drop each column contained in another (the later of a pair first), until none is."""
    while True:
        n = matrix.shape[1]
        for i in range(n - 1):
            dropped = None
            for j in range(i + 1, n):
                if matrix[matrix[:, j], i].all():
                    dropped = j
                elif matrix[matrix[:, i], j].all():
                    dropped = i
                if dropped is not None:
                    break
            if dropped is not None:
                matrix = np.delete(matrix, dropped, axis=1)
                break
        else:
            return matrix


def _first_rows(matrix: BoolMatrix) -> NDArray[np.float64]:
    """The first row holding each column (inf for an empty column)."""
    first = np.argmax(matrix, axis=0).astype(np.float64)
    first[~matrix.any(axis=0)] = np.inf
    return first


def _sort_columns(matrix: BoolMatrix) -> BoolMatrix:
    """multcompLetters' sortCols: columns by the first row that holds them (stable), and each
    two neighbours that start on the same row sorted the same way on the rows below."""
    matrix = matrix[:, np.argsort(_first_rows(matrix), kind="stable")]
    first = _first_rows(matrix)
    for i in np.flatnonzero(first[:-1] == first[1:]):
        if not np.isfinite(first[i]):
            continue
        below = int(first[i]) + 1
        if below >= matrix.shape[0]:
            continue
        matrix[below:, i : i + 2] = _sort_columns(matrix[below:, i : i + 2].copy())
    return matrix


def _letter_names(count: int, symbols: list[str]) -> list[str]:
    """multcompLetters' makeLtrs: the first ``count`` names, the last symbol prefixed to the
    others when the symbols run out."""
    if count < len(symbols):
        return symbols[:count]
    last = symbols[-1]
    more = [last + s for s in symbols[:-1]] + [last]
    return symbols[:-1] + _letter_names(count - len(symbols) + 1, more)
