"""Binomial generalized linear mixed models with lme4 formula syntax.

The public names are loaded on first use (module ``__getattr__``), so ``import glmm_binomial``
is light: formulaic, scipy.optimize and the front ends' optional packages are imported only
when a fit, a table or a command needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_ATTRIBUTES = {
    "fit": "glmm_binomial.api",
    "fit_model": "glmm_binomial.api",
    "update": "glmm_binomial.api",
    "available_methods": "glmm_binomial.api",
    "BoundaryWarning": "glmm_binomial.diagnostics",
    "ConvergenceWarning": "glmm_binomial.diagnostics",
    "FitWarning": "glmm_binomial.diagnostics",
    "GLMMWarning": "glmm_binomial.diagnostics",
    "IdentifiabilityWarning": "glmm_binomial.diagnostics",
    "NewLevelsWarning": "glmm_binomial.diagnostics",
    "NonIntegerCountsWarning": "glmm_binomial.diagnostics",
    "RankDeficiencyWarning": "glmm_binomial.diagnostics",
    "SeparationWarning": "glmm_binomial.diagnostics",
    "anova": "glmm_binomial.results.inference",
    "drop1": "glmm_binomial.results.inference",
    "wald_test": "glmm_binomial.results.wald",
    "wald_test_terms": "glmm_binomial.results.wald",
    "WaldTest": "glmm_binomial.results.wald",
    "influence": "glmm_binomial.results.influence",
    "vif": "glmm_binomial.results.collinearity",
    "pb_test": "glmm_binomial.results.bootstrap_lrt",
    "BootstrapLRT": "glmm_binomial.results.bootstrap_lrt",
    "Influence": "glmm_binomial.results.influence",
    "Agq": "glmm_binomial.methods.agq",
    "FitOptions": "glmm_binomial.methods.options",
    "Laplace": "glmm_binomial.methods.laplace",
    "Mcmc": "glmm_binomial.methods.mcmc",
    "McmcControl": "glmm_binomial.methods.mcmc",
    "QuadratureControl": "glmm_binomial.methods.agq",
    "VariationalBayes": "glmm_binomial.methods.structured_vb",
    "MeanFieldVB": "glmm_binomial.methods.variational",
    "StructuredVBControl": "glmm_binomial.methods.structured_vb",
    "VariationalControl": "glmm_binomial.methods.variational",
    "ModelData": "glmm_binomial.model.data",
    "RandomBlock": "glmm_binomial.model.data",
    "OptimizerControl": "glmm_binomial.numerics.optimize",
    "OptSummary": "glmm_binomial.numerics.optimize",
    "PirlsControl": "glmm_binomial.numerics.pirls",
    "ProfileControl": "glmm_binomial.results.profile",
    "profile": "glmm_binomial.results.profile",
    "profile_confint": "glmm_binomial.results.profile",
    "LikelihoodProfile": "glmm_binomial.results.profile",
    "GLMMResult": "glmm_binomial.results.result",
    "bootstrap": "glmm_binomial.results.bootstrap",
    "BootstrapResult": "glmm_binomial.results.bootstrap",
    "confint": "glmm_binomial.results.intervals",
    "cld": "glmm_binomial.results.cld",
    "emmeans": "glmm_binomial.results.emmeans",
    "emtrends": "glmm_binomial.results.emmeans",
    "contrast": "glmm_binomial.results.emmeans",
    "pairs": "glmm_binomial.results.emmeans",
    "regrid": "glmm_binomial.results.emmeans",
    "joint_tests": "glmm_binomial.results.emmeans",
    "slopes": "glmm_binomial.results.slopes",
    "tidy": "glmm_binomial.results.tidy",
    "glance": "glmm_binomial.results.tidy",
    "augment": "glmm_binomial.results.tidy",
    "avg_slopes": "glmm_binomial.results.slopes",
    "comparisons": "glmm_binomial.results.slopes",
    "avg_comparisons": "glmm_binomial.results.slopes",
    "avg_predictions": "glmm_binomial.results.average_predictions",
    "predictions": "glmm_binomial.results.average_predictions",
    "hypotheses": "glmm_binomial.results.coefficient_tests",
    "datagrid": "glmm_binomial.results.datagrid",
    "plot_predictions": "glmm_binomial.results.effect_plots",
    "plot_slopes": "glmm_binomial.results.effect_plots",
    "plot_comparisons": "glmm_binomial.results.effect_plots",
    "r2_nakagawa": "glmm_binomial.results.variance_decomposition",
    "icc": "glmm_binomial.results.variance_decomposition",
    "simulate_residuals": "glmm_binomial.results.simulated_residuals",
    "SimulatedResiduals": "glmm_binomial.results.simulated_residuals",
    "binned_residuals": "glmm_binomial.results.binned_residuals",
    "check": "glmm_binomial.results.check",
    "power_sim": "glmm_binomial.power",
    "power_curve": "glmm_binomial.power",
    "extend": "glmm_binomial.power",
    "make_model": "glmm_binomial.power",
    "power_model": "glmm_binomial.power",
    "PowerModel": "glmm_binomial.power",
    "PowerResult": "glmm_binomial.power",
    "PowerCurve": "glmm_binomial.power",
    "GLMM_BINOMIAL": "glmm_binomial.frontends.sheet",
    "glmm_binomial": "glmm_binomial.frontends.sheet",
}

#: Submodules reachable as attributes (``glmm_binomial.datasets`` after ``import glmm_binomial``).
_SUBMODULES = (
    "api",
    "cli",
    "datasets",
    "diagnostics",
    "distributed",
    "excel",
    "frontends",
    "methods",
    "model",
    "numerics",
    "power",
    "results",
    "sheet",
)

__all__ = [
    "SimulatedResiduals",
    "Agq",
    "FitOptions",
    "Laplace",
    "Mcmc",
    "McmcControl",
    "MeanFieldVB",
    "StructuredVBControl",
    "QuadratureControl",
    "VariationalBayes",
    "VariationalControl",
    "WaldTest",
    "BootstrapLRT",
    "BootstrapResult",
    "BoundaryWarning",
    "ConvergenceWarning",
    "FitWarning",
    "GLMMWarning",
    "Influence",
    "IdentifiabilityWarning",
    "NewLevelsWarning",
    "NonIntegerCountsWarning",
    "RankDeficiencyWarning",
    "SeparationWarning",
    "GLMM_BINOMIAL",
    "GLMMResult",
    "LikelihoodProfile",
    "ModelData",
    "PowerCurve",
    "PowerModel",
    "PowerResult",
    "OptSummary",
    "OptimizerControl",
    "PirlsControl",
    "ProfileControl",
    "RandomBlock",
    "__version__",
    "anova",
    "augment",
    "available_methods",
    "avg_comparisons",
    "avg_predictions",
    "avg_slopes",
    "binned_residuals",
    "bootstrap",
    "check",
    "comparisons",
    "cld",
    "confint",
    "contrast",
    "datagrid",
    "datasets",
    "drop1",
    "emmeans",
    "emtrends",
    "extend",
    "fit",
    "fit_model",
    "glance",
    "glmm_binomial",
    "hypotheses",
    "icc",
    "influence",
    "joint_tests",
    "make_model",
    "pairs",
    "pb_test",
    "plot_comparisons",
    "plot_predictions",
    "plot_slopes",
    "power_curve",
    "power_model",
    "power_sim",
    "predictions",
    "profile",
    "profile_confint",
    "r2_nakagawa",
    "regrid",
    "simulate_residuals",
    "slopes",
    "tidy",
    "update",
    "vif",
    "wald_test",
    "wald_test_terms",
]


def __getattr__(name: str) -> Any:
    if name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"glmm_binomial.{name}")
    else:
        raise AttributeError(f"module 'glmm_binomial' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


_MODULE_HELPERS = frozenset({"annotations", "importlib", "Any", "TYPE_CHECKING"})
"""This module's own imports: not the package's names (tab completion lists the others)."""


def __dir__() -> list[str]:
    return sorted((set(globals()) - _MODULE_HELPERS) | set(_ATTRIBUTES) | set(_SUBMODULES))


if TYPE_CHECKING:  # the names as type checkers see them
    from glmm_binomial import datasets
    from glmm_binomial.api import available_methods, fit, fit_model, update
    from glmm_binomial.diagnostics import (
        BoundaryWarning,
        ConvergenceWarning,
        FitWarning,
        GLMMWarning,
        IdentifiabilityWarning,
        NewLevelsWarning,
        NonIntegerCountsWarning,
        RankDeficiencyWarning,
        SeparationWarning,
    )
    from glmm_binomial.frontends.sheet import GLMM_BINOMIAL, glmm_binomial
    from glmm_binomial.methods.agq import Agq, QuadratureControl
    from glmm_binomial.methods.laplace import Laplace
    from glmm_binomial.methods.mcmc import Mcmc, McmcControl
    from glmm_binomial.methods.options import FitOptions
    from glmm_binomial.methods.structured_vb import StructuredVBControl, VariationalBayes
    from glmm_binomial.methods.variational import MeanFieldVB, VariationalControl
    from glmm_binomial.model.data import ModelData, RandomBlock
    from glmm_binomial.numerics.optimize import OptimizerControl, OptSummary
    from glmm_binomial.numerics.pirls import PirlsControl
    from glmm_binomial.power import (
        PowerCurve,
        PowerModel,
        PowerResult,
        extend,
        make_model,
        power_curve,
        power_model,
        power_sim,
    )
    from glmm_binomial.results.average_predictions import avg_predictions, predictions
    from glmm_binomial.results.binned_residuals import binned_residuals
    from glmm_binomial.results.bootstrap import BootstrapResult, bootstrap
    from glmm_binomial.results.check import check
    from glmm_binomial.results.cld import cld
    from glmm_binomial.results.coefficient_tests import hypotheses
    from glmm_binomial.results.datagrid import datagrid
    from glmm_binomial.results.effect_plots import plot_comparisons, plot_predictions, plot_slopes
    from glmm_binomial.results.emmeans import contrast, emmeans, emtrends, pairs, regrid
    from glmm_binomial.results.inference import anova, drop1
    from glmm_binomial.results.intervals import confint
    from glmm_binomial.results.profile import (
        LikelihoodProfile,
        ProfileControl,
        profile,
        profile_confint,
    )
    from glmm_binomial.results.result import GLMMResult
    from glmm_binomial.results.simulated_residuals import SimulatedResiduals, simulate_residuals
    from glmm_binomial.results.slopes import avg_comparisons, avg_slopes, comparisons, slopes
    from glmm_binomial.results.tidy import augment, glance, tidy
    from glmm_binomial.results.variance_decomposition import icc, r2_nakagawa
