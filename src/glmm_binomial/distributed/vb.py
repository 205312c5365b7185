"""Mean-field variational Bayes (variational.py, method "vb_meanfield") on a Dask DataFrame's
partitions. Method "vb" (structured_vb.py) is not fitted on Dask.

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

from typing import Any

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.methods.variational import (
    RowPart,
    VariationalObjective,
    VariationalParameters,
    fit_vb_detailed,
)
from glmm_binomial.model.data import ModelData

FloatArray = NDArray[np.float64]


def fit_partitioned_vb(partitions: Any, model: ModelData, design: Any) -> FitOutput:
    """fit_vb on the partitions (distributed._Partitions); model: the rowless model of the
    whole data set (names, blocks with all levels, binomial constant)."""
    prior_fe_sd, prior_log_sd_sd = design.priors
    objective = PartitionedVariationalObjective(
        partitions, model, prior_fe_sd, prior_log_sd_sd, design.control.n_gauss_hermite
    )
    return fit_vb_detailed(model, control=design.control, objective=objective).output


class PartitionedVariationalObjective(VariationalObjective):
    """VariationalObjective whose sums over rows come from the partitions."""

    def __init__(
        self,
        partitions: Any,
        model: ModelData,
        prior_fe_sd: float,
        prior_log_sd_sd: float,
        n_gauss_hermite: int,
    ) -> None:
        super().__init__(model, prior_fe_sd, prior_log_sd_sd, n_gauss_hermite)
        self.partitions = partitions
        # Per partition (None when empty), where each of its levels sits among all levels.
        self.keys: list[tuple[NDArray[np.intp], ...] | None] = partitions.gather(
            _keys, keep_empty=True
        )

    def _each(self, what: str, q: VariationalParameters | None, **kwargs: Any) -> list[Any]:
        """what on every partition, each given its own levels' parameters; results of the
        non-empty partitions in partition order."""
        local: list[Any] = []
        for keys in self.keys:
            if keys is None or q is None:
                local.append(None)
                continue
            local.append(
                (
                    tuple(mean[where] for mean, where in zip(q.b_mean, keys, strict=True)),
                    tuple(sd[where] for sd, where in zip(q.b_sd, keys, strict=True)),
                )
            )
        return self.partitions.evaluate_each(_vb_evaluate, local, what=what, **kwargs)

    def _placed(self, parts: list[tuple[Any, ...]]) -> list[FloatArray]:
        """Per block, the partitions' level sums at their levels' positions."""
        out = [np.zeros(int(n)) for n in self.n_levels]
        present = [keys for keys in self.keys if keys is not None]
        for keys, sums in zip(present, parts, strict=True):
            for t, where in enumerate(keys):
                out[t][where] += sums[t]
        return out

    def row_part(self, q: VariationalParameters, gradient: bool) -> RowPart:
        parts = self._each("rows", q, beta_mean=q.beta_mean, beta_sd=q.beta_sd, gradient=gradient)
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


# --- run on the workers ---------------------------------------------------------------------
def _keys(state: Any) -> Any:
    return None if state is None else state.keys


def _vb_evaluate(state: Any, local: Any, what: str, **kwargs: Any) -> Any:
    """One partition's share for PartitionedVariationalObjective (state: PartitionState whose
    objective is the partition's VariationalObjective; local: its levels' means and SDs)."""
    objective: VariationalObjective = state.objective
    if what == "rows":
        n_blocks = len(local[0])
        q = VariationalParameters(
            beta_mean=kwargs["beta_mean"],
            beta_sd=kwargs["beta_sd"],
            log_sd_mean=np.zeros(n_blocks),  # not used by the sums over rows
            log_sd_sd=np.ones(n_blocks),
            b_mean=local[0],
            b_sd=local[1],
        )
        return objective.row_part(q, kwargs["gradient"])
    if what == "glm_value":
        return objective.glm_value(kwargs["beta"])
    if what == "glm_curvature_score":
        return objective.glm_curvature_score(kwargs["beta"])
    if what == "start_curvatures":
        return objective.start_curvatures(kwargs["beta"])
    if what == "laplace_deviance":
        return LaplaceObjective(state.data).deviance(kwargs["theta"], kwargs["beta"])
    raise ValueError(f"unknown evaluation {what!r}")
