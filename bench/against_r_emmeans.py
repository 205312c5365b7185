"""Random designs against R's emmeans: our reference grids and linear functions equal its.

    python bench/against_r_emmeans.py --start 0 --count 40 --dir /tmp/against_r_emmeans

Each seed draws a table (factors A with 2 to 4 levels and B with 2 or 3, numeric x, a positive
z, a 0/1 numeric x01, a whole-number k with four values, groups g) and one of TEMPLATES: a
formula (interactions, log(), poly(), scale(), I(), offset(), a random slope) with its
emmeans and emtrends calls, a third of the cases with at= for one of its variables
(AT_CHOICES: two values of a numeric variable, two levels of A). R
(bench/against_r_emmeans.R: lme4 and emmeans 1.8.4) fits glmer and records emmeans' linfct,
grid and offsets for every call; we fit the same formula and make the same calls. The linear
functions do not depend on the estimates, so they must agree whatever each fit found. A call
is a finding when:

- we raise anything but a ValueError; a ValueError where emmeans answers (a clear refusal) is
  counted apart and listed, as is an answer where emmeans stops with an error (1.8.4's
  emtrends does with an offset of the trend's variable: "argument lengths differ");
- the coefficient names differ, the grids differ (factor levels as text, numbers to 1e-9
  relative), L (over every column of the formula, those a rank-deficient fit dropped
  included) or the offsets differ by more than --tol (absolute; emtrends' forward difference is
  taken the same way on both sides), or the rows found estimable differ (EMPTY_CELL's
  templates leave a cell of A x B empty).

With --weights each case also draws emmeans' weights= for all its calls (CASE_WEIGHTS: equal
in half the cases, else "proportional", "outer", "cells" or "flat"); a mean emmeans leaves NaN
(no data in the cells it averages) must be one we leave NaN (EMMeans.empty), and the other
rows are compared as above.

With --nested each seed draws one of NESTED (nesting by the terms or by the data, and an
empty nest) instead: the grid (emmeans' shown rows only; its linfct keeps the others, matched
by their levels) and L are compared as above, and a call where emmeans averages a nested
variable under weights other than equal is one we refuse (counted apart).

With --joint each case also compares joint_tests: ours at glmer's own estimates and covariance
(R records them) against emmeans' joint_tests of that fit, so the numbers must agree whatever
our fit found. A finding: other terms or df1, an F.ratio more than 5e-4 from emmeans' (which
rounds it to 3 decimals; its "(confounded)" row, made from the rounded ones, to 3e-3 times its
df1 sum), or a p-value more than 1e-4 relative from emmeans' (1e-2 for "(confounded)"; the
covariance of a separated glmer fit is ill-conditioned enough to move p by 2.5e-6). Not
compared: a table whose only row is "(confounded)" (every term lost its contrasts to
non-estimability), which emmeans leaves NA and we test (the estimable cell contrasts).

Anything else we raise is a finding with its traceback. Exit status 1 when any call is one.
With --cld each call also compares cld(): ours of our means at glmer's estimates and
covariance (as --joint) against emmeans' cld of its own: the sorted grid and the symbols. A
finding: another order or other symbols; cld where only one of us answers is listed apart.
R records cld only where multcomp and multcompView are installed (none compared otherwise).
Not compared (counted): nested means with by groups of three or more, whose pairs emmeans
adjusts as one family across the groups and we each group as its own; and means of which two
differ by a constant whatever the estimates (a pair with no SE here: the trends of an additive
model, means apart by their offsets only), where emmeans' finite differences and sums leave
rounding that its tests can separate.

With --simple each emmeans call also compares the simple effects of all its variables as one
family, `contrast(emm, "pairwise", simple="each", combine=True)` (Bonferroni), at glmer's
estimates and covariance (as --joint): the label columns as text ("." where a part has no such
by variable), estimates and SEs to 1e-8 and p-values to 1e-6 relative.

With --scale-offset (and --simple) those contrasts take scale=-0.5 and offset=0.25 (emmeans'
scale= and offset=; where emmeans finds the means nested it ignores scale, and ours are given
the offset alone there).

With --offsets each seed draws one of OFFSETS: offsets with two distinct values, which
emmeans keeps at both (its .offset. variable, cov.keep = "2"), averages over, and finds the
offset's variable nested in (and A, where the offset follows A). The grid is compared without
.offset. (emmeans' records leave it out), the averaged offsets as above; emmeans shows the
means of a variable nested in .offset. twice each, and a repeated row is compared once.
emmeans 1.8.4 stops on emtrends ("argument lengths differ", "undefined columns selected") and
joint_tests ("'by' variables are not all in the grid") with such an offset: counted apart,
as its other errors (ours leave the offset out: trends and tests do not depend on it).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import re
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from r_batch import case_csv, r_records, sweep_args  # noqa: E402

import glmm_binomial as g  # noqa: E402
from glmm_binomial.model.frame import label_key  # noqa: E402

# formula, calls: ("emmeans", specs, by) or ("emtrends", specs, var)
Call = tuple[str, tuple[str, ...], Any]
TEMPLATES: list[tuple[str, list[Call]]] = [
    ("y ~ A + x + (1 | g)", [("emmeans", ("A",), None), ("emtrends", ("A",), "x")]),
    (
        "y ~ A * B + x + (1 | g)",
        [("emmeans", ("A",), None), ("emmeans", ("A",), "B"), ("emmeans", ("A", "B"), None)],
    ),
    ("y ~ A * x + (1 | g)", [("emmeans", ("A",), None), ("emtrends", ("A",), "x")]),
    ("y ~ A + log(z) + (1 | g)", [("emmeans", ("A",), None), ("emtrends", ("A",), "z")]),
    ("y ~ A + poly(x, 2) + (1 | g)", [("emmeans", ("A",), None), ("emtrends", ("A",), "x")]),
    ("y ~ A * B * x + (1 | g)", [("emmeans", ("A",), "B"), ("emtrends", ("B",), "x")]),
    ("y ~ A + x + I(x^2) + (1 | g)", [("emmeans", ("A",), None), ("emtrends", ("A",), "x")]),
    (
        "y ~ A + B + offset(log(z)) + (1 | g)",
        [("emmeans", ("A",), None), ("emmeans", ("B",), None)],
    ),
    ("y ~ A + scale(x) + (1 | g)", [("emmeans", ("A",), None), ("emtrends", ("A",), "x")]),
    ("y ~ A + B + x:B + (1 | g)", [("emmeans", ("B",), None), ("emtrends", ("B",), "x")]),
    ("y ~ A * x01 + (1 | g)", [("emmeans", ("A",), None), ("emmeans", ("A",), "x01")]),
    ("y ~ A * k + (1 | g)", [("emmeans", ("A",), None), ("emtrends", ("A",), "k")]),
    ("y ~ A + B + x + (1 + x | g)", [("emmeans", ("A",), "B"), ("emmeans", ("B",), None)]),
    ("y ~ log(z) * A + (1 | g)", [("emtrends", ("A",), "z"), ("emmeans", ("A",), None)]),
    (
        "y ~ poly(x, 2) * A + B + (1 | g)",
        [("emmeans", ("A", "B"), None), ("emtrends", ("A",), "x")],
    ),
    ("y ~ A + x + offset(x / 4) + (1 | g)", [("emmeans", ("A",), None), ("emtrends", ("A",), "x")]),
    ("y ~ A:B + x + (1 | g)", [("emmeans", ("A",), None), ("emmeans", ("B",), "A")]),
    ("y ~ A + exp(x / 5) + B + (1 | g)", [("emmeans", ("B",), None), ("emtrends", ("B",), "x")]),
]


# Templates whose data lose one cell of A x B (the last levels of both): the fit drops the
# aliased interaction column, and the means that need that cell are not estimable.
EMPTY_CELL = (
    (
        "y ~ A * B + x + (1 | g)",
        [
            ("emmeans", ("A",), None),
            ("emmeans", ("A",), "B"),
            ("emmeans", ("B",), None),
            ("emtrends", ("A",), "x"),
        ],
    ),
    ("y ~ A * B * x + (1 | g)", [("emmeans", ("A",), "B"), ("emtrends", ("B",), "x")]),
)
TEMPLATES += list(EMPTY_CELL)
BASE_COUNT = len(TEMPLATES)
"""The templates a seed draws from without --nested."""

# --nested: formulas whose variables are nested, by the terms (A + A:B: B within A) or by the
# data (C is "c0" for A's first level and "c1" for the others: A within C; C + A is
# rank-deficient), with calls that make emmeans add the nesters, average a nested variable
# within them, or leave out an empty nest (the last: A x B loses a cell, as EMPTY_CELL).
NESTED: list[tuple[str, list[Call]]] = [
    (
        "y ~ A + A:B + x + (1 | g)",
        [
            ("emmeans", ("B",), None),
            ("emmeans", ("A",), None),
            ("emmeans", ("B",), "A"),
            ("emtrends", ("B",), "x"),
        ],
    ),
    ("y ~ C + A + x + (1 | g)", [("emmeans", ("A",), None), ("emmeans", ("C",), None)]),
    (
        "y ~ C + A + B + x + (1 | g)",
        [("emmeans", ("B",), None), ("emmeans", ("A",), "B"), ("emmeans", ("C",), None)],
    ),
    ("y ~ A + A:B + x + (1 | g)", [("emmeans", ("B",), None), ("emmeans", ("A",), None)]),
]
TEMPLATES += NESTED
EMPTY_NEST = len(TEMPLATES) - 1
"""The NESTED template whose data lose a cell of A x B (an empty nest)."""

# --offsets: offsets with two distinct values, which emmeans keeps at both (its .offset.,
# cov.keep = "2") and averages over, finding the offset's variable (and A, where w2 follows
# A) nested in it.
OFFSETS: list[tuple[str, list[Call]]] = [
    (
        "y ~ A + B + offset(log(1 + x01)) + (1 | g)",
        [("emmeans", ("A",), None), ("emmeans", ("B",), "A"), ("emmeans", ("x01",), None)],
    ),
    (
        "y ~ A + x + offset(log(w2)) + (1 | g)",
        [("emmeans", ("A",), None), ("emmeans", ("w2",), None), ("emtrends", ("A",), "x")],
    ),
    (
        "y ~ A * B + offset(x01 / 2) + (1 | g)",
        [("emmeans", ("A",), "B"), ("emmeans", ("B",), None)],
    ),
    (
        "y ~ B + x + offset(log(w2)) + (1 | g)",
        [("emmeans", ("B",), None), ("emmeans", ("w2",), None)],
    ),
]
TEMPLATES += OFFSETS


AT_CHOICES = {
    "x": [3.0, 7.0],
    "z": [0.8, 1.5],
    "k": [1.0, 3.0],
    "A": ["a0", "a1"],
}
"""The at= a case may draw for one of its formula's variables (every call of the case)."""


def case_at(seed: int, template: int) -> dict[str, Any]:
    """A third of the cases: at= for one variable of the template's formula (values of a
    numeric variable, or two levels of A), else none."""
    rng = np.random.default_rng([seed, 7])
    formula = TEMPLATES[template][0]
    present = [v for v in AT_CHOICES if re.search(rf"\b{v}\b", formula.split("(1")[0])]
    if not present or rng.random() > 1.0 / 3.0:
        return {}
    name = present[int(rng.integers(len(present)))]
    return {name: AT_CHOICES[name]}


CASE_WEIGHTS = ("proportional", "outer", "cells", "flat")


def case_weights(seed: int, drawn: bool) -> str | None:
    """The weights= of a case with --weights: None (equal) in half the cases, else one of
    CASE_WEIGHTS; always None without --weights (the seeds' calls as before the option)."""
    rng = np.random.default_rng([seed, 11])
    if not drawn or rng.random() < 0.5:
        return None
    return CASE_WEIGHTS[int(rng.integers(len(CASE_WEIGHTS)))]


def case_data(seed: int, nested: bool = False, offsets: bool = False) -> tuple[pd.DataFrame, int]:
    """The table of a seed and the index of its template (one of NESTED with ``nested``, of
    OFFSETS with ``offsets``)."""
    rng = np.random.default_rng([seed, 20261207])
    n_groups, per = int(rng.integers(10, 25)), int(rng.integers(8, 16))
    n = n_groups * per
    n_a, n_b = int(rng.integers(2, 5)), int(rng.integers(2, 4))
    a = rng.integers(0, n_a, size=n)
    b = rng.integers(0, n_b, size=n)
    x = 5.0 + 2.0 * rng.normal(size=n)
    z = np.exp(0.5 * rng.normal(size=n))
    x01 = rng.integers(0, 2, size=n).astype(float)
    k = rng.integers(1, 5, size=n).astype(float)
    g_codes = np.repeat(np.arange(n_groups), per)
    eta = (
        -0.3
        + 0.4 * (a == 1)
        - 0.3 * (b == 1)
        + 0.2 * (x - 5.0)
        + rng.normal(size=n_groups)[g_codes]
    )
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    frame = pd.DataFrame(
        {
            "y": y,
            "A": [f"a{v}" for v in a],
            "B": [f"b{v}" for v in b],
            "x": x.round(6),
            "z": z.round(6),
            "x01": x01,
            "k": k,
            "g": [f"G{v:02d}" for v in g_codes],
            "C": np.where(a == 0, "c0", "c1"),
            "w2": np.where(a == 0, 2.0, 1.0),
        }
    )
    template = int(rng.integers(BASE_COUNT))
    if nested:
        template = BASE_COUNT + int(np.random.default_rng([seed, 13]).integers(len(NESTED)))
    if offsets:
        first = EMPTY_NEST + 1
        template = first + int(np.random.default_rng([seed, 17]).integers(len(OFFSETS)))
    empty = BASE_COUNT - len(EMPTY_CELL) <= template < BASE_COUNT
    if empty or template == EMPTY_NEST:
        frame = frame[~((frame["A"] == f"a{n_a - 1}") & (frame["B"] == f"b{n_b - 1}"))]
        frame = frame.reset_index(drop=True)
    return frame, template


def label(call: Call) -> str:
    kind, specs, third = call
    extra = "" if third is None else (f" by {third}" if kind == "emmeans" else f" var {third}")
    return f"{kind} {'+'.join(specs)}{extra}"


def ours(result: Any, call: Call, at: dict[str, Any], weights: str | None) -> Any:
    kind, specs, third = call
    if kind == "emmeans":
        return g.emmeans(result, list(specs), by=third, at=at or None, weights=weights or "equal")
    return g.emtrends(result, list(specs), var=third, at=at or None, weights=weights or "equal")


def all_columns(result: Any) -> list[str]:
    """The names of every column of the fit's formula: the kept ones and those dropped as
    aliased, in the formula's order."""
    design = result.design
    kept = list(result.params.index)
    if not design.dropped_columns:
        return kept
    names: list[Any] = [None] * (len(kept) + len(design.dropped_columns))
    for position, name in zip(design.kept_columns, kept, strict=True):
        names[position] = name
    dropped = iter(design.dropped_columns)
    return [name if name is not None else next(dropped) for name in names]


def compare(emm: Any, theirs: dict[str, Any], columns: list[str], tol: float) -> list[str]:
    problems = []
    if columns != theirs["columns"]:
        return [f"columns {columns} != R's {theirs['columns']}"]
    their_l = np.array(theirs["L"], dtype=float).reshape(-1, len(columns))
    our_l = np.asarray(emm.linfct if emm.linfct_full is None else emm.linfct_full, dtype=float)
    their_estimable = np.asarray(theirs["estimable"], dtype=bool).reshape(-1)
    if "shown" in theirs:  # emmeans' rows not shown (empty nests) stay in its linfct
        shown = np.asarray(theirs["shown"], dtype=bool).reshape(-1)
        their_l, their_estimable = their_l[shown], their_estimable[shown]
        theirs = {
            **theirs,
            "grid": {k: list(np.asarray(v)[shown]) for k, v in theirs["grid"].items()},
            "offset": list(np.asarray(theirs["offset"], dtype=float).reshape(-1)[shown]),
        }
    # emmeans 1.8.4 repeats the means of a variable nested in .offset. (each twice): a row
    # equal to an earlier one in grid, L and offset is compared once.
    their_offset = np.asarray(theirs["offset"], dtype=float).reshape(-1)
    keys = [
        repr((tuple(str(v[i]) for v in theirs["grid"].values()), list(their_l[i]), their_offset[i]))
        for i in range(len(their_l))
    ]
    first = np.array([keys.index(k) == i for i, k in enumerate(keys)], dtype=bool)
    if not first.all():
        their_l, their_estimable = their_l[first], their_estimable[first]
        theirs = {
            **theirs,
            "grid": {k: list(np.asarray(v)[first]) for k, v in theirs["grid"].items()},
            "offset": list(their_offset[first]),
        }
    if our_l.shape != their_l.shape:
        return [f"L shape {our_l.shape} != R's {their_l.shape}"]
    # emmeans' NaN rows (weights: no data in the cells a mean averages) are our empty means.
    their_empty = np.isnan(their_l).any(axis=1)
    our_empty = np.zeros(len(our_l), dtype=bool) if emm.empty is None else emm.empty
    if (their_empty != our_empty).any():
        problems.append(f"empty means {list(our_empty)} != R's NaN rows {list(their_empty)}")
    their_l = np.where(their_empty[:, None], 0.0, their_l)
    our_l = np.where(our_empty[:, None], 0.0, our_l)
    their_estimable = their_estimable | their_empty
    our_estimable = emm.estimable | our_empty
    if their_estimable.shape != our_estimable.shape or (their_estimable != our_estimable).any():
        problems.append(f"estimable {list(our_estimable)} != R's {list(their_estimable)}")
    if "by" in theirs:
        by = theirs["by"]
        their_by = [] if not by else [by] if isinstance(by, str) else list(by)
        if list(emm.by) != their_by:
            problems.append(f"by {list(emm.by)} != R's {their_by}")
    # emmeans keeps the offset's values (.offset.) out of the grid it shows; R's records
    # leave them out too (their averages are compared as the offsets, below).
    grid = emm.grid.drop(columns=[".offset."], errors="ignore")
    if list(grid.columns) != list(theirs["grid"]):
        problems.append(f"grid columns {list(grid.columns)} != R's {list(theirs['grid'])}")
    for name, values in theirs["grid"].items():
        if name not in grid.columns:
            problems.append(f"grid column {name!r} missing")
            continue
        mine = list(grid[name])
        try:
            a, b = np.asarray(mine, dtype=float), np.asarray(values, dtype=float)
            same = np.allclose(a, b, rtol=1e-9, atol=1e-12)
        except (TypeError, ValueError):
            same = [str(v) for v in mine] == [str(v) for v in values]
        if not same:
            problems.append(f"grid {name}: {mine} != R's {values}")
    if problems:
        return problems
    gap = float(np.abs(our_l - their_l).max(initial=0.0))
    if gap > tol:
        row, col = np.unravel_index(np.argmax(np.abs(our_l - their_l)), our_l.shape)
        problems.append(
            f"L differs by {gap:.3g} (row {row}, {columns[col]}: {our_l[row, col]!r} vs "
            f"{their_l[row, col]!r})"
        )
    offset = np.asarray(emm.offset, dtype=float).reshape(-1)
    their_offset = np.asarray(theirs["offset"], dtype=float).reshape(-1)
    if offset.size == 0:
        offset = np.zeros_like(their_offset)
    if offset.shape != their_offset.shape or np.abs(offset - their_offset).max() > tol:
        problems.append(f"offsets {offset} != R's {their_offset}")
    return problems


def families_differ(result: Any, call: Call, at: dict[str, Any], weights: str | None) -> bool:
    """Whether the call's means are nested with by groups of three or more means: emmeans
    adjusts their pairs as one family across the groups (its rbind: Tukey on the number of
    all the contrasts), ours each group as its own, so cld's symbols may differ by design."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            emm = ours(result, call, at, weights)
    except ValueError:
        return False
    if not emm.by or not any(n.startswith("nesting") for n in emm.notes):
        return False
    return bool(emm.grid.groupby(list(emm.by), sort=False).size().max() >= 3)


def constant_pair(result: Any, call: Call, at: dict[str, Any], weights: str | None) -> bool:
    """Whether two of the call's means differ by a constant whatever the estimates (a pair
    that no coefficient enters: the trends of an additive model, means that differ by their
    offsets only): emmeans' finite differences and sums leave rounding in such a pair, whose
    z it then tests (1026: two equal trends of x, 1e-13 apart in L, in different cld groups);
    ours have no SE and are never separated."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = g.pairs(ours(result, call, at, weights))
    except ValueError:
        return False
    return bool((table["std_error"] == 0.0).any())


def ours_cld(result: Any, call: Call, at: dict[str, Any], weights: str | None) -> pd.DataFrame:
    return g.cld(ours(result, call, at, weights))


def compare_cld(table: pd.DataFrame, theirs: dict[str, Any]) -> list[str]:
    """Our cld table against emmeans' record: the sorted grid (as text) and the symbols."""
    problems = []
    for name, values in theirs["grid"].items():
        if name not in table.columns:
            return [f"cld grid column {name!r} missing"]
        mine = [label_key(v) for v in table[name]]
        if mine != [str(v) for v in listed(values)]:
            problems.append(f"cld order of {name}: {mine} != R's {listed(values)}")
    if list(table[".group"]) != listed(theirs["group"]):
        problems.append(f"cld symbols {list(table['.group'])} != R's {listed(theirs['group'])}")
    return problems


SCALE_OFFSET = {"scale": -0.5, "offset": 0.25}
"""--scale-offset: contrast()'s scale and offset in the simple effects' call (emmeans 1.8.4
ignores scale for nested means: there only the offset is given, R records which)."""


def ours_simple(
    result: Any,
    call: Call,
    at: dict[str, Any],
    weights: str | None,
    moved: dict[str, float] | None = None,
) -> pd.DataFrame:
    return g.contrast(
        ours(result, call, at, weights), "pairwise", simple="each", combine=True, **(moved or {})
    )


def moved_by(scale_offset: bool, theirs: dict[str, Any]) -> dict[str, float] | None:
    """The scale and offset emmeans applied to the simple effects (--scale-offset): both, or
    the offset alone where its means were nested (it ignores scale there)."""
    if not scale_offset:
        return None
    if theirs.get("nested"):
        return {"offset": SCALE_OFFSET["offset"]}
    return dict(SCALE_OFFSET)


def compare_simple(table: pd.DataFrame, theirs: dict[str, Any]) -> list[str]:
    """Our combined simple contrasts against emmeans' record: label columns as text,
    estimates and SEs to 1e-8, p-values to 1e-6 (relative)."""
    columns = listed(theirs["columns"])
    mine = [c for c in table.columns if c != "estimate"][: len(columns)]
    if mine != columns:
        return [f"simple columns {mine} != R's {columns}"]
    problems = []
    for name in columns:
        labels = [label_key(v) for v in table[name]]
        if labels != [str(v) for v in listed(theirs["labels"][name])]:
            problems.append(f"simple {name}: {labels} != R's {listed(theirs['labels'][name])}")
    if problems:
        return problems
    for name, their, rtol, atol in (
        ("estimate", "estimate", 1e-8, 1e-10),
        ("std_error", "SE", 1e-8, 1e-12),
        ("p_value", "p", 1e-6, 1e-12),
    ):
        a = table[name].to_numpy(dtype=float)
        b = np.array(listed(theirs[their]), dtype=float)
        if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
            problems.append(f"simple {name} {list(a)} != R's {list(b)}")
    return problems


def at_estimates(result: Any, theirs: dict[str, Any]) -> Any:
    """Our fit with glmer's fixed effects and their covariance in place of ours (and without
    the limit's covariance of a fit we found separated: glmer's finite numbers stand for it)."""
    beta = np.array(theirs["fixef"], dtype=float)
    vcov = np.array(theirs["vcov"], dtype=float).reshape(-1, int(np.isfinite(beta).sum()))
    output = dataclasses.replace(
        result.fit_output, beta=beta[np.isfinite(beta)], vcov_beta=vcov, vcov_limit=None
    )
    return type(result)(result.model, output, design=result.design, call=result.call)


def joint_at_estimates(result: Any, theirs: dict[str, Any]) -> pd.DataFrame:
    """Our joint_tests at glmer's estimates (at ours where R recorded none: its fit failed)."""
    return g.joint_tests(at_estimates(result, theirs) if "fixef" in theirs else result)


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def compare_joint(table: pd.DataFrame, theirs: dict[str, Any]) -> list[str]:
    terms, df1 = listed(theirs["terms"]), listed(theirs["df1"])
    if list(table["model term"]) != terms or list(table["df1"]) != df1:
        return [
            f"terms/df1 {list(zip(table['model term'], table['df1'], strict=True))} != "
            f"R's {list(zip(terms, df1, strict=True))}"
        ]
    confounded = (table["model term"] == "(confounded)").to_numpy()
    their_f = np.array(listed(theirs["F"]), dtype=float)
    if len(terms) == 1 and confounded.all() and np.isnan(their_f).all():
        # Every term lost its contrasts to non-estimability: emmeans' "(confounded)" is then
        # NA (it subtracts a test of no functions); ours tests the estimable cell contrasts.
        return []
    f_tol = np.where(confounded, 3e-3 * max(sum(df1), 1), 5e-4)
    f_gap = np.abs(table["F.ratio"].to_numpy() - np.array(listed(theirs["F"]), dtype=float))
    their_p = np.array(listed(theirs["p"]), dtype=float)
    p_gap = np.abs(table["p.value"].to_numpy() - their_p) / np.maximum(their_p, 1e-300)
    problems = []
    if not (f_gap <= f_tol).all():
        problems.append(f"F {list(table['F.ratio'])} != R's {listed(theirs['F'])}")
    if not (p_gap <= np.where(confounded, 1e-2, 1e-4)).all():
        problems.append(f"p {list(table['p.value'])} != R's {list(their_p)}")
    return problems


@dataclasses.dataclass
class Tally:
    """What a sweep found: calls that agree, refused by both, and the lines to list."""

    agreed: int = 0
    joint_agreed: int = 0
    cld_agreed: int = 0
    cld_apart: int = 0
    cld_constant: int = 0
    simple_agreed: int = 0
    both_refused: int = 0
    findings: list[str] = dataclasses.field(default_factory=list)
    refusals: list[str] = dataclasses.field(default_factory=list)
    r_errors: list[str] = dataclasses.field(default_factory=list)


def judged(
    where: str,
    make: Callable[[], Any],
    their_error: str | None,
    check: Callable[[Any], list[str]],
    tally: Tally,
) -> bool:
    """Our answer (make()) against emmeans' (their_error when it stopped), filed in tally: a
    ValueError is a refusal (by both, or by us only), anything else we raise a finding, an
    answer where emmeans stops is listed, and check()'s problems are a finding. True when the
    answers agree."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            answer = make()
    except ValueError as error:
        if their_error is not None:
            tally.both_refused += 1
        else:
            tally.refusals.append(f"{where}: we refuse ({error}); emmeans answers")
        return False
    except Exception:
        tally.findings.append(f"{where}: raised\n{traceback.format_exc()}")
        return False
    if their_error is not None:
        tally.r_errors.append(f"{where}: emmeans stops ({their_error}); we answer")
        return False
    problems = check(answer)
    if problems:
        tally.findings.append(f"{where}: " + "; ".join(problems))
    return not problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sweep_args(parser, "/tmp/against_r_emmeans")
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument(
        "--weights", action="store_true", help="draw emmeans' weights= per case (CASE_WEIGHTS)"
    )
    parser.add_argument(
        "--joint", action="store_true", help="also compare joint_tests at glmer's estimates"
    )
    parser.add_argument("--nested", action="store_true", help="draw the NESTED templates")
    parser.add_argument(
        "--offsets", action="store_true", help="draw the OFFSETS templates (two-valued offsets)"
    )
    parser.add_argument(
        "--cld", action="store_true", help="also compare cld() at glmer's estimates"
    )
    parser.add_argument(
        "--simple",
        action="store_true",
        help="also compare contrast(simple='each', combine=True) at glmer's estimates",
    )
    parser.add_argument(
        "--scale-offset",
        action="store_true",
        help="with --simple: those contrasts with scale=-0.5 and offset=0.25",
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    seeds = range(args.start, args.start + args.count)
    cases = {seed: case_data(seed, args.nested, args.offsets) for seed in seeds}
    manifest = []
    for seed, (frame, template) in cases.items():
        formula, calls = TEMPLATES[template]
        manifest.append(
            {
                "name": str(seed),
                "csv": case_csv(args.dir, seed, frame),
                "formula": formula,
                "at": case_at(seed, template),
                "weights": case_weights(seed, args.weights),
                "simple": args.simple,
                "scale_offset": SCALE_OFFSET if args.scale_offset else None,
                "calls": [
                    {
                        "label": label(c),
                        "kind": c[0],
                        "specs": list(c[1]),
                        "by": [c[2]] if c[0] == "emmeans" and c[2] else [],
                        "var": c[2] if c[0] == "emtrends" else None,
                    }
                    for c in calls
                ],
            }
        )
    records = r_records(HERE / "against_r_emmeans.R", manifest, args.dir, args.start)
    r_results = {name: {c["label"]: c for c in r["calls"]} for name, r in records.items()}
    tally = Tally()
    findings, refusals, r_errors = tally.findings, tally.refusals, tally.r_errors
    for seed, (frame, template) in cases.items():
        formula, calls = TEMPLATES[template]
        at = case_at(seed, template)
        weights = case_weights(seed, args.weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = g.fit(formula, frame)
            except Exception:
                findings.append(f"{seed} {formula}: fit raised\n{traceback.format_exc()}")
                continue
        for call in calls:
            theirs = r_results[str(seed)][label(call)]
            where = f"{seed} {formula} | {label(call)}" + (f" at {at}" if at else "")
            where += f" weights {weights}" if weights else ""
            if judged(
                where,
                functools.partial(ours, result, call, at, weights),
                theirs.get("error"),
                functools.partial(
                    compare, theirs=theirs, columns=all_columns(result), tol=args.tol
                ),
                tally,
            ):
                tally.agreed += 1
            their_simple = theirs.get("simple")
            if args.simple and their_simple is not None and "fixef" in records[str(seed)]["joint"]:
                if judged(
                    where + " | simple",
                    functools.partial(
                        ours_simple,
                        at_estimates(result, records[str(seed)]["joint"]),
                        call,
                        at,
                        weights,
                        moved_by(args.scale_offset, their_simple),
                    ),
                    their_simple.get("error"),
                    functools.partial(compare_simple, theirs=their_simple),
                    tally,
                ):
                    tally.simple_agreed += 1
            their_cld = theirs.get("cld")
            if args.cld and their_cld is not None and "fixef" in records[str(seed)]["joint"]:
                fitted = at_estimates(result, records[str(seed)]["joint"])
                if families_differ(fitted, call, at, weights):
                    tally.cld_apart += 1
                    continue
                if constant_pair(fitted, call, at, weights):
                    tally.cld_constant += 1
                    continue
                if judged(
                    where + " | cld",
                    functools.partial(ours_cld, fitted, call, at, weights),
                    their_cld.get("error"),
                    functools.partial(compare_cld, theirs=their_cld),
                    tally,
                ):
                    tally.cld_agreed += 1
        if args.joint:
            theirs = records[str(seed)].get("joint", {})
            if judged(
                f"{seed} {formula} | joint_tests",
                functools.partial(joint_at_estimates, result, theirs),
                theirs.get("error"),
                functools.partial(compare_joint, theirs=theirs),
                tally,
            ):
                tally.joint_agreed += 1
    print(
        f"seeds {args.start}-{args.start + args.count - 1}: {tally.agreed} calls agree, "
        f"{tally.both_refused} refused by both, {len(refusals)} refused by us only, "
        f"{len(r_errors)} where emmeans stops, {len(findings)} findings"
        + (f"; joint_tests: {tally.joint_agreed} agree" if args.joint else "")
        + (
            f"; cld: {tally.cld_agreed} agree, {tally.cld_apart} nested by groups and "
            f"{tally.cld_constant} with a constant pair not compared"
            if args.cld
            else ""
        )
        + (f"; simple: {tally.simple_agreed} agree" if args.simple else "")
    )
    for line in refusals + r_errors + findings:
        print(" -", line)
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
