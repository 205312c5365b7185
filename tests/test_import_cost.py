"""What a fresh Python loads for the first call (issue 23): `import glmm_binomial` loads nothing
heavy, the spreadsheet function on plain lists needs neither pandas nor formulaic nor
scipy.stats, and no call loads Dask, matplotlib or a workbook module unless it uses them.
Each probe runs in its own interpreter (sys.modules of this one holds everything)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

NEVER = ("dask", "distributed", "matplotlib", "openpyxl", "formulas", "xlwings", "tqdm", "rich")
WORKBOOK = ("glmm_binomial.frontends.workbook", "glmm_binomial.distributed")

PROBES = {
    "import": "import glmm_binomial",
    "api": "import glmm_binomial.api",
    "sheet": (
        "import glmm_binomial as g\n"
        "out = g.GLMM_BINOMIAL([[0], [1], [0], [1], [1], [0]], [[1], [2], [1.5], [2.5], [3], "
        "[1.2]], [[1], [1], [2], [2], [3], [3]])\n"
        "assert out[0][0] == 'fixed_effects', out"
    ),
    "sheet_laplace": (
        "import glmm_binomial as g\n"
        "out = g.GLMM_BINOMIAL([[0], [1], [1], [0], [1], [1]], [[1], [2], [1.5], [2.5], [3], "
        "[1.2]], [[1], [1], [2], [2], [3], [3]], [[1], [1], [1.5], [1.5], [2], [2]], "
        "method='laplace')\n"
        "assert out[0][0] == 'fixed_effects', out"
    ),
    "fit": (
        "import glmm_binomial as g\n"
        "r = g.fit('cbind(incidence, size - incidence) ~ period + (1 | herd)', "
        "g.datasets.load('cbpp'))\n"
        "r.summary(); r.fixed_effects; r.varcorr"
    ),
}


@cache
def loaded(probe: str) -> frozenset[str]:
    code = PROBES[probe] + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return frozenset(json.loads(out.stdout.splitlines()[-1]))


def tops(modules: frozenset[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in names)


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_no_call_loads_dask_matplotlib_or_a_workbook_module(probe):
    modules = loaded(probe)
    assert tops(modules, NEVER) == []
    assert [m for m in modules if m.startswith(WORKBOOK)] == []


def test_importing_the_package_loads_none_of_its_dependencies():
    modules = loaded("import")
    assert tops(modules, ("pandas", "scipy", "formulaic", "numpy")) == []


@pytest.mark.parametrize("probe", ["api", "sheet", "sheet_laplace"])
def test_the_api_and_the_spreadsheet_on_lists_need_no_pandas_formulaic_or_scipy_stats(probe):
    modules = loaded(probe)
    assert tops(modules, ("pandas", "formulaic")) == []
    assert [m for m in modules if m.startswith("scipy.stats")] == []
    # Nor the formula front end or the result object, which use them.
    assert "glmm_binomial.model.design" not in modules
    assert "glmm_binomial.results.result" not in modules


def test_a_fit_and_its_tables_need_no_scipy_stats():
    assert [m for m in loaded("fit") if m.startswith("scipy.stats")] == []


def test_a_laplace_fit_on_unseparated_data_needs_neither_scipy_optimize_nor_special():
    # The outer optimizer is our own BFGS, the tables' normal tails come from the standard
    # library, separation is ruled out without a linear program, and cbpp's few distinct
    # counts get their log C(m, k) from math.lgamma.
    modules = loaded("fit")
    assert [m for m in modules if m.startswith(("scipy.optimize", "scipy.special"))] == []
    assert "glmm_binomial.numerics.quasi_newton" in modules
    assert "scipy.optimize" not in loaded("api")
    assert "scipy.special" not in loaded("api")
