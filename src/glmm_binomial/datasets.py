"""Example data sets shipped with the package, read as R holds them.

Each data set is a CSV file under ``glmm_binomial/data``. Columns that R stores as factors come
back as :class:`pandas.Categorical` with R's level order (numeric order for numeric-looking
labels such as ``herd`` or ``district``), so that contrasts and group orderings match lme4.
Numeric columns stay numeric.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import pandas as pd

__all__ = ["load", "names"]


@dataclass(frozen=True)
class _Factor:
    """How to order the levels of one factor column.

    ``levels`` fixes the order explicitly; otherwise ``order`` is ``"numeric"`` (labels sorted as
    integers) or ``"appearance"`` (order of first appearance in the file).
    """

    levels: tuple[str, ...] | None = None
    order: str = "numeric"


@dataclass(frozen=True)
class _Spec:
    filename: str
    factors: dict[str, _Factor]
    numeric: dict[str, str]  # column -> numpy dtype name


_SPECS: dict[str, _Spec] = {
    "cbpp": _Spec(
        filename="cbpp.csv",
        factors={"herd": _Factor(), "period": _Factor()},
        numeric={"incidence": "int64", "size": "int64"},
    ),
    "contraception": _Spec(
        filename="contraception.csv",
        factors={
            "woman": _Factor(),
            "district": _Factor(),
            "livch": _Factor(levels=("0", "1", "2", "3+")),
            "urban": _Factor(levels=("N", "Y")),
        },
        numeric={"use": "int64", "age": "float64"},
    ),
    "verbagg": _Spec(
        filename="verbagg.csv",
        factors={
            "id": _Factor(),
            "item": _Factor(order="appearance"),
            "Gender": _Factor(levels=("F", "M")),
            "btype": _Factor(levels=("curse", "scold", "shout")),
            "situ": _Factor(levels=("other", "self")),
            "mode": _Factor(levels=("want", "do")),
        },
        numeric={"Anger": "int64", "r2": "int64"},
    ),
}


def names() -> list[str]:
    """Return the names of the available data sets, sorted."""
    return sorted(_SPECS)


def _levels(values: pd.Series, factor: _Factor) -> list[str]:
    if factor.levels is not None:
        unexpected = set(values.unique()) - set(factor.levels)
        if unexpected:
            raise ValueError(f"unexpected levels {sorted(unexpected)} in column {values.name!r}")
        return list(factor.levels)
    unique = [str(v) for v in pd.unique(values)]
    if factor.order == "appearance":
        return unique
    return sorted(unique, key=int)


def load(name: str) -> pd.DataFrame:
    """Return the data set ``name`` as a new DataFrame.

    Factor columns are :class:`pandas.Categorical` with R's level order; numeric columns are
    ``int64`` or ``float64``. Raises ``ValueError`` for an unknown name.
    """
    try:
        spec = _SPECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(names())}") from None
    dtypes: dict[str, str] = {column: "str" for column in spec.factors}
    dtypes.update(spec.numeric)
    source = resources.files("glmm_binomial").joinpath("data").joinpath(spec.filename)
    with source.open("r", encoding="utf-8") as handle:
        frame = pd.read_csv(handle, dtype=dtypes, keep_default_na=False)
    for column, factor in spec.factors.items():
        values = frame[column]
        frame[column] = pd.Categorical(values, categories=_levels(values, factor))
    return frame
