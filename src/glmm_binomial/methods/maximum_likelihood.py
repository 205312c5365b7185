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

from abc import abstractmethod
from typing import Any

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
from glmm_binomial.numerics.optimize import OptimizerControl
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

    @abstractmethod
    def objective(self, model: ModelData) -> Any:
        """The objective the method minimizes on `model`'s own columns, as an object with
        ``deviance_and_gradient(theta, beta)``: the deviance, plus the prior deviance of the
        method's priors when it has any (``penalized``)."""

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
        bind_priors(self.priors, model)  # ValueError when a prior does not fit the model

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
