"""Fit a binomial GLMM to a Dask DataFrame: the in-memory objective mapped over partitions.

The Laplace (and one-factor AGQ) deviance, its exact gradient and the fixed-effects information
are sums over the levels of the outermost grouping factor when every other grouping factor is
nested in it: the matrix H of the mode search is block diagonal over those levels. So the rows
are shuffled once so that each partition holds whole levels of that factor; each partition
becomes a ModelData with its own LaplaceObjective (or AgqObjective) that stays in the memory of
a Dask worker; every evaluation maps the in-memory objective's ``deviance_and_gradient`` (or
``fixed_information``) over the partitions and sums the results in partition order on the
client, where ``optimize.minimize_deviance`` runs unchanged. The numerics are those of
laplace.py and quadrature.py; this module only moves arrays and adds. Grouping factors crossed
with the partitioning one (method="laplace") are handled by distributed_crossed.py: their random
effects are solved for on the client through a dense Schur complement.

Steps of ``fit_dask``:

1. One pass over the complete rows (distributed_learning.py) learns the design: the levels of
   factor columns (so every partition's fixed-effects matrix has the same columns, from one
   formulaic model spec), the levels of each grouping factor (coded by design.group_codes on
   their distinct values, so with the in-memory fit's order and R's as.character keys), the
   response's two levels when it is a factor, and, where nesting is not visible in the
   formula, whether each grouping factor is nested in the partitioning one.
2. The rows are shuffled on the partitioning factor (hash partitioning: deterministic) and each
   partition is turned into a ModelData on its worker, rows in their original order.
3. Aliased fixed-effect columns are found from the partitions' R factors and dropped with a
   RankDeficiencyWarning, as design.py drops them. The GLM start is Newton's method on
   partition sums of X'WX and X'(k - m mu); then
   minimize_deviance, then the conditional modes gathered from the partitions in level order.

Each evaluation makes a new version of every partition (its warm start moves) instead of
changing it in place, so the numbers do not depend on where Dask runs a task. Between
evaluations a partition keeps only its rows, stored compactly (about 40 bytes per row for
y ~ x + (1 + x | g)), and the last conditional modes. Lost workers are survived by Dask itself:
a lost partition is rebuilt from the task graph (the source files) by replaying its versions,
and the optimizer's next evaluation waits for it. The same input gives the same estimates bit
for bit, with or without failures (same partitions, same histories, same order of every sum);
a process restarted after a failure can round the deviance's dot products differently in the
last digits (memory alignment), which moved a 10M-row logLik by 4e-15 relative.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
from numpy.typing import NDArray

from glmm_binomial.diagnostics import FitWarning, SeparationWarning
from glmm_binomial.distributed.crossed import (
    CrossedObjective,
    CrossedPartition,
    crossed_plan,
    crossed_terms,
    dask_runner,
    forget_partitions,
)
from glmm_binomial.distributed.learning import (
    MERGE_FAN_IN,
    _check_vb_terms,
    _check_widths,
    _combine,
    _group_spec,
    _matrix,
    _merge,
    _nesting_plan,
    _not_decomposable,
    _sorted_levels,
    _spec,
    _summarize,
)
from glmm_binomial.distributed.result import DaskGLMMResult, _rowless_model
from glmm_binomial.distributed.result import is_dask_frame as is_dask_frame
from glmm_binomial.family import inverse_link, working_weights
from glmm_binomial.methods.estimates import final_checks, require_finite
from glmm_binomial.methods.laplace import (
    Counters,
    LaplaceObjective,
    conditional_effects,
    fit_output,
    sorted_by_first_factor,
)
from glmm_binomial.methods.options import FitOptions, fit_options
from glmm_binomial.methods.scaling import (
    Scaling,
    check_in_user_units,
    choose_scaling_from_moments,
    column_moments,
    combine_moments,
    to_internal,
    to_user,
)
from glmm_binomial.methods.variational import VariationalObjective
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.model.design import (
    DesignInfo,
    RandomSpec,
    aliased_columns,
    check_finite,
    codes_in_levels,
    group_codes,
    rank_deficiency_warning,
    response_counts,
    value_variables,
)
from glmm_binomial.model.formula import ParsedFormula, parse_formula
from glmm_binomial.model.frame import read_as_numbers
from glmm_binomial.model.separation import large_coefficients, separation_report
from glmm_binomial.model.validation import (
    check_identifiable,
    check_independent_terms,
    emit_fit_warnings,
    term_texts,
)
from glmm_binomial.numerics import blas
from glmm_binomial.numerics.optimize import OptimizerControl, StartPoint, minimize_deviance
from glmm_binomial.numerics.pirls import PirlsControl

FloatArray = NDArray[np.float64]
LOG = logging.getLogger(__name__)

EXTRA_MESSAGE = (
    "fitting a Dask DataFrame needs the optional extra 'dask': "
    "pip install 'glmm-binomial[dask]' (dask[dataframe] and distributed)"
)
ROW_COLUMN = "__glmm_row__"
"""Original position of each complete row (partition number * 2^40 + position), added before
the shuffle so that each partition can put its rows back in their original order."""
RETURN_MEMORY_ROWS = 5_000_000
"""From this many rows on, the workers return free memory to the operating system after every
evaluation (glibc's allocator keeps the pages freed between the partitions' arrays otherwise)."""
SEPARATION_GATHER_LIMIT = 50_000_000
"""When the separation screen fires, the design is gathered to the client for the linear
programs if it has at most this many values (rows x columns); beyond, a warning says so."""


def _import_dask() -> tuple[Any, Any]:
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise ImportError(f"{EXTRA_MESSAGE} ({exc})") from None
    return dask, distributed


# --- what a worker needs to build its partition's ModelData ---------------------------------
@dataclass(frozen=True)
class PartitionDesign:
    """Everything fixed by the learning pass: the same for every partition."""

    parsed: ParsedFormula
    fixed_spec: Any
    random_specs: tuple[Any, ...]  # formulaic ModelSpec per random term, None for (1 | g)
    offset_specs: tuple[Any, ...]  # formulaic ModelSpec per offset(...) term of the formula
    group_specs: tuple[RandomSpec, ...]  # the levels of the whole data set, per random term
    categories: dict[str, list[Any]]
    numeric_columns: tuple[str, ...]  # object columns of numbers (frame.read_as_numbers)
    response_levels: tuple[Any, Any] | None
    weights: str | None
    offset: str | None
    method: str
    n_agq: int
    pirls_control: PirlsControl
    control: Any  # OptimizerControl, or VariationalControl for method "vb_meanfield"
    blas_threads: int | None
    priors: tuple[float, float] = (2.0, 1.0)  # "vb_meanfield": prior_fe_sd, prior_log_sd_sd
    crossed: tuple[int, ...] = ()  # random terms crossed with the partitioning factor


@dataclass
class PartitionState:
    """One partition on its worker: its rows as ModelData, the position of each of its levels
    among the levels of the whole data set (per block) and the objective, which keeps its warm
    start between evaluations."""

    data: ModelData
    keys: tuple[NDArray[np.intp], ...]
    objective: Any
    output: Any = None
    user_data: ModelData | None = None  # the user's columns when data holds scaled ones

    def next_version(self) -> PartitionState:
        """A new version for the next evaluation: the rows shared (read only), the objective's
        warm start and counters its own, so that the previous version stays as it was."""
        objective = copy.copy(self.objective)
        if hasattr(objective, "counters"):  # mode searches (VB's objective keeps nothing)
            objective.counters = copy.copy(self.objective.counters)
        return PartitionState(self.data, self.keys, objective, user_data=self.user_data)

    @property
    def user_columns(self) -> ModelData:
        """The rows on the user's columns."""
        return self.data if self.user_data is None else self.user_data

    def __sizeof__(self) -> int:
        # Dask weighs moving a task by the size of its inputs (evaluations then stay with their
        # partition) and spills by it: the arrays held, each once, broadcasts free, plus the
        # objective's per-row products (about one column per row).
        d = self.data
        arrays: list[NDArray[Any]] = [d.successes, d.trials, d.x, d.offset]
        arrays += [a for b in d.blocks for a in (b.codes, b.z)]
        if self.user_data is not None:
            arrays += [self.user_data.x, *(b.z for b in self.user_data.blocks)]
        seen: dict[int, int] = {}
        for a in arrays:
            if a.size and a.strides[0] != 0:
                seen[id(a)] = a.nbytes
        return int(sum(seen.values()) + 8 * d.n_obs)


def _with_categories(frame: pd.DataFrame, design: PartitionDesign) -> pd.DataFrame:
    """Factor columns as Categoricals with the levels of the whole data set, and a factor
    response as 0/1, so that every partition is coded alike."""
    out = frame.copy(deep=False)
    for column in design.numeric_columns:
        # Every partition's column read as numbers in the learning pass (frame.py's rule).
        numbers = read_as_numbers(out[column])
        if numbers is None:
            raise ValueError(f"column '{column}' was read as numbers but holds other values")
        out[column] = numbers
    for column, levels in design.categories.items():
        out[column] = pd.Categorical(out[column], categories=levels)
    if design.response_levels is not None:
        name = design.parsed.response.successes
        out[name] = (out[name] == design.response_levels[1]).astype(np.float64)
    return out


def _row_values(frame: pd.DataFrame, column: str | None, name: str) -> FloatArray | None:
    if column is None:
        return None
    try:
        return np.asarray(pd.to_numeric(frame[column], errors="raise"), dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(f"{name} column '{column}' must be numeric") from None


def build_partition(part: pd.DataFrame, design: PartitionDesign) -> PartitionState | None:
    """ModelData and objective of one partition (complete rows only); None when it is empty."""
    if len(part) == 0:
        return None
    part = part.sort_values(ROW_COLUMN, kind="stable")
    frame = _with_categories(part, design)
    w = _row_values(frame, design.weights, "weights")
    if w is not None and (np.any(~np.isfinite(w)) or np.any(w < 0)):
        raise ValueError("weights must be finite and non-negative")
    o = _row_values(frame, design.offset, "offset")
    o = np.zeros(len(frame)) if o is None else o
    if not np.all(np.isfinite(o)):
        raise ValueError("offset must be finite")
    successes, trials = response_counts(design.parsed, frame, w)
    x, fixed_names = _matrix(design.fixed_spec, frame, "the fixed-effects design")
    check_finite(x, fixed_names, "fixed-effects", frame.index)
    for expr, spec in zip(design.parsed.offsets, design.offset_specs, strict=True):
        values = _matrix(spec, frame, f"offset({expr})")[0][:, 0]
        if not np.all(np.isfinite(values)):
            raise ValueError(f"offset({expr}) is not finite")
        o = o + values
    blocks, keys = [], []
    for term, spec, group in zip(
        design.parsed.random, design.random_specs, design.group_specs, strict=True
    ):
        if spec is None:
            z, names = np.ones((len(frame), 1)), ["(Intercept)"]
        else:
            z, names = _matrix(spec, frame, f"random-effect term {term.text}")
        check_finite(z, names, f"random-effect term {term.text}", frame.index)
        codes, levels, _, _ = group_codes(frame, term.group)
        # Where each of this partition's levels sits among all levels (design.py's coding of
        # the whole data set, matched as newdata.py matches new data).
        where = np.empty(len(levels), dtype=np.intp)
        where[codes] = codes_in_levels(group, frame)
        if np.any(where < 0):
            raise RuntimeError(f"a level of {term.text} was not seen by the learning pass")
        blocks.append(RandomBlock(":".join(term.group), tuple(names), codes, levels, z))
        keys.append(where)
    data = ModelData(successes, trials, x, o, tuple(fixed_names), tuple(blocks))
    return _partition_state(data, tuple(keys), design)


def _partition_state(
    data: ModelData, keys: tuple[NDArray[np.intp], ...], design: PartitionDesign
) -> PartitionState:
    """The partition's rows sorted as the objective wants them and stored compactly (see
    _compact), with its objective."""
    if design.crossed:
        # Factors crossed with the partitioning one: the partition sorts its rows by its own
        # chain (distributed_crossed.CrossedPartition) and keeps one copy of them.
        levels = [design.group_specs[t].levels for t in design.crossed]
        objective = CrossedPartition(data, keys, design.crossed, levels, design.pirls_control)
        return PartitionState(objective.data, keys, objective)
    if design.method == "laplace":
        data = sorted_by_first_factor(data)[0]
    data = _compact(data)
    return PartitionState(data, keys, _objective(data, design))


def _compact(data: ModelData) -> ModelData:
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


def _keep_columns(state: PartitionState | None, kept: list[int], design: Any) -> Any:
    """The partition without the aliased fixed-effect columns (a new objective on them)."""
    if state is None:
        return None
    d = dataclasses.replace(
        state.data,
        x=np.ascontiguousarray(state.data.x[:, kept]),
        fixed_names=tuple(state.data.fixed_names[j] for j in kept),
        # A Z shared with the old X gets its own copy (the old X is released).
        blocks=tuple(
            dataclasses.replace(b, z=b.z.copy()) if b.z is state.data.x else b
            for b in state.data.blocks
        ),
    )
    return _partition_state(d, state.keys, design)


def _to_internal(state: PartitionState | None, scaling: Scaling, design: Any) -> Any:
    """The partition on the internally centred and scaled columns (scaling.to_internal),
    keeping the user's columns for the check in user units and the separation check."""
    if state is None:
        return None
    internal = _partition_state(to_internal(state.data, scaling), state.keys, design)
    return dataclasses.replace(internal, user_data=state.data)


def _objective(data: ModelData, design: PartitionDesign) -> Any:
    if design.method == "vb_meanfield":
        # The partition's sums over rows of the ELBO (the priors are applied on the client).
        return VariationalObjective(data, n_gauss_hermite=design.control.n_gauss_hermite)
    if design.method == "agq":
        from glmm_binomial.methods.agq import AgqObjective, QuadratureControl

        return AgqObjective(
            data, design.n_agq, design.pirls_control, QuadratureControl(), design.control
        )
    return LaplaceObjective(data, design.pirls_control)


# --- tasks run on the workers, one per partition ----------------------------------------------
def _pirls_counts(state: PartitionState) -> tuple[int, int]:
    c = getattr(state.objective, "counters", None)
    if c is None:
        return 0, 0
    return int(c.pirls_iterations), int(c.pirls_failures)


def _evaluate(
    state: PartitionState | None,
    theta: FloatArray,
    beta: FloatArray,
    what: str,
    blas_threads: int | None,
) -> PartitionState | None:
    """The next version of the partition (PartitionState.next_version) holding, as its output,
    its share of an evaluation and its mode-search counts."""
    if state is None:
        return None
    state = state.next_version()
    before = _pirls_counts(state)
    with blas.blas_threads(blas_threads):
        if what == "deviance_and_gradient":
            value: Any = state.objective.deviance_and_gradient(theta, beta)
        elif what == "fixed_information":
            value = state.objective.fixed_information(theta, beta)
        elif what == "conditional_modes":
            value = _conditional_modes(state, theta, beta)
        elif what == "glm":
            d = state.data
            mu = inverse_link(d.x @ beta + d.offset)
            w = working_weights(mu, d.trials)
            value = (d.x.T @ (w[:, None] * d.x), d.x.T @ (d.successes - d.trials * mu))
        elif what == "largest":
            d = state.data
            value = (
                np.max(np.abs(d.x), axis=0, initial=0.0),
                [np.max(np.abs(b.z), axis=0, initial=0.0) for b in d.blocks],
            )
        elif what == "glm_start":
            d = state.data
            value = (
                np.linalg.qr(d.x, mode="r"),
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
        elif what == "user_deviance_and_gradient":
            # The fit checked on the user's own columns (scaling.check_in_user_units), by an
            # objective used once.
            once = dataclasses.replace(state.objective, data=state.user_columns)
            value = once.deviance_and_gradient(theta, beta)
        else:
            raise ValueError(f"unknown evaluation {what!r}")
    if isinstance(state.objective, LaplaceObjective):
        # Between evaluations a partition keeps its rows and the warm start u only.
        state.objective.release()
    after = _pirls_counts(state)
    state.output = (value, after[0] - before[0], after[1] - before[1])
    return state


def _output(state: PartitionState | None) -> Any:
    return None if state is None else state.output


def _conditional_modes(
    state: PartitionState | None, theta: FloatArray, beta: FloatArray
) -> tuple[Any, tuple[FloatArray, ...], tuple[FloatArray, ...]] | None:
    """Conditional modes and covariances of this partition's levels (laplace.py's)."""
    if state is None:
        return None
    objective = state.objective
    if not isinstance(objective, LaplaceObjective):
        # AGQ reports the Laplace conditional modes at its estimates, as fit_agq does.
        objective = LaplaceObjective(state.data, objective.pirls_control)
    ranef, ranef_cov = conditional_effects(objective, objective.mode(theta, beta), theta)
    return state.keys, ranef, ranef_cov


def _design_arrays(state: PartitionState | None) -> tuple[Any, ...] | None:
    """The partition's rows for the separation check: X, successes, trials and per block the
    codes among all levels and Z."""
    if state is None:
        return None
    d = state.data
    blocks = [(where[b.codes], b.z) for b, where in zip(d.blocks, state.keys, strict=True)]
    return d.x, d.successes, d.trials, blocks


# --- the client side --------------------------------------------------------------------------
class _Partitions:
    """The persisted partitions: map a task over them and gather in partition order."""

    def __init__(
        self, client: Any, states: list[Any], blas_threads: int | None, design: Any
    ) -> None:
        self.client = client
        self.states = states
        self.design = design  # the PartitionDesign, scattered to the workers
        self.rows = 0  # complete rows in all partitions, once known
        self.blas_threads = blas_threads
        self.counters = Counters()

    def gather(
        self, func: Callable[..., Any], *args: list[Any], keep_empty: bool = False, **kwargs: Any
    ) -> list[Any]:
        """func (which reads a partition and does not change it) of every partition, with one
        item of each of args per partition; keep_empty keeps the None of empty partitions."""
        futures = self.client.map(func, self.states, *args, pure=False, **kwargs)
        try:
            results = self.client.gather(futures)
        finally:
            del futures
        return results if keep_empty else [r for r in results if r is not None]

    def evaluate_each(self, func: Callable[..., Any], local: list[Any], **kwargs: Any) -> list[Any]:
        """func(state, local[i], **kwargs) of every non-empty partition i, in partition order
        (for objectives that keep nothing between evaluations, as VB's)."""

        def skip_empty(state: Any, item: Any, **kw: Any) -> Any:
            return None if state is None else func(state, item, **kw)

        return self.gather(skip_empty, local, **kwargs)

    def keep_columns(self, kept: list[int]) -> None:
        """Drop aliased fixed-effect columns in every partition."""
        old = self.states
        # The old partitions are released once the new ones are built (a lost worker's new
        # partition is recomputed through them from the task graph).
        self.states = self.client.map(_keep_columns, old, kept=kept, design=self.design, pure=False)
        del old

    def to_internal(self, scaling: Scaling) -> None:
        """Every partition on the internally scaled columns."""
        self.states = self.client.map(
            _to_internal, self.states, scaling=scaling, design=self.design, pure=False
        )

    def user_deviance_and_gradient(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        """deviance_and_gradient on the user's columns (parameters in the user's units)."""
        return self._sum(self.evaluate("user_deviance_and_gradient", theta, beta), theta, beta)

    def evaluate(self, what: str, theta: FloatArray, beta: FloatArray) -> list[Any]:
        """One evaluation of every partition, each from its current version to the next.

        Every evaluation makes new versions of the partitions (their mode searches' warm starts
        change) rather than changing them in place: where a task runs (Dask may move it to an
        idle worker, copying the partition) then cannot change the numbers, and a partition
        lost with its worker is rebuilt by replaying its versions from the source files, to
        the same bits."""
        self.states = self.client.map(
            _evaluate,
            self.states,
            pure=False,
            theta=np.asarray(theta, dtype=np.float64),
            beta=np.asarray(beta, dtype=np.float64),
            what=what,
            blas_threads=self.blas_threads,
        )
        parts = self.gather(_output)
        if self.rows >= RETURN_MEMORY_ROWS:
            # Each evaluation's temporaries leave freed memory between the partitions' arrays.
            self.client.run(_return_free_memory)
        for _, iterations, failures in parts:
            self.counters.pirls_iterations += iterations
            self.counters.pirls_failures += failures
        return [value for value, _, _ in parts]

    def deviance_and_gradient(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        """Sum over partitions, in partition order (the same order every time)."""
        self.counters.evaluations += 1
        self.counters.gradients += 1
        return self._sum(self.evaluate("deviance_and_gradient", theta, beta), theta, beta)

    @staticmethod
    def _sum(
        parts: list[Any], theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        deviance = 0.0
        grad_theta = np.zeros(len(theta))
        grad_beta = np.zeros(len(beta))
        for value, g_theta, g_beta in parts:
            deviance += value
            grad_theta += g_theta
            grad_beta += g_beta
        return deviance, grad_theta, grad_beta

    def fixed_information(self, theta: FloatArray, beta: FloatArray) -> FloatArray:
        parts = self.evaluate("fixed_information", theta, beta)
        info = np.zeros((len(beta), len(beta)))
        for part in parts:
            info += part
        return info


def _resolve_client(distributed: Any, client: Any) -> tuple[Any, bool]:
    """The client to use and whether this module created it (then it closes it)."""
    if client is None:
        try:
            return distributed.get_client(), False
        except ValueError:
            raise ValueError(
                "fitting a Dask DataFrame needs a Dask distributed client: start one "
                "(distributed.Client() for a local cluster, or Client('tcp://host:8786') for a "
                "running scheduler) or pass client= a Client or a scheduler address"
            ) from None
    if isinstance(client, str):
        return distributed.Client(client), True
    if isinstance(client, distributed.Client):
        return client, False
    raise ValueError(f"client must be a distributed.Client or a scheduler address, got {client!r}")


def _return_free_memory() -> int:
    """Ask glibc's allocator to return free pages to the operating system (malloc_trim, which
    also releases free pages between live blocks); 0 where there is no glibc."""
    try:
        import ctypes

        return int(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return 0


def _add_row_ids(frame: pd.DataFrame, partition_info: dict[str, Any] | None = None) -> Any:
    number = 0 if partition_info is None else int(partition_info["number"])
    out = frame.copy(deep=False)
    out[ROW_COLUMN] = (np.int64(number) << np.int64(40)) + np.arange(len(frame), dtype=np.int64)
    return out


def _is_factor(dtype: Any) -> bool:
    return not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def fit_dask(
    formula: str,
    data: Any,
    options: FitOptions | None = None,
    weights: str | None = None,
    offset: str | None = None,
    client: Any = None,
    npartitions: int | None = None,
    stacklevel: int = 3,
) -> DaskGLMMResult:
    """Fit a binomial GLMM to a Dask DataFrame on a Dask distributed cluster.

    The numbers are those of the in-memory fit (glmm_binomial.fit on the computed frame) up to
    the order of floating-point sums. client: a distributed.Client, or a scheduler address
    ('tcp://host:8786'); None uses the current client (distributed.get_client()).
    options: the FitOptions (methods.options; None: the defaults, method "laplace").
    npartitions: partitions after the shuffle on the outermost grouping factor (None: as many
    as data has). weights and offset must be column names. method "laplace", "agq" (one
    grouping factor) or "vb_meanfield" (distributed_vb.py; prior_fe_sd, prior_log_sd_sd and a
    VariationalControl as in memory); every grouping factor must be nested in one outermost
    factor, or (laplace) crossed with it with at most distributed_crossed.DASK_CROSSED_LIMIT
    random effects in all. As in memory, laplace and agq are estimated on internally centred
    and scaled columns
    (glmm_binomial.methods.scaling, chosen from the columns' moments combined over the partitions),
    mapped back exactly and checked on the user's columns; a partition whose columns were
    changed keeps both versions of them while the fit runs. The fit's warnings are emitted
    (warnings.warn) as fit() emits them, and validation.check_model's identifiability check is
    run (from counts gathered anyway).
    """
    dask, distributed = _import_dask()
    if not isinstance(formula, str):
        raise ValueError("formula must be a string such as 'y ~ x + (1 | g)'")
    options = options or fit_options()
    method_object = options.method
    method = method_object.name
    if method == "vb":
        raise ValueError(
            "method='vb' (structured variational Bayes) is not available on a Dask DataFrame: "
            "fit ddf.compute() in memory for it, or use method='vb_meanfield' (mean-field "
            "variational Bayes, fitted on the partitions; its SDs understate the posterior's)"
        )
    n_agq = getattr(method_object, "n_agq", 1)
    control: Any = getattr(method_object, "control", None)
    pirls_control = getattr(method_object, "pirls_control", None)
    prior_fe_sd = getattr(method_object, "prior_fe_sd", 2.0)
    prior_log_sd_sd = getattr(method_object, "prior_log_sd_sd", 1.0)
    conf_level, blas_threads = options.conf_level, options.blas_threads
    if npartitions is not None and (
        isinstance(npartitions, bool) or not isinstance(npartitions, int) or npartitions < 1
    ):
        raise ValueError(f"npartitions must be a positive integer, got {npartitions!r}")
    parsed = parse_formula(formula)
    if not parsed.random:
        raise ValueError(
            f"formula '{formula}' has no random-effect term such as (1 | group); "
            "for a plain logistic regression use a GLM"
        )
    columns = list(data.columns)
    missing = [v for v in parsed.variables if v not in columns]
    if missing:
        raise ValueError(
            f"formula '{formula}' uses column(s) not in data: {', '.join(map(repr, missing))}; "
            f"available: {', '.join(map(str, columns))}"
        )
    for name, value in (("weights", weights), ("offset", offset)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"with a Dask DataFrame, {name} must be a column name")
        if value is not None and value not in columns:
            raise ValueError(f"{name} names column '{value}', which is not in data")
    if method == "agq" and len({term.group for term in parsed.random}) > 1:
        raise ValueError(
            "method='agq' on a Dask DataFrame takes one grouping factor (as (1 + x | g)); "
            "use method='laplace', or fit in memory: glmm_binomial.fit(formula, ddf.compute())"
        )
    candidates, to_check = _nesting_plan(parsed)
    client, own_client = _resolve_client(distributed, client)
    try:
        # Task-based shuffles: deterministic, and cheap at the sizes of the learning pass.
        with dask.config.set({"dataframe.shuffle.method": "tasks"}):
            result = _fit(
                dask,
                client,
                formula,
                parsed,
                data,
                method=method,
                weights=weights,
                offset=offset,
                n_agq=n_agq,
                conf_level=conf_level,
                priors=(float(prior_fe_sd), float(prior_log_sd_sd)),
                control=control,
                pirls_control=pirls_control or PirlsControl(),
                blas_threads=blas_threads,
                npartitions=npartitions,
                candidates=candidates,
                to_check=to_check,
            )
    finally:
        if own_client:
            client.close()
    emit_fit_warnings(result.warnings, stacklevel=stacklevel)
    return result


def _fit(
    dask: Any,
    client: Any,
    formula: str,
    parsed: ParsedFormula,
    data: Any,
    *,
    method: str,
    weights: str | None,
    offset: str | None,
    n_agq: int,
    conf_level: float,
    priors: tuple[float, float],
    control: Any,
    pirls_control: PirlsControl,
    blas_threads: int | None,
    npartitions: int | None,
    candidates: list[str],
    to_check: list[tuple[str, ...]],
) -> DaskGLMMResult:
    used = list(dict.fromkeys([*parsed.variables, *(c for c in (weights, offset) if c)]))
    dtypes = data.dtypes
    response_vars: set[str] = set()
    response = parsed.response
    for expr in (response.successes, response.failures):
        if expr:
            response_vars.update(
                v for v in parsed.variables if re.search(rf"\b{re.escape(v)}\b", expr)
            )
    group_vars = list(dict.fromkeys(v for term in parsed.random for v in term.group))
    factor_vars = [
        v
        for v in parsed.variables
        if v not in response_vars and v not in group_vars and _is_factor(dtypes[v])
    ]
    simple_factor_response = (
        response.kind != "cbind"
        and response.successes in _columns(data)
        and not pd.api.types.is_numeric_dtype(dtypes[response.successes])
    )

    # Object columns whose values enter the model are numbers when every value reads as one
    # (as in memory, frame.numbers_as_numeric); the learning pass finds out.
    object_vars = [
        v
        for v in factor_vars
        if pd.api.types.is_object_dtype(dtypes[v]) and v in value_variables(parsed)
    ]

    # 1. The learning pass: one task per partition, combined on the client.
    complete = data[used].dropna()
    value_vars = list(factor_vars)
    if simple_factor_response:
        value_vars.append(response.successes)
    combos = list(dict.fromkeys(term.group for term in parsed.random))
    nesting = [(c, g) for c in candidates for g in to_check if c not in g]
    summarize = dask.delayed(_summarize, pure=True)
    merge = dask.delayed(_merge, pure=True)
    started = time.perf_counter()
    level = [
        summarize(p, value_vars, combos, nesting, object_vars) for p in data[used].to_delayed()
    ]
    # Merged in a tree on the workers, neighbours first (partition order is kept): at a million
    # groups each partition's distinct labels are most of them, too many to gather at once.
    while len(level) > 1:
        level = [merge(level[i : i + MERGE_FAN_IN]) for i in range(0, len(level), MERGE_FAN_IN)]
    summary = client.compute(level[0]).result()
    learned = _combine(summary, nesting)
    numeric_columns = tuple(v for v in object_vars if summary[f"numeric:{v}"])
    factor_vars = [v for v in factor_vars if v not in numeric_columns]
    LOG.info("learning pass: %.1f s", time.perf_counter() - started)

    partition_var = None
    for c in candidates:
        if all(c in g or learned[f"nested:{c}:{g}"] <= 1 for g in to_check):
            partition_var = c
            break
    crossed_groups: list[tuple[str, ...]] = []
    if partition_var is None:
        # Factors crossed with the partitioning one: their random effects are global
        # (distributed_crossed.py).
        partition_var, crossed_groups = crossed_plan(candidates, to_check, learned)
        if method == "vb_meanfield":
            # VB's sums decompose over any rows, but its reported log-likelihood (Laplace at
            # the posterior means) needs the crossed Laplace objective: not wired up for VB.
            raise _not_decomposable(
                "method='vb_meanfield' needs every grouping factor nested in one outermost factor; "
                "factors crossed with it are fitted by method='laplace'"
            )
    uniques = {v: _sorted_levels(learned[f"unique:{v}"]) for v in factor_vars}
    # The levels present, in category order for a categorical (R's droplevels), else sorted.
    categories = {v: uniques[v] for v in factor_vars}
    response_levels = None
    if simple_factor_response:
        dtype = dtypes[response.successes]
        present = list(learned[f"unique:{response.successes}"])
        if isinstance(dtype, pd.CategoricalDtype) and dtype.categories is not None:
            levels = [c for c in dtype.categories if c in set(present)]
        else:
            levels = sorted(pd.unique(pd.Series(present)), key=str)
        if len(levels) != 2:
            raise ValueError(
                f"response '{response.successes}' must be 0/1, logical or a factor with two "
                f"levels; it has {len(levels)} distinct values"
            )
        response_levels = (levels[0], levels[1])
    n_complete = int(learned["complete"])
    if n_complete < 2:
        raise ValueError(f"fewer than two complete rows in data for formula '{formula}'")

    # The model specs: formulaic learns the columns from a few rows coded as every partition
    # will be (the levels fixed above).
    sample = learned["sample"]
    proto = PartitionDesign(
        parsed,
        None,
        (),
        (),
        (),
        categories,
        numeric_columns,
        response_levels,
        weights,
        offset,
        method,
        n_agq,
        pirls_control,
        control,
        blas_threads,
        priors,
    )
    coded = _with_categories(sample, proto)
    _check_widths(parsed, categories, coded, n_complete)
    fixed_spec = _spec(parsed.fixed, coded, "fixed-effects term")
    offset_specs = tuple(_spec(f"0 + {expr}", coded, f"offset({expr})") for expr in parsed.offsets)
    random_specs = tuple(
        None if term.expr == "1" else _spec(term.expr, coded, f"random-effect term {term.text}")
        for term in parsed.random
    )
    group_specs = []
    for term, spec in zip(parsed.random, random_specs, strict=True):
        group = _group_spec(term, spec, learned[f"combos:{term.group}"])
        if len(group.levels) < 2:
            raise ValueError(
                f"grouping factor '{':'.join(term.group)}' in {term.text} has a single level; "
                "a random effect needs at least two groups"
            )
        group_specs.append(group)
    if method == "vb_meanfield":
        _check_vb_terms(parsed, fixed_spec, random_specs, tuple(group_specs), coded)
    design = dataclasses.replace(
        proto,
        fixed_spec=fixed_spec,
        random_specs=random_specs,
        offset_specs=offset_specs,
        group_specs=tuple(group_specs),
        crossed=crossed_terms(parsed, random_specs, group_specs, crossed_groups),
    )

    # 2. Shuffle once on the partitioning factor; each partition becomes a ModelData and an
    # objective on its worker.
    with_ids = complete.map_partitions(_add_row_ids, meta=_add_row_ids(complete._meta))
    shuffled = with_ids.shuffle(
        on=partition_var,
        npartitions=npartitions or data.npartitions,
        shuffle_method="tasks",
    )
    parts = shuffled.to_delayed()
    build = dask.delayed(build_partition, pure=True)
    started = time.perf_counter()
    # Only `partitions` holds the futures, so that keep_columns can release the first ones.
    # The design holds every level of the grouping factors (a million labels at scale): sent
    # to the workers once, not embedded in every task.
    shared = client.scatter(design, broadcast=True, hash=False)
    states = client.compute([build(p, shared) for p in parts])
    partitions = _Partitions(client, states, blas_threads, shared)
    partitions.rows = n_complete
    del states
    try:
        return _optimize(
            partitions,
            parsed,
            design,
            n_rows=int(learned["rows"]),
            n_complete=n_complete,
            conf_level=conf_level,
            started=started,
        )
    finally:
        if design.crossed:
            forget_partitions(client, partitions)
        client.cancel(partitions.states)


def _columns(data: Any) -> list[str]:
    return [str(c) for c in data.columns]


@dataclass
class _Start:
    """What the first passes over the partitions found: the GLM start, its information, the
    fixed-effect columns kept (aliased ones dropped), the largest |x| of each kept column and
    |z| of each block's columns, and whether every row is one Bernoulli trial."""

    beta: FloatArray
    info: FloatArray
    kept: list[int]
    largest: FloatArray
    z_spread: list[FloatArray]
    bernoulli: bool
    scaling: Scaling


def _glm_start(partitions: _Partitions, design: PartitionDesign, names: Sequence[str]) -> _Start:
    """optimize.glm_start on partition sums: beta of the fixed-effects-only logistic regression
    and its information X'WX. Aliased columns of X are found as design.aliased_columns finds
    them, on the stacked R factors of the partitions' QR decompositions (R'R = X'X: the same
    column norms and unpivoted R diagonal), and dropped from every partition."""
    # VB runs the GLM start too (its own start is the prior's MAP), with the default rules.
    control = design.control if isinstance(design.control, OptimizerControl) else OptimizerControl()
    n_all = len(names)
    zero = np.zeros(n_all)
    start = partitions.evaluate("glm_start", zero, zero)
    r = np.vstack([part[0] for part in start])
    dropped = set(aliased_columns(r))
    kept = [j for j in range(n_all) if j not in dropped]
    if dropped:
        partitions.keep_columns(kept)
    n_fixed = len(kept)
    r = r[:, kept]
    xo = sum((part[1] for part in start), np.zeros(n_all))[kept]
    k = sum(part[2] for part in start)
    m = sum(part[3] for part in start)
    largest = np.max(np.vstack([part[4] for part in start]), axis=0)[kept]
    column_sums = sum((part[5] for part in start), np.zeros(n_all))[kept]
    bernoulli = all(part[6] for part in start)
    n_blocks = len(start[0][7])
    z_spread = [np.max(np.vstack([part[7][t] for part in start]), axis=0) for t in range(n_blocks)]
    # The internal centring and scaling of the in-memory fit (scaling.choose_scaling), from the
    # columns' moments combined over the partitions.
    x_moments = combine_moments([part[8] for part in start])
    x_moments = dataclasses.replace(
        x_moments,
        mean=x_moments.mean[kept],
        m2=x_moments.m2[kept],
        ones=x_moments.ones[kept],
    )
    z_moments = [combine_moments([part[9][t] for part in start]) for t in range(n_blocks)]
    centre_random = design.method == "laplace" or design.n_agq == 1
    scaling = choose_scaling_from_moments(x_moments, z_moments, control, centre_random)
    if design.method == "vb_meanfield":
        # VB's priors are stated in the user's units: its columns are never rescaled.
        scaling = Scaling(np.eye(n_fixed), tuple(np.eye(len(m.mean)) for m in z_moments))
    rate = (k + 0.5) / (m + 1.0)
    # lstsq(X, logit(rate) - offset) by the normal equations with X'X = R'R.
    xtx = r.T @ r
    beta = np.zeros(n_fixed)
    try:
        target = column_sums * np.log(rate / (1.0 - rate)) - xo
        beta = scipy.linalg.cho_solve(scipy.linalg.cho_factor(xtx), target)
        # On the internal columns X C the same fit has coefficients C^{-1} beta.
        beta = np.linalg.solve(scaling.fixed, beta)
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        beta = np.zeros(n_fixed)
    if not scaling.is_identity:
        partitions.to_internal(scaling)
        # The separation screens look at the columns the fit is made on.
        spreads = partitions.evaluate("largest", np.zeros(0), np.zeros(0))
        largest = np.max(np.vstack([part[0] for part in spreads]), axis=0)
        z_spread = [
            np.max(np.vstack([part[1][t] for part in spreads]), axis=0) for t in range(n_blocks)
        ]
    info = np.eye(n_fixed)
    for _ in range(control.glm_max_iter):
        parts = partitions.evaluate("glm", np.zeros(0), beta)
        info = np.zeros((n_fixed, n_fixed))
        score = np.zeros(n_fixed)
        for part_info, part_score in parts:
            info += part_info
            score += part_score
        factor = scipy.linalg.cholesky(info + 1e-12 * np.eye(n_fixed), lower=False)
        step = scipy.linalg.cho_solve((factor, False), score)
        beta = beta + step
        if float(np.max(np.abs(step))) < control.glm_tol or not np.all(np.isfinite(beta)):
            break
    if not np.all(np.isfinite(beta)):
        beta, info = np.zeros(n_fixed), np.eye(n_fixed)
    return _Start(beta, info, kept, largest, z_spread, bernoulli, scaling)


def _check_identifiable(
    start: _Start, blocks: Sequence[RandomBlock], n_complete: int, method: str, info: DesignInfo
) -> None:
    """validation.check_model (lme4's check.nobs.vs.nlev), run only when it can fail (every row
    one Bernoulli trial and no more rows than the random effects of some block): then on
    stand-in rows with every level used, as every level of a Dask fit is."""
    if not start.bernoulli or all(n_complete > b.n_levels * b.k for b in blocks):
        return
    n = n_complete
    stand_in = ModelData(
        np.zeros(n),
        np.ones(n),
        np.zeros((n, 0)),
        np.zeros(n),
        (),
        tuple(
            dataclasses.replace(
                b, codes=np.arange(n, dtype=np.intp) % b.n_levels, z=np.zeros((n, b.k))
            )
            for b in blocks
        ),
        log_binomial_constant=0.0,
    )
    check_identifiable(stand_in, term_texts(stand_in, info))


def _separation(
    partitions: _Partitions,
    surrogate: ModelData,
    start: _Start,
    theta: FloatArray,
    beta: FloatArray,
    n_complete: int,
    limit: float,
) -> tuple[tuple[FitWarning, ...], tuple[int, ...]]:
    """separation.separation_report on the rows gathered to the client, run only when its
    screens (|beta| x max |x|, SD x max |z|) fire and the rows are few enough to gather;
    beyond, a warning that the exact check was not run."""
    large = large_coefficients(start.largest[None, :], beta, limit)
    runaway = False
    for lam, spread in zip(surrogate.lambdas(theta), start.z_spread, strict=True):
        sd = np.sqrt(np.sum(lam * lam, axis=1))
        runaway = runaway or bool(np.any(sd * spread > limit))
    if not large and not runaway:
        return (), ()
    width = surrogate.n_fixed + sum(b.k for b in surrogate.blocks)
    if n_complete * width > SEPARATION_GATHER_LIMIT:
        message = (
            f"possible separation: some estimate moves the log-odds by more than {limit:g} "
            "across its column; the data are too large to gather for the exact check (fit in "
            "memory to run it)"
        )
        return (FitWarning(message, SeparationWarning),), large
    arrays = partitions.gather(_design_arrays)
    blocks = tuple(
        dataclasses.replace(
            block,
            codes=np.concatenate([a[3][t][0] for a in arrays]),
            z=np.vstack([a[3][t][1] for a in arrays]),
        )
        for t, block in enumerate(surrogate.blocks)
    )
    rows = ModelData(
        np.concatenate([a[1] for a in arrays]),
        np.concatenate([a[2] for a in arrays]),
        np.vstack([a[0] for a in arrays]),
        np.zeros(n_complete),
        surrogate.fixed_names,
        blocks,
        log_binomial_constant=0.0,
    )
    return separation_report(rows, beta, theta, limit)


def _optimize(
    partitions: _Partitions,
    parsed: ParsedFormula,
    design: PartitionDesign,
    *,
    n_rows: int,
    n_complete: int,
    conf_level: float,
    started: float,
) -> DaskGLMMResult:
    control, method = design.control, design.method
    # The structure of the model, from the specs (one row of every partition has it).
    first = partitions.gather(_structure)
    if not first:
        raise ValueError("data has no complete rows")
    all_names, block_terms, log_constant = first[0][0], first[0][1], sum(f[2] for f in first)
    start = _glm_start(partitions, design, all_names)
    fixed_names = tuple(all_names[j] for j in start.kept)
    dropped_names = [name for name in all_names if name not in fixed_names]
    design_warnings: tuple[FitWarning, ...] = ()
    if dropped_names:
        design_warnings = (rank_deficiency_warning(dropped_names),)
    n_fixed = len(fixed_names)
    blocks = tuple(
        RandomBlock(
            ":".join(term.group),
            terms,
            np.zeros(0, dtype=np.intp),
            group.levels,
            np.zeros((0, len(terms))),
        )
        for term, terms, group in zip(parsed.random, block_terms, design.group_specs, strict=True)
    )
    info = DesignInfo(
        formula=parsed,
        fixed_spec=design.fixed_spec,
        random_specs=design.group_specs,
        n_dropped=n_rows - n_complete,
        response_name=parsed.response.successes,
        offset_specs=design.offset_specs,
        offset_source="none" if design.offset is None else "column",
        offset_column=design.offset,
        kept_columns=tuple(start.kept),
        dropped_columns=tuple(dropped_names),
        warnings=design_warnings,
    )
    _check_identifiable(start, blocks, n_complete, method, info)
    surrogate = _rowless_model(fixed_names, blocks, log_binomial_constant=0.0, rows=0)
    # The shuffle and the partitions' construction leave freed memory scattered between the
    # arrays the partitions keep, which the allocator does not return by itself.
    partitions.client.run(_return_free_memory)
    LOG.info("shuffle, partition models and GLM start: %.1f s", time.perf_counter() - started)
    started = time.perf_counter()
    if method == "vb_meanfield":
        from glmm_binomial.distributed.vb import fit_partitioned_vb

        check_independent_terms(surrogate, info)
        with_constant = _rowless_model(
            fixed_names, blocks, log_binomial_constant=log_constant, rows=n_complete
        )
        vb_output = fit_partitioned_vb(partitions, with_constant, design)
        LOG.info("variational optimizer: %.1f s", time.perf_counter() - started)
        return DaskGLMMResult(
            with_constant, require_finite(vb_output), design=info, conf_level=conf_level
        )
    deviance_and_gradient = partitions.deviance_and_gradient
    counters = partitions.counters
    crossed = None
    if design.crossed:
        q_c = sum(blocks[t].n_levels * blocks[t].k for t in design.crossed)
        run = dask_runner(partitions)
        crossed = CrossedObjective(run, q_c, design.pirls_control, partitions.blas_threads)
        deviance_and_gradient, counters = crossed.deviance_and_gradient, crossed.counters
        information = crossed.fixed_information
    elif method == "laplace":
        information = partitions.fixed_information
    else:
        glm_info = start.info

        def information(theta: FloatArray, beta: FloatArray) -> FloatArray:
            return glm_info + 1e-12 * np.eye(n_fixed)  # as glm_start's factor

    estimates = minimize_deviance(
        surrogate,
        deviance_and_gradient,
        control,
        counters,
        method,
        StartPoint(
            surrogate.theta_start(),
            start.beta,
            scipy.linalg.cholesky(start.info + 1e-12 * np.eye(n_fixed), lower=False),
        ),
        fixed_information=information,
    )
    label = "Laplace approximation"
    if method == "agq":
        label = f"adaptive Gauss-Hermite quadrature, n_agq={design.n_agq} (product rule)"
        summary = dataclasses.replace(
            estimates.summary,
            tolerances={**estimates.summary.tolerances, "n_agq": float(design.n_agq)},
        )
        estimates = dataclasses.replace(estimates, summary=summary)

    # Conditional modes from the partitions, placed in the global level order.
    theta, beta = estimates.theta, estimates.beta
    LOG.info("optimizer: %.1f s", time.perf_counter() - started)
    started = time.perf_counter()
    scaling = start.scaling
    if crossed is not None:
        n_levels, ks = [b.n_levels for b in blocks], [b.k for b in blocks]
        ranef, ranef_cov = crossed.conditional_effects(theta, beta, n_levels, ks, design.crossed)
    else:
        pieces = partitions.evaluate("conditional_modes", theta, beta)
        ranef, ranef_cov = [], []
        for t, block in enumerate(blocks):
            k = block.k
            modes = np.full((block.n_levels, k), np.nan)
            covs = np.full((block.n_levels, k, k), np.nan)
            for where, part_modes, part_covs in pieces:
                modes[where[t]] = part_modes[t]
                covs[where[t]] = part_covs[t]
            ranef.append(modes)
            ranef_cov.append(covs)
    # On the internal columns, as the in-memory fit checks them.
    separation = _separation(
        partitions, surrogate, start, theta, beta, n_complete, control.separation_screen
    )
    LOG.info("conditional modes and checks: %.1f s", time.perf_counter() - started)
    output = fit_output(
        surrogate,
        estimates,
        control,
        method,
        label,
        tuple(ranef),
        tuple(ranef_cov),
        separation,
        design.n_agq,
    )
    if not scaling.is_identity:
        output = to_user(surrogate, scaling, output)
        user_check = partitions.user_deviance_and_gradient
        if crossed is not None:
            user_run = dask_runner(partitions, user=True)
            user_check = CrossedObjective(
                user_run, crossed.q_c, design.pirls_control, partitions.blas_threads
            ).deviance_and_gradient
        output = check_in_user_units(output, user_check, control)
    output = final_checks(output)  # as fit()'s in-memory paths
    model = _rowless_model(fixed_names, blocks, log_binomial_constant=log_constant, rows=n_complete)
    return DaskGLMMResult(model, output, design=info, conf_level=conf_level)


def _structure(
    state: PartitionState | None,
) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...], float] | None:
    if state is None:
        return None
    d = state.data
    return d.fixed_names, tuple(b.terms for b in d.blocks), float(d.log_binomial_constant)
