"""The package's import surface: light ``import glmm_binomial``, public names kept, the old
module paths (glmm_binomial.sheet, .cli) still the front ends'."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import glmm_binomial

SRC = str(Path(__file__).resolve().parents[1] / "src")

PROBE = r"""
import json, sys
import glmm_binomial
light = sorted(sys.modules)
from glmm_binomial.frontends.cli import main
try:
    main(["--help"])
except SystemExit:
    pass
after_help = sorted(sys.modules)
print(json.dumps({"light": light, "after_help": after_help}))
"""

HEAVY = ("formulaic", "scipy.optimize", "pandas", "numpy")
EXTRAS = ("xlwings", "formulas", "openpyxl", "pyarrow", "rich", "tqdm")


def test_import_is_light_and_help_imports_no_numerics():
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    modules = json.loads(out.stdout.splitlines()[-1])
    for name in HEAVY + EXTRAS:
        assert name not in modules["light"], name
        assert name not in modules["after_help"], name


def test_public_names_still_resolve():
    for name in glmm_binomial.__all__:
        assert getattr(glmm_binomial, name) is not None, name
    assert glmm_binomial.GLMM_BINOMIAL is glmm_binomial.glmm_binomial
    assert callable(glmm_binomial.fit)
    assert "fit" in dir(glmm_binomial)
    # Tab completion lists the package's names, not its __init__'s own imports.
    assert not {"Any", "TYPE_CHECKING", "importlib", "annotations"} & set(dir(glmm_binomial))


def test_old_module_paths_are_the_front_ends():
    import glmm_binomial.cli
    import glmm_binomial.excel
    import glmm_binomial.sheet
    from glmm_binomial.frontends import cli, excel, sheet

    assert glmm_binomial.sheet is sheet
    assert glmm_binomial.cli is cli and glmm_binomial.cli.main is cli.main
    assert glmm_binomial.excel is excel
    assert glmm_binomial.sheet.GLMM_BINOMIAL is glmm_binomial.GLMM_BINOMIAL


def test_python_dash_m_is_the_command(monkeypatch, capsys):
    import runpy

    monkeypatch.setattr(sys, "argv", ["glmm_binomial", "--version"])
    try:
        runpy.run_module("glmm_binomial", run_name="__main__", alter_sys=False)
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.startswith("glmm-binomial 0.")
