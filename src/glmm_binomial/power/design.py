"""Designs grown or shrunk for a power analysis (simr's extend), on the numbers alone.

Along a grouping factor: the first n of its levels (in the fit's level order) when n is below
the current number, else every level plus new ones, each a copy of the rows of an existing
level (level j of the new ones copies level j mod m). Any grouping factor nested in it (each of
its levels occurs within one level of the factor, told from the codes, so `(1 | a/b)` and a
mother coded uniquely across communities alike) gets new levels in the copies too; a crossed
factor (an item seen in every group) keeps its levels. Within a grouping factor: every level
gets n rows, the first n of its rows, cycled when it has fewer.

Rows keep their fixed-effects values, trials and offsets; the response is not used (power
simulations draw it). Levels no row uses are dropped.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.arguments import positive_int
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.power.model import PowerModel, power_model

IntArray = NDArray[np.intp]


def extend(
    model: Any, along: str | None = None, n: int | None = None, *, within: str | None = None
) -> PowerModel:
    """The model (a fit or a PowerModel) on a larger (or smaller) design, with the same
    parameters: `along` a grouping factor, n its number of levels (new levels copy the rows of
    existing ones); or `within` a grouping factor, n the rows of each of its levels. The result
    is what power_sim and power_curve take (PowerModel.table() shows its rows)."""
    source = power_model(model)
    n_value = positive_int(n, "n")
    if (along is None) == (within is None):
        raise ValueError(
            "give one of along= (levels of a grouping factor) or within= (rows per level)"
        )
    if along is not None:
        resized = resize_levels(source.model, along, n_value, "along")
        what = f"{n_value} levels of {along}"
    else:
        assert within is not None
        resized = resize_within(source.model, within, n_value, "within")
        what = f"{n_value} rows per level of {within}"
    return with_design(source, resized, what)


def with_design(source: PowerModel, resized: ModelData, what: str) -> PowerModel:
    """`source` on the design `resized`, checked by its method (identifiability)."""
    check_full_rank(resized, what)
    source.method.check(resized)
    return dataclasses.replace(source, model=resized, description=f"{source.description}, {what}")


def group_codes(model: ModelData, group: Any, argument: str) -> tuple[IntArray, int]:
    """Codes and number of levels of grouping factor `group` (ValueError naming `argument`)."""
    for block in model.blocks:
        if block.group == group:
            return block.codes, block.n_levels
    groups = ", ".join(dict.fromkeys(repr(b.group) for b in model.blocks))
    raise ValueError(f"{argument} {group!r} is not a grouping factor of the model ({groups})")


def resize_levels(model: ModelData, group: str, n: int, argument: str = "along") -> ModelData:
    """The design with n levels of `group` (see the module docstring)."""
    codes, m = group_codes(model, group, argument)
    if n <= m:
        rows = np.flatnonzero(codes < n)
        return _take(
            model, rows, [b.codes[rows] for b in model.blocks], [b.levels for b in model.blocks]
        )
    order, starts, counts = _level_rows(codes, m)
    copies = n - m
    source = np.arange(copies) % m  # the level each new level copies
    lengths = counts[source]
    copy_of_row = np.repeat(np.arange(copies), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    new_rows = order[starts[source][copy_of_row] + offsets]
    rows = np.concatenate([np.arange(model.n_obs), new_rows])
    block_codes, block_levels = [], []
    for block in model.blocks:
        copied = block.codes[new_rows]
        if _nested_in(block.codes, block.n_levels, codes):
            # New levels: one per (copy, level) pair, in that order.
            key = copy_of_row * block.n_levels + copied
            unique, inverse = np.unique(key, return_inverse=True)
            copied = block.n_levels + inverse.astype(np.intp)
            names = _new_labels(block.levels, unique % block.n_levels, unique // block.n_levels, m)
            levels = tuple(block.levels) + names
        else:
            levels = tuple(block.levels)
        block_codes.append(np.concatenate([block.codes, copied]))
        block_levels.append(levels)
    return _take(model, rows, block_codes, block_levels)


def resize_within(model: ModelData, group: str, n: int, argument: str = "within") -> ModelData:
    """The design with n rows in every level of `group` (cycled; see the module docstring)."""
    codes, m = group_codes(model, group, argument)
    order, starts, counts = _level_rows(codes, m)
    level = np.repeat(np.arange(m), n)
    position = np.tile(np.arange(n), m) % counts[level]
    rows = order[starts[level] + position]
    return _take(
        model, rows, [b.codes[rows] for b in model.blocks], [b.levels for b in model.blocks]
    )


def check_full_rank(model: ModelData, what: str) -> None:
    """ValueError when the design's fixed-effect columns are aliased (e.g. a factor level seen
    only in the levels left out)."""
    if model.n_fixed and np.linalg.matrix_rank(model.x) < model.n_fixed:
        constant = [name for j, name in enumerate(model.fixed_names) if not np.any(model.x[:, j])]
        detail = f" ({', '.join(constant)} zero in every row)" if constant else ""
        raise ValueError(
            f"with {what} the fixed-effects columns are aliased{detail}: choose a larger design"
        )


def _level_rows(codes: IntArray, m: int) -> tuple[IntArray, IntArray, IntArray]:
    """Rows sorted by level (stably), where each level starts in that order, its row count."""
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=m)
    starts = np.cumsum(counts) - counts
    return order, starts, counts


def _nested_in(inner: IntArray, n_inner: int, outer: IntArray) -> bool:
    """Whether every level of `inner` occurs within one level of `outer`."""
    first = np.full(n_inner, -1, dtype=np.intp)
    # The outer code of each inner level's last row (any row will do if nested).
    first[inner] = outer
    return bool(np.all(first[inner] == outer))


def _new_labels(
    levels: tuple[object, ...], sources: IntArray, copies: IntArray, m: int
) -> tuple[object, ...]:
    """Labels of new levels: the copied level's label and the copy's number ("12#2")."""
    taken = {str(level) for level in levels}
    out: list[object] = []
    for source, copy in zip(sources.tolist(), copies.tolist(), strict=True):
        label = f"{levels[source]}#{copy // m + 1 if m else copy + 1}"
        while label in taken:
            label += "'"
        taken.add(label)
        out.append(label)
    return tuple(out)


def _take(
    model: ModelData,
    rows: IntArray,
    block_codes: list[IntArray],
    block_levels: list[tuple[object, ...]],
) -> ModelData:
    """The rows `rows` of model with the given codes and levels per block (unused levels
    dropped, codes renumbered in level order)."""
    blocks = []
    for block, codes, levels in zip(model.blocks, block_codes, block_levels, strict=True):
        used = np.bincount(codes, minlength=len(levels)) > 0
        if not np.all(used):
            renumber = np.cumsum(used) - 1
            codes = renumber[codes]
            levels = tuple(level for level, keep in zip(levels, used, strict=True) if keep)
        blocks.append(
            RandomBlock(
                block.group,
                block.terms,
                np.ascontiguousarray(codes, dtype=np.intp),
                levels,
                np.take(block.z, rows, axis=0),
                block.structure,
            )
        )
    return ModelData(
        successes=np.take(model.successes, rows),
        trials=np.take(model.trials, rows),
        x=np.take(model.x, rows, axis=0),
        offset=np.take(model.offset, rows),
        fixed_names=model.fixed_names,
        blocks=tuple(blocks),
        family=model.family,
    )
