"""Front ends: thin adapters over one spreadsheet core, so a cell, a workbook and the shell give
the same table for the same input.

- :mod:`.sheet`: GLMM_BINOMIAL itself (ranges -> validation -> ModelData -> fit -> 2D table).
- :mod:`.excel`: GLMM_BINOMIAL decorated for xlwings (Lite, Server, classic); extra ``excel``.
- :mod:`.workbook`: evaluates GLMM_BINOMIAL formulas in .xlsx files with the ``formulas``
  package; extra ``xlsx``.
- :mod:`.cli`: the ``glmm-binomial`` command (formula fits, and ``sheet`` for workbooks).
- :mod:`.output`: results as JSON/CSV/XLSX/text (shared by the command's outputs).

Optional extras are imported where used, with a message naming the extra when missing.
"""

from __future__ import annotations

import importlib


def require(module: str, extra: str, purpose: str) -> object:
    """Import an optional dependency, or raise ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{purpose} needs the optional package {module.split('.')[0]!r}: "
            f"pip install 'glmm-binomial[{extra}]' (or pip install {module.split('.')[0]})"
        ) from exc
