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

Every formula the engine can read is evaluated; one it cannot (``=SUM(A1:A3``, a ragged array
constant) gets a message of its own and an error value (#VALUE!) for the formulas that read
it, and the rest of the workbook is evaluated as usual. A cell whose formula is one
GLMM_BINOMIAL call gets the whole table (it spills from there, as in Excel); a call inside a
larger formula (``=INDEX(GLMM_BINOMIAL(...),2,3)``) gives the engine the table as an array,
so INDEX and the like pick from it as Excel's do. A table whose spill range holds a non-empty
or merged cell gives #SPILL! in its cell, as Excel does. Array constants take signed numbers
(``{1;-2}``, ``{+1;2}``) as Excel parses them. Output files are written atomically.
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

import numpy as np

from glmm_binomial.frontends import require
from glmm_binomial.frontends.sheet import glmm_binomial

FUNCTION = "GLMM_BINOMIAL"
#: What a cell holding one GLMM_BINOMIAL call calls in the engine's copy: the whole table as
#: one value, kept for the spill (the engine keeps only the top-left value of an array).
TABLE_FUNCTION = "GLMM_BINOMIAL_SPILL"
_CALL = re.compile(r"\bGLMM_BINOMIAL\s*\(", re.IGNORECASE)
_LEADING_CALL = re.compile(r"\s*=\s*GLMM_BINOMIAL\s*\(", re.IGNORECASE)
#: Messages of the spreadsheet core, and of a formula the engine cannot read.
MESSAGE_PREFIXES = ("Invalid input: ", "Error fitting GLMM: ", "cannot read the formula")

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
    """One evaluated cell: where it is, its formula, and its value: a table (2D list) for a
    cell holding one GLMM_BINOMIAL call, a message string, or the single value of a larger
    formula calling it (an Excel error value as its text, such as "#REF!"). ``calls`` is False
    for a formula that does not call GLMM_BINOMIAL and could not be read (value: a message)."""

    sheet: str
    cell: str
    formula: str
    value: Any
    calls: bool = True

    @property
    def failed(self) -> bool:
        """A message or an Excel error value instead of a result."""
        return is_failure(self.value)


def is_failure(value: Any) -> bool:
    """A message of the spreadsheet core or of the reader, or an Excel error value."""
    if isinstance(value, str):
        return value.startswith(MESSAGE_PREFIXES) or value in _EXCEL_ERRORS
    return False


_EXCEL_ERRORS = frozenset(
    {"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#SPILL!", "#CALC!"}
)


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


def single_call(formula: str) -> bool:
    """Whether the formula is one GLMM_BINOMIAL call and nothing else (``=GLMM_BINOMIAL(...)``):
    its cell shows the whole table; elsewhere the table is an array inside a larger formula."""
    match = _LEADING_CALL.match(formula)
    if match is None:
        return False
    _, end = _split_arguments(formula, match.end())
    return end >= 0 and not formula[end + 1 :].strip()


def engine_formula(formula: str) -> str:
    """The formula as the engine gets it: skipped arguments as "" and, for a single call, the
    function that keeps the whole table (TABLE_FUNCTION)."""
    filled = fill_skipped_arguments(formula)
    if single_call(filled):
        match = _LEADING_CALL.match(filled)
        assert match is not None
        return "=" + TABLE_FUNCTION + "(" + filled[match.end() :]
    return filled


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
    """An engine value as the spreadsheet core takes it: Ranges and arrays as 2D arrays; a
    cell holding another GLMM_BINOMIAL table reads as the value shown there (its top-left
    cell, or its message), as in Excel."""
    if isinstance(value, _Table):
        return _shown(value)
    inner = getattr(value, "value", None)
    if inner is not None and hasattr(inner, "ndim"):
        if inner.dtype == object and any(isinstance(v, _Table) for v in inner.flat):
            inner = np.vectorize(_shown, otypes=[object])(inner)
        return inner
    return value


def _shown(value: Any) -> Any:
    """What a cell shows: a table's top-left value or its message; other values as they are."""
    if not isinstance(value, _Table):
        return value
    table = value.value
    return table[0][0] if isinstance(table, list) else table


def _call(arguments: tuple[Any, ...]) -> Any:
    """The spreadsheet core on the engine's values (a table or a message)."""
    if len(arguments) < 3 or len(arguments) > 9:
        return f"Invalid input: GLMM_BINOMIAL takes 3 to 9 arguments; got {len(arguments)}."
    return glmm_binomial(*[_cells(a) for a in arguments])


def _table_function(*arguments: Any) -> _Table:
    """A cell's single GLMM_BINOMIAL call: the whole table as one value (spilled later)."""
    return _Table(_call(arguments))


def _array_function(*arguments: Any) -> Any:
    """GLMM_BINOMIAL inside a larger formula: the table as the engine's array (blank cells
    empty), so INDEX, SUM and the like read it as Excel's do; a message is a 1 x 1 array."""
    from formulas.functions import Array

    value = _call(arguments)
    rows = [[value]] if isinstance(value, str) else value
    width = max(len(row) for row in rows)
    cells = np.empty((len(rows), width), dtype=object)
    for i, row in enumerate(rows):
        for j in range(width):
            cells[i, j] = row[j] if j < len(row) and row[j] is not None else ""
    return cells.view(Array)


def _scalar_cell(value: Any) -> Any:
    """An array constant's element as a number: the engine builds ``-2`` in ``{1;-2}`` as a 0-d
    array (the unary minus's result), which Excel reads as the number -2."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def _array_constant(original: Any) -> Any:
    def build(*arguments: Any) -> Any:
        return original(*[_scalar_cell(a) for a in arguments])

    build.glmm_binomial_wrapped = True  # type: ignore[attr-defined]
    return build


def _engine() -> Any:
    formulas: Any = require("formulas", "xlsx", "evaluating workbooks")
    functions = formulas.get_functions()
    functions[FUNCTION] = _array_function
    functions[TABLE_FUNCTION] = _table_function
    for name in ("ARRAY", "ARRAYROW"):
        if not getattr(functions[name], "glmm_binomial_wrapped", False):
            functions[name] = _array_constant(functions[name])
    return formulas


@contextlib.contextmanager
def quiet_engine() -> Any:
    """The engine draws progress bars on stderr and logs (with a traceback) each function it
    cannot evaluate, such as an unknown name (which gives #NAME?): silenced, as the command
    reports each cell's value itself."""
    import logging

    loggers = [logging.getLogger(name) for name in ("schedula", "formulas")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).replace("%s", "").split()) or type(exc).__name__


def formula_problem(formulas: Any, text: str) -> str | None:
    """Why the engine cannot read a formula (a message), or None when it can."""
    try:
        with quiet_engine():
            formulas.Parser().ast(text)[1].compile()
    except Exception as exc:  # noqa: BLE001 - any parse failure becomes the cell's message
        return f"cannot read the formula {text!r}: {_reason(exc)}"
    return None


def evaluate_formula(text: str) -> Any:
    """The value of one formula text calling GLMM_BINOMIAL (constants only, no references)."""
    formulas = _engine()
    source = text if text.startswith("=") else "=" + text
    try:
        with quiet_engine():
            compiled = formulas.Parser().ast(engine_formula(source))[1].compile()
    except Exception as exc:  # noqa: BLE001 - the engine's parse errors, as one message
        raise ValueError(f"cannot read the formula {text!r}: {_reason(exc)}") from None
    if list(compiled.inputs):
        raise ValueError(
            "formula text may hold only constants such as {0;1;0}; cell references need a "
            "workbook (glmm-binomial sheet BOOK.xlsx)"
        )
    with quiet_engine():
        return _unwrap(compiled())


def _unwrap(value: Any) -> Any:
    """A cell's value from the engine: a table or message (a single call), else one value."""
    if isinstance(value, _Table):
        return value.value
    inner = getattr(value, "value", value)
    if hasattr(inner, "ravel") and inner.size >= 1:
        inner = inner.ravel()[0]
    if isinstance(inner, _Table):
        return inner.value
    if isinstance(inner, np.generic):
        return inner.item()
    if inner is None or isinstance(inner, (bool, int, float)):
        return inner
    if _is_empty(inner):
        return None
    return str(inner)


def _is_empty(value: Any) -> bool:
    """The engine's empty cell (schedula's EMPTY token, a str subclass "empty"), or ""."""
    if not isinstance(value, str):
        return False
    return value == "" or (type(value) is not str and str.__str__(value) == "empty")


def evaluate_workbook(path: str) -> list[Evaluated]:
    """Every GLMM_BINOMIAL cell of the workbook, evaluated (sheet order, then row order), and
    every formula the engine cannot read, with its message."""
    from openpyxl.worksheet.formula import ArrayFormula

    openpyxl: Any = require("openpyxl", "xlsx", "reading .xlsx files")
    formulas = _engine()
    book = openpyxl.load_workbook(path)
    found: list[tuple[str, str, str, bool]] = []  # sheet, cell, formula, calls GLMM_BINOMIAL
    broken: dict[tuple[str, str], str] = {}
    renamed = _engine_sheet_names(book)
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                value = cell.value
                formula = getattr(value, "text", value)  # an ArrayFormula holds its text
                if not (isinstance(formula, str) and formula.startswith("=")):
                    continue
                calls = bool(_CALL.search(formula))
                text = _renamed_references(formula, renamed)
                text = engine_formula(text) if calls else text
                problem = formula_problem(formulas, text)
                if problem is not None:
                    # The engine would refuse the whole workbook: this cell gets the message
                    # and the formulas reading it an error value.
                    broken[(sheet.title, cell.coordinate)] = problem
                    found.append((sheet.title, cell.coordinate, formula, calls))
                    cell.value = "#VALUE!"
                    continue
                found.append((sheet.title, cell.coordinate, formula, calls))
                if text != formula:
                    if isinstance(value, ArrayFormula):
                        value.text = text
                    else:
                        cell.value = text
    if not any(calls for *_, calls in found):
        return []
    for sheet in book.worksheets:
        sheet.title = renamed.get(sheet.title, sheet.title)
    with tempfile.TemporaryDirectory() as folder:
        # The engine reads a file: a copy with the formulas prepared for it.
        copy = Path(folder) / "book.xlsx"
        book.save(copy)
        with quiet_engine():
            model = formulas.ExcelModel().loads(str(copy)).finish()
            solution = model.calculate()
    values = {key.upper(): value for key, value in solution.items()}
    out = []
    for sheet_title, coordinate, formula, calls in found:
        if not calls and (sheet_title, coordinate) not in broken:
            continue  # another formula the engine read: not reported
        if (sheet_title, coordinate) in broken:
            problem = broken[(sheet_title, coordinate)]
            message = f"Invalid input: {problem}" if calls else problem
            out.append(Evaluated(sheet_title, coordinate, formula, message, calls))
            continue
        engine_title = renamed.get(sheet_title, sheet_title)
        key = f"'[BOOK.XLSX]{engine_title.upper()}'!{coordinate}"
        value = values.get(key)
        result = (
            _unwrap(value)
            if value is not None
            else f"Error fitting GLMM: the engine did not evaluate {sheet_title}!{coordinate}"
        )
        out.append(Evaluated(sheet_title, coordinate, formula, result))
    return out


def _engine_sheet_names(book: Any) -> dict[str, str]:
    """Sheets whose names the engine cannot read in a reference (an apostrophe, written ''
    there), and the names they get in the engine's copy."""
    titles = {sheet.title.upper() for sheet in book.worksheets}
    renamed: dict[str, str] = {}
    for i, sheet in enumerate(book.worksheets):
        if "'" in sheet.title:
            name = f"GLMM_SHEET_{i}"
            while name.upper() in titles:
                name += "_"
            renamed[sheet.title] = name
    return renamed


def _renamed_references(formula: str, renamed: dict[str, str]) -> str:
    """The formula with references to renamed sheets ('it''s'!A1) naming the new sheets."""
    for old, new in renamed.items():
        quoted = re.compile(re.escape("'" + old.replace("'", "''") + "'!"), re.IGNORECASE)
        formula = quoted.sub((new + "!").replace("\\", "\\\\"), formula)
    return formula


def _blocks_spill(cell: Any) -> bool:
    """A cell a spilled table may not cover: non-empty, or part of a merged range."""
    return type(cell).__name__ == "MergedCell" or cell.value not in (None, "")


def save_spilled(path: str, output: str, results: list[Evaluated]) -> None:
    """A copy of the workbook with each table's values spilled from its formula's cell; a
    table that would overwrite non-empty or merged cells is reported in its cell instead
    (#SPILL!, as Excel). A formula that could not be read keeps its text, with the message as
    a comment. Written atomically."""
    openpyxl: Any = require("openpyxl", "xlsx", "writing .xlsx files")
    from openpyxl.comments import Comment

    from glmm_binomial.frontends.output import save_workbook

    book = openpyxl.load_workbook(path)
    for result in results:
        sheet = book[result.sheet]
        anchor = sheet[result.cell]
        if not result.calls:
            anchor.comment = Comment(str(result.value), "glmm-binomial")
            continue
        table = result.value if isinstance(result.value, list) else [[result.value]]
        top, left = anchor.row, anchor.column
        blocked = [
            sheet.cell(row=top + i, column=left + j).coordinate
            for i, row in enumerate(table)
            for j, _ in enumerate(row)
            if (i or j) and _blocks_spill(sheet.cell(row=top + i, column=left + j))
        ]
        if blocked:
            table = [
                [
                    f"#SPILL! the {len(table)} x {len(table[0])} table would overwrite "
                    f"non-empty or merged cells ({', '.join(blocked[:3])}); make room below "
                    "and right"
                ]
            ]
        for i, row in enumerate(table):
            for j, value in enumerate(row):
                sheet.cell(row=top + i, column=left + j).value = value
        anchor.comment = Comment(f"{result.formula}\n(evaluated by glmm-binomial)", "glmm-binomial")
    save_workbook(output, book)


def _status(values: list[Any]) -> int:
    """1 if a formula gave a message (or an error value), 3 if a table says converged FALSE,
    else 0."""
    if any(is_failure(v) for v in values):
        return EXIT_ERROR
    for table in values:
        if not isinstance(table, list):
            continue
        for row in table:
            if row and row[0] == "converged" and row[1] is False:
                return EXIT_NOT_CONVERGED
    return EXIT_OK


def _text(label: str, value: Any) -> str:
    if not isinstance(value, list):
        return f"{label}\t{'' if value is None else value}\n"
    lines = [label] + [
        "\t".join("" if c is None else str(c) for c in row).rstrip("\t") for row in value
    ]
    return "\n".join(lines) + "\n"


def _write_tables(output: str, labelled: list[tuple[str, Any]]) -> None:
    from glmm_binomial.frontends.output import plain, write_text

    suffix = Path(output).suffix.lower()
    if suffix == ".json":
        document = [{"cell": label, "table": plain(value)} for label, value in labelled]
        write_text(output, json.dumps(document, indent=1, allow_nan=False))
    elif suffix == ".csv":
        import csv

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for label, value in labelled:
            writer.writerow([f"# {label}"])
            rows = value if isinstance(value, list) else [[value]]
            writer.writerows(["" if c is None else c for c in row] for row in rows)
        write_text(output, buffer.getvalue())
    elif suffix in (".txt", ".text"):
        write_text(output, "".join(_text(lb, v) for lb, v in labelled))
    else:
        raise ValueError(
            f"cannot tell the output format of {output!r}: use .xlsx, .json, .csv or .txt"
        )


def check_output(output: str) -> None:
    """Before any work: a known format, in an existing writable folder (ValueError)."""
    from glmm_binomial.frontends.output import check_writable

    if Path(output).suffix.lower() not in (".xlsx", ".xlsm", ".json", ".csv", ".txt", ".text"):
        raise ValueError(
            f"cannot tell the output format of {output!r}: use .xlsx, .json, .csv or .txt"
        )
    check_writable(output)


def run(source: str, output: str | None = None) -> int:
    """The ``glmm-binomial sheet`` command; returns the exit status."""
    is_text = source.lstrip().startswith("=") or (
        bool(_CALL.search(source)) and not Path(source).exists()
    )
    if output:
        check_output(output)
    if is_text:
        value = evaluate_formula(source.strip())
        labelled = [("formula", value)]
        if output and Path(output).suffix.lower() in (".xlsx", ".xlsm"):
            from glmm_binomial.frontends.output import save_workbook

            openpyxl: Any = require("openpyxl", "xlsx", "writing .xlsx files")
            book = openpyxl.Workbook()
            rows = value if isinstance(value, list) else [[value]]
            for row in rows:
                book.active.append(row)
            save_workbook(output, book)
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
    if not any(r.calls for r in results):
        raise ValueError(f"{source} has no cell calling GLMM_BINOMIAL")
    if output and Path(output).suffix.lower() in (".xlsx", ".xlsm"):
        save_spilled(source, output, results)
    elif output:
        _write_tables(output, labelled)
    else:
        sys.stdout.write("".join(_text(label, value) for label, value in labelled))
    return _status([r.value for r in results])
