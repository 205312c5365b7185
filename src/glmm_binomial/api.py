"""Public entry points: fit a binomial GLMM from a formula and a DataFrame, or from ModelData.

Each builds one FitOptions (methods.options: the method object with its settings, the
confidence level, BLAS threads), checks the model with the method, and lets the method fit it.
The design is built and validated in model/; the numerical modules assume valid input.
A Dask DataFrame goes to glmm_binomial.distributed, imported only then.
"""

from __future__ import annotations

from typing import Any

from glmm_binomial.methods.base import Method
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.methods.options import FitOptions, options_or_arguments
from glmm_binomial.methods.registry import method_names
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import build_model
from glmm_binomial.model.formula import parse_formula
from glmm_binomial.model.validation import emit_fit_warnings
from glmm_binomial.numerics import blas
from glmm_binomial.numerics.pirls import PirlsControl
from glmm_binomial.results.result import GLMMResult


def fit(
    formula: str,
    data: Any,
    *,
    method: str | Method = "laplace",
    weights: Any = None,
    offset: Any = None,
    n_agq: int | None = None,
    conf_level: float = 0.95,
    prior_fe_sd: float | None = None,
    prior_log_sd_sd: float | None = None,
    priors: Any = None,
    control: Any = None,
    pirls_control: PirlsControl | None = None,
    blas_threads: int | None = 1,
    client: Any = None,
    options: FitOptions | None = None,
) -> GLMMResult:
    """Fit a binomial GLMM (logit link) written in lme4's formula syntax.

    method: "laplace" (maximum likelihood, Laplace approximation, as glmer nAGQ = 1), "agq"
    (maximum likelihood, adaptive Gauss-Hermite quadrature with n_agq points per dimension,
    default 1), "vb" (structured variational Bayes, methods/structured_vb.py: fixed and random
    effects jointly Gaussian; priors N(0, prior_fe_sd^2) on the fixed effects, N(0,
    prior_log_sd_sd^2) on each log random-effect SD (defaults 2 and 1) and LKJ(2) on the
    correlations of a term such as (1 + x | g); posterior means and SDs, result.elbo) or
    "vb_meanfield" (statsmodels' mean-field BinomialBayesMixedGLM.fit_vb family with the same
    priors, independent variance components only; its SDs understate the posterior's); or a
    method object (glmm_binomial.Laplace(...), Agq(n_agq, ...), VariationalBayes(...),
    MeanFieldVB(...)) carrying its own settings.
    priors: for "laplace" and "agq", fit the posterior mode under these priors instead of the
    maximum-likelihood estimate (blme's bglmer), e.g. {"fixef": "t(df = 7, scale = 2.5)",
    "cov": "wishart"}, "blme" (bglmer's default, a Wishart prior on each covariance) or
    "none"; blme's spellings and meanings (glmm_binomial.model.priors). The result says it is
    a penalized fit (result.penalized, result.prior_deviance, result.priors).
    weights: prior weights (the number of trials when the response is a proportion); offset:
    added to the linear predictor. Either may be a column name or one value per row.
    Rows with a missing value in any used column are dropped (reported as n_dropped).
    control: OptimizerControl for "laplace" and "agq", StructuredVBControl for "vb",
    VariationalControl for "vb_meanfield" (None: the defaults); pirls_control: PirlsControl of
    the inner mode search.
    blas_threads: threads BLAS may use during the fit (None: as configured; the default 1 is
    fastest for these small matrix products, see glmm_binomial.numerics.blas).
    options: a FitOptions holding all of the above at once (then give none of them).
    data may be a Dask DataFrame (extra "dask"): see glmm_binomial.distributed.fit.fit_dask,
    which takes client= (a distributed.Client or scheduler address; None: the current client);
    it gives the in-memory fit's numbers (internal rescaling included) and emits the same
    warnings (method "vb": nested grouping factors only, and separation, which needs every row,
    is flagged as possible but not checked).
    """
    options = options_or_arguments(
        options,
        method,
        conf_level=conf_level,
        blas_threads=blas_threads,
        n_agq=n_agq,
        prior_fe_sd=prior_fe_sd,
        prior_log_sd_sd=prior_log_sd_sd,
        priors=priors,
        control=control,
        pirls_control=pirls_control,
    )
    if is_dask_frame(data):
        refuse_on_dask(formula, options.method)
        from glmm_binomial.distributed.fit import fit_dask

        # stacklevel: the warnings point at the caller of fit().
        return fit_dask(formula, data, options, weights, offset, client, stacklevel=4)
    model, design = build_model(formula, data, weights=weights, offset=offset)
    options.method.check(model, design)
    output = estimate(model, options)
    emit_fit_warnings(output.warnings)
    return GLMMResult(
        model, output, design=design, conf_level=options.conf_level, method_object=options.method
    )


def fit_model(
    model: ModelData,
    *,
    method: str | Method = "laplace",
    n_agq: int | None = None,
    conf_level: float = 0.95,
    prior_fe_sd: float | None = None,
    prior_log_sd_sd: float | None = None,
    priors: Any = None,
    control: Any = None,
    pirls_control: PirlsControl | None = None,
    blas_threads: int | None = 1,
    options: FitOptions | None = None,
) -> GLMMResult:
    """Fit a model already in numerical form (used by the spreadsheet front end); the
    arguments are fit()'s."""
    if not isinstance(model, ModelData):
        raise ValueError("model must be a ModelData")
    options = options_or_arguments(
        options,
        method,
        conf_level=conf_level,
        blas_threads=blas_threads,
        n_agq=n_agq,
        prior_fe_sd=prior_fe_sd,
        prior_log_sd_sd=prior_log_sd_sd,
        priors=priors,
        control=control,
        pirls_control=pirls_control,
    )
    options.method.check(model)
    output = estimate(model, options)
    emit_fit_warnings(output.warnings)
    return GLMMResult(model, output, conf_level=options.conf_level, method_object=options.method)


def estimate(model: ModelData, options: FitOptions) -> FitOutput:
    """The method's fit of `model` with BLAS held to options.blas_threads."""
    with blas.blas_threads(options.blas_threads):
        return options.method.fit(model)


def available_methods() -> tuple[str, ...]:
    """The names of the estimation methods (methods.registry)."""
    return method_names()


def refuse_on_dask(formula: str, method: Method) -> None:
    """ValueError for what the Dask fit does not do: priors (a posterior-mode fit) and
    structured covariance terms (ar1, cs, diag) are fitted in memory only."""
    advice = "fit the computed frame in memory: glmm_binomial.fit(formula, ddf.compute(), ...)"
    priors = getattr(method, "priors", None)
    if priors is not None and not priors.empty:
        raise ValueError(f"priors are not available for a Dask DataFrame; {advice}")
    if isinstance(formula, str):
        structured = [t.text for t in parse_formula(formula).random if t.structure != "us"]
        if structured:
            raise ValueError(
                f"structured covariance terms ({', '.join(structured)}) are not available for a "
                f"Dask DataFrame; {advice}"
            )


def is_dask_frame(data: Any) -> bool:
    """Whether `data` is a Dask DataFrame, told without importing Dask (or our Dask modules)."""
    return any(
        cls.__name__ == "DataFrame" and cls.__module__.split(".")[0] in ("dask", "dask_expr")
        for cls in type(data).__mro__
    )
