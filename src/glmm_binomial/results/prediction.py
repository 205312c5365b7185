"""Predictions of a fit: the linear predictor and its variance for the fit's rows or new data.

eta = X beta + offset + sum over the chosen random-effect blocks of z' b (conditional modes;
a level not seen in the fit has b = 0), and with se_fit its variance x' V x + sum z' Cov(b | y) z
(V the covariance of beta; the fixed and random parts taken as independent, as lme4's
predict(se.fit = TRUE) and merTools do). On the response scale mu = F(eta), F the family's
inverse link (expit for the logit, Phi for the probit, ...), and its standard error by the
delta method, se * d mu / d eta (se * mu (1 - mu) for the logit).

Functions of the fit's parts (ModelData, FitOutput, DesignInfo), so that the result class
(results.base) uses them without this module knowing the class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.arguments import fraction
from glmm_binomial.family import Family, inverse_link
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import DesignInfo
from glmm_binomial.model.formula import parse_formula
from glmm_binomial.model.newdata import (
    new_data_design,
    new_level_counts,
    new_levels_text,
    new_levels_warning,
)
from glmm_binomial.numerics import normal
from glmm_binomial.numerics.covariance import row_variances

FloatArray = NDArray[np.float64]

TYPES = ("response", "link")


def predict(
    model: ModelData,
    fit: FitOutput,
    design: DesignInfo | None,
    newdata: Any,
    re: Any,
    type: str,
    offset: Any,
    se_fit: bool,
    stacklevel: int = 2,
    conf_level: float | None = None,
    re_form: Any = None,
    allow_new_levels: bool = True,
) -> Any:
    """Predictions as GLMMResult.predict documents them. A NewLevelsWarning (new grouping
    levels in newdata) is emitted with `stacklevel` counted as warnings.warn would count it in
    the caller of this function (2: the caller's caller); with allow_new_levels=False they
    raise a ValueError instead."""
    if type not in TYPES:
        raise ValueError("type must be 'response' or 'link'")
    if conf_level is not None:
        conf_level = fraction(conf_level, "conf_level")
        se_fit = True
    chosen = chosen_random(model, design, re, re_form, allow_new_levels)
    if newdata is None:
        if offset is not None:
            raise ValueError("offset applies only with newdata")
        random = [(model.blocks[t].codes, model.blocks[t].z) for t in chosen]
        fitted, fitted_var = linear_predictor(fit, model.x, model.offset, random, chosen, se_fit)
        return predict_output(fitted, fitted_var, type, None, model.family, conf_level)
    if design is None:
        raise ValueError("predict with newdata needs a model fitted from a formula")
    new = new_data_design(design, newdata, offset, random=chosen)
    if chosen and not allow_new_levels:
        counts = new_level_counts(design, new)
        if counts:
            raise ValueError(
                f"newdata has levels of {new_levels_text(counts)} not seen in the fit "
                "(allow_new_levels=False, lme4's default); allow_new_levels=True predicts "
                "them at population level (a zero random effect)"
            )
    if chosen:
        warning = new_levels_warning(design, new)
        if warning is not None:
            warning.emit(stacklevel=stacklevel + 1)
    eta_complete, var_complete = linear_predictor(
        fit, new.x, new.offset, new.random, new.blocks, se_fit
    )
    eta = np.full(new.complete.shape[0], np.nan)
    eta[new.complete] = eta_complete
    var: FloatArray | None = None
    if var_complete is not None:
        var = np.full(new.complete.shape[0], np.nan)
        var[new.complete] = var_complete
    index = new.index if isinstance(newdata, pd.DataFrame) else None
    return predict_output(eta, var, type, index, model.family, conf_level)


def chosen_random(
    model: ModelData,
    design: DesignInfo | None,
    re: Any,
    re_form: Any,
    allow_new_levels: Any = True,
) -> tuple[int, ...]:
    """Indices of the random blocks predict adds, from ``re`` or lme4's ``re_form`` (one of
    them given); ValueError for either, or for an allow_new_levels that is not a bool."""
    if not isinstance(allow_new_levels, bool | np.bool_):
        raise ValueError(f"allow_new_levels must be True or False, got {allow_new_levels!r}")
    if re_form is None:
        return chosen_blocks(model, re)
    if isinstance(re, str) and re == "include":
        return blocks_of_re_form(design, re_form)
    raise ValueError("give re or re_form (lme4's name), not both")


def chosen_blocks(model: ModelData, re: Any) -> tuple[int, ...]:
    """Indices of the random blocks that ``re`` asks predict to add: "include" (all),
    "exclude" (none) or a list of grouping-factor names (ValueError naming the valid ones)."""
    blocks = model.blocks
    valid = list(dict.fromkeys(b.group for b in blocks))
    listed = ", ".join(map(repr, valid))
    if isinstance(re, str):
        if re == "include":
            return tuple(range(len(blocks)))
        if re == "exclude":
            return ()
        hint = f"; for that factor only pass re=[{re!r}]" if re in valid else ""
        raise ValueError(
            "re must be 'include', 'exclude' or a list of grouping-factor names "
            f"(got {re!r}; grouping factors: {listed}){hint}"
        )
    try:
        names = list(re)
    except TypeError:
        raise ValueError(
            "re must be 'include', 'exclude' or a list of grouping-factor names "
            f"(grouping factors: {listed})"
        ) from None
    unknown = [n for n in names if not isinstance(n, str) or n not in valid]
    if unknown:
        raise ValueError(
            f"re: {', '.join(map(repr, unknown))} not a grouping factor of the model "
            f"(grouping factors: {listed})"
        )
    return tuple(t for t, b in enumerate(blocks) if b.group in names)


def blocks_of_re_form(design: DesignInfo | None, re_form: Any) -> tuple[int, ...]:
    """Indices of the random blocks lme4's re.form names: "~0", "NA" or a float NaN (R's NA)
    none; a one-sided formula of random-effect terms of the fit, e.g. "~(1 | district)", those
    terms (written as in the fit's formula; a term the fit lacks raises a ValueError listing
    the fit's terms)."""
    if isinstance(re_form, float) and np.isnan(re_form) or re_form is pd.NA:
        return ()
    if not isinstance(re_form, str):
        raise ValueError(
            "re_form must be a one-sided formula of the fit's random-effect terms such as "
            f"'~(1 | g)', or '~0' / 'NA' for none, got {re_form!r}"
        )
    text = re_form.strip()
    if text == "NA" or "".join(text.split()) in ("~0", "~-1", "~0-1", "~-1+0"):
        return ()
    if not text.startswith("~"):
        raise ValueError(f"re_form must be a one-sided formula starting with '~', got {re_form!r}")
    if design is None:
        raise ValueError(
            "re_form needs a model fitted from a formula; give re= (grouping-factor names) here"
        )
    try:
        parsed = parse_formula("y " + text)
    except ValueError as error:
        raise ValueError(f"re_form {re_form!r}: {error}") from None
    if parsed.fixed not in ("0", "1", "-1", "0 - 1", "1 - 1"):
        raise ValueError(
            f"re_form {re_form!r} holds terms other than random-effect terms ('{parsed.fixed}'); "
            "it says which random effects to add, the fixed effects are always in"
        )
    fit_terms = [
        (spec.term.structure, spec.term.group, spec.term.text.replace(" ", ""))
        for spec in design.random_specs
    ]
    chosen: list[int] = []
    for term in parsed.random:
        key = (term.structure, term.group, term.text.replace(" ", ""))
        if key not in fit_terms:
            listed = ", ".join(spec.term.text for spec in design.random_specs)
            raise ValueError(
                f"re_form: {term.text} is not a random-effect term of the fit (its terms: {listed})"
            )
        chosen.append(fit_terms.index(key))
    return tuple(sorted(set(chosen)))


def linear_predictor(
    fit: FitOutput,
    x: FloatArray,
    offset: FloatArray,
    random: list[tuple[NDArray[np.intp], FloatArray]],
    blocks: tuple[int, ...],
    se_fit: bool,
) -> tuple[FloatArray, FloatArray | None]:
    """x beta + offset + the chosen blocks' z b (codes -1: zero effect), and with se_fit its
    variance x' V x + sum z' Cov(b | y) z (fixed and random parts taken as independent)."""
    eta = x @ fit.beta + offset
    # A separated fit's coefficient with no variance makes NaN only the rows that use it in
    # a combination that diverges (its limit covariance gives the others theirs).
    var = row_variances(x, fit.vcov_beta, fit.vcov_limit) if se_fit else None
    for (codes, z), t in zip(random, blocks, strict=True):
        seen = codes >= 0
        modes = fit.ranef[t]
        contribution = np.zeros(len(codes))
        contribution[seen] = np.einsum("ic,ic->i", z[seen], modes[codes[seen]])
        eta = eta + contribution
        if var is not None:
            covs = fit.ranef_cov[t]
            zs = z[seen]
            extra = np.zeros(len(codes))
            extra[seen] = np.einsum("ic,icd,id->i", zs, covs[codes[seen]], zs)
            var = var + extra
    return eta, var


def predict_output(
    eta: FloatArray,
    var: FloatArray | None,
    type: str,
    index: pd.Index | None,
    family: Family | None = None,
    conf_level: float | None = None,
) -> Any:
    """predict's return value: values (a Series when index is given), or with var the fit and
    its se as a DataFrame (index given) or an n x 2 array; response values by the family's
    inverse link (None: the logit's), their se by the delta method, se * d mu / d eta
    (se * mu (1 - mu) for the logit). With conf_level also the Wald interval eta -+ z se on
    the link scale, for type="response" mapped by the inverse link (which is increasing:
    the interval stays inside (0, 1), unlike fit -+ z se_fit): columns ci_lower, ci_upper (an
    n x 4 array without index)."""
    # The logit's own expressions for the logit (bit for bit as before families existed).
    other = None if family is None or family.link == "logit" else family
    if type == "link":
        values = eta
    else:
        values = inverse_link(eta) if other is None else other.inverse_link(eta)
    if var is None:
        return values if index is None else pd.Series(values, index=index, name=type)
    se = np.sqrt(var)
    if type == "response":
        se = se * values * (1.0 - values) if other is None else se * other.mu_eta(eta)
    columns = {"fit": values, "se_fit": se}
    if conf_level is not None:
        half = normal.quantile(0.5 + conf_level / 2.0) * np.sqrt(var)
        for name, bound in (("ci_lower", eta - half), ("ci_upper", eta + half)):
            if type == "link":
                columns[name] = bound
            else:
                columns[name] = inverse_link(bound) if other is None else other.inverse_link(bound)
    if index is None:
        return np.column_stack(list(columns.values()))
    return pd.DataFrame(columns, index=index)
