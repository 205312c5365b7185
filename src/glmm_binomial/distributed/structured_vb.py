"""Structured variational Bayes (methods/structured_vb.py, method "vb") on a Dask DataFrame's
partitions.

When every grouping factor is nested in the partitioning one, each partition holds whole levels
of all of them, so the matrix H = Lambda' Z' W Z Lambda + I of q(beta, b) is block diagonal
over the partitions and the inner loop splits into each partition's work on its rows and random
effects (methods/structured_rows.py) and p-dimensional sums: the shares of the p x p Schur
complement and of log det H, of X' g and X' W Z Lambda H^{-1} g_u for the step in beta, of the
Newton decrement, the rows' expected log-likelihood, |u|^2, tr Cov(u) and the second moments
A_t. Each StructuredPartition holds a StructuredRows on its rows; the client's
StructuredObjective (the in-memory one, given runners over the partitions) adds the shares in
partition order, takes every decision of the inner loop and runs the same optimizer, so the fit
is the in-memory one up to the order of floating-point sums (measured: within 1e-9 relative
where the optimizer takes the in-memory path, up to 8e-8 where the rounding changes one of its
decisions: within its own tolerance; tests/test_distributed_structured_vb.py).

Calls that move a partition's state (its means u, row weights, and the current covariance,
direction and step) go through Partitions.advance: every call makes a new version of the
partition (runner.py), so where Dask runs a task cannot change a number and a lost partition is
rebuilt by replaying its calls, whose arguments are small (Lambda per block, S^{-1} and steps in
beta: p x p at most). An inner loop of k Newton iterations takes 3 + 2k round trips: its first
covariance, a direction and a step per iteration (the step's answer comes with the covariance
after the full step, made while the client decides whether to take it), the last direction
and the finish; the line search's trial values are reads.
A partition keeps its rows and about 3p + 10 numbers per row (row weights, E[eta_i], Var(eta_i),
the rows' derivatives and steps, G's rows r_i, Z Lambda's values).

Factors crossed with the partitioning one are not fitted here: H then couples the partitions
(the driver refuses them). The separation checks of the in-memory fit (linear programs over all
rows) are not run: when the posterior gives a reason to check (posterior_checks.py), the result
carries a SeparationWarning saying that separation is possible and was not checked.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.diagnostics import FitWarning, SeparationWarning
from glmm_binomial.distributed.partition import Partition, PartitionPlan, compact, place_effects
from glmm_binomial.distributed.runner import Runner
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.methods.structured_rows import (
    DirectionShare,
    FinishShare,
    StructuredRows,
)
from glmm_binomial.methods.structured_vb import (
    Covariance,
    StructuredObjective,
    VariationalBayes,
    fit_structured_vb_detailed,
)
from glmm_binomial.model.data import ModelData

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

NOT_CHECKED = (
    "the linear programs that decide it need every row and are not run on a Dask DataFrame "
    "(fit ddf.compute() in memory to run them)"
)


def fit_partitioned_structured_vb(
    advance: Runner, read: Runner, model: ModelData, method: VariationalBayes
) -> FitOutput:
    """fit_structured_vb on the partitions (StructuredPartitions: advance, the runner for calls
    that move their state, Partitions.advance; read, for reads, Partitions.read); model: the
    rowless model of the whole data set (names, blocks with all levels, binomial constant)."""
    objective = PartitionedStructuredObjective(advance, read, model, method)
    return fit_structured_vb_detailed(model, objective=objective).output


class PartitionedStructuredObjective(StructuredObjective):
    """StructuredObjective whose sets of rows are the partitions: the random effects placed
    over all levels, the Laplace log-likelihood summed, separation not checked."""

    separation_checked: ClassVar[bool] = False  # the linear programs need every row

    def __init__(
        self, advance: Runner, read: Runner, model: ModelData, method: VariationalBayes
    ) -> None:
        super().__init__(
            model,
            method.prior_fe_sd,
            method.prior_log_sd_sd,
            method.lkj_eta,
            method.control,
            advance=advance,
            read=read,
            column_rms=column_rms(read("column_squares"), [b.k for b in model.blocks]),
        )

    def newton_step(
        self, d_beta: FloatArray, damping: float = 1.0
    ) -> tuple[float, list[Any] | None]:
        # The partitions also factorize at the full step while the client decides (the usual
        # decision near the optimum): one round trip instead of two.
        largest, pieces = 0.0, []
        answers = self.advance("newton_step", d_beta=d_beta, stepped=True, damping=damping)
        for part_largest, part_pieces in answers:
            largest = max(largest, part_largest)
            pieces.append(part_pieces)
        return largest, pieces

    def random_effects(self, cov: Covariance) -> tuple[list[FloatArray], list[FloatArray]]:
        pieces = self.read("random_effects", schur_inverse=cov.schur_inverse)
        blocks = self.data.blocks
        return place_effects(pieces, [b.n_levels for b in blocks], [b.k for b in blocks])

    def laplace_loglik(self, theta: FloatArray, beta: FloatArray) -> float:
        # Every grouping factor is nested in the partitioning one: the Laplace deviance is the
        # sum of the partitions' (binomial constants included).
        deviance = 0.0
        for value in self.read("laplace_deviance", theta=theta, beta=beta):
            deviance += value
        return -0.5 * deviance

    def fixed_effect_separation(self) -> FitWarning | None:
        return unchecked_fixed_separation(self.prior_fe_sd)

    def group_separation(self, loose: list[int]) -> FitWarning | None:
        return unchecked_group_separation(self.data, loose)


def unchecked_fixed_separation(prior_fe_sd: float) -> FitWarning:
    """What a Dask fit says where the in-memory fit would decide whether the fixed effects
    separate the response (posterior_checks.fixed_effect_separation): that they may."""
    return FitWarning(
        "possible separation: the posterior of the fixed effects rests largely on their "
        f"N(0, {prior_fe_sd:g}^2) prior (the data add little information along some "
        f"direction, or a posterior mean lies far in the prior's tail); {NOT_CHECKED}",
        SeparationWarning,
    )


def unchecked_group_separation(model: ModelData, loose: list[int]) -> FitWarning | None:
    """What a Dask fit says where the in-memory fit would decide whether the groups of the
    blocks `loose` separate the response (posterior_checks.group_separation): that they may
    (None when `loose` is empty)."""
    if not loose:
        return None
    groups = ", ".join(dict.fromkeys(model.blocks[t].group for t in loose))
    return FitWarning(
        f"possible separation within groups of {groups}: the posterior of their "
        f"random-effect SDs stays about as wide as the log-normal prior; {NOT_CHECKED}",
        SeparationWarning,
    )


def column_rms(squares: list[tuple[list[FloatArray], int]], ks: list[int]) -> list[FloatArray]:
    """The root mean square of each block's random-effect columns over all rows, from the
    partitions' sums of squares and row counts (added in partition order)."""
    totals = [np.zeros(k) for k in ks]
    n = 0
    for sums, rows in squares:
        for total, part in zip(totals, sums, strict=True):
            total += part
        n += rows
    return [np.sqrt(total / n) for total in totals]


# --- on the workers ---------------------------------------------------------------------------
class StructuredPartition(Partition):
    """A partition's rows and random effects in structured VB: a StructuredRows on its rows
    (sorted by the layout's first factor and stored so, compactly), whose state moves with
    every inner-loop call (a new version each, runner.evaluate)."""

    def __init__(
        self,
        data: ModelData,
        keys: tuple[IntArray, ...],
        method: VariationalBayes,
        user_data: ModelData | None = None,
    ) -> None:
        data = compact(data)
        rows = StructuredRows(data)
        if rows.data is not data:
            # StructuredRows keeps the rows sorted by its first factor: store them once, in
            # that order and compactly.
            data = compact(rows.data)
            rows = StructuredRows(data)
        self.data = data
        self.keys = keys
        self.method = method
        self.user_data = user_data
        self.rows = rows
        # The rows after the full Newton step, with its covariance (newton_step(stepped=True)).
        self.stepped: StructuredRows | None = None
        self.output = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled (when Dask copies a partition to another worker) as what rebuilds it: its
        # rows, stored compactly again (a broadcast column pickles as a full one, and a dot
        # product with it rounds differently), and the state of its StructuredRows.
        states = [
            None
            if rows is None
            else {
                name: value
                for name, value in vars(rows).items()
                if name not in ("data", "structure", "xt")
            }
            for rows in (self.rows, self.stepped)
        ]
        return _restored, (self.data, self.keys, self.method, *states, self.output)

    @classmethod
    def from_rows(
        cls, data: ModelData, keys: tuple[IntArray, ...], plan: PartitionPlan
    ) -> StructuredPartition:
        method = plan.options.method
        assert isinstance(method, VariationalBayes)
        return cls(data, keys, method)

    def on_rows(self, data: ModelData) -> StructuredPartition:
        return StructuredPartition(data, self.keys, self.method)

    def next_version(self) -> StructuredPartition:
        version = copy.copy(self)
        # The StructuredRows' state (values it replaces, never changes in place) becomes the
        # version's own; its rows and structure stay shared.
        version.rows = copy.copy(self.rows)
        version.output = None
        return version

    def __sizeof__(self) -> int:
        # The rows plus the inner loop's per-row arrays (module docstring).
        return int(super().__sizeof__() + 8 * (3 * self.data.n_fixed + 10) * self.data.n_obs)

    # --- calls that move the state (Partitions.advance) ---------------------------------------
    def covariance_pieces(
        self,
        lambdas: list[FloatArray] | None = None,
        beta: FloatArray | None = None,
        step: float | None = None,
        trial_weights: bool = False,
        damping: float = 1.0,
    ) -> tuple[FloatArray, float]:
        self.stepped = None
        return self.rows.covariance_pieces(lambdas, beta, step, trial_weights, damping)

    def direction(self, schur_inverse: FloatArray, stepped: bool = False) -> DirectionShare:
        """StructuredRows.direction; stepped: from the rows after the full Newton step (the
        client took it), else from the current ones."""
        if stepped:
            assert self.stepped is not None
            # A copy: the previous version's rows stay as they were.
            self.rows = copy.copy(self.stepped)
        self.stepped = None
        return self.rows.direction(schur_inverse)

    def newton_step(
        self, d_beta: FloatArray, stepped: bool = False, damping: float = 1.0
    ) -> tuple[float, tuple[FloatArray, float] | None]:
        """StructuredRows.newton_step; stepped: also the covariance's pieces after the full
        step, the weights moved by `damping` (made on a copy of the rows, adopted by
        direction(stepped=True))."""
        largest = self.rows.newton_step(d_beta)
        self.stepped = None
        if not stepped:
            return largest, None
        rows = copy.copy(self.rows)
        pieces = rows.covariance_pieces(step=1.0, damping=damping)
        self.stepped = rows
        return largest, pieces

    def finish(
        self, step: float, schur_inverse: FloatArray, d_beta: FloatArray | None = None
    ) -> FinishShare:
        self.stepped = None
        return self.rows.finish(step, schur_inverse, d_beta)

    # --- reads --------------------------------------------------------------------------------
    def row_values(self, steps: tuple[float, ...]) -> list[tuple[float, float]]:
        return self.rows.row_values(steps)

    def random_effects(
        self, schur_inverse: FloatArray
    ) -> tuple[tuple[IntArray, ...], list[FloatArray], list[FloatArray]]:
        """The posterior means and covariances of this partition's levels, with its keys."""
        ranef, ranef_cov = self.rows.random_effects(schur_inverse)
        return self.keys, ranef, ranef_cov

    def column_squares(self) -> tuple[list[FloatArray], int]:
        return self.rows.column_squares()

    def laplace_deviance(self, theta: FloatArray, beta: FloatArray) -> float:
        return LaplaceObjective(self.data).deviance(theta, beta)


def _restored(
    data: ModelData,
    keys: tuple[IntArray, ...],
    method: VariationalBayes,
    state: dict[str, Any],
    stepped: dict[str, Any] | None,
    output: Any,
) -> StructuredPartition:
    """A StructuredPartition as StructuredPartition.__reduce__ pickled it."""
    partition = StructuredPartition(data, keys, method)
    partition.rows = _with_state(partition.rows, state)
    if stepped is not None:
        partition.stepped = _with_state(copy.copy(partition.rows), stepped)
    partition.output = output
    return partition


def _with_state(rows: StructuredRows, state: dict[str, Any]) -> StructuredRows:
    """rows with the state pickled by StructuredPartition.__reduce__."""
    vars(rows).update(state)
    if rows.cov is not None:
        # The factor and its inverse refer to the rebuilt structure, not to a copy of it.
        rows.cov.factor.structure = rows.structure
        rows.cov.inverse.structure = rows.structure
    return rows
