"""The result of a Dask fit: a GLMMResult whose rows stay on the cluster.

Its model (ClusterModelData) holds the names, the blocks with the levels of the whole data set
and the number of rows, but no rows; predict needs new data (pandas, or a Dask frame predicted
partition by partition), and what needs the fit's rows says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.family import BINOMIAL_LOGIT, Family
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.results.prediction import chosen_random
from glmm_binomial.results.result import GLMMResult

FloatArray = NDArray[np.float64]


class DaskGLMMResult(GLMMResult):
    """GLMMResult of a fit to a Dask DataFrame. Its model holds the structure of the fit
    (names, levels, counts) but not the rows, which stay on the cluster: predict needs
    newdata, a pandas DataFrame (as GLMMResult.predict: a Series indexed like it) or a Dask
    DataFrame (a Dask Series, each partition predicted as a pandas DataFrame)."""

    def predict(
        self,
        newdata: Any = None,
        re: Literal["include", "exclude"] | Sequence[str] = "include",
        type: Literal["response", "link"] = "response",
        offset: Any = None,
        se_fit: bool = False,
        conf_level: float | None = None,
        *,
        re_form: Any = None,
        allow_new_levels: bool = True,
    ) -> Any:
        if newdata is None:
            raise ValueError(
                "predict on a fit to a Dask DataFrame needs newdata (the rows stay on the "
                "cluster): pass the Dask DataFrame itself, or a pandas DataFrame"
            )
        if is_dask_frame(newdata):
            # The arguments checked now, not when the partitions are computed.
            chosen_random(self.model, self.design, re, re_form, allow_new_levels)
            if se_fit or conf_level is not None:
                raise ValueError(
                    "se_fit=True and conf_level need a pandas newdata (not a Dask DataFrame)"
                )
            if offset is not None and not isinstance(offset, str):
                raise ValueError("with a Dask newdata, offset must be a column name")
            parent = super().predict

            def one(part: pd.DataFrame) -> pd.Series:
                o = None if offset is None else part[offset]
                if not len(part):
                    return pd.Series([], index=part.index, dtype=np.float64, name=type)
                return parent(
                    part,
                    re=re,
                    type=type,
                    offset=o,
                    re_form=re_form,
                    allow_new_levels=allow_new_levels,
                )

            return newdata.map_partitions(one, meta=pd.Series([], dtype=np.float64, name=type))
        return super().predict(
            newdata,
            re=re,
            type=type,
            offset=offset,
            se_fit=se_fit,
            conf_level=conf_level,
            re_form=re_form,
            allow_new_levels=allow_new_levels,
        )

    # The fit's rows stay on the cluster: what needs them says so instead of using no rows.
    def simulate(
        self, n: int = 1, seed: Any = None, use_u: bool = False, *, nsim: int | None = None
    ) -> Any:
        raise _rows_on_cluster("simulate")

    def refit(self, new_response: Any) -> Any:
        raise _rows_on_cluster("refit")

    def fitted(self) -> Any:
        raise _rows_on_cluster("fitted values")

    def resid(self, type: str = "deviance") -> Any:
        raise _rows_on_cluster("residuals")

    residuals = resid

    def marginal_predict(self, newdata: Any = None, offset: Any = None) -> Any:
        if newdata is None:
            raise _rows_on_cluster("marginal_predict without newdata")
        return super().marginal_predict(newdata, offset)

    def marginal_coefs(self, std_errors: bool = True) -> Any:
        raise _rows_on_cluster("marginal_coefs")

    def plot_calibration(self, group: str | None = None) -> Any:
        raise _rows_on_cluster("plot_calibration")


def _rows_on_cluster(what: str) -> ValueError:
    return ValueError(
        f"{what} needs the rows of the fit, which stay on the Dask cluster; fit the computed "
        "frame in memory (glmm_binomial.fit(formula, ddf.compute())) for it"
    )


@dataclass(frozen=True)
class ClusterModelData(ModelData):
    """ModelData of a fit whose rows live on a Dask cluster: names, blocks with the levels of
    the whole data set and no rows; n_obs is the number of rows used in the fit, z_spread the
    largest |z| of each block's columns (read on the partitions; empty: not known)."""

    rows: int = 0
    z_spread: tuple[FloatArray, ...] = ()

    @property
    def n_obs(self) -> int:
        return self.rows

    def column_spreads(self) -> list[FloatArray]:
        if not self.z_spread:
            return super().column_spreads()
        return list(self.z_spread)


def rowless_model(
    fixed_names: tuple[str, ...],
    blocks: tuple[RandomBlock, ...],
    *,
    log_binomial_constant: float,
    rows: int,
    family: Family = BINOMIAL_LOGIT,
    z_spread: Sequence[FloatArray] = (),
) -> ClusterModelData:
    """The names and blocks of the whole data set with no rows (they stay on the cluster), the
    model's family and the largest |z| of each block's columns (z_spread)."""
    return ClusterModelData(
        np.zeros(0),
        np.zeros(0),
        np.zeros((0, len(fixed_names))),
        np.zeros(0),
        fixed_names,
        blocks,
        log_binomial_constant=log_binomial_constant,
        family=family,
        rows=rows,
        z_spread=tuple(z_spread),
    )


def is_dask_frame(data: Any) -> bool:
    """True for a Dask DataFrame, tested without importing dask."""
    module = type(data).__module__ or ""
    return module.split(".")[0] == "dask" and hasattr(data, "npartitions")
