"""One partition of a Dask fit on its worker: its rows as ModelData, and what it answers.

Every partition is built from the same PartitionPlan: the design learned by the learning pass
(a model.design.DesignInfo: the formulaic specs, the levels of every grouping factor, how the
columns are read), the FitOptions (the method object) and the random terms crossed with the
partitioning factor. Its rows are built by the functions that build new data for prediction
(model.newdata.rows_design: X, the offset terms, Z and the codes of the rows in the levels of
the whole data set), so a partition, new data and the in-memory fit are coded alike.

A partition's blocks are coded by its own levels (the levels it holds, in the order of the
whole data set's); ``keys[t][j]`` is the position of its level j of block t among all levels,
by which the client places what a partition says about its levels (place_effects).

The kinds of partition (``PartitionPlan.kind``): nested.ModePartition (the method's own
objective, for factors nested in the partitioning one), crossed.CrossedPartition (factors
crossed with it), vb.VariationalPartition (sums of the mean-field variational bound) and
structured_vb.StructuredPartition (structured VB's inner loop on its rows). What they share
is here: the sums of the GLM start, the columns' moments and spreads, the rows for the
separation check, and new partitions on other columns of the same rows. The client calls these
methods by name through a runner (runner.py).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.distributed.runner import Refused
from glmm_binomial.family import BINOMIAL_LOGIT, Family
from glmm_binomial.methods.options import FitOptions
from glmm_binomial.methods.scaling import ColumnMoments, Scaling, column_moments, to_internal
from glmm_binomial.model.covariance import make_structure
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.model.design import DesignInfo, check_finite, response_counts
from glmm_binomial.model.formula import r_names
from glmm_binomial.model.frame import read_like
from glmm_binomial.model.newdata import rows_design
from glmm_binomial.model.separation import largest_row_variance
from glmm_binomial.numerics.optimize import (
    glm_value_information_score,
    largest_eta,
    level_scores,
    step_room,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

ROW_COLUMN = "__glmm_row__"
"""Original position of each complete row (partition number * 2^40 + position), added before
the shuffle so that each partition can put its rows back in their original order."""


@dataclass(frozen=True)
class PartitionPlan:
    """What every partition is built from (the same for all of them, sent to the workers once).

    design: the learning pass's DesignInfo (kept_columns None: aliased columns are found
    later, from the partitions); options: the FitOptions; kind: the Partition subclass;
    crossed: the random terms crossed with the partitioning factor (indices in the formula's
    order); family: the model's family (the binomial with its link)."""

    design: DesignInfo
    options: FitOptions
    kind: type[Partition]
    crossed: tuple[int, ...] = ()
    family: Family = BINOMIAL_LOGIT


@dataclass(frozen=True)
class PartitionFacts:
    """The structure of a partition's model (the same in every partition) and what its
    objective offers: the fixed-effects information (LaplaceObjective.fixed_information), and
    the quadrature rule of an AGQ objective."""

    fixed_names: tuple[str, ...]
    block_terms: tuple[tuple[str, ...], ...]
    log_binomial_constant: float
    has_fixed_information: bool = False
    rule_kind: str | None = None
    n_nodes: int | None = None


@dataclass(frozen=True)
class StartSums:
    """One partition's share of the GLM start: the R factor of X (R'R = X'X), X'offset, the
    sums of successes and trials, the largest |x| and the sum of each column, whether every row
    is one Bernoulli trial, the largest |z| of each block's columns, and the columns' moments
    (methods.scaling.column_moments) of X and of each block's Z."""

    r: FloatArray
    x_offset: FloatArray
    successes: float
    trials: float
    largest: FloatArray
    column_sums: FloatArray
    bernoulli: bool
    z_spread: list[FloatArray]
    x_moments: ColumnMoments
    z_moments: list[ColumnMoments]


class Partition:
    """A partition's rows and the answers every kind of partition gives.

    data: the rows (ModelData, every block coded by the partition's own levels); keys: per
    block, the position of each of its levels among the levels of the whole data set;
    user_data: the rows on the user's columns when data holds internally scaled ones (None:
    data is on them); output: the answer of the call that made this version (runner.evaluate).
    """

    data: ModelData
    keys: tuple[IntArray, ...]
    user_data: ModelData | None = None
    output: Any = None

    @classmethod
    def from_rows(
        cls, data: ModelData, keys: tuple[IntArray, ...], plan: PartitionPlan
    ) -> Partition:
        """The partition of this kind on rows built by partition_rows."""
        raise NotImplementedError

    def on_rows(self, data: ModelData) -> Partition:
        """The same kind of partition on other columns of the same rows (coded as `data` is:
        by the partition's own levels)."""
        raise NotImplementedError

    def next_version(self) -> Partition:
        """A new version for a call that changes the partition (runner.evaluate): what the call
        changes is its own, the rest shared (read only) with the previous version."""
        version = copy.copy(self)
        version.output = None
        return version

    def settle(self) -> None:
        """Drop what need not be kept between calls (after runner.evaluate's call)."""

    @property
    def user_columns(self) -> ModelData:
        """The rows on the user's columns."""
        return self.data if self.user_data is None else self.user_data

    # --- reads --------------------------------------------------------------------------------
    def facts(self) -> PartitionFacts:
        d = self.data
        return PartitionFacts(
            d.fixed_names, tuple(b.terms for b in d.blocks), float(d.log_binomial_constant)
        )

    def start_sums(self) -> StartSums:
        d = self.data
        return StartSums(
            cast(FloatArray, np.linalg.qr(d.x, mode="r")),
            d.x.T @ d.offset,
            float(np.sum(d.successes)),
            float(np.sum(d.trials)),
            np.max(np.abs(d.x), axis=0, initial=0.0),
            np.sum(d.x, axis=0),
            bool(np.all(d.trials == 1.0)),
            [np.max(np.abs(b.z), axis=0, initial=0.0) for b in d.blocks],
            column_moments(d.x),
            [column_moments(b.z) for b in d.blocks],
        )

    def glm_value_information_score(self, beta: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        """The log-likelihood, X'WX and X'r of the fixed-effects-only GLM at beta
        (numerics.optimize's)."""
        return glm_value_information_score(self.data, beta)

    def level_scores(
        self, beta: FloatArray
    ) -> tuple[tuple[IntArray, ...], list[tuple[FloatArray, FloatArray] | None]]:
        """The levels' scores and informations at the GLM fit (numerics.optimize's), on the
        partition's own levels, with the keys that place them among all levels."""
        return self.keys, level_scores(self.data, beta)

    def largest_eta(self, beta: FloatArray) -> float:
        """max(X beta + offset) over the rows (numerics.optimize's)."""
        return largest_eta(self.data, beta)

    def step_room(self, beta: FloatArray, step: FloatArray, limit: float) -> float:
        """How far along `step` from beta every row stays at or below limit
        (numerics.optimize's)."""
        return step_room(self.data, beta, step, limit)

    def family_start_moments(self, beta: FloatArray) -> FloatArray:
        """The family's start_moments about the GLM fit beta (the beta-binomial's for log phi;
        empty for the binomial)."""
        d = self.data
        return d.family.start_moments(d.x @ beta + d.offset, d.successes, d.trials)

    def spreads(self) -> tuple[FloatArray, list[FloatArray]]:
        """The largest |x| of each column of X and |z| of each block's columns."""
        d = self.data
        return (
            np.max(np.abs(d.x), axis=0, initial=0.0),
            [np.max(np.abs(b.z), axis=0, initial=0.0) for b in d.blocks],
        )

    def fixed_eta_range(self, beta: FloatArray) -> tuple[float, float]:
        """The smallest and largest fixed-effect predictor x_i'beta of the rows (the offset
        left out; separation.saturated_rows' screen): +-inf where there are no rows."""
        eta = self.data.x @ beta
        return float(np.min(eta, initial=np.inf)), float(np.max(eta, initial=-np.inf))

    def row_variances(self, lambdas: list[FloatArray]) -> list[float]:
        """Per block, the largest variance of a row's random effect, z_i' Lambda Lambda' z_i,
        given each block's Lambda (separation.largest_row_variance)."""
        return [
            largest_row_variance(b.z, lam) for b, lam in zip(self.data.blocks, lambdas, strict=True)
        ]

    def design_arrays(self) -> tuple[Any, ...]:
        """The rows for the separation check: X, successes, trials and per block the codes among
        all levels and Z."""
        d = self.data
        blocks = [(where[b.codes], b.z) for b, where in zip(d.blocks, self.keys, strict=True)]
        return d.x, d.successes, d.trials, blocks

    def level_keys(self) -> tuple[IntArray, ...]:
        return self.keys

    # --- new partitions -----------------------------------------------------------------------
    def without_columns(self, kept: list[int]) -> Partition:
        """The partition without the aliased fixed-effect columns."""
        d = self.data
        return self.on_rows(
            dataclasses.replace(
                d,
                x=np.ascontiguousarray(d.x[:, kept]),
                fixed_names=tuple(d.fixed_names[j] for j in kept),
                # A Z shared with the old X gets its own copy (the old X is released).
                blocks=tuple(
                    dataclasses.replace(b, z=b.z.copy()) if b.z is d.x else b for b in d.blocks
                ),
            )
        )

    def on_internal_columns(self, scaling: Scaling) -> Partition:
        """The partition on the internally centred and scaled columns (scaling.to_internal),
        keeping the user's columns for the check in user units and the separation check."""
        internal = self.on_rows(to_internal(self.data, scaling))
        internal.user_data = self.data
        return internal

    def _held_arrays(self) -> list[NDArray[Any]]:
        d = self.data
        arrays: list[NDArray[Any]] = [d.successes, d.trials, d.x, d.offset]
        arrays += [a for b in d.blocks for a in (b.codes, b.z)]
        if self.user_data is not None:
            arrays += [self.user_data.x, *(b.z for b in self.user_data.blocks)]
        return arrays

    def __sizeof__(self) -> int:
        # Dask weighs moving a task by the size of its inputs (evaluations then stay with their
        # partition) and spills by it: the arrays held, each once, broadcasts free, plus the
        # objective's per-row products (about one column per row).
        seen: dict[int, int] = {}
        for a in self._held_arrays():
            if a.size and a.strides[0] != 0:
                seen[id(a)] = a.nbytes
        return int(sum(seen.values()) + 8 * self.data.n_obs)


# --- building a partition -------------------------------------------------------------------
def build_partition(part: pd.DataFrame, plan: PartitionPlan) -> Partition | Refused | None:
    """The partition of these rows (complete rows of the learned columns, with ROW_COLUMN),
    None when it has none, Refused when its rows or the method's objective on them refuse the
    model (a ValueError: AGQ's vector effect with several grouping factors, weights that are
    not finite), which the client raises with the in-memory fit's message (as an answer, not a
    failed task, which would fill the workers' logs)."""
    if len(part) == 0:
        return None
    try:
        data, keys = partition_rows(part, plan.design, plan.family)
        return plan.kind.from_rows(data, keys, plan)
    except ValueError as error:
        return Refused(str(error))


def column_names(spec: Any) -> list[str]:
    """The columns of a formulaic model spec's matrix, in R's spelling (as the fit names them)."""
    return r_names([str(c) for c in spec.column_names])


def partition_rows(
    part: pd.DataFrame, info: DesignInfo, family: Family = BINOMIAL_LOGIT
) -> tuple[ModelData, tuple[IntArray, ...]]:
    """ModelData of a partition's rows (in their original order) with the model's family, and
    the keys of its levels, built as new data is (newdata.rows_design) with the columns read as
    the learning pass read them."""
    # Every column read as the learning pass decided (frame.py's reader policy), whatever
    # this partition's dtypes.
    frame = read_like(part.sort_values(ROW_COLUMN, kind="stable"), info.columns, "data")
    w = _column_values(frame, info.weights_column, "weights")
    if w is not None and (np.any(~np.isfinite(w)) or np.any(w < 0)):
        raise ValueError("weights must be finite and non-negative")
    offset_column = info.offset_column if info.offset_source == "column" else None
    o = _column_values(frame, offset_column, "offset")
    o = np.zeros(len(frame)) if o is None else o
    if not np.all(np.isfinite(o)):
        raise ValueError("offset must be finite")
    successes, trials = response_counts(info.formula, frame, w, info.response_levels)
    rows = rows_design(info, frame, range(len(info.random_specs)))
    fixed_names = column_names(info.fixed_spec)
    if info.kept_columns is not None:
        fixed_names = [fixed_names[j] for j in info.kept_columns]
    check_finite(rows.x, fixed_names, "fixed-effects", frame.index)
    for expr, values in zip(info.formula.offsets, rows.offset_terms, strict=True):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"offset({expr}) is not finite")
        o = o + values
    blocks, keys = [], []
    for spec, (codes, z) in zip(info.random_specs, rows.random, strict=True):
        term = spec.term
        names = ["(Intercept)"] if spec.model_spec is None else column_names(spec.model_spec)
        check_finite(z, names, f"random-effect term {term.text}", frame.index)
        if np.any(codes < 0):
            raise RuntimeError(f"a level of {term.text} was not seen by the learning pass")
        present, local = local_codes(codes, len(spec.levels))
        # The partition's levels are named by their positions among all levels (the labels
        # stay on the client).
        levels = tuple(present.tolist())
        structure = make_structure(term.structure, tuple(names), term.text)
        blocks.append(RandomBlock(":".join(term.group), tuple(names), local, levels, z, structure))
        keys.append(present)
    data = ModelData(successes, trials, rows.x, o, tuple(fixed_names), tuple(blocks), family=family)
    return data, tuple(keys)


def local_codes(codes: IntArray, n_levels: int) -> tuple[IntArray, IntArray]:
    """The levels present among `codes` (codes in the levels of the whole data set), in order,
    and each row's code among them."""
    present = np.flatnonzero(np.bincount(codes, minlength=n_levels)).astype(np.intp)
    position = np.zeros(n_levels, dtype=np.intp)
    position[present] = np.arange(len(present), dtype=np.intp)
    return present, position[codes]


def _column_values(frame: pd.DataFrame, column: str | None, name: str) -> FloatArray | None:
    if column is None:
        return None
    try:
        return np.asarray(pd.to_numeric(frame[column], errors="raise"), dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(f"{name} column '{column}' must be numeric") from None


def compact(data: ModelData) -> ModelData:
    """The same rows with nothing stored twice: trials of 1 and a zero offset as read-only
    broadcasts, and a block's Z that equals X as X itself (as in (1 + x | g) with y ~ x).
    At a hundred million rows every 8 bytes per row is 800 MB."""
    n = data.n_obs

    def constant(values: FloatArray, value: float) -> FloatArray:
        if n and values.strides[0] != 0 and np.all(values == value):
            return np.broadcast_to(np.float64(value), (n,))
        return values

    x = np.ascontiguousarray(data.x)
    blocks = tuple(
        dataclasses.replace(b, z=x)
        if b.z is not x and b.z.shape == x.shape and np.array_equal(b.z, x)
        else b
        for b in data.blocks
    )
    return dataclasses.replace(
        data,
        successes=np.ascontiguousarray(data.successes),
        trials=constant(data.trials, 1.0),
        x=x,
        offset=constant(data.offset, 0.0),
        blocks=blocks,
    )


# --- the client side ------------------------------------------------------------------------
def place_effects(
    pieces: Sequence[tuple[Any, ...]],
    n_levels: Sequence[int],
    ks: Sequence[int],
    crossed: Sequence[int] = (),
) -> tuple[list[FloatArray], list[FloatArray]]:
    """Conditional modes (n_levels x k) and covariances (n_levels x k x k) of every block over
    the levels of the whole data set, from the partitions' (keys, modes, covariances, ...) of
    their own levels; a crossed block's are every partition's (the first one's are taken)."""
    ranef, ranef_cov = [], []
    for t, (n, k) in enumerate(zip(n_levels, ks, strict=True)):
        if t in crossed:
            ranef.append(pieces[0][1][t])
            ranef_cov.append(pieces[0][2][t])
            continue
        modes = np.full((n, k), np.nan)
        covs = np.full((n, k, k), np.nan)
        for keys, part_modes, part_covs, *_ in pieces:
            modes[keys[t]] = part_modes[t]
            covs[keys[t]] = part_covs[t]
        ranef.append(modes)
        ranef_cov.append(covs)
    return ranef, ranef_cov
