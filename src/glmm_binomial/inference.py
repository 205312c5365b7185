"""Likelihood-ratio tests between nested fits."""

from __future__ import annotations

import pandas as pd
from scipy import stats

from glmm_binomial.result import GLMMResult


def anova(*results: GLMMResult) -> pd.DataFrame:
    """Likelihood-ratio tests of a sequence of nested models, as lme4's anova().

    Models are ordered by their number of parameters; each row after the first tests the model
    against the one before it: chisq = 2 (loglik - previous loglik) on the difference in
    parameters. All models must be fitted by maximum likelihood to the same observations."""
    if len(results) < 2:
        raise ValueError("anova needs at least two fitted models")
    for r in results:
        if not isinstance(r, GLMMResult):
            raise ValueError("anova takes GLMMResult objects")
        if r.method == "vb":
            raise ValueError("likelihood-ratio tests need maximum-likelihood fits, not method 'vb'")
    if len({r.nobs for r in results}) != 1:
        raise ValueError("models were fitted to different numbers of observations")
    ordered = sorted(results, key=lambda r: r.df_model)
    rows = []
    previous: GLMMResult | None = None
    for r in ordered:
        row = {
            "formula": r.formula,
            "npar": r.df_model,
            "AIC": r.aic,
            "BIC": r.bic,
            "logLik": r.loglik,
            "deviance": r.deviance,
            "chisq": float("nan"),
            "df": float("nan"),
            "p": float("nan"),
        }
        if previous is not None:
            df = r.df_model - previous.df_model
            chisq = max(2.0 * (r.loglik - previous.loglik), 0.0)
            row.update(chisq=chisq, df=df, p=float(stats.chi2.sf(chisq, df)) if df > 0 else 1.0)
        rows.append(row)
        previous = r
    return pd.DataFrame(rows)
