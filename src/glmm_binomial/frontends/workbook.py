"""GLMM_BINOMIAL in .xlsx workbooks and formula text, with the ``formulas`` package as engine.

``run(source, output)`` (the ``glmm-binomial sheet`` command):
- source an .xlsx file: every cell whose formula calls GLMM_BINOMIAL is evaluated (the cells it
  reads are computed by ``formulas`` first, so they may be formulas too); with ``output`` an
  .xlsx path, a copy is saved with each table's values spilled from its formula's cell (the
  top-left corner there, as Excel spills a dynamic array; the formula is kept as a comment on
  that cell, since other programs do not know the function);
- source formula text such as ``=GLMM_BINOMIAL({0;1;0;1;1;0},{1;2;1.5;2.5;3;1.2},{1;1;2;2;3;3})``.

Without ``output`` the tables are printed (tab-separated). Skipped arguments (``f(a,b,c,,FALSE)``)
reach the spreadsheet core as omitted (``formulas`` would pass them as 0). The engine and
openpyxl are the optional extra ``xlsx``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmm_binomial.frontends import require
from glmm_binomial.frontends.sheet import glmm_binomial

FUNCTION = "GLMM_BINOMIAL"
_CALL = re.compile(r"\bGLMM_BINOMIAL\s*\(", re.IGNORECASE)

EXIT_OK, EXIT_ERROR, EXIT_NOT_CONVERGED = 0, 1, 3


class _Table:
    """A result carried through the engine as one opaque cell value (a 2D list or a message);
    the engine would turn a 2D array in a plain (non-array) formula cell into #VALUE!."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<GLMM_BINOMIAL table>"


@dataclass(frozen=True)
class Evaluated:
    """One GLMM_BINOMIAL cell: where it is, its formula, and its table (or message)."""

    sheet: str
    cell: str
    formula: str
    value: Any  # a 2D list, or a message string


def fill_skipped_arguments(formula: str) -> str:
    """GLMM_BINOMIAL calls with empty arguments written as "" (which the spreadsheet core reads
    as omitted); the rest of the formula unchanged."""
    out, position = [], 0
    for match in _CALL.finditer(formula):
        if match.start() < position:
            continue
        start = match.end()
        arguments, end = _split_arguments(formula, start)
        if end < 0:
            return formula  # unbalanced: leave it to the engine's own message
        filled = [a if a.strip() else '""' for a in arguments]
        if len(filled) == 1 and not arguments[0].strip():
            filled = []
        out.append(formula[position:start] + ",".join(filled) + ")")
        position = end + 1
    out.append(formula[position:])
    return "".join(out)


def _split_arguments(text: str, start: int) -> tuple[list[str], int]:
    """Top-level arguments of the call whose "(" ends at ``start``; and the index of its ")"."""
    depth, quoted, current, arguments = 0, False, [], []
    for i in range(start, len(text)):
        char = text[i]
        if quoted:
            current.append(char)
            if char == '"':
                quoted = False
            continue
        if char == '"':
            quoted = True
        elif char in "({":
            depth += 1
        elif char in ")}":
            if depth == 0 and char == ")":
                arguments.append("".join(current))
                return arguments, i
            depth -= 1
        elif char == "," and depth == 0:
            arguments.append("".join(current))
            current = []
            continue
        current.append(char)
    return arguments, -1


def _cells(value: Any) -> Any:
    """An engine value as the spreadsheet core takes it: Ranges and arrays as 2D arrays."""
    inner = getattr(value, "value", None)
    if inner is not None and hasattr(inner, "ndim"):
        return inner
    return value


def _function(*arguments: Any) -> _Table:
    """GLMM_BINOMIAL as registered with the engine: the spreadsheet core, nothing else."""
    if len(arguments) < 3 or len(arguments) > 8:
        return _Table(f"Invalid input: GLMM_BINOMIAL takes 3 to 8 arguments; got {len(arguments)}.")
    return _Table(glmm_binomial(*[_cells(a) for a in arguments]))


def _engine() -> Any:
    formulas: Any = require("formulas", "xlsx", "evaluating workbooks")
    functions = formulas.get_functions()
    functions[FUNCTION] = _function
    return formulas


def evaluate_formula(text: str) -> Any:
    """The value of one formula text calling GLMM_BINOMIAL (constants only, no references)."""
    formulas = _engine()
    source = text if text.startswith("=") else "=" + text
    try:
        compiled = formulas.Parser().ast(fill_skipped_arguments(source))[1].compile()
    except Exception as exc:  # noqa: BLE001 - the engine's parse errors, as one message
        raise ValueError(f"cannot read the formula {text!r}: {exc}") from None
    if list(compiled.inputs):
        raise ValueError(
            "formula text may hold only constants such as {0;1;0}; cell references need a "
            "workbook (glmm-binomial sheet BOOK.xlsx)"
        )
    return _unwrap(compiled())


def _unwrap(value: Any) -> Any:
    if isinstance(value, _Table):
        return value.value
    inner = getattr(value, "value", value)
    if hasattr(inner, "ravel") and inner.size == 1:
        inner = inner.ravel()[0]
    if isinstance(inner, _Table):
        return inner.value
    return str(inner)


def evaluate_workbook(path: str) -> list[Evaluated]:
    """Every GLMM_BINOMIAL cell of the workbook, evaluated (sheet order, then row order)."""
    openpyxl: Any = require("openpyxl", "xlsx", "reading .xlsx files")
    formulas = _engine()
    book = openpyxl.load_workbook(path)
    found: list[tuple[str, str, str]] = []
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                text = cell.value
                formula = getattr(text, "text", text)  # an ArrayFormula holds its text
                if isinstance(formula, str) and formula.startswith("=") and _CALL.search(formula):
                    found.append((sheet.title, cell.coordinate, formula))
                    cell.value = fill_skipped_arguments(formula)
    if not found:
        return []
    with tempfile.TemporaryDirectory() as folder:
        # The engine reads a file: a copy with the skipped arguments filled in.
        copy = Path(folder) / Path(path).name
        book.save(copy)
        # The engine draws its own progress bars on stderr; the command has its own.
        with contextlib.redirect_stderr(io.StringIO()):
            model = formulas.ExcelModel().loads(str(copy)).finish()
            solution = model.calculate()
    values = {key.upper(): value for key, value in solution.items()}
    name = Path(path).name.upper()
    out = []
    for sheet_title, coordinate, formula in found:
        key = f"'[{name}]{sheet_title.upper()}'!{coordinate}"
        value = values.get(key)
        result = (
            _unwrap(value)
            if value is not None
            else f"Error fitting GLMM: the engine did not evaluate {sheet_title}!{coordinate}"
        )
        out.append(Evaluated(sheet_title, coordinate, formula, result))
    return out


def save_spilled(path: str, output: str, results: list[Evaluated]) -> None:
    """A copy of the workbook with each table's values spilled from its formula's cell; a
    table that would overwrite non-empty cells is reported in its cell instead (#SPILL!)."""
    openpyxl: Any = require("openpyxl", "xlsx", "writing .xlsx files")
    from openpyxl.comments import Comment

    book = openpyxl.load_workbook(path)
    for result in results:
        sheet = book[result.sheet]
        anchor = sheet[result.cell]
        table = result.value if isinstance(result.value, list) else [[result.value]]
        top, left = anchor.row, anchor.column
        blocked = [
            sheet.cell(row=top + i, column=left + j).coordinate
            for i, row in enumerate(table)
            for j, _ in enumerate(row)
            if (i or j) and sheet.cell(row=top + i, column=left + j).value not in (None, "")
        ]
        if blocked:
            table = [
                [
                    f"#SPILL! the {len(table)} x {len(table[0])} table would overwrite "
                    f"non-empty cells ({', '.join(blocked[:3])}); make room below and right"
                ]
            ]
        for i, row in enumerate(table):
            for j, value in enumerate(row):
                sheet.cell(row=top + i, column=left + j).value = value
        anchor.comment = Comment(f"{result.formula}\n(evaluated by glmm-binomial)", "glmm-binomial")
    book.save(output)


def _status(values: list[Any]) -> int:
    """1 if a formula gave a message, 3 if a table says converged FALSE, else 0."""
    if any(isinstance(v, str) for v in values):
        return EXIT_ERROR
    for table in values:
        for row in table:
            if row[0] == "converged" and row[1] is False:
                return EXIT_NOT_CONVERGED
    return EXIT_OK


def _text(label: str, value: Any) -> str:
    if isinstance(value, str):
        return f"{label}\t{value}\n"
    lines = [label] + [
        "\t".join("" if c is None else str(c) for c in row).rstrip("\t") for row in value
    ]
    return "\n".join(lines) + "\n"


def _write_tables(output: str, labelled: list[tuple[str, Any]]) -> None:
    suffix = Path(output).suffix.lower()
    if suffix == ".json":
        from glmm_binomial.frontends.output import plain

        document = [{"cell": label, "table": plain(value)} for label, value in labelled]
        Path(output).write_text(json.dumps(document, indent=1, allow_nan=False), "utf-8")
    elif suffix == ".csv":
        import csv

        with open(output, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            for label, value in labelled:
                writer.writerow([f"# {label}"])
                rows = [[value]] if isinstance(value, str) else value
                writer.writerows(["" if c is None else c for c in row] for row in rows)
    elif suffix in (".txt", ".text"):
        Path(output).write_text("".join(_text(lb, v) for lb, v in labelled), "utf-8")
    else:
        raise ValueError(
            f"cannot tell the output format of {output!r}: use .xlsx, .json, .csv or .txt"
        )


def run(source: str, output: str | None = None) -> int:
    """The ``glmm-binomial sheet`` command; returns the exit status."""
    if source.lstrip().startswith("=") or (_CALL.search(source) and not Path(source).exists()):
        value = evaluate_formula(source.strip())
        labelled = [("formula", value)]
        if output and Path(output).suffix.lower() == ".xlsx":
            openpyxl: Any = require("openpyxl", "xlsx", "writing .xlsx files")
            book = openpyxl.Workbook()
            rows = [[value]] if isinstance(value, str) else value
            for row in rows:
                book.active.append(row)
            book.save(output)
        elif output:
            _write_tables(output, labelled)
        else:
            sys.stdout.write(_text(source.strip(), value))
        return _status([value])
    path = Path(source)
    if not path.is_file():
        raise ValueError(
            f"cannot read {source}: no such file (or give formula text '=GLMM_BINOMIAL(...)')"
        )
    results = evaluate_workbook(source)
    if not results:
        raise ValueError(f"{source} has no cell calling GLMM_BINOMIAL")
    labelled = [(f"{r.sheet}!{r.cell}", r.value) for r in results]
    if output and Path(output).suffix.lower() in (".xlsx", ".xlsm"):
        save_spilled(source, output, results)
    elif output:
        _write_tables(output, labelled)
    else:
        sys.stdout.write("".join(_text(label, value) for label, value in labelled))
    return _status([r.value for r in results])
