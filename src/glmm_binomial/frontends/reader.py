"""Data files as the command line reads them: CSV (separator and decimal mark detected), .xlsx,
Parquet; each read says what it decided (``ReadInfo``), so the output can say it too.

CSV decisions, in order (each overridden by its option):
- encoding (``--encoding``): a byte-order mark decides (UTF-8 with BOM, UTF-16 as Excel's
  "Unicode text" writes it); otherwise UTF-8.
- separator (``--sep``): the one that splits every line of the first 64 KB into the same number
  of fields (more than one); when several do, tab, ``;`` and ``|`` win over ``,``, since a file
  written with decimal commas (``18,44``, European Excel) has a comma in every line of a numeric
  column.
- decimal mark (``--decimal``): ``,`` when the separator is not ``,``, some column holds only
  numbers written with a decimal comma (``18,44``, ``-0,5``, ``1,5e-3``, integers) and no column
  holds numbers written with a decimal point; both in one file is an error asking for
  ``--decimal``. Otherwise ``.``.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Bytes of the file the separator is decided from.
SNIFF_BYTES = 65536

_COMMA_NUMBER = re.compile(r"[+-]?(?:\d+,\d*|,\d+|\d+)(?:[eE][+-]?\d+)?")
_POINT_NUMBER = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")


class ReadError(Exception):
    """A data file that cannot be read; the message names the file and says why."""


@dataclass(frozen=True)
class ReadInfo:
    """How a data file was read: its format and, for CSV, the separator, decimal mark and
    encoding used; ``detected`` names the decisions made from the file (not given)."""

    path: str
    format: str  # "csv", "xlsx", "parquet"
    separator: str | None = None
    decimal: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    detected: tuple[str, ...] = ()

    def describe(self) -> str:
        """One phrase: "CSV, separator ';', decimal ','" (or the sheet of a workbook)."""
        if self.format == "csv":
            separator = "tab" if self.separator == "\t" else repr(self.separator)
            return f"CSV, separator {separator}, decimal {self.decimal!r}, {self.encoding}"
        if self.format == "xlsx":
            return f"xlsx, sheet {self.sheet!r}" if self.sheet is not None else "xlsx"
        return self.format

    def as_record(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "format": self.format,
            "separator": self.separator,
            "decimal": self.decimal,
            "encoding": self.encoding,
            "sheet": self.sheet,
            "detected": list(self.detected),
        }


def kind_of(path: Path) -> str:
    """csv, xlsx or parquet, by the file's first bytes (then its extension)."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == b"PAR1":
        return "parquet"
    if head == b"PK\x03\x04":
        return "xlsx"
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".xls"):
        return "xlsx"
    if suffix == ".parquet":
        return "parquet"
    return "csv"


def detect_encoding(head: bytes) -> str:
    """The encoding a byte-order mark names, else UTF-8."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


def _field_counts(sample: str, delimiter: str, truncated: bool) -> set[int]:
    """Numbers of fields of the sample's non-blank lines split at ``delimiter`` (quotes kept)."""
    try:
        rows = list(csv.reader(io.StringIO(sample), delimiter=delimiter))
    except csv.Error:
        return set()
    if truncated and rows:
        rows = rows[:-1]  # the last line may be cut off
    return {len(row) for row in rows if any(cell.strip() for cell in row)}


def sniff_separator(sample: str, truncated: bool = False) -> str:
    """The separator of a CSV sample (see the module docstring); "," when nothing splits."""
    consistent = []
    # Commas last: decimal commas (one per number) split every line consistently too.
    for delimiter in ("\t", ";", "|", ","):
        counts = _field_counts(sample, delimiter, truncated)
        if len(counts) == 1 and min(counts) > 1:
            consistent.append(delimiter)
    try:
        sniffed: str | None = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        sniffed = None
    if sniffed in consistent and not (sniffed == "," and len(consistent) > 1):
        return str(sniffed)
    if consistent:
        return consistent[0]  # tab, then ";", then "|", then ","
    return sniffed or ","


def _number_style(values: Any) -> str | None:
    """ "comma" when every value is a number written with a decimal comma (at least one has
    one), "point" likewise for a decimal point, None otherwise (text, integers only, mixed)."""
    text = [v.strip() for v in values if isinstance(v, str) and v.strip()]
    if not text:
        return None
    if any("," in v for v in text) and all(_COMMA_NUMBER.fullmatch(v) for v in text):
        return "comma"
    if any("." in v for v in text) and all(_POINT_NUMBER.fullmatch(v) for v in text):
        return "point"
    return None


def detect_decimal(frame: Any, labels: set[str]) -> tuple[str, str | None]:
    """The decimal mark of a CSV read as text (every column str), and the first column that
    decided it (None when nothing did); ReadError when columns disagree."""
    comma, point = [], []
    for name in frame.columns:
        if name in labels:
            continue
        style = _number_style(frame[name].dropna().unique())
        if style == "comma":
            comma.append(name)
        elif style == "point":
            point.append(name)
    if comma and point:
        example = frame[comma[0]].dropna().astype(str)
        sample = next(v for v in example if "," in v)
        raise ReadError(
            f"numbers with a decimal comma in column {comma[0]!r} ({sample.strip()!r}) and "
            f"with a decimal point in column {point[0]!r}: give --decimal , or --decimal ."
        )
    if comma:
        return ",", str(comma[0])
    return ".", None


def read_csv(
    path: Path, sep: str | None, decimal: str | None, encoding: str | None, labels: set[str]
) -> tuple[Any, ReadInfo]:
    """A CSV file as a DataFrame, with what was decided (see the module docstring)."""
    import pandas as pd

    detected = []
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if encoding is None:
        encoding = detect_encoding(head)
        if encoding != "utf-8":
            detected.append("encoding")
    try:
        sample = head.decode(encoding, errors="strict")
    except UnicodeDecodeError as exc:
        if len(head) == SNIFF_BYTES and exc.start >= len(head) - 4:
            sample = head[: exc.start].decode(encoding)  # a character cut at the sample's end
        else:
            raise
    except LookupError:
        raise ReadError(f"unknown encoding {encoding!r} (--encoding)") from None
    if sep is None:
        sep = sniff_separator(sample, truncated=len(head) == SNIFF_BYTES)
        detected.append("separator")
    text_columns = {c: str for c in labels}
    if decimal is None:
        decimal = "."
        if sep != ",":
            as_text = pd.read_csv(path, sep=sep, encoding=encoding, dtype=str)
            decimal, _ = detect_decimal(as_text, labels)
            if decimal == ",":
                detected.append("decimal")
    frame = pd.read_csv(path, sep=sep, decimal=decimal, encoding=encoding, dtype=text_columns)
    return frame, ReadInfo(str(path), "csv", sep, decimal, encoding, None, tuple(detected))


def read_table(
    path_text: str,
    sep: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
    sheet: str | int | None = None,
    labels: set[str] | frozenset[str] = frozenset(),
) -> tuple[Any, ReadInfo]:
    """A data file (CSV, .xlsx, Parquet) as a DataFrame and how it was read; columns in
    ``labels`` are read as text. ReadError, naming the file, when it cannot be read."""
    path = Path(path_text)
    if path.is_dir():
        raise ReadError(f"cannot read {path_text}: it is a folder, not a data file")
    if not path.is_file():
        # A device or a pipe exists but is no data file (it may never end).
        what = "not a regular file" if path.exists() else "no such file"
        raise ReadError(f"cannot read {path_text}: {what}")
    import pandas as pd

    labels = set(labels)
    kind = "csv"
    try:
        kind = kind_of(path)
        if kind == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ReadError(
                    f"cannot read {path_text}: Parquet files need pyarrow: "
                    "pip install 'glmm-binomial[parquet]'"
                ) from None
            frame = pd.read_parquet(path)
            for column in labels & set(frame.columns):
                frame[column] = frame[column].astype(str)
            return frame, ReadInfo(path_text, "parquet")
        if kind == "xlsx":
            try:
                import openpyxl  # noqa: F401
            except ImportError:
                raise ReadError(
                    f"cannot read {path_text}: .xlsx files need openpyxl: "
                    "pip install 'glmm-binomial[xlsx]'"
                ) from None
            chosen: str | int = 0 if sheet is None else sheet
            if isinstance(chosen, str) and chosen.isdigit():
                chosen = int(chosen)
            frame = pd.read_excel(path, sheet_name=chosen, dtype={c: str for c in labels})
            return frame, ReadInfo(path_text, "xlsx", sheet=None if sheet is None else str(sheet))
        frame, info = read_csv(path, sep, decimal, encoding, labels)
        return frame, ReadInfo(
            path_text, "csv", info.separator, info.decimal, info.encoding, None, info.detected
        )
    except ReadError as exc:
        text = str(exc)
        if not text.startswith("cannot read"):
            text = f"cannot read {path_text}: {text}"
        raise ReadError(text) from None
    except UnicodeDecodeError as exc:
        if kind != "csv":
            raise ReadError(f"cannot read {path_text}: {_one_line(exc)}") from None
        raise ReadError(
            f"cannot read {path_text}: it is not {exc.encoding} text (byte "
            f"0x{exc.object[exc.start]:02x} at position {exc.start}); give --encoding "
            "(e.g. --encoding latin-1) or save it as UTF-8"
        ) from None
    except Exception as exc:  # noqa: BLE001 - whatever pandas, openpyxl or pyarrow raise
        raise ReadError(f"cannot read {path_text}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text
