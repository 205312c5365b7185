"""R's model-matrix conventions where formulaic's differ.

* Order of the variables within an interaction: R's ``terms()`` lists each interaction's
  variables in the order the variables first appear in the formula, whatever the order they
  were written in the interaction (``x1 + f/x1`` gives the term ``x1:f`` and the columns
  ``x1:fb``; ``f + x1 %in% f`` gives ``f:x1``); formulaic keeps the written order.
  ``r_ordered_formula`` gives formulaic's Formula with R's order.
* Which factors of a term are coded by contrasts: R's rule (Chambers and Hastie, Statistical
  Models in S, p. 38; R's TermCode): a factor of a term is coded by contrasts when the term
  without it is contained in a term before it (the empty term, for a main effect), by
  indicators of every level otherwise; with no intercept, the first factor of the first term
  that has one is coded by indicators. formulaic's own rule differs where an interaction comes
  without its margins (``f:k`` gives R's ``fa:khi`` .. ``fb:klo`` and, the seventh column
  aliased with the intercept, lme4's rank-deficiency drop; formulaic gives ``klo``,
  ``fb:khi`` ..). With every interaction's margins in the formula both rules give the same
  full-rank columns; without them R's heuristic may span another space (``0 + x + x:f + f:k``
  has no main effect of f in R), and the model is R's.
* A logical value (``I(x > 0)``): R codes it as a factor of levels FALSE and TRUE (the column
  ``I(x > 0)TRUE``, and with no intercept both levels); formulaic as the numbers 0 and 1.
  ``RMaterializer`` is formulaic's pandas materializer with R's coding of logical values.
  (Logical columns of the data are read as such factors before formulaic sees them:
  model.frame's reader policy.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula
from formulaic.formula import SimpleFormula
from formulaic.materializers import PandasMaterializer
from formulaic.materializers.types import EvaluatedFactor, ScopedFactor, ScopedTerm
from formulaic.parser import DefaultFormulaParser
from formulaic.parser.types import Factor, Term
from interface_meta import override

from glmm_binomial.model.frame import LOGICAL_LEVELS, is_logical_dtype
from glmm_binomial.model.r_contrasts import recoded

__all__ = ["MATERIALIZER", "RMaterializer", "r_ordered_formula"]


def _is_logical(values: Any) -> bool:
    return is_logical_dtype(getattr(values, "dtype", None))


class RMaterializer(PandasMaterializer):  # type: ignore[misc]
    """formulaic's pandas materializer with R's choice of contrasts or indicators for each
    factor of a term, and a logical value coded as R codes it: a factor of levels FALSE and
    TRUE, in that order (module docstring)."""

    REGISTER_NAME = "glmm_binomial"
    REGISTER_INPUTS: Sequence[str] = ()  # only when asked for by name: formulaic's default
    # for pandas input stays formulaic's own for every other user in the process.

    @override
    def _is_categorical(self, values: Any) -> bool:
        return _is_logical(values) or bool(super()._is_categorical(values))

    @override
    def _get_scoped_terms(self, terms: Any, ensure_full_rank: bool = True) -> Any:
        if not ensure_full_rank:
            yield from super()._get_scoped_terms(terms, ensure_full_rank=False)
            return
        evaluated = []
        for term in terms:
            factors = [
                self.factor_cache[f.expr]
                for f in term.factors
                if self.factor_cache[f.expr].values.__wrapped__ is not None
            ]
            evaluated.append((term, factors))
        kinds = Factor.Kind
        intercept = any(
            factors and all(f.metadata.kind is kinds.CONSTANT for f in factors)
            for _, factors in evaluated
        )
        first_indicators = not intercept  # R: no intercept, the first factor in full
        earlier: list[frozenset[str]] = []
        for term, factors in evaluated:
            if not factors:
                yield term, []
                continue
            scale = 1
            variables = frozenset(f.expr for f in factors if f.metadata.kind is not kinds.CONSTANT)
            scoped = []
            for factor in factors:
                if factor.metadata.kind is kinds.CONSTANT:
                    scale *= factor.values
                    continue
                if not factor.metadata.spans_intercept:
                    scoped.append(ScopedFactor(factor))
                    continue
                rest = variables - {factor.expr}
                contrasts = not rest or any(rest <= before for before in earlier)
                if first_indicators:
                    contrasts, first_indicators = False, False
                scoped.append(ScopedFactor(factor, reduced=contrasts))
            earlier.append(variables)
            yield term, [ScopedTerm(scoped, scale=scale)]

    @override
    def _evaluate_factor(self, factor: Any, spec: Any, drop_rows: Any) -> Any:
        # fit()'s contrasts= (materializer parameter r_contrasts, kept in the model spec for
        # new data): the named factors coded by their contrast (model.r_contrasts).
        evaluated = super()._evaluate_factor(factor, spec, drop_rows)
        contrasts = self.params.get("r_contrasts") or {}
        done: set[str] = self.__dict__.setdefault("recoded_factors", set())
        if factor.expr not in contrasts or factor.expr in done:
            return evaluated
        if evaluated.metadata.kind is not Factor.Kind.CATEGORICAL and not _is_logical(
            evaluated.values
        ):
            raise ValueError(
                f"contrasts[{factor.expr!r}]: {factor.expr} is not a factor (contrasts apply "
                "only to factors)"
            )
        values = recoded(evaluated.values, contrasts[factor.expr], factor.expr)
        out = EvaluatedFactor(evaluated.factor, values, evaluated.variables)
        self.factor_cache[factor.expr] = out
        done.add(factor.expr)
        return out

    @override
    def _encode_categorical(
        self,
        values: Any,
        metadata: Any,
        encoder_state: dict[str, Any],
        spec: Any,
        drop_rows: Sequence[int],
        reduced_rank: bool = False,
    ) -> Any:
        if _is_logical(values):
            flags = pd.Series(
                np.asarray(values, dtype=object), index=getattr(values, "index", None)
            )
            labels = flags.map({False: LOGICAL_LEVELS[0], True: LOGICAL_LEVELS[1]})
            values = pd.Series(
                pd.Categorical(labels, categories=list(LOGICAL_LEVELS)), index=flags.index
            )
        return super()._encode_categorical(
            values, metadata, encoder_state, spec, drop_rows, reduced_rank
        )


MATERIALIZER = RMaterializer.REGISTER_NAME
"""The name formulaic's model specs record for RMaterializer (a rebuild for new data finds it
by that name)."""

_PARSER = DefaultFormulaParser()


def r_ordered_formula(expr: str) -> Formula:
    """formulaic's Formula of the right-hand side `expr`, each interaction's factors in the
    order they first appear in the text (R's order; module docstring). The terms and their
    order are formulaic's (by degree, then as written)."""
    formula = Formula(expr)
    first: dict[str, int] = {}
    for position, token in enumerate(_PARSER.get_tokens(expr)):
        if token.kind.value in ("name", "python"):
            first.setdefault(str(token.to_factor().expr), position)
    terms = list(formula)
    if all(len(term.factors) < 2 for term in terms):
        return formula

    def rank(factor: Any) -> int:
        return first.get(str(factor.expr), len(first))

    reordered = [
        term if len(term.factors) < 2 else Term(sorted(term.factors, key=rank)) for term in terms
    ]
    if all(a.factors == b.factors for a, b in zip(terms, reordered, strict=True)):
        return formula
    return SimpleFormula(reordered)
