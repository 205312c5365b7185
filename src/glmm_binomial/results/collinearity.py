"""Collinearity of the fixed effects: generalized variance inflation factors (Fox and Monette
1992), as car's vif() of a glmer fit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from glmm_binomial.diagnostics import GLMMWarning
from glmm_binomial.model.design import term_columns
from glmm_binomial.model.formula import r_text
from glmm_binomial.results.base import ResultBase


def vif(result: ResultBase) -> pd.DataFrame:
    """One row per fixed-effects term but the intercept, as car's vif(): GVIF = det(R_tt)
    det(R_oo) / det(R), R the correlation matrix of the fixed-effect estimates without the
    intercept, t the term's columns and o the others (for a one-column term the usual VIF), Df
    its number of columns, and GVIF^(1/(2*Df)) (comparable across terms of different Df: the
    inflation of a confidence interval's length). Columns as car names them; the table also
    where every Df is 1 (car gives a vector there). A model without an intercept warns, as car
    does ("vifs may not be sensible"); fewer than two terms is a ValueError."""
    if not isinstance(result, ResultBase):
        raise ValueError("vif takes a GLMMResult (what glmm_binomial.fit returns)")
    design = result.design
    if design is None:
        raise ValueError(
            "vif needs the formula's terms: a fit of glmm_binomial.fit(formula, data), not "
            "fit_model's"
        )
    names = result.fixed_names
    columns = term_columns(design, len(names))
    if "1" in columns:
        others = [j for j in range(len(names)) if j not in columns["1"]]
    else:
        warnings.warn("No intercept: vifs may not be sensible.", GLMMWarning, stacklevel=2)
        others = list(range(len(names)))
    terms = {label: cols for label, cols in columns.items() if label != "1"}
    if len(terms) < 2:
        raise ValueError("vif: the model contains fewer than 2 fixed-effects terms")
    covariance = result.vcov.to_numpy()[np.ix_(others, others)]
    scale = np.sqrt(np.diag(covariance))
    correlation = covariance / np.outer(scale, scale)
    position = {j: i for i, j in enumerate(others)}
    whole = np.linalg.slogdet(correlation)[1]
    rows = []
    for label, cols in terms.items():
        mine = [position[j] for j in cols]
        rest = [i for i in range(len(others)) if i not in mine]
        log_gvif = (
            np.linalg.slogdet(correlation[np.ix_(mine, mine)])[1]
            + np.linalg.slogdet(correlation[np.ix_(rest, rest)])[1]
            - whole
        )
        gvif = float(np.exp(log_gvif))
        rows.append(
            {
                "term": r_text(label),
                "GVIF": gvif,
                "Df": len(cols),
                "GVIF^(1/(2*Df))": gvif ** (1.0 / (2 * len(cols))),
            }
        )
    return pd.DataFrame(rows).set_index("term")
