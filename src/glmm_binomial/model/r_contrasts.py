"""R's contrasts of a factor in a formula: ``C(f, contr, how.many)`` and ``contr.treatment``,
``contr.sum``, ``contr.helmert``, ``contr.poly`` and ``contr.SAS``, coded and named as R codes
and names them.

R's ``C()`` takes the contrast as
* one of the names ``treatment``, ``sum``, ``helmert``, ``poly``, ``SAS`` (R's C() reads them
  as the text "contr.<name>") or that text: the contrast function applied to the factor's
  levels, so that treatment's and SAS's columns are named by levels (``C(f, treatment)b``);
* a contrast function (``contr.sum``): applied to the number of levels, its columns named by
  number (``C(f, contr.treatment)2``);
* a contrast matrix (``contr.treatment(3, base = 2)``): one row per level, the matrix's column
  names (numbers where it has none).
``how.many`` keeps the first columns (the contrast then made from the number of levels, as R
does). Where R codes the factor by indicators of every level (no intercept) it ignores the
contrast: one column per level, named by the level. The parser writes the bare names as
``r_contrast.<name>`` (formula._r_contrast_names), which r_text writes back.

fit()'s ``contrasts=`` is glmer's contrasts argument: per factor of the fixed part, a contrast
name ("contr.sum", or "sum") or a contrast matrix (one row per level; a DataFrame's columns
name its columns), its columns named as R names them (``f1``, ``f2``; treatment's by level).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from formulaic.materializers.types import FactorValues
from formulaic.transforms import C, stateful_transform
from formulaic.transforms.contrasts import Contrasts, PolyContrasts
from numpy.typing import NDArray

from glmm_binomial.model.formula import R_CONTRAST_NAMES

__all__ = [
    "CONTRAST_FUNCTIONS",
    "CONTRAST_KINDS",
    "CONTRAST_NAMES",
    "ContrastFunction",
    "ContrastMatrix",
    "RContrasts",
    "contrasts_argument",
    "given_levels",
    "recoded",
    "r_C",
]

FloatArray = NDArray[np.float64]

CONTRAST_KINDS = R_CONTRAST_NAMES
"""R's contrast functions contr.<kind>, and the names R's C() accepts for them."""


@dataclass(frozen=True)
class ContrastMatrix:
    """A contrast matrix as R's contr.* returns it: one row per level, one column per contrast,
    and the columns' names (None: R numbers them)."""

    values: FloatArray
    names: tuple[str, ...] | None


def _levels_of(n: Any, function: str) -> list[str]:
    """R's first argument of a contrast function: the number of levels (named 1..n) or the
    levels themselves."""
    if isinstance(n, str | bytes):
        n = [n]
    if np.ndim(n) == 0:
        count = float(n) if isinstance(n, int | float | np.number) else float("nan")
        if not (count > 1 and count == int(count)):
            raise ValueError(
                f"{function}(): n must be a whole number of levels above 1 or the levels, got {n!r}"
            )
        return [str(j + 1) for j in range(int(count))]
    levels = [str(level) for level in n]
    if len(levels) < 2:
        raise ValueError(f"{function}(): not enough degrees of freedom to define contrasts")
    return levels


def contrast_matrix(
    kind: str,
    levels: Sequence[str],
    base: int = 1,
    scores: Any = None,
    contrasts: bool = True,
) -> ContrastMatrix:
    """R's contr.<kind>(levels, ...): treatment (indicators of every level but base; columns
    named by level), SAS (treatment with the last level as base), sum (the last level -1 in
    every column), helmert (column j: -1 for the first j levels, j for the next), poly
    (orthogonal polynomials in scores, .L .Q .C ^4 ..). contrasts = FALSE: indicators of every
    level (not for poly)."""
    function = f"contr.{kind}"
    n = len(levels)
    if not contrasts:
        if kind == "poly":
            raise ValueError("contr.poly(): contrasts = FALSE is not supported")
        return ContrastMatrix(np.eye(n), tuple(levels))
    if kind in ("treatment", "SAS"):
        base = n if kind == "SAS" else base
        if isinstance(base, bool) or not isinstance(base, int | np.integer) or not 1 <= base <= n:
            raise ValueError(f"{function}(): baseline group number {base!r} out of range 1..{n}")
        keep = [j for j in range(n) if j != base - 1]
        return ContrastMatrix(np.eye(n)[:, keep], tuple(levels[j] for j in keep))
    if kind == "sum":
        return ContrastMatrix(np.vstack([np.eye(n - 1), -np.ones((1, n - 1))]), None)
    if kind == "helmert":
        rows, columns = np.indices((n, n - 1))
        values = np.where(columns >= rows, -1.0, 0.0)
        values[columns == rows - 1] = rows[columns == rows - 1]
        return ContrastMatrix(values, None)
    if kind == "poly":
        poly = PolyContrasts(None if scores is None else [float(s) for s in scores])
        try:
            matrix = np.asarray(poly.get_coding_matrix(list(levels)), dtype=np.float64)
        except Exception as error:  # noqa: BLE001 - formulaic's message, named as R's
            raise ValueError(f"{function}(): {error}") from None
        return ContrastMatrix(matrix, tuple(map(str, poly.get_coding_column_names(levels))))
    raise ValueError(f"unknown contrast {function}")  # pragma: no cover - CONTRAST_KINDS


class ContrastFunction:
    """R's contr.<kind> in a formula: called (``contr.sum(3)``) it gives the contrast matrix;
    passed to C() uncalled, C() applies it to the number of levels."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(
        self,
        n: Any = None,
        base: int = 1,
        contrasts: bool = True,
        scores: Any = None,
        sparse: bool = False,
    ) -> ContrastMatrix:
        function = f"contr.{self.kind}"
        if n is None:
            raise ValueError(f"{function}(): give n, the number of levels or the levels")
        if base != 1 and self.kind != "treatment":
            raise ValueError(f"{function}() has no argument base")
        if scores is not None and self.kind != "poly":
            raise ValueError(f"{function}() has no argument scores")
        levels = _levels_of(n, function)
        return contrast_matrix(self.kind, levels, base, scores, bool(contrasts))

    def __repr__(self) -> str:
        return f"contr.{self.kind}"


@dataclass(frozen=True)
class ContrastName:
    """A contrast named in C() as R's C() reads a bare name (``C(f, sum)``): "contr.<kind>"."""

    kind: str


CONTRAST_FUNCTIONS = SimpleNamespace(**{kind: ContrastFunction(kind) for kind in CONTRAST_KINDS})
"""The formula's ``contr`` (``contr.sum``), R's contrast functions."""
CONTRAST_NAMES = SimpleNamespace(**{kind: ContrastName(kind) for kind in CONTRAST_KINDS})
"""The formula's ``r_contrast``: the parser's spelling of C()'s bare names (``C(f, sum)``)."""


def _coding_rule(
    contr: Any, how_many: Any, what: str = "C()"
) -> Callable[[Sequence[str]], ContrastMatrix]:
    """C()'s contrast as a rule from the factor's levels to its contrast matrix (R's C() and
    contrasts<-), checked before any level is seen; `what` begins its messages."""
    if isinstance(contr, str):
        kind = contr.removeprefix("contr.")
        if not contr.startswith("contr.") or kind not in CONTRAST_KINDS:
            raise ValueError(
                f"{what}: unknown contrast {contr!r}; use one of "
                + ", ".join(f'"contr.{k}"' for k in CONTRAST_KINDS)
            )
        contr = ContrastName(kind)
    if how_many is not None:
        if (
            isinstance(how_many, bool)
            or not isinstance(how_many, int | float | np.number)
            or how_many != int(how_many)
            or how_many < 1
        ):
            raise ValueError(
                f"{what}: how.many must be a whole number of columns, got {how_many!r}"
            )
        # R: with how.many, a named contrast is the function applied to the number of levels.
        if isinstance(contr, ContrastName):
            contr = ContrastFunction(contr.kind)
    if isinstance(contr, ContrastName):
        rule: Callable[[Sequence[str]], ContrastMatrix] = _named_rule(contr.kind)
    elif isinstance(contr, ContrastFunction):
        function = contr

        def rule(levels: Sequence[str]) -> ContrastMatrix:
            return function(len(levels))

    elif isinstance(contr, ContrastMatrix):
        matrix = contr

        def rule(levels: Sequence[str]) -> ContrastMatrix:
            if matrix.values.shape[0] != len(levels):
                raise ValueError(
                    f"{what}: the contrast matrix has {matrix.values.shape[0]} rows for "
                    f"{len(levels)} levels (wrong number of contrast matrix rows)"
                )
            return matrix

    else:
        raise ValueError(
            f"{what}: the contrast must be one of treatment, sum, helmert, poly, SAS, a contrast "
            f"function such as contr.sum or a contrast matrix such as contr.sum(3), got {contr!r}"
        )
    if how_many is None:
        return rule
    count = int(how_many)

    def first_columns(levels: Sequence[str]) -> ContrastMatrix:
        matrix = rule(levels)
        if count > matrix.values.shape[1]:
            raise ValueError(
                f"{what}: how.many = {count} is more than the contrast's "
                f"{matrix.values.shape[1]} columns"
            )
        names = None if matrix.names is None else matrix.names[:count]
        return ContrastMatrix(matrix.values[:, :count], names)

    return first_columns


def _named_rule(kind: str) -> Callable[[Sequence[str]], ContrastMatrix]:
    """The rule of a named contrast: contr.<kind> applied to the levels themselves."""

    def rule(levels: Sequence[str]) -> ContrastMatrix:
        return contrast_matrix(kind, [str(level) for level in levels])

    return rule


class RContrasts(Contrasts):  # type: ignore[misc]
    """formulaic's Contrasts for R's C(): the reduced coding is the rule's contrast matrix,
    named by its columns' names or numbers 1..k; the full coding (R's indicators where the
    factor spans the intercept's space) one column per level, named by the level."""

    def __init__(self, rule: Callable[[Sequence[str]], ContrastMatrix]) -> None:
        self.rule = rule

    def _matrix(self, levels: Sequence[Hashable]) -> ContrastMatrix:
        return self.rule([str(level) for level in levels])

    @Contrasts.override
    def _get_coding_matrix(
        self,
        levels: Sequence[Hashable],
        reduced_rank: bool = True,
        sparse: bool = False,
    ) -> Any:
        values = self._matrix(levels).values if reduced_rank else np.eye(len(levels))
        return sp.csc_matrix(values) if sparse else values

    @Contrasts.override
    def get_coding_column_names(
        self, levels: Sequence[Hashable], reduced_rank: bool = True
    ) -> Sequence[Hashable]:
        if not reduced_rank:
            return [str(level) for level in levels]
        matrix = self._matrix(levels)
        if matrix.names is not None:
            return list(matrix.names)
        return [str(j + 1) for j in range(matrix.values.shape[1])]

    @Contrasts.override
    def get_coefficient_row_names(
        self, levels: Sequence[Hashable], reduced_rank: bool = True
    ) -> Sequence[Hashable]:
        return list(self.get_coding_column_names(levels, reduced_rank))

    @Contrasts.override
    def get_spans_intercept(self, levels: Sequence[Hashable], reduced_rank: bool = True) -> bool:
        return not reduced_rank

    @Contrasts.override
    def get_drop_field(self, levels: Sequence[Hashable], reduced_rank: bool = True) -> Hashable:
        return None


def given_levels(x: Any) -> list[Any] | None:
    """The levels of a factor C() is given: a factor()/ordered() result's own (in its order),
    a categorical's categories; None for values (formulaic's order, sorted)."""
    if isinstance(x, FactorValues):
        encoder = x.__formulaic_metadata__.encoder
        if encoder is None:
            return None
        encoded = encoder(x.__wrapped__, False, [], {}, None)
        return list(encoded.__formulaic_metadata__.column_names)
    dtype = getattr(x, "dtype", None)
    if isinstance(dtype, pd.CategoricalDtype):
        return list(dtype.categories)
    return None


@stateful_transform
def r_C(
    x: Any, contr: Any = None, how_many: Any = None, _state: dict[str, Any] | None = None
) -> FactorValues:
    """R's ``C(f, contr, how.many)``: f as a factor coded by the contrast contr (module
    docstring); without contr, f with its default contrasts (formulaic's C: treatment). The
    levels of a factor()/ordered() or categorical argument are the fit's on new data too."""
    if contr is None and how_many is None:
        # R: the default contrasts, which a factor()/ordered() result carries already.
        return x if isinstance(x, FactorValues) else C(x)
    state = {} if _state is None else _state
    levels = state["levels"] if "levels" in state else given_levels(x)
    if levels is not None:
        state["levels"] = levels
    return _coded(x, _coding_rule(contr, how_many), levels)


def _coded(
    x: Any, rule: Callable[[Sequence[str]], ContrastMatrix], levels: list[Any] | None
) -> FactorValues:
    """x (values, a categorical, or a factor()/ordered() result) as a factor of these levels
    (None: formulaic's, sorted) coded by the rule's contrast."""
    values = x.__wrapped__ if isinstance(x, FactorValues) else x
    return C(values, RContrasts(rule), levels=levels)


def contrasts_argument(value: Any) -> dict[str, Any]:
    """fit()'s contrasts= as plain data the model spec keeps (formulaic's materializer
    parameters; picklable): {variable: "contr.<kind>"} or {variable: (rows, column names or
    None)} for a matrix. ValueError naming the argument otherwise."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(
            "contrasts must be a dict from a factor's name to a contrast, e.g. "
            f'{{"f": "contr.sum"}}; got {type(value).__name__}'
        )
    out: dict[str, Any] = {}
    for name, contrast in value.items():
        if not isinstance(name, str):
            raise ValueError(f"contrasts: the names must be column names, got {name!r}")
        if isinstance(contrast, str):
            kind = contrast.removeprefix("contr.")
            if kind not in CONTRAST_KINDS:
                raise ValueError(
                    f"contrasts[{name!r}]: unknown contrast {contrast!r}; use one of "
                    + ", ".join(f'"contr.{k}"' for k in CONTRAST_KINDS)
                    + " or a matrix with one row per level"
                )
            out[name] = f"contr.{kind}"
            continue
        names = (
            tuple(str(c) for c in contrast.columns) if isinstance(contrast, pd.DataFrame) else None
        )
        try:
            rows = np.asarray(contrast, dtype=np.float64)
        except (TypeError, ValueError):
            rows = np.empty(0)
        if rows.ndim != 2 or rows.shape[1] < 1 or not np.isfinite(rows).all():
            raise ValueError(
                f'contrasts[{name!r}]: a contrast name such as "contr.sum" or a matrix of '
                "finite numbers with one row per level"
            )
        out[name] = (tuple(map(tuple, rows.tolist())), names)
    return out


def recoded(values: Any, contrast: Any, name: str) -> FactorValues:
    """A factor's evaluated values coded by contrasts_argument's contrast (R's model.matrix
    with contrasts.arg: it replaces the factor's own contrasts, its levels kept)."""
    what = f"contrasts[{name!r}]"
    if not isinstance(contrast, str):
        rows, names = contrast
        contrast = ContrastMatrix(np.asarray(rows, dtype=np.float64), names)
    return _coded(values, _coding_rule(contrast, None, what), given_levels(values))
