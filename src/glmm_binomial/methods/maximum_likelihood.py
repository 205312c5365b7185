"""The maximum-likelihood path that the Laplace and AGQ methods share.

The fit is made on internally centred and scaled columns (methods.scaling: the likelihood is
equivariant under that change, so the estimates map back exactly), then checked again on the
user's own columns, and passes the checks every maximum-likelihood path applies last
(estimates.final_checks). With priors (a posterior-mode fit, methods.penalty) the prior
deviance, stated in the user's units, is bound to the internal columns through the same column
maps, so the penalized objective is the same function of the user's parameters.

What differs between the methods is their objective and the fit on given columns
(``fit_columns``), and whether random-effect columns may be centred.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from glmm_binomial.family import Family
from glmm_binomial.methods.base import Method, Start
from glmm_binomial.methods.estimates import FitOutput, final_checks
from glmm_binomial.methods.penalty import PenalizedObjective, Penalty, bind_priors
from glmm_binomial.methods.scaling import (
    check_in_user_units,
    choose_scaling,
    start_to_internal,
    to_internal,
    to_user,
)
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.priors import Priors
from glmm_binomial.numerics.optimize import OptimizerControl, glm_start
from glmm_binomial.numerics.pirls import PirlsControl


class LikelihoodMethod(Method):
    """A maximum-likelihood method: an objective deviance(theta, beta) minimized by
    numerics.optimize, on internally rescaled columns."""

    control_type = OptimizerControl
    control: OptimizerControl
    pirls_control: PirlsControl
    priors: Priors

    @classmethod
    def supports(cls, family: Family) -> bool:
        """Maximum likelihood takes every family and link (glmm_binomial.family)."""
        return True

    @property
    @abstractmethod
    def centres_random(self) -> bool:
        """Whether random-effect columns may be centred internally (the objective must be
        invariant under that reparametrisation: Laplace is; a product quadrature rule is not
        rotation invariant)."""

    def objective(self, model: ModelData) -> Any:
        """The objective the method minimizes on `model`'s own columns, as an object with
        ``deviance_and_gradient(theta, beta)``: the deviance, plus the prior deviance of the
        method's priors when it has any (``penalized``)."""
        return self.penalized(self.likelihood_objective(model), model)

    @abstractmethod
    def likelihood_objective(self, model: ModelData) -> Any:
        """The method's deviance on `model`'s rows without any prior deviance: a Dask fit sums
        it over the partitions and adds the priors' once."""

    def penalized(self, objective: Any, model: ModelData) -> Any:
        """`objective` plus the prior deviance of the method's priors on `model`'s columns (a
        PenalizedObjective), or `objective` itself without priors."""
        penalty = bind_priors(self.priors, model)
        return objective if penalty is None else PenalizedObjective(objective, penalty)

    @abstractmethod
    def fit_columns(
        self, model: ModelData, start: Start | None = None, penalty: Penalty | None = None
    ) -> FitOutput:
        """The fit on `model`'s columns as they are (no rescaling, no final checks), with the
        prior deviance `penalty` (bound to these columns) added to the deviance."""

    def check(self, model: ModelData, design: Any = None) -> None:
        super().check(model, design)
        priors = self.priors
        if model.n_obs == 0 and model.n_fixed == 0:
            # A Dask fit's structure before its columns are known (names and blocks, no rows):
            # the fixed-effect prior is bound once they are.
            priors = dataclasses.replace(priors, fixef=None)
        bind_priors(priors, model)  # ValueError when a prior does not fit the model

    def start_from(self, model: ModelData, start: Any) -> Start:
        """lme4's start for glmer: a mapping with "theta" (lme4's relative covariance factors,
        in result.theta's layout: the beta-binomial's log phi last) and/or "fixef" (design
        order, or a mapping by column name), or theta's values alone; theta defaults to lme4's
        start (Lambda = I), fixef to the fixed-effects-only GLM's estimates. A given start
        replaces the searches from other starts (the fit begins where the user says)."""
        if isinstance(start, Mapping):
            unknown = sorted(set(map(str, start)) - {"theta", "fixef"})
            if unknown:
                raise ValueError(
                    f"start takes 'theta' and 'fixef' (lme4's names), got {', '.join(unknown)}"
                )
            theta_given, fixef_given = start.get("theta"), start.get("fixef")
        else:
            theta_given, fixef_given = start, None
        theta = (
            model.theta_start()
            if theta_given is None
            else _vector(theta_given, model.n_theta, "start['theta']")
        )
        bounds = model.theta_lower_bounds()
        if (theta < bounds).any():
            raise ValueError(
                "start['theta'] has a diagonal entry of a relative covariance factor below 0 "
                "(an SD's factor; lme4's bounds)"
            )
        if fixef_given is None:
            beta = glm_start(model, self.control)[0]
        elif hasattr(fixef_given, "items"):
            given = {str(k): v for k, v in fixef_given.items()}
            missing = [name for name in model.fixed_names if name not in given]
            extra = [name for name in given if name not in model.fixed_names]
            if missing or extra:
                raise ValueError(
                    "start['fixef'] must name each fixed effect once "
                    f"({', '.join(model.fixed_names)}); "
                    + (
                        f"missing {', '.join(missing)}"
                        if missing
                        else f"unknown {', '.join(extra)}"
                    )
                )
            beta = _vector(
                [given[name] for name in model.fixed_names], model.n_fixed, "start['fixef']"
            )
        else:
            beta = _vector(fixef_given, model.n_fixed, "start['fixef']")
        return theta, beta

    def fit(self, model: ModelData, start: Start | None = None) -> FitOutput:
        scaling = choose_scaling(model, self.control, centre_random=self.centres_random)
        internal = to_internal(model, scaling)
        if start is not None:
            start = start_to_internal(model, scaling, *start)
        # The priors are in the user's units: bound to the internal columns through the
        # column maps, so the rescaling changes nothing about the model.
        maps = None if scaling.is_identity else scaling
        penalty = bind_priors(
            self.priors,
            internal,
            None if maps is None else maps.fixed,
            None if maps is None else maps.blocks,
        )
        output = self.fit_columns(internal, start, penalty)
        if not scaling.is_identity:
            output = to_user(model, scaling, output)
            objective = self.objective(model)
            output = check_in_user_units(output, objective.deviance_and_gradient, self.control)
        return final_checks(output)


def _vector(values: Any, size: int, name: str) -> Any:
    """`values` as `size` finite floats; ValueError naming `name` otherwise."""
    try:
        vector = np.array(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers") from None
    if vector.size != size:
        raise ValueError(f"{name} must have {size} values, got {vector.size}")
    if not np.isfinite(vector).all():
        raise ValueError(f"{name} has missing or infinite values")
    return vector
