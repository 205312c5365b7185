"""The design of a fitted model rebuilt for new data (prediction).

Columns are read as the fit read them (frame.read_like with the fit's ColumnReadings: a column
of numbers must hold numbers, a factor's levels are checked against the fit's, as lme4 refuses a
level it has not seen), whatever their dtype; stateful transforms use the fit's parameters
(formulaic's model specs, never changed by a call); grouping labels are matched by the rule the
fit used (R's as.character); rows missing a needed value are set aside so that their prediction
is NaN, as with the fit's na.omit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.diagnostics import FitWarning, NewLevelsWarning
from glmm_binomial.model.design import (
    DesignInfo,
    codes_in_levels,
    factor_terms,
    value_variables,
)
from glmm_binomial.model.formula import expression_variables, r_text
from glmm_binomial.model.frame import (
    as_pandas,
    check_unique_columns,
    label_keys,
    match_codes,
    new_levels_message,
    read_columns,
    read_like,
    row_values,
    spelled_otherwise,
)
from glmm_binomial.model.transforms import factor_column, rebuild

__all__ = [
    "NewDesign",
    "RowsDesign",
    "new_data_design",
    "new_level_counts",
    "new_levels_text",
    "new_levels_warning",
    "rows_design",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class NewDesign:
    """The design of new data: rows with every needed value (``complete``, a mask over the rows
    of new data) and, for those rows, X, the offset and per random block built (codes, Z);
    codes are -1 for levels the fit has not seen. ``blocks`` gives the fit's index of each block
    in ``random`` (all blocks unless the design was built for some of them only)."""

    x: FloatArray
    offset: FloatArray
    random: list[tuple[IntArray, FloatArray]]
    complete: NDArray[np.bool_]
    index: pd.Index
    blocks: tuple[int, ...] = ()


@dataclass(frozen=True)
class RowsDesign:
    """The fit's design for rows that hold every value it needs: X (the fit's kept columns),
    one column per ``offset(...)`` term of the formula (the caller adds them to its offset, in
    order) and, per chosen random block, the codes of the rows in the fit's levels (-1: a level
    the fit has not seen) and Z."""

    x: FloatArray
    offset_terms: list[FloatArray]
    random: list[tuple[IntArray, FloatArray]]


def rows_design(
    info: DesignInfo, rows: pd.DataFrame, blocks: Sequence[int], *, all_fixed: bool = False
) -> RowsDesign:
    """The fit's design rebuilt for `rows`, complete rows whose columns are read as the fit read
    them (object columns of numbers as numbers), for the random blocks `blocks` (indices into
    ``info.random_specs``). Factor columns are coded with the fit's levels (a level the fit has
    not seen raises a ValueError naming it), stateful transforms use the fit's parameters and
    grouping labels are matched by R's as.character. new_data_design uses it for prediction;
    the Dask fit builds every partition's rows with it. all_fixed: X with the aliased columns
    the fit dropped too (every column of the formula's fixed part)."""
    random_specs = [info.random_specs[t] for t in blocks]
    specs = [info.fixed_spec, *info.offset_specs]
    specs += [s.model_spec for s in random_specs if s.model_spec is not None]
    rows = _match_categories(specs, rows)
    x = rebuild(info.fixed_spec, rows, "the fixed-effects design")
    if info.kept_columns is not None and not all_fixed:
        x = x[:, list(info.kept_columns)]
    offset_terms = [
        rebuild(spec, rows, f"offset({r_text(expr)})")[:, 0]
        for expr, spec in zip(info.formula.offsets, info.offset_specs, strict=True)
    ]
    random: list[tuple[IntArray, FloatArray]] = []
    for spec in random_specs:
        if spec.model_spec is None:
            z = np.ones((len(rows), 1))
        else:
            z = rebuild(spec.model_spec, rows, f"random-effect term {spec.term.text}")
        random.append((codes_in_levels(spec, rows), z))
    return RowsDesign(x, offset_terms, random)


def new_data_design(
    info: DesignInfo,
    newdata: Any,
    offset: Any = None,
    random: bool | Sequence[int] = True,
    *,
    all_fixed: bool = False,
) -> NewDesign:
    """The fit's design rebuilt for new data.

    Stateful transforms (scale, center, poly, bs) use the fit's parameters; a factor level the
    fit has not seen raises a ValueError naming the variable and level; grouping labels are
    matched as in the fit (R's as.character, so 1, 1.0 and "1" are one level) and levels the
    fit has not seen get code -1 (zero random effect). Rows missing a needed value are left out
    (``complete``). With ``random=False`` the random-effect terms and grouping columns are not
    needed; ``random`` may also be a sequence of block indices (into ``info.random_specs``):
    only those blocks are built and only their columns needed. all_fixed: X with every column
    of the fixed part, the aliased ones the fit dropped included (rows_design)."""
    frame = as_pandas(newdata, "newdata")
    index = frame.index if isinstance(newdata, pd.DataFrame) else None
    parsed = info.formula
    if isinstance(random, bool):
        chosen = tuple(range(len(info.random_specs))) if random else ()
    else:
        chosen = tuple(sorted({int(t) for t in random}))
    random_specs = [info.random_specs[t] for t in chosen]
    needed = set(expression_variables(parsed.fixed))
    for expr in parsed.offsets:
        needed |= expression_variables(expr)
    for spec in random_specs:
        needed |= expression_variables(spec.term.expr) | set(spec.term.group)
    needed_list = sorted(needed)
    offset_name = [info.offset_column] if offset is None and info.offset_column else []
    check_unique_columns(frame, [*needed_list, *offset_name], "newdata")
    missing = [v for v in needed_list if v not in frame.columns]
    values: FloatArray | None = None
    if offset is not None:
        values = row_values("offset", offset, len(frame), index)
    elif info.offset_source == "column":
        assert info.offset_column is not None
        if info.offset_column not in frame.columns:
            missing.append(info.offset_column)
        else:
            values = row_values("offset", frame[info.offset_column], len(frame), index)
    elif info.offset_source == "values":
        raise ValueError(
            "the model was fitted with offset= values; pass offset= with one value per row of "
            "newdata (or fit with offset='column name' to take it from newdata)"
        )
    if missing:
        near = spelled_otherwise(missing, frame.columns, "newdata")
        raise ValueError(
            f"newdata lacks column(s) {', '.join(map(repr, missing))} that the model uses"
            + (
                ""
                if len(chosen) == len(info.random_specs)
                else " (with re='exclude')"
                if not chosen
                else " (for the chosen re terms)"
            )
            + (f"; {near}" if near else "")
        )
    values_of = set(value_variables(parsed))
    chosen_columns = frame.loc[:, needed_list]
    if info.columns:
        used = read_like(chosen_columns, [r for r in info.columns if r.name in needed])
    else:  # a design recorded without its readings: decide as a fit would
        names = [v for v in needed_list if v in values_of]
        used = read_columns(chosen_columns, names, factor_terms(parsed))[0]
    complete = np.array(used.notna().all(axis=1), dtype=bool)
    if values is not None:
        complete &= ~np.isnan(values)
    sub = used.loc[complete]
    design = rows_design(info, sub, chosen, all_fixed=all_fixed)
    o = np.zeros(len(sub)) if values is None else values[complete]
    for term in design.offset_terms:
        o = o + term
    return NewDesign(
        x=design.x,
        offset=o,
        random=design.random,
        complete=complete,
        index=frame.index,
        blocks=chosen,
    )


def _match_categories(specs: list[Any], frame: pd.DataFrame) -> pd.DataFrame:
    """Check new data's factor levels against the fit's and code plain factor columns with the
    fit's categories, so formulaic encodes them as in the fit (1 and "1" match, as R's
    as.character). A level the fit has not seen raises a ValueError naming it, as lme4 does."""
    changed: dict[str, Any] = {}
    for spec in specs:
        for expr, (kind, state) in (getattr(spec, "encoder_state", None) or {}).items():
            categories = state.get("categories") if isinstance(state, dict) else None
            if str(getattr(kind, "value", kind)) != "categorical" or categories is None:
                continue
            found = factor_column(str(expr), frame)
            if found is None:
                continue  # formulaic's own check (DataMismatchWarning) is made an error
            name, plain = found
            codes, new = match_codes(frame[name], label_keys(list(categories)))
            if new:
                raise ValueError(new_levels_message("newdata", name, new, list(categories)))
            if plain:
                changed[name] = pd.Categorical.from_codes(codes, categories=pd.Index(categories))
    if not changed:
        return frame
    return frame.assign(**{k: pd.Series(v, index=frame.index) for k, v in changed.items()})


def new_level_counts(info: DesignInfo, design: NewDesign) -> dict[str, int]:
    """Per grouping factor (named as in ``ngroups``) of the design's random blocks, the number
    of its rows with a level the fit has not seen (factors without any left out)."""
    counts: dict[str, int] = {}
    for t, (codes, _) in zip(design.blocks, design.random, strict=True):
        count = int(np.sum(codes < 0))
        if count:
            # Two blocks of one factor ((1 | g) + (0 + x | g)) have the same rows.
            name = ":".join(info.random_specs[t].term.group)
            counts[name] = max(counts.get(name, 0), count)
    return counts


def new_levels_text(counts: dict[str, int]) -> str:
    """ "'g' (3 rows), 'h' (1 row)": new_level_counts for a message."""
    return ", ".join(f"'{name}' ({n} row{'s' if n > 1 else ''})" for name, n in counts.items())


def new_levels_warning(info: DesignInfo, design: NewDesign) -> FitWarning | None:
    """A NewLevelsWarning naming the grouping factors with levels the fit has not seen."""
    counts = new_level_counts(info, design)
    if not counts:
        return None
    return FitWarning(
        f"newdata has levels of {new_levels_text(counts)} not seen in the fit; their random "
        "effects are taken as zero (population level), as lme4's allow.new.levels = TRUE",
        NewLevelsWarning,
    )
