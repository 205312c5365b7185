"""Shared by test_emmeans.py and test_cld.py: EMMeans made from emmeans' own records."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from glmm_binomial.family import BINOMIAL_LOGIT
from glmm_binomial.results.emmeans import EMMeans


def means_from_record(record: dict[str, Any], by: tuple[str, ...] = ()) -> EMMeans:
    """EMMeans with emmeans' own link-scale means and covariance (a "means" record of
    emmeans_contrasts.json: grid, emmean, vcov): the grid's columns other than ``by`` are
    the specs."""
    grid = pd.DataFrame(record["grid"])
    k = len(record["emmean"])
    return EMMeans(
        grid=grid,
        linfct=np.eye(k),
        beta=np.array(record["emmean"]),
        vcov=np.array(record["vcov"]),
        offset=np.zeros(k),
        specs=tuple(c for c in grid.columns if c not in by),
        by=by,
        type="link",
        link=BINOMIAL_LOGIT,
    )
