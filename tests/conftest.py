"""Shared test helpers."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

REFERENCE_DIR = Path(__file__).parent / "reference"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
"""lme4's cbpp model, the reference fit of most tests."""


def reference_names() -> list[str]:
    """Return the names (file stems) of all reference JSON files."""
    return sorted(path.stem for path in REFERENCE_DIR.glob("*.json"))


def load_reference(name: str) -> dict[str, Any]:
    """Return the parsed contents of ``tests/reference/<name>.json``."""
    with (REFERENCE_DIR / f"{name}.json").open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def quiet_fit(formula: str, data: Any, **options: Any) -> Any:
    """glmm_binomial.fit of `data` (a bundled data set's name, or a frame) with its warnings
    silenced: for tests of what comes after a fit."""
    import glmm_binomial as g

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(data, str):
            data = g.datasets.load(data)
        return g.fit(formula, data, **options)


def polars_frame(frame: pd.DataFrame) -> Any:
    """`frame` as a polars DataFrame built column by column from Python values (polars'
    from_pandas needs pyarrow for text columns, and the base install has none); skips the test
    without polars."""
    pl = pytest.importorskip("polars")
    return pl.DataFrame({str(name): column.tolist() for name, column in frame.items()})


@pytest.fixture(name="load_reference")
def load_reference_fixture() -> Callable[[str], dict[str, Any]]:
    """Fixture form of :func:`load_reference`."""
    return load_reference


# CI runs hypothesis derandomized (the same examples every run), so a submission's result does
# not depend on the draw; local runs explore new examples each time. No per-example deadline
# there either: a fit's time depends on the machine's load, not on the code under test.
try:
    import os

    from hypothesis import settings as _settings

    _settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
    if os.environ.get("CI"):
        _settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass


def model_matrix_table() -> pd.DataFrame:
    """tests/reference/make_model_matrix_names.R's table (made there and here alike)."""
    i = np.arange(48)
    return pd.DataFrame(
        {
            "y": ((i * 7) % 3 == 0).astype(int),
            "x1": ((i * 37) % 11 - 5) / 3,
            "x2": 1 + (i % 5) / 2,
            "f": np.array(["a", "b", "c"])[i % 3],
            "k": np.array(["hi", "lo"])[(i // 3) % 2],
            "m": np.array(["u", "v", "w", "x"])[(i // 6) % 4],
            "b": (i % 4) < 2,
            "g": np.char.add("g", (i % 6).astype(str)),
            "ii": i % 4,
        }
    )
