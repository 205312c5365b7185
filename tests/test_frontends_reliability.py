"""The front ends as a careful user and a fuzzer try them (issue 18): the command line's files,
paths, messages and exit codes, workbooks with broken formulas, merged cells and array
constants, and the spreadsheet function on large data. The long fuzz is bench/fuzz_frontends.py.
"""

from __future__ import annotations

import errno
import json
import tempfile
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from conftest import CBPP

from glmm_binomial import datasets
from glmm_binomial.cli import main
from glmm_binomial.frontends import output
from glmm_binomial.sheet import glmm_binomial

CONTRACEPTION = "use ~ age + urban + (1 | district)"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("reliability")
    cbpp = datasets.load("cbpp")
    cbpp.to_csv(path / "cbpp.csv", index=False)
    cbpp.head(4).to_csv(path / "new.csv", index=False)
    unseen = cbpp.head(2).copy()
    unseen["period"] = "9"  # a level the fit has not seen: predict fails
    unseen.to_csv(path / "unseen.csv", index=False)
    contraception = datasets.load("contraception")
    contraception.to_csv(path / "contra.csv", index=False)
    contraception.to_csv(path / "contra_eu.csv", index=False, sep=";", decimal=",")
    (path / "a_folder.json").mkdir()
    return path


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --- outputs: paths checked before the fit --------------------------------------------------


@pytest.mark.parametrize(
    "outputs",
    [
        ["--predict", "new.csv", "--predict-out", "same.csv", "-o", "same.csv"],
        ["--ranef", "X.csv", "-o", "X.csv"],
        ["--ranef", "./X.csv", "-o", "X.csv"],  # the same file under two spellings
        ["-o", "cbpp.csv"],  # over the data file
        ["--predict", "new.csv", "--predict-out", "new.csv"],  # over the new data
        ["--check", "same.json", "-o", "same.json"],  # the model-check figure too
        ["--check", "check.docx"],  # a figure format matplotlib does not write
    ],
)
def test_two_outputs_on_one_file_are_a_usage_error(folder, capsys, monkeypatch, outputs):
    monkeypatch.chdir(folder)
    monkeypatch.setattr("glmm_binomial.api.fit", _no_fit)
    before = sorted(p.name for p in folder.iterdir())
    assert main(["fit", "cbpp.csv", CBPP, *outputs]) == 2
    err = one_line(capsys.readouterr().err)
    assert "error:" in err
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written


def _no_fit(*args, **kwargs):
    raise AssertionError("the fit ran although an output path was wrong")


@pytest.mark.parametrize(
    ("target", "message"),
    [("no_such_folder/fit.json", "no folder"), ("a_folder.json", "is a folder")],
)
def test_a_bad_output_folder_is_an_error_before_the_fit(
    folder, capsys, monkeypatch, target, message
):
    monkeypatch.chdir(folder)
    monkeypatch.setattr("glmm_binomial.api.fit", _no_fit)
    assert main(["fit", "cbpp.csv", CBPP, "-o", target]) == 1
    assert message in one_line(capsys.readouterr().err)


def test_a_failing_predict_keeps_the_fit(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    assert main(["fit", "cbpp", CBPP, "-o", "kept.json", "--predict", "unseen.csv"]) == 1
    captured = capsys.readouterr()
    err = one_line(captured.err)
    assert "cannot predict unseen.csv" in err and "the fit is in kept.json" in err
    assert captured.out == "glmm-binomial: wrote the fit to kept.json\n"
    document = json.loads((folder / "kept.json").read_text())
    assert document["loglik"] == pytest.approx(-92.02628, abs=1e-4)
    assert "predictions" not in document


def test_a_full_disk_leaves_no_half_written_file(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    real = tempfile.NamedTemporaryFile

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            self.handle.write(data[:50])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(output.tempfile, "NamedTemporaryFile", lambda *a, **k: Full(real(*a, **k)))
    for name in ("full.json", "full.csv", "full.txt", "full.xlsx"):
        assert main(["fit", "cbpp", CBPP, "-o", name]) == 1
        err = one_line(capsys.readouterr().err)
        assert f"cannot write {name}: No space left on device" in err
        assert not (folder / name).exists()
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# --- outputs: what is printed and written ---------------------------------------------------


def test_the_summary_names_the_data_file_and_how_it_was_read(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    assert main(["fit", "cbpp.csv", CBPP, "--factors", "period,herd"]) == 0
    out = capsys.readouterr().out
    assert "   Data: cbpp.csv (CSV, separator ',', decimal '.', utf-8)\n" in out
    assert main(["fit", "cbpp", CBPP]) == 0
    assert "   Data: cbpp\n" in capsys.readouterr().out


def test_decimal_comma_csv_is_read_as_numbers_and_said(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    assert main(["fit", "contra.csv", CONTRACEPTION, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["fit", "contra_eu.csv", CONTRACEPTION, "--json"]) == 0
    captured = capsys.readouterr()
    european = json.loads(captured.out)
    assert european["loglik"] == pytest.approx(plain["loglik"], rel=1e-10)
    assert [r["term"] for r in european["fixed_effects"]] == ["(Intercept)", "age", "urbanY"]
    assert european["data_format"]["decimal"] == "," and european["data_format"]["separator"] == ";"
    assert "read contra_eu.csv: CSV, separator ';', decimal ','" in captured.err
    # --sep / --decimal still decide when given.
    assert main(["fit", "contra_eu.csv", CONTRACEPTION, "--sep", ";", "--decimal", ","]) == 0
    assert "decimal ','" in capsys.readouterr().out


def test_prediction_file_carries_the_new_data(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    args = ["fit", "cbpp", CBPP, "--predict", "new.csv", "--predict-out", "pred.csv"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.err == "glmm-binomial: wrote the predictions to pred.csv\n"
    assert "Fixed effects" in captured.out  # the summary still printed (no -o, no --json)
    predictions = pd.read_csv(folder / "pred.csv")
    new = pd.read_csv(folder / "new.csv")
    assert list(predictions.columns) == [*new.columns, "probability", "link"]
    pd.testing.assert_frame_equal(predictions[new.columns], new)
    assert np.all((predictions["probability"] > 0) & (predictions["probability"] < 1))


def test_usage_errors_are_one_line(capsys):
    for argv in ([], ["nonsense"], ["fit"], ["fit", "cbpp", CBPP, "--method", "ml"]):
        assert main(argv) == 2
        one_line(capsys.readouterr().err)
    assert main(["fit", "cbpp", CBPP, "--predict-out", "p.csv"]) == 2
    assert "--predict-out needs --predict" in one_line(capsys.readouterr().err)


# --- workbooks ------------------------------------------------------------------------------


openpyxl = pytest.importorskip("openpyxl")
pytest.importorskip("formulas")

Y = [0, 1, 0, 1, 1, 0, 1, 1]
X = [1, 2, 1.5, 2.5, 3, 1.2, 2.2, 0.7]
G = [1, 1, 2, 2, 3, 3, 4, 4]


def book_with_data(path, formulas: dict[str, str], merge: str | None = None):
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.title = "Data"
    for row in zip(Y, X, G, strict=True):
        sheet.append(list(row))
    for cell, formula in formulas.items():
        sheet[cell] = formula
    if merge:
        sheet.merge_cells(merge)
    wb.save(path)
    return path


def column(values):
    return [[v] for v in values]


def test_a_garbled_formula_does_not_abort_the_workbook(tmp_path, capsys):
    book = book_with_data(
        tmp_path / "garbled.xlsx",
        {
            "E1": '=GLMM_BINOMIAL(A1:A8,B1:B8,C1:C8,,,,"laplace")',
            "Z1": "=SUM(A1:A3",  # the engine cannot read it
            "Z2": "=GLMM_BINOMIAL(A1:A8,B1:B8",
        },
    )
    assert main(["sheet", str(book)]) == 1  # a formula gave a message
    out = capsys.readouterr().out
    assert "Data!E1\nfixed_effects\tparameter" in out  # evaluated and printed
    assert "Data!Z1\tcannot read the formula '=SUM(A1:A3': Mismatched" in out
    assert "Data!Z2\tInvalid input: cannot read the formula" in out
    saved = tmp_path / "garbled_out.xlsx"
    assert main(["sheet", str(book), "-o", str(saved)]) == 1
    sheet = openpyxl.load_workbook(saved)["Data"]
    assert sheet["E1"].value == "fixed_effects" and sheet["F2"].value == "intercept"
    assert sheet["Z1"].value == "=SUM(A1:A3" and "cannot read" in sheet["Z1"].comment.text


def test_a_merged_cell_in_the_spill_range_gives_spill(tmp_path, capsys):
    book = book_with_data(
        tmp_path / "merged.xlsx", {"E1": "=GLMM_BINOMIAL(A1:A8,B1:B8,C1:C8)"}, merge="G4:H5"
    )
    saved = tmp_path / "merged_out.xlsx"
    assert main(["sheet", str(book), "-o", str(saved)]) == 0, capsys.readouterr().err
    sheet = openpyxl.load_workbook(saved)["Data"]
    assert sheet["E1"].value.startswith("#SPILL!") and "merged" in sheet["E1"].value
    assert "G4:H5" in {str(r) for r in sheet.merged_cells.ranges}


@pytest.mark.parametrize(
    ("constant", "values"),
    [("{1;-2;1.5;+2.5;3;-1.2;2.2;0.7}", [1, -2, 1.5, 2.5, 3, -1.2, 2.2, 0.7])],
)
def test_signed_numbers_in_array_constants(tmp_path, capsys, constant, values):
    text = f"=GLMM_BINOMIAL({{0;1;0;1;1;0;1;1}},{constant},{{1;1;2;2;3;3;4;4}})"
    target = tmp_path / "signed.json"
    assert main(["sheet", text, "-o", str(target)]) == 0, capsys.readouterr().err
    table = json.loads(target.read_text())[0]["table"]
    assert table == glmm_binomial(column(Y), column(values), column(G))


def test_index_of_the_table_gives_the_cell_as_excel(tmp_path, capsys):
    book = book_with_data(
        tmp_path / "index.xlsx",
        {
            "E1": "=INDEX(GLMM_BINOMIAL(A1:A8,B1:B8,C1:C8),2,3)",
            "E2": "=INDEX(GLMM_BINOMIAL(A1:A8,B1:B8,C1:C8),3,2)",
            "E3": "=2*INDEX(GLMM_BINOMIAL(A1:A8,B1:B8,C1:C8),2,3)",
        },
    )
    direct = glmm_binomial(column(Y), column(X), column(G))
    saved = tmp_path / "index.json"
    assert main(["sheet", str(book), "-o", str(saved)]) == 0, capsys.readouterr().err
    cells = {r["cell"]: r["table"] for r in json.loads(saved.read_text())}
    assert cells["Data!E1"] == direct[1][2]  # the intercept's coefficient
    assert cells["Data!E2"] == "x1"
    assert cells["Data!E3"] == pytest.approx(2 * direct[1][2], rel=1e-15)


def test_sheet_output_over_its_workbook_is_a_usage_error(tmp_path, capsys):
    book = book_with_data(tmp_path / "self.xlsx", {"E1": "=GLMM_BINOMIAL(A1:A8,B1:B8,C1:C8)"})
    assert main(["sheet", str(book), "-o", str(book)]) == 2
    assert "would overwrite the workbook" in one_line(capsys.readouterr().err)
    assert main(["sheet", str(book), "-o", str(tmp_path / "none" / "out.xlsx")]) == 1
    assert "no folder" in one_line(capsys.readouterr().err)


# --- the spreadsheet function on large data -------------------------------------------------


def test_sheet_call_on_30000_rows_with_quasi_separation_in_bounded_memory():
    # Issue 18: the separation check built a dense n x n identity (6.7 GiB at 30,000 rows), so
    # every call above about 15,000 rows failed, separated or not.
    rng = np.random.default_rng(3)
    n = 30_000
    x = rng.normal(size=n)
    d = (rng.random(n) < 0.1).astype(float)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(0.3 - x))).astype(int)
    y[d == 1] = 1  # quasi-complete separation by d
    g = rng.integers(0, 150, n)
    arguments = ([[int(v)] for v in y], np.column_stack([x, d]).tolist(), [[int(v)] for v in g])
    tracemalloc.start()
    try:
        table = glmm_binomial(*arguments, method="laplace")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.05 * 8 * n * n  # far below the n x n identity (7.2 GB): < 360 MB
    assert not isinstance(table, str), table
    warnings = [row[1] for row in table if row[0] == "warning"]
    assert any("quasi-complete separation" in w and "x2" in w for w in warnings)
    rows = {row[1]: row for row in table[1:4]}
    assert rows["x2"][2] is None and rows["x1"][2] is not None  # d has no finite estimate


def test_a_sheet_name_with_an_apostrophe_is_read_in_references(tmp_path, capsys):
    # The engine cannot read 'it''s'!A1; its copy names the sheet otherwise.
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.title = "it's"
    for row in zip(Y, X, G, strict=True):
        sheet.append(list(row))
    other = wb.create_sheet("results")
    other["A1"] = "=GLMM_BINOMIAL('it''s'!A1:A8,'it''s'!B1:B8,'it''s'!C1:C8)"
    other["A30"] = "=INDEX(GLMM_BINOMIAL('IT''S'!A1:A8,'it''s'!B1:B8,'it''s'!C1:C8),2,3)"
    wb.save(tmp_path / "apostrophe.xlsx")
    target = tmp_path / "apostrophe.json"
    assert main(["sheet", str(tmp_path / "apostrophe.xlsx"), "-o", str(target)]) == 0
    cells = {r["cell"]: r["table"] for r in json.loads(target.read_text())}
    direct = glmm_binomial(column(Y), column(X), column(G))
    assert cells["results!A1"] == direct and cells["results!A30"] == direct[1][2]


def test_control_characters_in_labels_do_not_break_an_xlsx_output(tmp_path, capsys):
    frame = datasets.load("cbpp")
    frame["herd"] = frame["herd"].astype(str) + "\x01"  # a label a worksheet cannot hold
    frame.to_csv(tmp_path / "odd.csv", index=False)
    target = tmp_path / "ranef.xlsx"
    assert main(["fit", str(tmp_path / "odd.csv"), CBPP, "--ranef", str(target)]) == 0
    levels = pd.read_excel(target)["level"].astype(str)
    assert levels.str.endswith("\ufffd").all()
