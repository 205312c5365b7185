"""Data files as the command line reads them (frontends/reader.py): separator, decimal mark and
encoding detected, and said (issue 18)."""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glmm_binomial import datasets
from glmm_binomial.frontends.reader import (
    ReadError,
    detect_decimal,
    read_table,
    sniff_separator,
)


@pytest.fixture(scope="module")
def contraception():
    return datasets.load("contraception")


def test_semicolon_file_with_decimal_commas_reads_numbers(tmp_path, contraception):
    # As European Excel writes it: "18,44". Before issue 18, age became a factor.
    path = tmp_path / "eu.csv"
    contraception.to_csv(path, sep=";", decimal=",", index=False)
    assert "18,44" in path.read_text()
    frame, info = read_table(str(path))
    assert info.separator == ";" and info.decimal == ","
    assert set(info.detected) == {"separator", "decimal"}
    assert info.describe() == "CSV, separator ';', decimal ',', utf-8"
    assert frame["age"].dtype == np.float64
    plain, _ = read_table(str(_plain_csv(tmp_path, contraception)))
    np.testing.assert_array_equal(frame["age"].to_numpy(), plain["age"].to_numpy())


def _plain_csv(folder, frame):
    path = folder / "plain.csv"
    frame.to_csv(path, index=False)
    return path


def test_options_override_the_detection(tmp_path, contraception):
    path = tmp_path / "eu.csv"
    contraception.to_csv(path, sep=";", decimal=",", index=False)
    frame, info = read_table(str(path), sep=";", decimal=".")
    assert info.detected == () and not pd.api.types.is_numeric_dtype(frame["age"])  # as told
    frame, info = read_table(str(path), decimal=",")
    assert info.detected == ("separator",) and frame["age"].dtype == np.float64


def test_tab_separated_utf16_with_bom_as_excel_saves_unicode_text(tmp_path):
    text = "y\tx\tg\n0\t1,5\ta\n1\t2,25\tb\n1\t-0,5\ta\n"
    path = tmp_path / "unicode.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    frame, info = read_table(str(path))
    assert info.encoding == "utf-16" and info.separator == "\t" and info.decimal == ","
    assert list(frame.columns) == ["y", "x", "g"]
    assert frame["x"].tolist() == [1.5, 2.25, -0.5]


def test_utf8_bom_is_not_part_of_the_first_name(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"y,x\n0,1\n1,2\n")
    frame, info = read_table(str(path))
    assert list(frame.columns) == ["y", "x"] and info.encoding == "utf-8-sig"


def test_empty_lines_and_quoted_fields(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('y;x;g\n\n0;"1,5";"a;b"\n\n1;2,5;c\n')
    frame, info = read_table(str(path))
    assert info.separator == ";" and frame["x"].tolist() == [1.5, 2.5]
    assert frame["g"].tolist() == ["a;b", "c"]


def test_separator_prefers_semicolon_when_commas_are_decimals():
    sample = "y;age\n1;18,44\n0;20,5\n1;3,25\n"
    assert sniff_separator(sample) == ";"
    assert sniff_separator("y,age\n1,18.44\n0,20.5\n") == ","
    assert sniff_separator("y\tage\n1\t18,4\n") == "\t"
    assert sniff_separator("y\n1\n0\n") == ","  # one column


def test_decimal_detection_by_column():
    text = pd.DataFrame({"a": ["1,5", "2", None], "b": ["x", "y", "z"], "c": ["1", "2", "3"]})
    assert detect_decimal(text, set()) == (",", "a")
    assert detect_decimal(text, {"a"}) == (".", None)  # a label column decides nothing
    points = pd.DataFrame({"a": ["1.5", "2"], "b": ["3", "4"]})
    assert detect_decimal(points, set()) == (".", None)
    both = pd.DataFrame({"a": ["1,5", "2"], "b": ["3.25", "4"]})
    with pytest.raises(
        ReadError, match=r"decimal comma in column 'a'.*decimal point in column 'b'"
    ):
        detect_decimal(both, set())


def test_mixed_decimal_marks_are_one_clear_error(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("y;a;b\n0;1,5;2.5\n1;2,5;3.5\n")
    with pytest.raises(ReadError, match=r"cannot read .*mixed.csv: .*give --decimal"):
        read_table(str(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "No columns to parse"), (b"y,x\n\xe9,1\n", "not utf-8 text")],
)
def test_unreadable_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ReadError) as caught:
        read_table(str(path))
    text = str(caught.value)
    assert message in text and "\n" not in text and "bad.csv" in text


@pytest.mark.parametrize("content", [b"\xff\xfe\x00", b'y,x\n1,"2\n', b"\x00\x01;\n;;\n"])
def test_garbled_files_read_or_give_a_read_error(tmp_path, content):
    path = tmp_path / "odd.csv"
    path.write_bytes(content)
    try:
        read_table(str(path))
    except ReadError as exc:
        assert "\n" not in str(exc) and "odd.csv" in str(exc)


def test_a_folder_or_a_missing_file(tmp_path):
    with pytest.raises(ReadError, match="is a folder"):
        read_table(str(tmp_path))
    with pytest.raises(ReadError, match="no such file"):
        read_table(str(tmp_path / "none.csv"))


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="no /dev/null here")
def test_a_device_is_not_a_data_file():
    with pytest.raises(ReadError, match="cannot read /dev/null: not a regular file"):
        read_table("/dev/null")
