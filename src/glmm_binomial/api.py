"""Public entry points: fit a binomial GLMM from a formula and a DataFrame, or from ModelData.

Each builds one FitOptions (methods.options: the method object with its settings, the
confidence level, BLAS threads), checks the model with the method, and lets the method fit it.
The design is built and validated in model/; the numerical modules assume valid input.
A Dask DataFrame goes to glmm_binomial.distributed, imported only then. The formula front end
(model.design: pandas, formulaic) and the result object (results/: pandas) are imported by the
calls that need them, so that a fit from ModelData (the spreadsheet's) loads neither.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from glmm_binomial.family import Family, make_family
from glmm_binomial.methods.base import Method, Start
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.methods.options import FitOptions, options_or_arguments
from glmm_binomial.methods.registry import method_names
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.validation import emit_fit_warnings
from glmm_binomial.numerics import blas
from glmm_binomial.numerics.pirls import PirlsControl

if TYPE_CHECKING:
    from collections.abc import Mapping

    from glmm_binomial.results.result import GLMMResult

BINOMIAL_DEFAULT = make_family()
"""The default family (binomial, logit link)."""


def fit(
    formula: str,
    data: Any,
    *,
    method: str | Method = "laplace",
    family: str | Family | None = None,
    link: str | None = None,
    weights: Any = None,
    offset: Any = None,
    contrasts: Any = None,
    subset: Any = None,
    start: Any = None,
    n_agq: int | None = None,
    conf_level: float = 0.95,
    prior_fe_sd: float | None = None,
    prior_log_sd_sd: float | None = None,
    priors: Any = None,
    control: Any = None,
    pirls_control: PirlsControl | Mapping[str, Any] | None = None,
    blas_threads: int | None = 1,
    client: Any = None,
    draws: int | None = None,
    warmup: int | None = None,
    chains: int | None = None,
    seed: Any = None,
    options: FitOptions | None = None,
) -> GLMMResult:
    """Fit a binomial GLMM written in lme4's formula syntax.

    family: "binomial" (default) or "betabinomial" (glmmTMB's, with its dispersion phi
    estimated), also as R writes it ("binomial(link = 'probit')"), or a Family object;
    link: "logit" (default), "probit", "cloglog", "cauchit" or "log" (mu = e^eta <= 1 held).
    Maximum likelihood ("laplace", "agq", also with priors= and structured covariance terms)
    fits every family and link; "vb", "vb_meanfield" the binomial logit only (the others are
    refused with a ValueError), also on a Dask DataFrame.

    method: "laplace" (maximum likelihood, Laplace approximation, as glmer nAGQ = 1), "agq"
    (maximum likelihood, adaptive Gauss-Hermite quadrature with n_agq points per dimension,
    default 1), "vb" (structured variational Bayes, methods/structured_vb.py: fixed and random
    effects jointly Gaussian; priors N(0, prior_fe_sd^2) on the fixed effects, N(0,
    prior_log_sd_sd^2) on each log random-effect SD (defaults 2 and 1) and LKJ(2) on the
    correlations of a term such as (1 + x | g); posterior means and SDs, result.elbo) or
    "vb_meanfield" (statsmodels' mean-field BinomialBayesMixedGLM.fit_vb family with the same
    priors, independent variance components only; its SDs understate the posterior's), or
    "mcmc" (exact posterior draws by a Polya-Gamma Gibbs sampler under vb's priors, one
    random-effect term; methods/mcmc.py; result.draws, result.mcmc_summary, credible intervals
    from the draws); or a method object (glmm_binomial.Laplace(...), Agq(n_agq, ...),
    VariationalBayes(...), MeanFieldVB(...), Mcmc(...)) carrying its own settings.
    priors: for "laplace" and "agq", fit the posterior mode under these priors instead of the
    maximum-likelihood estimate (blme's bglmer), e.g. {"fixef": "t(df = 7, scale = 2.5)",
    "cov": "wishart"}, "blme" (bglmer's default, a Wishart prior on each covariance) or
    "none"; blme's spellings and meanings (glmm_binomial.model.priors). The result says it is
    a penalized fit (result.penalized, result.prior_deviance, result.priors).
    weights: prior weights (the number of trials when the response is a proportion); offset:
    added to the linear predictor. Either may be a column name or one value per row.
    Rows with a missing value in any used column are dropped (reported as n_dropped).
    contrasts: glmer's contrasts argument, the coding of factors of the fixed part, e.g.
    {"period": "contr.sum"} (columns period1, period2, ..; "contr.treatment", "contr.helmert",
    "contr.poly", "contr.SAS", or a matrix with one row per level); C(f, sum) in the formula
    does the same for one term. subset: glmer's subset, the rows to use: one logical per row or
    R code of the columns as text ("age > 20 & urban == 'Y'"); rows where it is FALSE or
    missing are left out first (not counted in n_dropped).
    start: glmer's start, where the search begins ("laplace", "agq"): {"theta": [...],
    "fixef": [...]} (lme4's names and layouts, result.theta and result.params; either may be
    left out: lme4's Lambda = I, the GLM's fixed effects), theta's values alone, or an earlier
    fit of the same model (its estimates). The fit then searches from there only.
    control: OptimizerControl for "laplace" and "agq", StructuredVBControl for "vb",
    VariationalControl for "vb_meanfield", McmcControl for "mcmc" (None: the defaults), or a
    dict of some of its settings ({"max_iter": 2000}: the others at their defaults);
    pirls_control: PirlsControl of the inner mode search ("laplace", "agq"), or a dict of
    some of its settings.
    draws, warmup, chains, seed (method "mcmc" only): kept draws per chain, warm-up sweeps,
    number of chains and the seed (an int or numpy SeedSequence; None: fresh entropy, recorded
    as result.posterior.settings["seed_entropy"]); they set those fields of control.
    blas_threads: threads BLAS may use during the fit (None: as configured; the default 1 is
    fastest for these small matrix products, see glmm_binomial.numerics.blas).
    options: a FitOptions holding all of the above at once (then give none of them).
    data may be a Dask DataFrame (extra "dask"): see glmm_binomial.distributed.fit.fit_dask,
    which takes client= (a distributed.Client or scheduler address; None: the current client);
    it gives the in-memory fit's numbers (internal rescaling included) and emits the same
    warnings (method "vb": nested grouping factors only, and separation, which needs every row,
    is flagged as possible but not checked; method "mcmc" is refused there: fit ddf.compute()
    in memory).
    """
    # fit()'s arguments as given, for update() (the first statement: locals() is them).
    arguments = {k: v for k, v in locals().items() if k not in ("formula", "data")}
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
        draws=draws,
        warmup=warmup,
        chains=chains,
        seed=seed,
    )
    chosen = make_family(family, link)
    if is_dask_frame(data):
        refuse_on_dask(options.method, chosen)
        if start is not None:
            raise ValueError("start= is not available for a Dask DataFrame")
        if contrasts is not None or subset is not None:
            raise ValueError(
                "contrasts= and subset= are not available for a Dask DataFrame: write the "
                "contrast in the formula, e.g. C(f, sum), filter the rows with ddf[...], or fit "
                "ddf.compute() in memory"
            )
        from glmm_binomial.distributed.fit import fit_dask

        # stacklevel: the warnings point at the caller of fit().
        return fit_dask(
            formula, data, options, weights, offset, client, stacklevel=4, family=chosen
        )
    from glmm_binomial.model.design import build_model
    from glmm_binomial.results.base import FitCall, ResultBase
    from glmm_binomial.results.result import GLMMResult

    # BLAS held from the start: the design's rank check is a LAPACK call too, and OpenBLAS
    # threads on busy cores made it cost more than the whole fit.
    with blas.blas_threads(options.blas_threads):
        model, design = build_model(
            formula,
            data,
            weights=weights,
            offset=offset,
            family=chosen,
            contrasts=contrasts,
            subset=subset,
        )
        options.method.check(model, design)
        given = None
        if start is not None:
            if isinstance(start, ResultBase):
                start = {"theta": start.theta, "fixef": start.params}
            given = options.method.start_from(model, start)
        output = estimate(model, options, given)
    emit_fit_warnings(output.warnings)
    return GLMMResult(
        model,
        output,
        design=design,
        conf_level=options.conf_level,
        method_object=options.method,
        call=FitCall(formula, data, arguments),
    )


def update(result: Any, formula: str | None = None, data: Any = None, **changes: Any) -> Any:
    """lme4's update(): the fit made again with its formula updated (R's update.formula,
    model.formula.update_formula: ". ~ . - x", ". ~ . + I(x^2)", ". ~ . - (1 | g)"), other data
    or other arguments of fit() (method=, family=, weights=, contrasts=, ..); the rest as the
    fit was called. data: else the object the fit was given (not a copy: as R's update, a later
    change to it is seen). A result that does not keep its call (fit_model, refit, a Dask fit,
    an unpickled result) needs data= and keeps only its method, family and conf_level (weights
    and offset given again). ValueError for an argument fit() does not take."""
    import inspect

    from glmm_binomial.model.formula import update_formula
    from glmm_binomial.results.base import ResultBase

    if not isinstance(result, ResultBase):
        raise ValueError("update takes a GLMMResult")
    allowed = set(inspect.signature(fit).parameters) - {"formula", "data"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValueError(f"update: fit() has no argument {unknown[0]!r}")
    call = result.call
    if call is None:
        if data is None:
            raise ValueError(
                "update needs data=: this result does not keep the data it was fitted to (made "
                "by fit_model, refit or a Dask fit, or unpickled)"
            )
        base = result.formula
        arguments: dict[str, Any] = {
            "method": result.method_object,
            "family": result.model.family,
            "conf_level": result.conf_level,
        }
    else:
        base, arguments = call.formula, dict(call.arguments)
        data = call.data if data is None else data
    if {"method", "options"} & set(changes):
        # A new method (or options) replaces the old one's settings with it.
        for name in ("method", "options", "n_agq", "control"):
            arguments.pop(name, None)
    arguments.update(changes)
    new_formula = base if formula is None else update_formula(base, formula)
    return fit(new_formula, data, **arguments)


def fit_model(
    model: ModelData,
    *,
    method: str | Method = "laplace",
    family: str | Family | None = None,
    link: str | None = None,
    n_agq: int | None = None,
    conf_level: float = 0.95,
    prior_fe_sd: float | None = None,
    prior_log_sd_sd: float | None = None,
    priors: Any = None,
    control: Any = None,
    pirls_control: PirlsControl | Mapping[str, Any] | None = None,
    blas_threads: int | None = 1,
    draws: int | None = None,
    warmup: int | None = None,
    chains: int | None = None,
    seed: Any = None,
    options: FitOptions | None = None,
) -> GLMMResult:
    """Fit a model already in numerical form; the arguments are fit()'s (family and link, when
    given, replace the model's family)."""
    from glmm_binomial.results.result import GLMMResult

    if not isinstance(model, ModelData):
        raise ValueError("model must be a ModelData")
    if family is not None or link is not None:
        model = dataclasses.replace(model, family=make_family(family, link))
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
        draws=draws,
        warmup=warmup,
        chains=chains,
        seed=seed,
    )
    output = fit_estimates(model, options, stacklevel=4)
    return GLMMResult(model, output, conf_level=options.conf_level, method_object=options.method)


def fit_estimates(model: ModelData, options: FitOptions, stacklevel: int = 3) -> FitOutput:
    """fit_model's estimates without the result object (the spreadsheet front end reads them
    as numbers: no pandas): the model checked by the method, fitted, its warnings emitted
    (stacklevel: as emit_fit_warnings', counted from this function's caller)."""
    if not isinstance(model, ModelData):
        raise ValueError("model must be a ModelData")
    options.method.check(model)
    output = estimate(model, options)
    emit_fit_warnings(output.warnings, stacklevel)
    return output


def estimate(model: ModelData, options: FitOptions, start: Start | None = None) -> FitOutput:
    """The method's fit of `model` (from `start`, when given) with BLAS held to
    options.blas_threads."""
    with blas.blas_threads(options.blas_threads):
        return options.method.fit(model, start)


def available_methods() -> tuple[str, ...]:
    """The names of the estimation methods (methods.registry)."""
    return method_names()


def refuse_on_dask(method: Method, family: Family = BINOMIAL_DEFAULT) -> None:
    """ValueError, before any pass over the data, for a method that does not fit the family
    (the Dask fit takes every family and link the method does; the beta-binomial and the log
    link with factors crossed with the outermost one are refused once the learning pass has
    found them)."""
    method.check_family(family)


def is_dask_frame(data: Any) -> bool:
    """Whether `data` is a Dask DataFrame, told without importing Dask (or our Dask modules)."""
    return any(
        cls.__name__ == "DataFrame" and cls.__module__.split(".")[0] in ("dask", "dask_expr")
        for cls in type(data).__mro__
    )
