"""Binomial generalized linear mixed models with lme4 formula syntax."""

from glmm_binomial import datasets
from glmm_binomial.api import available_methods, fit, fit_model
from glmm_binomial.bootstrap import BootstrapResult, bootstrap
from glmm_binomial.diagnostics import (
    BoundaryWarning,
    ConvergenceWarning,
    FitWarning,
    GLMMWarning,
    IdentifiabilityWarning,
    NewLevelsWarning,
    RankDeficiencyWarning,
    SeparationWarning,
)
from glmm_binomial.inference import anova
from glmm_binomial.intervals import confint
from glmm_binomial.model import ModelData, RandomBlock
from glmm_binomial.optimize import OptimizerControl, OptSummary
from glmm_binomial.pirls import PirlsControl
from glmm_binomial.profile import LikelihoodProfile, ProfileControl, profile_confint
from glmm_binomial.result import GLMMResult
from glmm_binomial.sheet import GLMM_BINOMIAL, glmm_binomial

__version__ = "0.1.0"

__all__ = [
    "BootstrapResult",
    "BoundaryWarning",
    "ConvergenceWarning",
    "FitWarning",
    "GLMMWarning",
    "IdentifiabilityWarning",
    "NewLevelsWarning",
    "RankDeficiencyWarning",
    "SeparationWarning",
    "GLMM_BINOMIAL",
    "GLMMResult",
    "LikelihoodProfile",
    "ModelData",
    "OptSummary",
    "OptimizerControl",
    "PirlsControl",
    "ProfileControl",
    "RandomBlock",
    "__version__",
    "anova",
    "available_methods",
    "bootstrap",
    "confint",
    "datasets",
    "fit",
    "fit_model",
    "glmm_binomial",
    "profile_confint",
]
