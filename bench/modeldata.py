"""Build a ModelData from a DataFrame for the benchmark cases, by hand.

A stand-in for the package's formula front end (``glmm_binomial.fit``) so the core can be timed
on its own: the fixed part goes through formulaic, each random block is ``(1 [+ slopes] | group)``
with numeric or two-level factor slopes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from formulaic import model_matrix

from glmm_binomial.model.data import ModelData, RandomBlock


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A slope column: numeric as is, a factor as the indicator of its second level."""
    col = frame[name]
    if isinstance(col.dtype, pd.CategoricalDtype):
        if len(col.cat.categories) != 2:
            raise ValueError(f"slope {name!r}: only two-level factors are supported here")
        return (col.cat.codes.to_numpy() == 1).astype(np.float64)
    return col.to_numpy(dtype=np.float64)


def model_data(
    frame: pd.DataFrame,
    response: str,
    fixed: str,
    blocks: list[tuple[str, tuple[str, ...]]],
) -> ModelData:
    """ModelData for ``response ~ fixed + (1 + slopes | group) + ...`` with 0/1 response.

    blocks: (group column, slope columns) per random term, each with an intercept.
    """
    x = model_matrix(fixed, frame)
    names = tuple(str(c) for c in x.columns)
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    random_blocks = []
    for group, slopes in blocks:
        col = frame[group]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype(np.intp)
            levels = tuple(col.cat.categories)
        else:
            uniques, codes = np.unique(col.to_numpy(), return_inverse=True)
            codes = codes.astype(np.intp)
            levels = tuple(uniques.tolist())
        z = np.column_stack([np.ones(n)] + [_column(frame, s) for s in slopes])
        terms = ("(Intercept)",) + tuple(slopes)
        random_blocks.append(RandomBlock(group, terms, codes, levels, z))
    y = frame[response].to_numpy(dtype=np.float64)
    return ModelData(y, np.ones(n), x, np.zeros(n), names, tuple(random_blocks))
