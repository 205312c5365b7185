"""Grouping factors nested in the partitioning factor: the method's own objective per partition.

When every grouping factor is nested in the one the rows are shuffled on, each partition holds
whole levels of all of them and the matrix H of the mode search is block diagonal over the
partitions: the deviance (Laplace, or AGQ), its exact gradient and the fixed-effects
information are sums over the partitions. Each ModePartition keeps the method's objective
(``method.likelihood_objective(rows)``, exactly the in-memory one, without the priors' deviance,
which the client adds once) with its warm start; NestedObjective on
the client sums the partitions' answers in partition order, and optimize.minimize_deviance runs
on it unchanged. Its calls that move a partition's warm start go through Partitions.advance
(a new version per evaluation, runner.py); between evaluations a partition keeps its rows and
its last mode's u.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.distributed.partition import (
    Partition,
    PartitionFacts,
    PartitionPlan,
    compact,
    place_effects,
)
from glmm_binomial.distributed.runner import Runner
from glmm_binomial.methods.agq import AgqObjective
from glmm_binomial.methods.laplace import (
    Counters,
    LaplaceObjective,
    conditional_effects,
    rows_at_link_bound,
)
from glmm_binomial.methods.maximum_likelihood import LikelihoodMethod
from glmm_binomial.model.data import ModelData

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

Counted = tuple[Any, int, int]
"""An answer with the PIRLS iterations and failures it took."""


class ModePartition(Partition):
    """A partition evaluated by the method's objective (a LikelihoodMethod's), which keeps its
    mode search's warm start between calls."""

    def __init__(
        self,
        data: ModelData,
        keys: tuple[IntArray, ...],
        method: LikelihoodMethod,
        user_data: ModelData | None = None,
    ) -> None:
        data = compact(data)
        objective = method.likelihood_objective(data)
        if getattr(objective, "data", data) is not data:
            # The objective keeps the rows in an order of its own (LaplaceObjective: sorted by
            # the first factor's levels, so that its sums are contiguous): store them once, in
            # that order and compactly, and let the objective use them as they are.
            data = compact(objective.data)
            objective = method.likelihood_objective(data)
        self.data = data
        self.keys = keys
        self.method = method
        self.user_data = user_data
        self.objective = objective
        self.output = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled (when Dask copies a partition to another worker) as what rebuilds it: its
        # rows, which the constructor stores compactly again (a broadcast column pickles as a
        # full one, and a dot product with it rounds differently, so a copy would change the
        # numbers), the objective's warm start and counters, and the last answer.
        warm = getattr(self.objective, "warm", None)
        counters = self.objective.counters
        state = (self.data, self.keys, self.method, self.user_data, warm, counters, self.output)
        return _restored, state

    @classmethod
    def from_rows(
        cls, data: ModelData, keys: tuple[IntArray, ...], plan: PartitionPlan
    ) -> ModePartition:
        method = plan.options.method
        assert isinstance(method, LikelihoodMethod)
        return cls(data, keys, method)

    def on_rows(self, data: ModelData) -> ModePartition:
        return ModePartition(data, self.keys, self.method)

    def next_version(self) -> ModePartition:
        version = copy.copy(self)
        # The objective's warm start (a value it replaces) and counters become the version's
        # own; its rows and structure stay shared.
        version.objective = copy.copy(self.objective)
        version.objective.counters = copy.copy(self.objective.counters)
        version.output = None
        return version

    def settle(self) -> None:
        release = getattr(self.objective, "release", None)
        if release is not None:
            # Between evaluations a partition keeps its rows and the warm start u only.
            release()

    def facts(self) -> PartitionFacts:
        facts = super().facts()
        return PartitionFacts(
            facts.fixed_names,
            facts.block_terms,
            facts.log_binomial_constant,
            has_fixed_information=hasattr(self.objective, "fixed_information"),
            rule_kind=getattr(self.objective, "rule_kind", None),
            n_nodes=getattr(self.objective, "n_nodes", None),
        )

    def _counted(self, value: Any, before: tuple[int, int]) -> Counted:
        c = self.objective.counters
        return value, c.pirls_iterations - before[0], c.pirls_failures - before[1]

    def _counts(self) -> tuple[int, int]:
        c = self.objective.counters
        return c.pirls_iterations, c.pirls_failures

    # --- calls that move the warm start (Partitions.advance) ----------------------------------
    def reset(self) -> None:
        """Forget the warm start: the next mode search starts from u = 0 (the objective's
        reset, before a search from another start)."""
        self.objective.reset()

    def deviance_and_gradient(self, theta: FloatArray, beta: FloatArray) -> Counted:
        before = self._counts()
        # As the in-memory optimizer's evaluations (optimize.minimize_deviance): far out on a
        # trial step (an SD of 1e200, a row at the log link's bound) the mode search overflows,
        # and what it gives there is no deviance, refused by the optimizer without numpy's
        # warnings (numpy's error state is the thread's: the client's does not reach here).
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            value = self.objective.deviance_and_gradient(theta, beta)
        return self._counted(value, before)

    def fixed_information(self, theta: FloatArray, beta: FloatArray) -> Counted:
        before = self._counts()
        return self._counted(self.objective.fixed_information(theta, beta), before)

    def conditional_effects(self, theta: FloatArray, beta: FloatArray) -> Counted:
        """Conditional modes and covariances of this partition's levels (laplace.py's), with
        its keys, the number of its rows at the link's bound at those modes and, for AGQ, the
        number its quadrature takes past the bound (AgqObjective.rows_past_bound). Other
        objectives report the Laplace conditional modes at their estimates, as the in-memory
        fits do (laplace.finish_fit)."""
        before = self._counts()
        objective = self.objective
        past = 0
        if isinstance(objective, AgqObjective):
            past = objective.rows_past_bound(theta, beta)
        if not isinstance(objective, LaplaceObjective):
            objective = LaplaceObjective(self.data, self.method.pirls_control)
        mode = objective.mode(theta, beta)
        ranef, ranef_cov = conditional_effects(objective, mode, theta)
        reached = rows_at_link_bound(self.data.family, mode.eta)
        return self._counted((self.keys, ranef, ranef_cov, reached, past), before)

    # --- a read -------------------------------------------------------------------------------
    def user_deviance_and_gradient(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        """The deviance and gradient on the user's own columns (scaling.check_in_user_units),
        by an objective used once."""
        result: tuple[float, FloatArray, FloatArray] = self.method.likelihood_objective(
            self.user_columns
        ).deviance_and_gradient(theta, beta)
        return result


def _restored(
    data: ModelData,
    keys: tuple[IntArray, ...],
    method: LikelihoodMethod,
    user_data: ModelData | None,
    warm: Any,
    counters: Counters,
    output: Any,
) -> ModePartition:
    """A ModePartition as ModePartition.__reduce__ pickled it."""
    partition = ModePartition(data, keys, method, None if user_data is None else compact(user_data))
    if warm is not None:
        partition.objective.warm = warm
    partition.objective.counters = counters
    partition.output = output
    return partition


class NestedObjective:
    """The deviance, its gradient and the fixed-effects information of the whole data set as
    sums of the ModePartitions' answers, in partition order.

    advance: the runner for calls that move the partitions' warm starts (Partitions.advance);
    read: the runner for reads (Partitions.read)."""

    def __init__(self, advance: Runner, read: Runner) -> None:
        self.advance = advance
        self.read = read
        self.counters = Counters()
        self.rows_at_link_bound = 0
        self.rows_past_bound = 0

    def _answers(self, method: str, theta: FloatArray, beta: FloatArray) -> list[Any]:
        parts = self.advance(
            method,
            theta=np.asarray(theta, dtype=np.float64),
            beta=np.asarray(beta, dtype=np.float64),
        )
        for _, iterations, failures in parts:
            self.counters.pirls_iterations += iterations
            self.counters.pirls_failures += failures
        return [value for value, _, _ in parts]

    def deviance_and_gradient(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        self.counters.evaluations += 1
        self.counters.gradients += 1
        return sum_deviance_and_gradient(
            self._answers("deviance_and_gradient", theta, beta), theta, beta
        )

    def reset(self) -> None:
        """Every partition's mode searches start from u = 0 again (before a search from
        another start, as the in-memory objective's reset)."""
        self.advance("reset")

    def fixed_information(self, theta: FloatArray, beta: FloatArray) -> FloatArray:
        info = np.zeros((len(beta), len(beta)))
        for part in self._answers("fixed_information", theta, beta):
            info += part
        return info

    def user_deviance_and_gradient(
        self, theta: FloatArray, beta: FloatArray
    ) -> tuple[float, FloatArray, FloatArray]:
        """deviance_and_gradient on the user's columns (parameters in the user's units)."""
        parts = self.read("user_deviance_and_gradient", theta=theta, beta=beta)
        return sum_deviance_and_gradient(parts, theta, beta)

    def conditional_effects(
        self, theta: FloatArray, beta: FloatArray, n_levels: list[int], ks: list[int]
    ) -> tuple[list[FloatArray], list[FloatArray]]:
        """Conditional modes and covariances over the levels of the whole data set; the number
        of rows at the link's bound at those modes is kept as rows_at_link_bound, and the
        number an AGQ objective's nodes take past it as rows_past_bound."""
        pieces = self._answers("conditional_effects", theta, beta)
        self.rows_at_link_bound = sum(int(piece[3]) for piece in pieces)
        self.rows_past_bound = sum(int(piece[4]) for piece in pieces)
        return place_effects(pieces, n_levels, ks)


def sum_deviance_and_gradient(
    parts: list[Any], theta: FloatArray, beta: FloatArray
) -> tuple[float, FloatArray, FloatArray]:
    """The partitions' deviances and gradients summed in partition order."""
    deviance = 0.0
    grad_theta = np.zeros(len(theta))
    grad_beta = np.zeros(len(beta))
    for value, g_theta, g_beta in parts:
        deviance += value
        grad_theta += g_theta
        grad_beta += g_beta
    return deviance, grad_theta, grad_beta
