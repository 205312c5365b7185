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

Anything else we raise is a finding with its traceback. Exit status 1 when any call is one.
Not drawn: an offset with only two distinct values, which emmeans keeps at both as a factor
(cov.keep = "2") and may find nested in one; ours is at its mean (results/emmeans.py).
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from r_batch import case_csv, r_records, sweep_args  # noqa: E402

import glmm_binomial as g  # noqa: E402

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


def case_data(seed: int) -> tuple[pd.DataFrame, int]:
    """The table of a seed and the index of its template."""
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
        }
    )
    template = int(rng.integers(len(TEMPLATES)))
    if template >= len(TEMPLATES) - len(EMPTY_CELL):
        frame = frame[~((frame["A"] == f"a{n_a - 1}") & (frame["B"] == f"b{n_b - 1}"))]
        frame = frame.reset_index(drop=True)
    return frame, template


def label(call: Call) -> str:
    kind, specs, third = call
    extra = "" if third is None else (f" by {third}" if kind == "emmeans" else f" var {third}")
    return f"{kind} {'+'.join(specs)}{extra}"


def ours(result: Any, call: Call, at: dict[str, Any]) -> Any:
    kind, specs, third = call
    if kind == "emmeans":
        return g.emmeans(result, list(specs), by=third, at=at or None)
    return g.emtrends(result, list(specs), var=third, at=at or None)


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
    if their_estimable.shape != emm.estimable.shape or (their_estimable != emm.estimable).any():
        problems.append(f"estimable {list(emm.estimable)} != R's {list(their_estimable)}")
    if our_l.shape != their_l.shape:
        return [f"L shape {our_l.shape} != R's {their_l.shape}"]
    grid = emm.grid
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sweep_args(parser, "/tmp/against_r_emmeans")
    parser.add_argument("--tol", type=float, default=1e-8)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    seeds = range(args.start, args.start + args.count)
    cases = {seed: case_data(seed) for seed in seeds}
    manifest = []
    for seed, (frame, template) in cases.items():
        formula, calls = TEMPLATES[template]
        manifest.append(
            {
                "name": str(seed),
                "csv": case_csv(args.dir, seed, frame),
                "formula": formula,
                "at": case_at(seed, template),
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
    findings, refusals, r_errors, agreed, both_refused = [], [], [], 0, 0
    for seed, (frame, template) in cases.items():
        formula, calls = TEMPLATES[template]
        at = case_at(seed, template)
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
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    emm = ours(result, call, at)
            except ValueError as error:
                if "error" in theirs:
                    both_refused += 1
                else:
                    refusals.append(f"{where}: we refuse ({error}); emmeans answers")
                continue
            except Exception:
                findings.append(f"{where}: raised\n{traceback.format_exc()}")
                continue
            if "error" in theirs:
                r_errors.append(f"{where}: emmeans stops ({theirs['error']}); we answer")
                continue
            problems = compare(emm, theirs, all_columns(result), args.tol)
            if problems:
                findings.append(f"{where}: " + "; ".join(problems))
            else:
                agreed += 1
    print(
        f"seeds {args.start}-{args.start + args.count - 1}: {agreed} calls agree, "
        f"{both_refused} refused by both, {len(refusals)} refused by us only, "
        f"{len(r_errors)} where emmeans stops, {len(findings)} findings"
    )
    for line in refusals + r_errors + findings:
        print(" -", line)
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
