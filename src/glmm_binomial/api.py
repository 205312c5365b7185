"""Public entry points: fit a binomial GLMM from a formula and a DataFrame, or from ModelData.

Validation happens here and in design.py; the numerical modules assume valid input.
"""

from __future__ import annotations

import importlib
from typing import Any

from glmm_binomial import _blas
from glmm_binomial.design import build_model
from glmm_binomial.distributed import fit_dask, is_dask_frame
from glmm_binomial.estimates import FitOutput, final_checks, require_finite
from glmm_binomial.laplace import LaplaceObjective, fit_laplace
from glmm_binomial.model import ModelData
from glmm_binomial.optimize import OptimizerControl
from glmm_binomial.pirls import PirlsControl
from glmm_binomial.result import GLMMResult
from glmm_binomial.scaling import check_in_user_units, choose_scaling, to_internal, to_user
from glmm_binomial.validation import check_model, emit_fit_warnings

METHODS = ("laplace", "agq", "vb", "vb_meanfield")

#: The control class each method takes (by name: the modules are imported when used).
CONTROLS = {"vb": "StructuredVBControl", "vb_meanfield": "VariationalControl"}

MAX_N_AGQ = 100
"""Largest n_agq accepted (lme4 refuses nAGQ > 100; beyond it the rule's outer weights
underflow and buy no accuracy)."""


def fit(
    formula: str,
    data: Any,
    *,
    method: str = "laplace",
    weights: Any = None,
    offset: Any = None,
    n_agq: int = 1,
    conf_level: float = 0.95,
    prior_fe_sd: float = 2.0,
    prior_log_sd_sd: float = 1.0,
    control: Any = None,
    pirls_control: PirlsControl | None = None,
    blas_threads: int | None = 1,
    client: Any = None,
) -> GLMMResult:
    """Fit a binomial GLMM (logit link) written in lme4's formula syntax.

    method: "laplace" (maximum likelihood, Laplace approximation, as glmer nAGQ = 1), "agq"
    (maximum likelihood, adaptive Gauss-Hermite quadrature with n_agq points per dimension),
    "vb" (structured variational Bayes, glmm_binomial.structured_vb: fixed and random effects
    jointly Gaussian; priors N(0, prior_fe_sd^2) on the fixed effects, N(0,
    prior_log_sd_sd^2) on each log random-effect SD and, for correlated terms such as
    (1 + x | g), an LKJ(2) prior on the correlation matrix; posterior means, SDs and the ELBO
    as result.elbo) or "vb_meanfield" (statsmodels' mean-field BinomialBayesMixedGLM.fit_vb
    family with the same priors, independent variance components only; its SDs understate
    the posterior's).
    weights: prior weights (the number of trials when the response is a proportion); offset:
    added to the linear predictor. Either may be a column name or one value per row.
    Rows with a missing value in any used column are dropped (reported as n_dropped).
    control: OptimizerControl for "laplace" and "agq", StructuredVBControl for "vb",
    VariationalControl for "vb_meanfield" (None: the defaults); pirls_control: PirlsControl
    of the inner mode search.
    blas_threads: threads BLAS may use during the fit (None: as configured; the default 1 is
    fastest for these small matrix products, see glmm_binomial._blas).
    data may be a Dask DataFrame (extra "dask"): see glmm_binomial.distributed.fit_dask, which
    takes client= (a distributed.Client or scheduler address; None: the current client); it
    gives the in-memory fit's numbers (internal rescaling included) and emits the same warnings
    (method "vb" is refused there with a message: fit ddf.compute() in memory, or use
    "vb_meanfield").
    """
    if is_dask_frame(data):
        return fit_dask(
            formula,
            data,
            method=method,
            weights=weights,
            offset=offset,
            n_agq=n_agq,
            conf_level=conf_level,
            prior_fe_sd=prior_fe_sd,
            prior_log_sd_sd=prior_log_sd_sd,
            control=control,
            pirls_control=pirls_control,
            blas_threads=blas_threads,
            client=client,
            _stacklevel=4,  # the warnings point at the caller of fit()
        )
    _check_options(method, n_agq, conf_level, prior_fe_sd, prior_log_sd_sd, blas_threads)
    model, design = build_model(formula, data, weights=weights, offset=offset)
    check_model(model, method, design)
    with _blas.blas_threads(blas_threads):
        output = _estimate(
            model, method, n_agq, prior_fe_sd, prior_log_sd_sd, control, pirls_control
        )
    emit_fit_warnings(output.warnings)
    return GLMMResult(model, output, design=design, conf_level=conf_level)


def fit_model(
    model: ModelData,
    *,
    method: str = "laplace",
    n_agq: int = 1,
    conf_level: float = 0.95,
    prior_fe_sd: float = 2.0,
    prior_log_sd_sd: float = 1.0,
    control: Any = None,
    pirls_control: PirlsControl | None = None,
    blas_threads: int | None = 1,
) -> GLMMResult:
    """Fit a model already in numerical form (used by the spreadsheet front end)."""
    if not isinstance(model, ModelData):
        raise ValueError("model must be a ModelData")
    _check_options(method, n_agq, conf_level, prior_fe_sd, prior_log_sd_sd, blas_threads)
    check_model(model, method)
    with _blas.blas_threads(blas_threads):
        output = _estimate(
            model, method, n_agq, prior_fe_sd, prior_log_sd_sd, control, pirls_control
        )
    emit_fit_warnings(output.warnings)
    return GLMMResult(model, output, conf_level=conf_level)


def available_methods() -> tuple[str, ...]:
    """Methods whose implementation is present in this installation."""
    present = ["laplace"]
    for name, module in (
        ("agq", "quadrature"),
        ("vb", "structured_vb"),
        ("vb_meanfield", "variational"),
    ):
        try:
            importlib.import_module(f"glmm_binomial.{module}")
        except ImportError:
            continue
        present.append(name)
    return tuple(m for m in METHODS if m in present)


def _check_options(
    method: str,
    n_agq: int,
    conf_level: float,
    prior_fe_sd: float,
    prior_log_sd_sd: float,
    blas_threads: Any,
) -> None:
    if blas_threads is not None and (
        isinstance(blas_threads, bool) or not isinstance(blas_threads, int) or blas_threads < 1
    ):
        raise ValueError(f"blas_threads must be a positive integer or None, got {blas_threads!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    if isinstance(n_agq, bool) or not isinstance(n_agq, int) or n_agq < 1:
        raise ValueError(f"n_agq must be a positive integer, got {n_agq!r}")
    if n_agq > MAX_N_AGQ:
        raise ValueError(
            f"n_agq must be at most {MAX_N_AGQ} (as lme4's nAGQ), got {n_agq}; "
            "10 to 25 points are ample for one random effect per group"
        )
    if method != "agq" and n_agq != 1:
        raise ValueError("n_agq applies only to method='agq'")
    if not isinstance(conf_level, (int, float)) or not 0.0 < float(conf_level) < 1.0:
        raise ValueError("conf_level must be strictly between 0 and 1")
    for name, value in (("prior_fe_sd", prior_fe_sd), ("prior_log_sd_sd", prior_log_sd_sd)):
        if not isinstance(value, (int, float)) or not float(value) > 0.0:
            raise ValueError(f"{name} must be a positive number")


def _estimate(
    model: ModelData,
    method: str,
    n_agq: int,
    prior_fe_sd: float,
    prior_log_sd_sd: float,
    control: Any,
    pirls_control: PirlsControl | None,
) -> FitOutput:
    """Fit by `method`; the result is never reported converged with a non-finite number.

    "laplace" and "agq" are estimated on internally centred and scaled columns (see
    glmm_binomial.scaling: the likelihood is equivariant under that change, so the estimates
    map back exactly) and checked again in the user's units. "vb" and "vb_meanfield" are
    fitted on the user's columns as they are: their priors are stated in those units, and
    rescaling a column would change the prior, hence the model."""
    expected = CONTROLS.get(method, "OptimizerControl")
    if control is not None and type(control).__name__ != expected:
        raise ValueError(f"control for method {method!r} must be a {expected}")
    if method not in available_methods():
        raise ValueError(
            f"method {method!r} is not available in this version; "
            f"available: {', '.join(available_methods())}"
        )
    if method == "vb":
        structured = importlib.import_module("glmm_binomial.structured_vb")
        posterior: FitOutput = structured.fit_structured_vb(
            model,
            prior_fe_sd=float(prior_fe_sd),
            prior_log_sd_sd=float(prior_log_sd_sd),
            control=control,
        )
        return require_finite(posterior)
    if method == "vb_meanfield":
        variational = importlib.import_module("glmm_binomial.variational")
        result: FitOutput = variational.fit_vb(
            model,
            prior_fe_sd=float(prior_fe_sd),
            prior_log_sd_sd=float(prior_log_sd_sd),
            control=control,
        )
        return require_finite(result)
    control = control or OptimizerControl()
    pirls_control = pirls_control or PirlsControl()
    scaling = choose_scaling(model, control, centre_random=method == "laplace" or n_agq == 1)
    internal = to_internal(model, scaling)
    if method == "laplace":
        output = fit_laplace(internal, control, pirls_control)
    else:
        quadrature = importlib.import_module("glmm_binomial.quadrature")
        output = quadrature.fit_agq(internal, n_agq, control, pirls_control)
    if not scaling.is_identity:
        output = to_user(model, scaling, output)
        if method == "laplace":
            objective: Any = LaplaceObjective(model, pirls_control)
        else:
            objective = quadrature.AgqObjective(
                model, n_agq, pirls_control, optimizer_control=control
            )
        output = check_in_user_units(output, objective.deviance_and_gradient, control)
    return final_checks(output)
