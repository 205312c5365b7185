"""GLMM_BINOMIAL in real .xlsx workbooks and in formula text (``glmm-binomial sheet``)."""

from __future__ import annotations

import json

import _spec_examples as spec
import pytest

from glmm_binomial.cli import main
from glmm_binomial.frontends import workbook
from glmm_binomial.sheet import glmm_binomial

openpyxl = pytest.importorskip("openpyxl")
pytest.importorskip("formulas")

# The spreadsheet examples' columns as flat lists (the cells written into the workbook).
Y1, Y2, X, G, XR = ([v for (v,) in c] for c in (spec.Y1, spec.Y2, spec.X, spec.G, spec.XR))


def column(values):
    return [[v] for v in values]


# Cell -> (formula, the direct call it must equal). Data: A y1, B y2, C x, D groups, E x_random,
# rows 2-7; row 8-9 left blank (a longer selection must be fine).
FORMULAS = {
    "H1": ("=GLMM_BINOMIAL(A2:A7,C2:C7,D2:D7)", (column(Y1), column(X), column(G))),
    "H20": (
        "=GLMM_BINOMIAL(B2:B9,C2:C9,D2:D9,E2:E9)",
        (column(Y2), column(X), column(G), column(XR)),
    ),
    "H40": ("=GLMM_BINOMIAL(A2:A7,C2:C7,D2:D7,FALSE)", (column(Y1), column(X), column(G), False)),
    "H60": (
        "=GLMM_BINOMIAL(B2:B7,C2:C7,D2:D7,E2:E7,TRUE,0.1)",
        (column(Y2), column(X), column(G), column(XR), True, 0.1),
    ),
    "T1": (
        '=GLMM_BINOMIAL(B2:B7,C2:C7,D2:D7,,,0.1,"laplace")',
        (column(Y2), column(X), column(G), None, None, 0.1, "laplace"),
    ),
}


def same(value):
    """value, or for a float one equal to 16 significant digits (as .xlsx files keep it)."""
    return pytest.approx(value, rel=1e-15, abs=0) if isinstance(value, float) else value


def read_block(sheet, anchor, table):
    """The cells a table of this shape occupies from anchor (empty cells as None)."""
    top, left = sheet[anchor].row, sheet[anchor].column
    return [
        [sheet.cell(row=top + i, column=left + j).value for j in range(len(table[0]))]
        for i in range(len(table))
    ]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    path = tmp_path_factory.mktemp("book") / "book.xlsx"
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.title = "Data"
    sheet.append(["y1", "y2", "x", "groups", "x_random"])
    for row in zip(Y1, Y2, X, G, XR, strict=True):
        sheet.append(list(row))
    sheet["C3"] = "=1+1"  # an input computed by a formula: the engine evaluates it
    for cell, (formula, _) in FORMULAS.items():
        sheet[cell] = formula
    wb.save(path)
    return path


def test_workbook_evaluated_saved_and_reopened_holds_the_direct_tables(book, tmp_path, capsys):
    out = tmp_path / "out.xlsx"
    # Example 1 is completely separated under ML ("laplace" in T1 is not), so status 0 here.
    assert main(["sheet", str(book), "-o", str(out)]) == 0, capsys.readouterr().err
    saved = openpyxl.load_workbook(out)["Data"]
    for cell, (formula, args) in FORMULAS.items():
        direct = glmm_binomial(*args)
        assert not isinstance(direct, str), direct
        got = read_block(saved, cell, direct)
        # openpyxl writes numbers with 16 significant digits ("%.16g"): equal to 1e-15.
        assert got == [[same(v) for v in row] for row in direct], cell
        assert saved[cell].comment.text.startswith(formula)
    assert saved["A2"].value == 0 and saved["C3"].value == "=1+1"  # the rest as it was


def test_workbook_printed_without_output(book, capsys):
    assert main(["sheet", str(book)]) == 0
    out = capsys.readouterr().out
    assert out.count("fixed_effects\tparameter") == len(FORMULAS)
    assert "Data!H20\n" in out


def test_formula_text(capsys, tmp_path):
    text = "=GLMM_BINOMIAL({0;1;0;1;1;0},{1;2;1.5;2.5;3;1.2},{1;1;2;2;3;3})"
    assert main(["sheet", text]) == 0
    lines = capsys.readouterr().out.splitlines()
    direct = glmm_binomial(column(Y1), column(X), column(G))
    assert lines[1].split("\t") == direct[0]
    assert lines[2].split("\t")[1:3] == ["intercept", str(direct[1][2])]
    target = tmp_path / "table.json"
    assert main(["sheet", text.replace(")", ',,,,"laplace")'), "-o", str(target)]) == 3
    table = json.loads(target.read_text())[0]["table"]
    assert table == glmm_binomial(column(Y1), column(X), column(G), method="laplace")


def test_messages_and_spill_conflicts(tmp_path, capsys):
    path = tmp_path / "bad.xlsx"
    wb = openpyxl.Workbook()
    sheet = wb.active
    for y, x, g in zip(Y2, X, G, strict=True):
        sheet.append([y, x, g])
    sheet["A6"] = 2  # y must be 0/1
    sheet["E1"] = "=GLMM_BINOMIAL(A1:A6,B1:B6,C1:C6)"
    sheet["H1"] = '=GLMM_BINOMIAL(A1:A5,B1:B5,C1:C5,,,,"laplace")'
    sheet["I3"] = "occupied"
    wb.save(path)
    out = tmp_path / "bad_out.xlsx"
    assert main(["sheet", str(path), "-o", str(out)]) == 1  # a formula gave a message
    saved = openpyxl.load_workbook(out).active
    assert saved["E1"].value == "Invalid input: y must contain only 0 or 1 values."
    assert saved["H1"].value.startswith("#SPILL!") and saved["I3"].value == "occupied"
    assert main(["sheet", str(tmp_path / "none.xlsx")]) == 1
    assert "none.xlsx" in capsys.readouterr().err


def test_skipped_arguments_become_blank():
    fill = workbook.fill_skipped_arguments
    assert fill("=GLMM_BINOMIAL(A1:A6,B1:B6,C1:C6,,FALSE)") == (
        '=GLMM_BINOMIAL(A1:A6,B1:B6,C1:C6,"",FALSE)'
    )
    assert fill('=1+glmm_binomial({1,2;3,4},"a,b",(1,2),)') == (
        '=1+glmm_binomial({1,2;3,4},"a,b",(1,2),"")'
    )
    assert fill("=GLMM_BINOMIAL(A1,B1") == "=GLMM_BINOMIAL(A1,B1"
