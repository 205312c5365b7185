"""The posterior draws of a sampling fit (method "mcmc"): the draws as arrays, their summary
table (ArviZ's columns), equal-tailed credible intervals of every parameter, the summary's lines
saying what the numbers are, and an ArviZ InferenceData (optional extra "arviz").

Every function takes a ResultBase; a fit without draws (every other method) raises
AttributeError naming its method.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.methods.estimates import PosteriorDraws
from glmm_binomial.methods.mcmc_diagnostics import SUMMARY_COLUMNS, equal_tailed_interval
from glmm_binomial.results.base import ResultBase
from glmm_binomial.results.parameters import all_parameters

FloatArray = NDArray[np.float64]


def require_draws(result: ResultBase) -> PosteriorDraws:
    """The fit's draws; AttributeError for a fit that has none."""
    posterior = result.posterior
    if posterior is None:
        raise AttributeError(
            f"a fit by method {result.method!r} has no posterior draws (method 'mcmc' has)"
        )
    return posterior


def draws(result: ResultBase) -> dict[str, FloatArray]:
    """Posterior draws, name -> array (chains, draws): fixed effects, SDs (sd_<term>|<group>)
    and correlations (cor_<term2>.<term1>|<group>), as copies."""
    return {name: values.copy() for name, values in require_draws(result).draws.items()}


def mcmc_summary(result: ResultBase) -> pd.DataFrame:
    """One row per parameter (fixed effects, SDs, correlations) with ArviZ's columns mean, sd,
    mcse_mean, ess_bulk, ess_tail, r_hat (rank-normalized split R-hat)."""
    posterior = require_draws(result)
    frame = pd.DataFrame.from_dict(posterior.summary, orient="index")
    frame = frame.loc[:, list(SUMMARY_COLUMNS)]
    frame.index.name = "parameter"
    return frame


def posterior_confint(result: ResultBase, conf_level: float) -> pd.DataFrame:
    """Equal-tailed credible intervals at conf_level of every parameter, in confint()'s rows
    (SDs and correlations, then the fixed effects): quantiles (1 - conf_level) / 2 and
    (1 + conf_level) / 2 of the draws (NaN where too few draws lie beyond them)."""
    posterior = result.posterior
    if posterior is None:
        raise ValueError(
            f"method 'posterior' needs posterior draws; method {result.method!r} has none "
            "(fit with method='mcmc')"
        )
    names = list(all_parameters(result).index)
    tail = (1.0 - conf_level) / 2.0
    bounds = np.array([equal_tailed_interval(posterior.draws[name], tail) for name in names])
    return pd.DataFrame(
        {"lower": bounds[:, 0], "upper": bounds[:, 1]},
        index=pd.Index(names, name="parameter"),
    )


def fixed_effect_intervals(result: ResultBase, tail: float) -> tuple[FloatArray, FloatArray]:
    """The fixed effects' equal-tailed credible intervals at level 1 - 2 tail (the quantiles
    tail and 1 - tail of their draws, NaN where too few draws lie beyond them), with the tail
    probability given directly (the spreadsheet's alpha / 2, exact however small)."""
    posterior = require_draws(result)
    bounds = [equal_tailed_interval(posterior.draws[name], tail) for name in result.fixed_names]
    return np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])


def to_inference_data(result: ResultBase) -> Any:
    """The draws as an ArviZ InferenceData (needs ArviZ: the extra "arviz")."""
    posterior = require_draws(result)
    try:
        import arviz
    except ImportError:
        raise ImportError(
            "to_inference_data needs ArviZ: pip install 'glmm-binomial[arviz]'"
        ) from None
    return arviz.from_dict(
        posterior={name: values.copy() for name, values in posterior.draws.items()},
        attrs={key: str(value) for key, value in posterior.settings.items()},
    )


def summary_lines(result: ResultBase) -> list[str]:
    """What the summary of a fit with draws says about them: chains, draws, warm-up and the
    worst diagnostics, and what Post.Mean, Post.SD and the intervals are."""
    posterior = require_draws(result)
    settings = posterior.settings
    summary = posterior.summary
    r_hat = max((s["r_hat"] for s in summary.values()), default=float("nan"))
    ess = min((min(s["ess_bulk"], s["ess_tail"]) for s in summary.values()), default=float("nan"))
    return [
        f"Posterior draws: {settings['chains']} chains x {settings['draws']} (thin "
        f"{settings['thin']}) after {settings['warmup']} warm-up; max R-hat {r_hat:.3f}, "
        f"min bulk/tail ESS {ess:.0f}",
        "(Post.Mean, Post.SD: posterior means and SDs, z and Pr from their ratio; Std.Dev.: "
        "posterior mean SDs;",
        " credible intervals (fixed_effects, confint) are equal-tailed posterior quantiles)",
    ]
