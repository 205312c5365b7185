"""Checks of a model before it is fitted: models the data cannot identify, and terms a method
cannot fit, refused with a message that says what to write instead.

Each method object's ``check`` (glmm_binomial.methods) calls the checks that apply to it;
``emit_fit_warnings`` raises a fit's messages through Python's ``warnings`` module with their
classes when ``fit()`` returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from glmm_binomial.diagnostics import as_fit_warning
from glmm_binomial.model.covariance import Unstructured
from glmm_binomial.model.data import ModelData, RandomBlock

if TYPE_CHECKING:
    from glmm_binomial.model.design import DesignInfo
    from glmm_binomial.model.formula import RandomTerm

_IDENTIFIER = re.compile(r"`[^`]*`|(?:[^\W\d]|\.)[\w.]*")


def check_identifiable(model: ModelData, terms: Sequence[str] | None = None) -> None:
    """Refuse a random-effect term with no more 0/1 rows than random effects (lme4's
    check.nobs.vs.nRE as lmer applies it; glmer refuses only fewer rows, so it fits the equal
    case, whose variance rests on the link's shape alone): with one Bernoulli row per level of
    (1 | g), the variance of g's effects cannot be told apart from the rows' own binomial
    variation. Binomial rows with more than one trial carry information on the variance within
    the row, so they are not refused."""
    if model.n_obs == 0 or not (model.trials == 1.0).all():
        return
    for t, block in enumerate(model.blocks):
        used = int(np.count_nonzero(np.bincount(block.codes, minlength=block.n_levels)))
        n_effects = used * block.k
        if model.n_obs <= n_effects:
            term = terms[t] if terms is not None else block_text(block)
            if block.k == 1 and model.n_obs == used:
                each = f"every level of {block.group} has a single 0/1 row"
            else:
                each = "the term has no more 0/1 rows than random effects"
            raise ValueError(
                f"number of observations (={model.n_obs}) <= number of random effects "
                f"(={n_effects}) for term {term}: {each}, so the random-effect parameters are "
                "not identifiable; remove the term, or give rows that share a level of "
                f"{block.group} (or binomial rows with more than one trial)"
            )


def check_unstructured(model: ModelData, method: str) -> None:
    """Refuse glmmTMB's structured covariance terms (ar1, cs, diag) for a method whose variance
    parameters are lme4's (SDs and correlations of an unstructured covariance)."""
    structured = [b for b in model.blocks if not isinstance(b.covariance, Unstructured)]
    if structured:
        names = ", ".join(f"{b.covariance.name}(... | {b.group})" for b in structured)
        raise ValueError(
            f"method {method!r} fits lme4's terms, not the structured covariance of {names}; "
            "use method='laplace' or 'agq', or write a diag() term as (0 + x || g)"
        )


def check_independent_terms(model: ModelData, design: DesignInfo | None = None) -> None:
    """Refuse correlated random-effect blocks (more than one column) for method "vb_meanfield",
    which fits independent variance components only, with advice in valid formula syntax."""
    for t, block in enumerate(model.blocks):
        if block.k == 1:
            continue
        if design is None:
            raise ValueError(
                f"random-effect block {block_text(block)} has {block.k} correlated columns: "
                "method 'vb_meanfield' fits independent variance components only; give each "
                "column a RandomBlock of its own (method 'vb' fits correlated terms)"
            )
        term = design.random_specs[t].term
        origin = ""
        if "||" in design.formula.text:
            # (1 + f || g) expands to (1 | g) + (0 + f | g): a factor's columns stay together.
            origin = " (from '||', which keeps a factor's columns in one term, as in lme4)"
        raise ValueError(
            f"random-effect term {term.text}{origin} has {block.k} correlated columns: method "
            "'vb_meanfield' fits independent variance components only; write it as "
            f"{independent_text(term, block)} (method 'vb' fits correlated terms)"
        )


def independent_text(term: RandomTerm, block: RandomBlock) -> str:
    """The term as independent one-column terms, in formula syntax: ``(1 + x || g)`` for
    numeric columns; a factor's dummy columns become indicators, ``dummy(urban, "Y")``, since
    ``||`` keeps a factor's columns together in one correlated term (as lme4 does)."""
    group = ":".join(term.group)
    variables = sorted(
        {name.strip("`") for name in _IDENTIFIER.findall(term.expr)}, key=len, reverse=True
    )
    parts = [_column_expression(name, variables) for name in block.terms]
    if all(part is not None and part[1] for part in parts):
        # Numeric columns only: the user's own term, with '||'.
        return term.text.replace("|", "||", 1) if "||" not in term.text else term.text
    pieces = [part[0] for part in parts if part is not None]
    if len(pieces) < len(parts):
        return f"one term per column, e.g. (1 | {group}) + (0 + <column> | {group})"
    if "1" not in pieces:
        pieces.insert(0, "0")
    return f"({' + '.join(pieces)} || {group})"


def emit_fit_warnings(warnings: Sequence[str], stacklevel: int = 3) -> None:
    """Raise each of a fit's messages through ``warnings.warn`` with its class; the default
    stacklevel points at the caller of the public function that called this."""
    for message in warnings:
        as_fit_warning(message).emit(stacklevel=stacklevel)


def _column_expression(name: str, variables: Sequence[str]) -> tuple[str, bool] | None:
    """(expression, numeric) giving one design column in formula syntax, or None."""
    if name == "(Intercept)":
        return "1", True
    if name in variables:
        return _quote(name), True
    factors = []
    levels: list[tuple[str, str]] = []  # (variable, level) of each factor's indicator
    for piece in name.split(":"):
        if piece in variables or "(" in piece:  # a numeric column or a transform's column
            factors.append(piece if "(" in piece else _quote(piece))
            continue
        variable = next((v for v in variables if piece.startswith(v) and piece != v), None)
        if variable is None:
            return None
        level = json.dumps(piece[len(variable) :])
        factors.append(f"({_quote(variable)} == {level})")
        levels.append((_quote(variable), level))
    if not levels:
        return (name if "(" in name else _quote(name)), True
    if len(factors) == 1:
        # lme4's dummy(): the indicator as a number (I(urban == "Y") is a logical, which R
        # codes as a factor of two levels).
        return f"dummy({levels[0][0]}, {levels[0][1]})", False
    return f"I({' * '.join(factors)})", False


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[^\W\d]\w*", name) else f"`{name}`"


def block_text(block: RandomBlock) -> str:
    """A random-effect block as lme4 writes it, from its column names: ``(1 + x | g)``."""
    shown = ["1" if name == "(Intercept)" else name for name in block.terms]
    if "(Intercept)" not in block.terms:
        shown.insert(0, "0")
    return f"({' + '.join(shown)} | {block.group})"


def term_texts(model: ModelData, design: DesignInfo | None) -> list[str]:
    """The random-effect terms as the user wrote them (from `design`), else as lme4 prints
    ModelData's blocks."""
    if design is not None and len(design.random_specs) == len(model.blocks):
        return [spec.term.text for spec in design.random_specs]
    return [block_text(block) for block in model.blocks]
