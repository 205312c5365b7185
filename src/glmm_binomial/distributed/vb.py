"""Mean-field variational Bayes (variational.py, method "vb_meanfield") on a Dask DataFrame's
partitions (method "vb", the structured family, is structured_vb.py's).

The ELBO of variational.py is a sum over rows plus terms in the variational parameters alone.
Each partition (whole levels of the outermost grouping factor, as for the Laplace fit) holds a
VariationalObjective on its rows; for an evaluation the client sends each partition the means
and SDs of its own levels' random effects (and those of beta), the partition returns its
RowPart (the value and the sums over its rows and over each of its levels), and the client
places the level sums at the levels' positions and adds the rest. The GLM start, the start
curvatures and the Laplace log-likelihood at the end decompose the same way. The optimizer,
its start and every rule are variational.fit_vb_detailed's, unchanged; the sums are the same
up to the order of floating-point additions, so the fit is the in-memory one to the
optimizer's tolerance.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.diagnostics import FitWarning
from glmm_binomial.distributed.partition import Partition, PartitionPlan, compact
from glmm_binomial.distributed.runner import Runner
from glmm_binomial.distributed.structured_vb import (
    unchecked_fixed_separation,
    unchecked_group_separation,
)
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.methods.variational import (
    MeanFieldVB,
    RowPart,
    VariationalObjective,
    VariationalParameters,
    fit_vb_detailed,
    with_posterior_warnings,
)
from glmm_binomial.model.data import ModelData

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


def fit_partitioned_vb(run: Runner, model: ModelData, method: MeanFieldVB) -> FitOutput:
    """fit_vb on the partitions (VariationalPartitions, asked through `run`, runner.Runner);
    model: the rowless model of the whole data set (names, blocks with all levels, binomial
    constant)."""
    objective = PartitionedVariationalObjective(
        run, model, method.prior_fe_sd, method.prior_log_sd_sd, method.control.n_gauss_hermite
    )
    output = fit_vb_detailed(model, control=method.control, objective=objective).output
    return with_posterior_warnings(objective, output, method.control)


class PartitionedVariationalObjective(VariationalObjective):
    """VariationalObjective whose sums over rows come from the partitions."""

    separation_checked: ClassVar[bool] = False  # the linear programs need every row

    def __init__(
        self,
        run: Runner,
        model: ModelData,
        prior_fe_sd: float,
        prior_log_sd_sd: float,
        n_gauss_hermite: int,
    ) -> None:
        super().__init__(model, prior_fe_sd, prior_log_sd_sd, n_gauss_hermite)
        self.run = run
        # Per partition, where each of its levels sits among all levels.
        self.keys: list[tuple[IntArray, ...]] = run("level_keys")

    def _each(self, what: str, q: VariationalParameters | None, **kwargs: Any) -> list[Any]:
        """what on every partition, each given its own levels' parameters (with q); results in
        partition order."""
        if q is None:
            return self.run(what, **kwargs)
        local: list[Any] = []
        for keys in self.keys:
            local.append(
                (
                    tuple(mean[where] for mean, where in zip(q.b_mean, keys, strict=True)),
                    tuple(sd[where] for sd, where in zip(q.b_sd, keys, strict=True)),
                )
            )
        return self.run(what, local, **kwargs)

    def _placed(self, parts: list[tuple[Any, ...]]) -> list[FloatArray]:
        """Per block, the partitions' level sums at their levels' positions."""
        out = [np.zeros(int(n)) for n in self.n_levels]
        for keys, sums in zip(self.keys, parts, strict=True):
            for t, where in enumerate(keys):
                out[t][where] += sums[t]
        return out

    def row_part(self, q: VariationalParameters, gradient: bool) -> RowPart:
        parts = self._each(
            "row_part", q, beta_mean=q.beta_mean, beta_sd=q.beta_sd, gradient=gradient
        )
        value = 0.0
        for part in parts:
            value += part.value
        if not gradient:
            return RowPart(value)
        x_mean = np.zeros(self.n_fixed)
        x2_var = np.zeros(self.n_fixed)
        for part in parts:
            x_mean += part.x_mean
            x2_var += part.x2_var
        level_mean = self._placed([part.level_mean for part in parts])
        level_var = self._placed([part.level_var for part in parts])
        return RowPart(value, x_mean, x2_var, level_mean, level_var)

    def glm_value(self, beta: FloatArray) -> float:
        total = 0.0
        for value in self._each("glm_value", None, beta=beta):
            total += value
        return total

    def glm_curvature_score(self, beta: FloatArray) -> tuple[FloatArray, FloatArray]:
        information = np.zeros((self.n_fixed, self.n_fixed))
        score = np.zeros(self.n_fixed)
        for part_information, part_score in self._each("glm_curvature_score", None, beta=beta):
            information += part_information
            score += part_score
        return information, score

    def start_curvatures(self, beta: FloatArray) -> list[FloatArray]:
        return self._placed(self._each("start_curvatures", None, beta=beta))

    def laplace_loglik(self, theta: FloatArray, beta: FloatArray) -> float:
        # Every grouping factor is nested in the partitioning one: the Laplace deviance is
        # the sum of the partitions' (binomial constants included).
        deviance = 0.0
        for value in self._each("laplace_deviance", None, theta=theta, beta=beta):
            deviance += value
        return -0.5 * deviance

    def fixed_effect_separation(self) -> FitWarning | None:
        return unchecked_fixed_separation(self.prior_fe_sd)

    def group_separation(self, loose: list[int]) -> FitWarning | None:
        return unchecked_group_separation(self.data, loose)


# --- on the workers ---------------------------------------------------------------------------
class VariationalPartition(Partition):
    """A partition's sums over rows of the ELBO (the priors are applied on the client): a
    VariationalObjective on its rows, which keeps nothing between calls."""

    def __init__(
        self,
        data: ModelData,
        keys: tuple[IntArray, ...],
        method: MeanFieldVB,
        user_data: ModelData | None = None,
    ) -> None:
        self.data = compact(data)
        self.keys = keys
        self.method = method
        self.user_data = user_data
        self.objective = VariationalObjective(
            self.data, n_gauss_hermite=method.control.n_gauss_hermite
        )
        self.output = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Rebuilt from its rows when Dask copies it (stored compactly again, as
        # nested.ModePartition).
        return VariationalPartition, (self.data, self.keys, self.method, self.user_data)

    @classmethod
    def from_rows(
        cls, data: ModelData, keys: tuple[IntArray, ...], plan: PartitionPlan
    ) -> VariationalPartition:
        method = plan.options.method
        assert isinstance(method, MeanFieldVB)
        return cls(data, keys, method)

    def on_rows(self, data: ModelData) -> VariationalPartition:
        return VariationalPartition(data, self.keys, self.method)

    def row_part(
        self,
        local: tuple[tuple[FloatArray, ...], tuple[FloatArray, ...]],
        beta_mean: FloatArray,
        beta_sd: FloatArray,
        gradient: bool,
    ) -> RowPart:
        """The sums over rows at q (local: its levels' means and SDs)."""
        n_blocks = len(local[0])
        q = VariationalParameters(
            beta_mean=beta_mean,
            beta_sd=beta_sd,
            log_sd_mean=np.zeros(n_blocks),  # not used by the sums over rows
            log_sd_sd=np.ones(n_blocks),
            b_mean=local[0],
            b_sd=local[1],
        )
        return self.objective.row_part(q, gradient)

    def glm_value(self, beta: FloatArray) -> float:
        return self.objective.glm_value(beta)

    def glm_curvature_score(self, beta: FloatArray) -> tuple[FloatArray, FloatArray]:
        return self.objective.glm_curvature_score(beta)

    def start_curvatures(self, beta: FloatArray) -> list[FloatArray]:
        return self.objective.start_curvatures(beta)

    def laplace_deviance(self, theta: FloatArray, beta: FloatArray) -> float:
        return LaplaceObjective(self.data).deviance(theta, beta)
