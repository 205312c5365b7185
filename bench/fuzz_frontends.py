"""Long fuzz of the front ends (issue 18): the command line, workbooks, the spreadsheet function.

    python bench/fuzz_frontends.py [--cli 1200] [--workbooks 600] [--calls 3000] [--power 300]
                                   [--seed 0]
                                   [--timeout 120] [--json FILE] [--keep DIR]

Generated inputs, each from its own seed (SeedSequence([seed, kind, index])), so any case can
be replayed (``--only cli:17``):

- cli: a simulated table ``y ~ x + (1 | g)`` written as CSV (separator , ; tab |, decimal point
  or comma, quoting, UTF-8 / UTF-8 with BOM / UTF-16 / Latin-1, blank lines, CRLF, shuffled and
  extra columns, with or without --sep/--decimal/--encoding), .xlsx (another sheet first, named
  by --sheet) or Parquet (group labels as text, integers or categories); or one of these made
  adversarial (truncated, corrupted bytes, NUL bytes, text in a numeric column, bad responses,
  mixed decimal marks, wrong options, bad formulas, empty files); with random outputs (-o
  .json/.csv/.txt/.xlsx, --json, --ranef, --anova, --slopes, --predict with or without
  --predict-out, outputs on one file, missing folders) and, for some, a full disk (every
  temporary file fails after a few bytes).
- workbooks: .xlsx files with a data block (perturbed cells: text, blanks, booleans, errors,
  formulas), GLMM_BINOMIAL formulas (ranges, skipped arguments, methods, array constants with
  signed numbers, inside INDEX and SUM), formulas the engine cannot read, merged cells (in
  spill ranges too), odd sheet names; run with and without -o (.xlsx/.json/.csv/.txt).
- calls: GLMM_BINOMIAL with malformed and near-valid arguments.
- power: ``glmm-binomial power`` on a cli case's data file with random power options (valid
  ones, or one that is not: a usage error or an error of the model), --nsim 2-4; a valid
  command's JSON power (or curve) must be the API's power_sim (power_curve) to the bit.

Checks per case: no traceback (stderr, stdout, unraisable exceptions), an exit status the README
documents, a failure is exactly one error line on stderr; valid inputs give the right answer
(CLI: the logLik and convergence of the same table fitted through the API, to 1e-8 relative;
workbooks: the table of the direct GLMM_BINOMIAL call); every file in the output folder is
complete (JSON parses, .xlsx opens, CSV parses, no temporary file left), an expected output
exists; no case takes longer than --timeout (hang). Cases run in a worker process (this script
with --worker); a worker that stops answering is killed and the case counted as a hang.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

SRC = str(Path(__file__).resolve().parents[1] / "src")
KINDS = {"cli": 1, "workbook": 2, "call": 3, "power": 4}
EXIT_CODES = {0, 1, 2, 3}
LABELS = ["a", "b", "c", "d", "e", "f", "g", "h", "é", "ü", "日本", "x y", "1", "2", "10"]


class Hang(BaseException):
    """Raised by the alarm in a case that runs too long (not an Exception: nothing catches it)."""


def case_rng(seed: int, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, KINDS[kind], index]))


# --- the simulated table ----------------------------------------------------------------------


def simulate_table(rng: np.random.Generator) -> Any:
    import pandas as pd

    n = int(rng.integers(30, 121))
    n_groups = int(rng.integers(3, 9))
    labels = list(rng.choice(LABELS, size=n_groups, replace=False))
    if rng.random() < 0.3:
        labels = [int(v) for v in rng.choice(np.arange(1, 50), size=n_groups, replace=False)]
    codes = rng.integers(0, n_groups, n)
    x = np.round(rng.normal(size=n) * rng.choice([1.0, 10.0, 0.01]), 4)
    b = rng.normal(size=n_groups) * rng.choice([0.0, 0.5, 1.5])
    eta = -0.2 + x / (np.std(x) + 1e-12) + b[codes]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    if rng.random() < 0.05:
        y = (x > np.median(x)).astype(int)  # separated: exit status 3
    return pd.DataFrame({"y": y, "x": x, "g": [labels[c] for c in codes]})


def reference_fit(frame: Any) -> tuple[float, bool] | None:
    """logLik and convergence of the table fitted through the API (None: the fit fails)."""
    import glmm_binomial

    data = frame.copy()
    data["g"] = data["g"].astype(str)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = glmm_binomial.fit("y ~ x + (1 | g)", data)
    except Exception:  # noqa: BLE001 - the CLI must then fail too
        return None
    return float(result.loglik), bool(result.converged)


def number_text(value: float, decimal: str) -> str:
    text = repr(float(value)) if not float(value).is_integer() else str(int(value))
    return text.replace(".", decimal) if decimal == "," else text


def csv_text(frame: Any, rng: np.random.Generator, sep: str, decimal: str) -> str:
    """The table as CSV text written by hand: quoting, column order, extra columns, blank
    lines and line endings drawn at random (every variant reads back as the same table)."""
    columns = list(frame.columns)
    if rng.random() < 0.5:
        columns = list(rng.permutation(columns))
    extra = rng.random() < 0.3
    quote_all = rng.random() < 0.3
    quote_char = '"'

    def field(value: Any, numeric: bool) -> str:
        text = number_text(value, decimal) if numeric else str(value)
        needs = quote_all or sep in text or quote_char in text or "\n" in text
        if needs:
            return quote_char + text.replace(quote_char, quote_char * 2) + quote_char
        return text

    header = [field(c, False) for c in columns] + ([field("note", False)] if extra else [])
    lines = [sep.join(header)]
    for row in frame.to_dict(orient="records"):  # each column keeps its type (no 9 -> 9.0)
        cells = [field(row[c], c in ("y", "x")) for c in columns]
        if extra:
            cells.append(field(rng.choice(["ok", "n/a", "text; with, marks", ""]), False))
        lines.append(sep.join(cells))
    if rng.random() < 0.4:  # blank lines inside and at the end
        for _ in range(int(rng.integers(1, 4))):
            lines.insert(int(rng.integers(1, len(lines) + 1)), "")
        lines.append("")
    ending = "\r\n" if rng.random() < 0.3 else "\n"
    return ending.join(lines) + ending


# --- CLI cases ------------------------------------------------------------------------------


def make_cli_case(rng: np.random.Generator, folder: Path) -> dict[str, Any]:
    """Write the inputs of one CLI case into folder; return its description."""
    frame = simulate_table(rng)
    valid = rng.random() < 0.6
    form = rng.choice(["csv"] * 6 + ["xlsx", "parquet"])
    options: list[str] = []
    note: list[str] = [str(form)]
    name = "data.csv"
    if form == "csv":
        sep = str(rng.choice([",", ";", "\t", "|"]))
        decimal = str(rng.choice([".", ","])) if sep != "," else "."
        encodings = ["utf-8", "utf-8-sig", "utf-16"]
        labels_ascii = all(str(v).isascii() for v in frame["g"])
        latin = all(ch < "\u0100" for v in frame["g"] for ch in str(v))
        if latin:
            encodings.append("latin-1")
        encoding = str(rng.choice(encodings))
        text = csv_text(frame, rng, sep, decimal)
        name = str(rng.choice(["data.csv", "data.txt", "data.tsv", "data"]))
        (folder / name).write_bytes(text.encode(encoding))
        note += [f"sep={sep!r}", f"decimal={decimal!r}", encoding]
        if rng.random() < 0.3:
            options += ["--sep", sep]
        if rng.random() < 0.3 or (decimal == "," and sep == "|" and rng.random() < 0.5):
            options += ["--decimal", decimal]
        if encoding == "latin-1" and not labels_ascii:
            options += ["--encoding", "latin-1"]
    elif form == "xlsx":
        import openpyxl

        name = "data.xlsx"
        book = openpyxl.Workbook()
        sheet = book.active
        if rng.random() < 0.5:  # another sheet first: --sheet names the data
            sheet.title = "notes"
            sheet["A1"] = "nothing here"
            sheet = book.create_sheet("Data sheet")
            options += ["--sheet", "Data sheet" if rng.random() < 0.5 else "1"]
        sheet.append(list(frame.columns))
        for row in frame.itertuples(index=False):
            sheet.append([int(row.y), float(row.x), row.g])
        book.save(folder / name)
    else:
        name = "data.parquet"
        data = frame.copy()
        kind = rng.choice(["str", "category", "int"])
        if kind == "category":
            data["g"] = data["g"].astype(str).astype("category")
        elif kind == "int":
            data["g"] = (
                data["g"]
                .astype(str)
                .map({v: i for i, v in enumerate(sorted(set(data["g"].astype(str))))})
            )
        else:
            data["g"] = data["g"].astype(str)
        data.to_parquet(folder / name)
        note.append(f"g as {kind}")
    formula = "y ~ x + (1 | g)"
    if not valid:
        formula, options = corrupt(rng, folder, name, formula, options, note)
    return {
        "frame": frame,
        "data": name,
        "formula": formula,
        "options": options,
        "valid": valid,
        "note": " ".join(note),
    }


def corrupt(
    rng: np.random.Generator,
    folder: Path,
    name: str,
    formula: str,
    options: list[str],
    note: list[str],
) -> tuple[str, list[str]]:
    """Make the case adversarial: damage the file, the options or the formula."""
    path = folder / name
    data = bytearray(path.read_bytes())
    how = str(
        rng.choice(
            [
                "truncate",
                "flip",
                "nul",
                "text_in_x",
                "bad_y",
                "empty",
                "header_only",
                "mixed_decimals",
                "wrong_sep",
                "bad_encoding",
                "unknown_encoding",
                "bad_formula",
                "missing_column",
                "duplicate_header",
                "ragged_row",
                "latin1_no_option",
                "bad_sheet",
            ]
        )
    )
    note.append(f"adversarial:{how}")
    text_file = not name.endswith((".xlsx", ".parquet"))
    if how == "truncate" and data:
        path.write_bytes(bytes(data[: int(rng.integers(0, len(data)))]))
    elif how == "flip" and data:
        for _ in range(int(rng.integers(1, 20))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        path.write_bytes(bytes(data))
    elif how == "nul" and data:
        position = int(rng.integers(0, len(data)))
        path.write_bytes(
            bytes(data[:position]) + b"\x00" * int(rng.integers(1, 5)) + bytes(data[position:])
        )
    elif how == "empty":
        path.write_bytes(b"")
    elif (
        how
        in (
            "text_in_x",
            "bad_y",
            "mixed_decimals",
            "header_only",
            "duplicate_header",
            "ragged_row",
            "missing_column",
        )
        and text_file
    ):
        rewrite_text_case(rng, path, how)
    elif how == "wrong_sep":
        options = [o for o in options if o != "--sep"] + [
            "--sep",
            str(rng.choice([",", ";", "\t", ":"])),
        ]
    elif how == "bad_encoding":
        options = options + ["--encoding", str(rng.choice(["utf-16", "utf-32", "ascii", "cp1252"]))]
    elif how == "unknown_encoding":
        options = options + ["--encoding", "no-such-codec"]
    elif how == "bad_formula":
        formula = str(
            rng.choice(
                [
                    "y ~ x + (1 |",
                    "y ~ nothere + (1 | g)",
                    "y ~ x + (1 | nothere)",
                    "~ x",
                    "y ~ x + (1 | g) + (((",
                    "cbind(y, 1 - y) ~ x + (1 | g)",
                    "y ~ log(x) + (1 | g)",
                    "y ~ x + (x | g) + (1 | g:x)",
                ]
            )
        )
    elif how == "latin1_no_option" and text_file:
        path.write_bytes(
            path.read_bytes()
            .decode("utf-8", "replace")
            .replace("a", "é")
            .encode("latin-1", "replace")
        )
    elif how == "bad_sheet":
        options = options + ["--sheet", str(rng.choice(["nope", "7", "-1"]))]
    return formula, options


def without(options: list[str], name: str) -> list[str]:
    """The options without ``name`` and its value."""
    out, skip = [], False
    for option in options:
        if skip:
            skip = False
        elif option == name:
            skip = True
        else:
            out.append(option)
    return out


def rewrite_text_case(rng: np.random.Generator, path: Path, how: str) -> None:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "utf-16", "latin-1"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    lines = text.splitlines()
    lines = [line for line in lines if line.strip()]
    if not lines:
        return
    if how == "header_only":
        lines = lines[:1]
    elif how == "duplicate_header":
        lines[0] = lines[0].replace("x", "y", 1)
    elif how == "missing_column":
        lines[0] = lines[0].replace("g", "group", 1)
    elif how == "ragged_row" and len(lines) > 2:
        i = int(rng.integers(1, len(lines)))
        lines[i] = lines[i] + lines[i][-3:] * int(rng.integers(1, 4))
    elif len(lines) > 2:
        i = int(rng.integers(1, len(lines)))
        replacement = {"text_in_x": "abc", "bad_y": "2", "mixed_decimals": "1.5"}[how]
        for sep in (";", "\t", "|", ","):
            if sep in lines[i]:
                cells = lines[i].split(sep)
                cells[int(rng.integers(0, len(cells)))] = replacement
                lines[i] = sep.join(cells)
                break
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def output_options(
    rng: np.random.Generator, folder: Path, frame: Any
) -> tuple[list[str], dict[str, Any]]:
    """Random outputs, and what they should give."""
    options: list[str] = []
    expect: dict[str, Any] = {"files": [], "usage": False, "missing_folder": False}
    choice = rng.random()
    if choice < 0.15:
        options.append("--json")
    elif choice < 0.75:
        out = "out" + str(rng.choice([".json", ".csv", ".txt", ".xlsx"]))
        options += ["-o", out]
        expect["files"].append(out)
    if rng.random() < 0.25:
        ranef = "ranef" + str(rng.choice([".csv", ".json", ".xlsx"]))
        options += ["--ranef", ranef]
        expect["files"].append(ranef)
    if rng.random() < 0.2:
        anova = "anova" + str(rng.choice([".csv", ".json", ".xlsx"]))
        options += ["--anova", anova]
        expect["files"].append(anova)
    if rng.random() < 0.2:
        slopes = "slopes" + str(rng.choice([".csv", ".json", ".xlsx"]))
        options += ["--slopes", slopes]
        expect["files"].append(slopes)
    if rng.random() < 0.3:
        new = frame.sample(n=min(5, len(frame)), random_state=int(rng.integers(0, 2**31)))
        new.to_csv(folder / "new.csv", index=False)
        options += ["--predict", "new.csv"]
        if rng.random() < 0.5:
            pred = "pred" + str(rng.choice([".csv", ".json", ".xlsx"]))
            options += ["--predict-out", pred]
            expect["files"].append(pred)
    roll = rng.random()
    if roll < 0.05 and expect["files"]:
        # a second output option on the same file: a usage error
        free = [o for o in ("-o", "--ranef", "--anova", "--slopes") if o not in options]
        if free:
            options += [free[0], expect["files"][0]]
            expect["usage"] = True
    elif roll < 0.1:
        options += ["-o", "no_such_folder/out.json"]
        expect["missing_folder"] = True
    return options, expect


def check_files(folder: Path, names: list[str]) -> list[str]:
    """Problems with the output files: temporary leftovers, incomplete files."""
    problems = []
    for path in folder.iterdir():
        if path.name.endswith(".tmp"):
            problems.append(f"temporary file left: {path.name}")
            continue
        if path.name not in names:
            continue
        try:
            if path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".xlsx":
                import openpyxl

                openpyxl.load_workbook(path).close()
            elif path.suffix == ".csv":
                text = path.read_text(encoding="utf-8")
                if text and not text.endswith("\n"):
                    problems.append(f"{path.name} does not end with a line end")
                list(csv.reader(io.StringIO(text)))
            elif path.stat().st_size == 0:
                problems.append(f"{path.name} is empty")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{path.name} is not complete: {type(exc).__name__}: {exc}")
    return problems


class FullDisk:
    """A temporary file that fails as a full disk after ``budget`` bytes."""

    def __init__(self, real: Any, budget: int) -> None:
        self.real, self.budget, self.written = real, budget, 0

    def write(self, data: bytes) -> int:
        allowed = max(0, self.budget - self.written)
        self.real.write(data[:allowed])
        self.written += min(allowed, len(data))
        if allowed < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def __enter__(self) -> FullDisk:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.real.close()


@contextlib.contextmanager
def full_disk(budget: int) -> Any:
    from glmm_binomial.frontends import output

    real = tempfile.NamedTemporaryFile
    output.tempfile.NamedTemporaryFile = lambda *a, **k: FullDisk(real(*a, **k), budget)  # type: ignore[assignment]
    try:
        yield
    finally:
        output.tempfile.NamedTemporaryFile = real  # type: ignore[assignment]


def run_main(argv: list[str], cwd: Path, timeout: float) -> dict[str, Any]:
    """main(argv) in this process with stdout, stderr and unraisable exceptions captured."""
    from glmm_binomial.frontends.cli import main

    out, err = io.StringIO(), io.StringIO()
    unraisable: list[str] = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = lambda info: unraisable.append(repr(info.exc_value))
    old = os.getcwd()
    os.chdir(cwd)

    def alarm(*_: Any) -> None:
        raise Hang()

    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    start = time.perf_counter()
    crashed = None
    code = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except Hang:
        crashed = "hang"
    except BaseException as exc:  # noqa: BLE001 - an exception out of main is a finding
        crashed = "".join(traceback.format_exception(exc))[-2000:]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os.chdir(old)
        import gc

        gc.collect()
        sys.unraisablehook = previous_hook
    return {
        "code": code,
        "stdout": out.getvalue(),
        "stderr": err.getvalue(),
        "unraisable": unraisable,
        "crashed": crashed,
        "seconds": time.perf_counter() - start,
    }


def common_problems(run: dict[str, Any], messages_exit_1: bool = False) -> list[str]:
    """Problems any run can show; messages_exit_1: exit status 1 may come with no error line
    (glmm-binomial sheet: a formula gave a message, printed with the tables)."""
    problems = []
    if run["crashed"] == "hang":
        return ["hang"]
    if run["crashed"]:
        problems.append("exception out of main: " + run["crashed"])
    for stream in ("stdout", "stderr"):
        if "Traceback" in run[stream]:
            problems.append(f"traceback on {stream}")
    if run["unraisable"]:
        problems.append(f"unraisable exceptions: {run['unraisable']}")
    if run["code"] is not None and run["code"] not in EXIT_CODES:
        problems.append(f"exit status {run['code']}")
    lines = [line for line in run["stderr"].splitlines() if line]
    errors = [line for line in lines if ": error:" in line]
    allowed = (0, 1) if messages_exit_1 and run["code"] == 1 else (1,)
    if run["code"] in (1, 2) and len(errors) not in allowed:
        problems.append(f"a failure with {len(errors)} error lines: {run['stderr'][:300]!r}")
    if run["code"] in (0, 3) and errors:
        problems.append(f"error lines with exit status {run['code']}")
    if any(not line.startswith("glmm-binomial") for line in lines):
        problems.append(f"stderr line not from the command: {run['stderr'][:300]!r}")
    return problems


def run_cli_case(seed: int, index: int, timeout: float, keep: Path | None) -> dict[str, Any]:
    rng = case_rng(seed, "cli", index)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        case = make_cli_case(rng, folder)
        outputs, expect = output_options(rng, folder, case["frame"])
        disk_full = bool(expect["files"]) and not expect["usage"] and rng.random() < 0.1
        argv = ["fit", case["data"], case["formula"], *case["options"], *outputs]
        if disk_full:
            with full_disk(int(rng.integers(0, 64))):
                run = run_main(argv, folder, timeout)
        else:
            run = run_main(argv, folder, timeout)
        problems = common_problems(run)
        reference = reference_fit(case["frame"]) if case["valid"] else None
        code = run["code"]
        if run["crashed"] != "hang":
            problems += check_files(folder, expect["files"])
            if expect["usage"] and code != 2:
                problems.append(f"two outputs on one file gave exit status {code}, not 2")
            elif expect["missing_folder"] and not expect["usage"] and code not in (1, 2):
                problems.append(f"a missing output folder gave exit status {code}")
            elif disk_full and code in (0, 3):
                problems.append("a full disk gave no error")
            elif case["valid"] and not expect["usage"] and not expect["missing_folder"]:
                problems += check_answer(case, reference, run, folder, expect, disk_full)
        if problems and keep is not None:
            target = keep / f"cli_{index}"
            shutil.copytree(folder, target, dirs_exist_ok=True)
            (target / "argv.json").write_text(json.dumps(argv))
    half_written = [p for p in problems if "temporary file" in p or "not complete" in p]
    return {
        "kind": "cli",
        "index": index,
        "note": case["note"],
        "valid": case["valid"],
        "argv": argv,
        "code": code,
        "problems": problems,
        "hang": run["crashed"] == "hang",
        "traceback": any(
            "traceback" in p or "exception out of" in p or "unraisable" in p for p in problems
        ),
        "half_written": bool(half_written),
        "full_disk": disk_full,
        "stderr": run["stderr"][-400:],
        "seconds": round(run["seconds"], 3),
    }


def check_answer(
    case: dict[str, Any],
    reference: tuple[float, bool] | None,
    run: dict[str, Any],
    folder: Path,
    expect: dict[str, Any],
    disk_full: bool,
) -> list[str]:
    """A valid table: the same logLik and convergence as the API's fit of the table."""
    code = run["code"]
    if disk_full:
        return [] if code == 1 and "No space left" in run["stderr"] else [f"full disk: {code}"]
    if reference is None:
        return [] if code == 1 else [f"the API's fit failed but the command gave {code}"]
    loglik, converged = reference
    if code not in (0, 3):
        return [f"a valid table gave exit status {code}: {run['stderr'][:300]!r}"]
    if (code == 0) != converged:
        return [f"exit status {code} but the API's fit has converged={converged}"]
    document = None
    if "--json" in case["options"] or run["stdout"].lstrip().startswith("{"):
        with contextlib.suppress(json.JSONDecodeError):
            document = json.loads(run["stdout"])
    json_out = [f for f in expect["files"] if f.startswith("out") and f.endswith(".json")]
    if json_out and (folder / json_out[0]).exists():
        document = json.loads((folder / json_out[0]).read_text())
    if document is None:
        for f in expect["files"]:
            if not (folder / f).exists():
                return [f"expected output {f} is missing"]
        return []
    got = document.get("loglik")
    if got is None or not math.isclose(got, loglik, rel_tol=1e-8, abs_tol=1e-8):
        return [f"logLik {got} differs from the API's {loglik} ({case['note']})"]
    return []


# --- workbooks ------------------------------------------------------------------------------


def run_workbook_case(seed: int, index: int, timeout: float, keep: Path | None) -> dict[str, Any]:
    import openpyxl

    from glmm_binomial.frontends.sheet import glmm_binomial

    rng = case_rng(seed, "workbook", index)
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.title = str(rng.choice(["Data", "My data", "it's", "Sheet1", "données"]))
        n = int(rng.integers(6, 30))
        top, left = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        y = [int(v) for v in rng.integers(0, 2, n)]
        x = [round(float(v), 3) for v in rng.normal(size=n)]
        g = [int(v) for v in rng.integers(1, 5, n)]
        columns = {"y": y, "x": x, "g": g}
        clean = rng.random() < 0.6
        for j, key in enumerate(("y", "x", "g")):
            for i, value in enumerate(columns[key]):
                sheet.cell(row=top + i, column=left + j).value = value
        if not clean:
            for _ in range(int(rng.integers(1, 4))):
                i, j = int(rng.integers(0, n)), int(rng.integers(0, 3))
                odd = ["text", "", None, True, "#N/A", "=1+1", "=1/0", 1e308, "=A1"]
                sheet.cell(row=top + i, column=left + j).value = odd[int(rng.integers(0, 9))]

        def ref(j: int) -> str:
            col = openpyxl.utils.get_column_letter(left + j)
            return f"{col}{top}:{col}{top + n - 1}"

        def quoted(text: str) -> str:
            return "'" + sheet.title.replace("'", "''") + "'!" + text

        expected: dict[str, Any] = {}
        index_expected: dict[str, Any] = {}
        forms: list[str] = []
        n_formulas = int(rng.integers(1, 5))
        used: set[str] = set()
        for _ in range(n_formulas):
            row, col = int(rng.integers(1, 60)), int(rng.integers(6, 20))
            cell = f"{openpyxl.utils.get_column_letter(col)}{row}"
            if cell in used:
                continue
            used.add(cell)
            form = str(
                rng.choice(
                    [
                        "plain",
                        "plain",
                        "sheetref",
                        "skipped",
                        "method",
                        "constants",
                        "index",
                        "sum",
                        "broken",
                        "other",
                        "circular",
                    ]
                )
            )
            forms.append(form)
            refs = [ref(0), ref(1), ref(2)]
            if form == "sheetref":
                refs = [quoted(r) for r in refs]
            args = ",".join(refs)
            direct: Any = None
            if form in ("plain", "sheetref"):
                text = f"=GLMM_BINOMIAL({args})"
                direct = ([[v] for v in y], [[v] for v in x], [[v] for v in g])
            elif form == "skipped":
                text = f"=GLMM_BINOMIAL({args},,FALSE)"
                direct = ([[v] for v in y], [[v] for v in x], [[v] for v in g], None, False)
            elif form == "method":
                method = str(rng.choice(["laplace", "vb", "agq", "LAPLACE", "nope"]))
                text = f'=GLMM_BINOMIAL({args},,,,"{method}")'
                direct = (
                    [[v] for v in y],
                    [[v] for v in x],
                    [[v] for v in g],
                    None,
                    None,
                    None,
                    method,
                )
            elif form == "constants":
                m = int(rng.integers(4, 9))
                cy = [int(v) for v in rng.integers(0, 2, m)]
                cx = [round(float(v), 2) for v in rng.normal(size=m) * 2]
                cg = [int(v) for v in rng.integers(1, 3, m)]

                def constant(values: list[Any]) -> str:
                    out = []
                    for v in values:
                        text_v = repr(v)
                        if v >= 0 and rng.random() < 0.3:
                            text_v = "+" + text_v
                        out.append(text_v)
                    return "{" + ";".join(out) + "}"

                text = f"=GLMM_BINOMIAL({constant(cy)},{constant(cx)},{constant(cg)})"
                direct = ([[v] for v in cy], [[v] for v in cx], [[v] for v in cg])
            elif form == "index":
                r, c = int(rng.integers(1, 12)), int(rng.integers(1, 10))
                text = f"=INDEX(GLMM_BINOMIAL({args}),{r},{c})"
                if clean:
                    index_expected[f"{sheet.title}!{cell}"] = (
                        ([[v] for v in y], [[v] for v in x], [[v] for v in g]),
                        r,
                        c,
                    )
            elif form == "sum":
                text = f"=SUM(1,GLMM_BINOMIAL({args}))"
            elif form == "broken":
                text = str(
                    rng.choice(
                        [
                            "=SUM(A1:A3",
                            f"=GLMM_BINOMIAL({args}",
                            "={1,2;3}",
                            '="unterminated',
                            "=1+",
                            "=SUM(A1:A3))",
                            "=NOSUCHFUNCTION(1)",
                            "=Sheet9!A1",
                            f"=GLMM_BINOMIAL({{1;-}},{args})",
                        ]
                    )
                )
            elif form == "circular":
                text = f"={cell}+1"
            else:
                text = str(rng.choice(["=SUM(A1:A5)", "=A1*2", "=IF(A1>0,1,0)", "=AVERAGE(B1:B9)"]))
            sheet[cell] = text
            if direct is not None and clean:
                expected[f"{sheet.title}!{cell}"] = direct
        if rng.random() < 0.4:  # merged cells, sometimes inside a table's spill range
            for _ in range(int(rng.integers(1, 3))):
                r, c = int(rng.integers(1, 60)), int(rng.integers(6, 22))
                start = f"{openpyxl.utils.get_column_letter(c)}{r}"
                down = r + int(rng.integers(0, 2))
                end = f"{openpyxl.utils.get_column_letter(c + 1)}{down}"
                covered = {
                    f"{openpyxl.utils.get_column_letter(cc)}{rr}"
                    for cc in (c, c + 1)
                    for rr in range(r, down + 1)
                }
                if covered & used:
                    continue  # merging would delete a formula (openpyxl clears merged cells)
                with contextlib.suppress(ValueError):
                    sheet.merge_cells(f"{start}:{end}")
        path = folder / "book.xlsx"
        book.save(path)
        target = str(rng.choice(["", "out.xlsx", "out.json", "out.csv", "out.txt"]))
        argv = ["sheet", "book.xlsx"] + (["-o", target] if target else [])
        run = run_main(argv, folder, timeout)
        problems += common_problems(run, messages_exit_1=True)
        code = run["code"]
        if run["crashed"] != "hang":
            if code == 2:
                problems.append("exit status 2 for a workbook")
            problems += check_files(folder, [target] if target else [])
            if target and code in (0, 3) and not (folder / target).exists():
                problems.append(f"{target} missing")
            if "did not evaluate" in run["stdout"] and "circular" not in forms:
                problems.append("the engine left a GLMM_BINOMIAL cell unevaluated")
            if target == "out.json" and (folder / target).exists() and code in (0, 1, 3):
                from glmm_binomial.frontends.output import plain

                cells = {r["cell"]: r["table"] for r in json.loads((folder / target).read_text())}
                for label, arguments in expected.items():
                    if label not in cells:
                        problems.append(f"{label} missing from the output")
                        continue
                    direct = glmm_binomial(*arguments)
                    if not same_table(cells[label], plain(direct)):
                        problems.append(f"{label}: the table differs from the direct call")
                for label, (arguments, r, c) in index_expected.items():
                    table = glmm_binomial(*arguments)
                    rows = table if isinstance(table, list) else [[table]]
                    want = "#REF!" if r > len(rows) or c > len(rows[0]) else rows[r - 1][c - 1]
                    if not same_table(cells.get(label), plain(want)):
                        problems.append(f"{label}: INDEX gave {cells.get(label)!r}, not {want!r}")
        if problems and keep is not None:
            shutil.copytree(folder, keep / f"workbook_{index}", dirs_exist_ok=True)
            (keep / f"workbook_{index}" / "argv.json").write_text(json.dumps(argv))
    return case_record(
        "workbook",
        index,
        " ".join(forms) + f" sheet={sheet.title!r}",
        argv,
        run,
        problems,
        stdout_messages=[
            line[:200]
            for line in run["stdout"].splitlines()
            if "\t" in line
            and "!" in line.split("\t")[0]
            and not line.split("\t")[1].startswith(("fixed", "\t"))
        ][:10],
    )


def case_record(
    kind: str,
    index: int,
    note: str,
    argv: list[str],
    run: dict[str, Any],
    problems: list[str],
    **extra: Any,
) -> dict[str, Any]:
    """One case's record: what ran, its exit status and problems, and the kinds of problem
    the summary counts."""
    return {
        "kind": kind,
        "index": index,
        "note": note,
        "argv": argv,
        "code": run["code"],
        "problems": problems,
        "hang": run["crashed"] == "hang",
        "traceback": any(
            "traceback" in p or "exception out of" in p or "unraisable" in p for p in problems
        ),
        "half_written": any("temporary file" in p or "not complete" in p for p in problems),
        "stderr": run["stderr"][-400:],
        "seconds": round(run["seconds"], 3),
        **extra,
    }


def same_table(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_table(u, v) for u, v in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)
    return bool(a == b)


# --- spreadsheet calls ----------------------------------------------------------------------


def garbage(rng: np.random.Generator, depth: int = 0) -> Any:
    roll = rng.random()
    atoms = [
        None,
        "",
        " ",
        "text",
        True,
        False,
        0,
        1,
        -1,
        0.5,
        float("nan"),
        float("inf"),
        1e308,
        10**400,
        b"x",
        1j,
        [],
        [[]],
        {},
        set(),
        object(),
        Ellipsis,
        np.float32(1.5),
        np.array([]),
        np.zeros((2, 2, 2)),
        "=SUM(A1)",
        "#N/A",
        "1,5",
    ]
    if depth > 2 or roll < 0.4:
        return atoms[int(rng.integers(0, len(atoms)))]
    if roll < 0.7:
        return [garbage(rng, depth + 1) for _ in range(int(rng.integers(0, 5)))]
    return [
        [garbage(rng, depth + 2) for _ in range(int(rng.integers(0, 3)))]
        for _ in range(int(rng.integers(0, 6)))
    ]


def run_call_case(seed: int, index: int, timeout: float, keep: Path | None) -> dict[str, Any]:
    from glmm_binomial.frontends.sheet import glmm_binomial

    rng = case_rng(seed, "call", index)
    if rng.random() < 0.3:
        n = int(rng.integers(2, 12))
        arguments: list[Any] = [
            [[int(v)] for v in rng.integers(0, 2, n)],
            [[round(float(v), 2)] for v in rng.normal(size=n)],
            [[int(v)] for v in rng.integers(1, 4, n)],
        ]
        slot = int(rng.integers(0, 3))
        if rng.random() < 0.7:
            row = int(rng.integers(0, n))
            arguments[slot][row] = [garbage(rng, 2)]
        arguments += [
            garbage(rng, 1) if rng.random() < 0.3 else None,
            True,
            0.05,
            str(rng.choice(["vb", "laplace", "agq"])),
        ]
    else:
        arguments = [garbage(rng) for _ in range(int(rng.integers(0, 8)))]
    problems = []
    start = time.perf_counter()

    def alarm(*_: Any) -> None:
        raise Hang()

    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    hang = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning escaping the call is a finding too
            out = (
                glmm_binomial(*arguments[:7])
                if len(arguments) >= 3
                else glmm_binomial(*(arguments + [None] * (3 - len(arguments))))
            )
        if isinstance(out, str):
            if not out.startswith(("Invalid input: ", "Error fitting GLMM: ")):
                problems.append(f"message without its prefix: {out[:200]!r}")
            if "could not be read (" in out:
                problems.append(f"a generic message: {out[:200]!r}")
        elif not (isinstance(out, list) and all(isinstance(r, list) and len(r) == 9 for r in out)):
            problems.append("neither a message nor a 9-column table")
    except Hang:
        hang = True
        problems.append("hang")
    except BaseException as exc:  # noqa: BLE001
        problems.append("raised: " + "".join(traceback.format_exception(exc))[-1500:])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return {
        "kind": "call",
        "index": index,
        "problems": problems,
        "hang": hang,
        "traceback": any(p.startswith("raised") for p in problems),
        "half_written": False,
        "seconds": round(time.perf_counter() - start, 3),
    }


# --- the power command ----------------------------------------------------------------------

#: Options of glmm-binomial power that make a valid command (with a valid data file), and some
#: that do not (a usage error, or an error of the model: exit status 2 or 1).
POWER_VALID = [
    ["--test", "x"],
    ["--test-method", "lrt"],
    ["--alpha", "0.1"],
    ["--effect", "x=0"],
    ["--effect", "x=-0.5"],
    ["--seed", "11"],
    ["--conf-level", "0.9"],
    ["--method", "agq"],
    ["--link", "probit"],
    ["--breaks", "4,8"],
    ["--along", "g", "--breaks", "5"],
]
POWER_INVALID = [
    ["--test", "nope"],
    ["--test-method", "score"],
    ["--alpha", "1"],
    ["--nsim", "0"],
    ["--effect", "x"],
    ["--effect", "z=1"],
    ["--effect", "x=inf"],
    ["--breaks", "4,a"],
    ["--breaks", "0"],
    ["--along", "g", "--within", "g"],
    ["--along", "x"],
    ["-o", "out.xlsx"],
    ["--n-jobs", "0"],
    ["--seed", "-2"],
]


def run_power_case(seed: int, index: int, timeout: float, keep: Path | None) -> dict[str, Any]:
    """glmm-binomial power on a CLI case's data file (valid or made adversarial) with random
    power options: no traceback, one error line for a failure, complete outputs; a valid
    command gives the API's power_sim result (to the bit, when the file's numbers read back
    exactly: the pilot's logLik the same)."""
    rng = case_rng(seed, "power", index)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        case = make_cli_case(rng, folder)
        chosen = [POWER_VALID[i] for i in rng.choice(len(POWER_VALID), rng.integers(0, 3))]
        valid_options = rng.random() < 0.7
        if not valid_options:
            chosen.append(POWER_INVALID[int(rng.integers(len(POWER_INVALID)))])
        options = [item for option in chosen for item in option]
        nsim = str(int(rng.integers(2, 5)))
        files: list[str] = []
        # (argparse keeps the last -o: the invalid one stays alone)
        roll = rng.random() if "-o" not in options else 1.0
        if roll < 0.3:
            options.append("--json")
        elif roll < 0.7:
            out = "out" + str(rng.choice([".json", ".csv", ".txt"]))
            options += ["-o", out]
            files.append(out)
        argv = ["power", case["data"], case["formula"], *case["options"], *options]
        argv += ["--nsim", nsim, "--no-progress"]
        run = run_main(argv, folder, timeout)
        problems = common_problems(run)
        if run["crashed"] != "hang":
            code = run["code"]
            if case["valid"] and valid_options and code in (0, 3):
                problems += check_files(folder, files)
                problems += power_answer(case, options, int(nsim), run, folder, files)
            elif not valid_options and code in (0, 3):
                problems.append(f"invalid options {chosen[-1]} gave exit status {code}")
        if problems and keep is not None:
            target = keep / f"power_{index}"
            shutil.copytree(folder, target, dirs_exist_ok=True)
            (target / "argv.json").write_text(json.dumps(argv))
    return case_record(
        "power", index, case["note"], argv, run, problems, valid=case["valid"] and valid_options
    )


def power_answer(
    case: dict[str, Any],
    options: list[str],
    nsim: int,
    run: dict[str, Any],
    folder: Path,
    files: list[str],
) -> list[str]:
    """A valid power command printing or writing JSON: its power is the API's."""
    document = None
    if "--json" in options:
        document = json.loads(run["stdout"])
    elif files and files[0].endswith(".json"):
        document = json.loads((folder / files[0]).read_text())
    if document is None:
        return []
    import glmm_binomial

    def value(name: str, default: Any) -> Any:
        # The last occurrence, as argparse reads a repeated option.
        if name not in options:
            return default
        return options[len(options) - options[::-1].index(name)]

    from glmm_binomial.frontends import reader

    # The table as the command read it (a column of numbers as labels orders its levels as
    # numbers, the simulated frame's strings as text: other draws per level).
    read = dict(zip(case["options"][::2], case["options"][1::2], strict=False))
    data, _ = reader.read_table(
        str(folder / case["data"]),
        read.get("--sep"),
        read.get("--decimal"),
        read.get("--encoding"),
        read.get("--sheet"),
        set(),
    )
    link = value("--link", "logit")
    family = glmm_binomial.family.make_family("binomial", link)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pilot = glmm_binomial.fit(
            case["formula"], data, method=value("--method", "laplace"), family=family
        )
        if document["pilot"]["loglik"] != float(pilot.loglik):
            return []  # the file's numbers read back in other last bits: not comparable
        effect = value("--effect", None)
        settings = {
            "test": value("--test", None),
            "nsim": nsim,
            "alpha": float(value("--alpha", 0.05)),
            "method": value("--test-method", "wald"),
            "effect": None if effect is None else {"x": float(effect.split("=")[1])},
            "seed": int(value("--seed", 1)),
            "conf_level": float(value("--conf-level", 0.95)),
            "progress": False,
        }
        if "--breaks" in options:
            breaks = [int(b) for b in value("--breaks", "").split(",")]
            curve = glmm_binomial.power_curve(
                pilot, along=value("--along", None), breaks=breaks, **settings
            )
            expected = [
                {k: glmm_binomial.frontends.output.plain(v) for k, v in row.items()}
                for row in curve.table.to_dict(orient="records")
            ]
            got = document.get("curve")
            return [] if got == expected else [f"curve {got} is not the API's {expected}"]
        result = glmm_binomial.power_sim(pilot, **settings)
    if document.get("power") != glmm_binomial.frontends.output.plain(result.power):
        return [f"power {document.get('power')} is not the API's {result.power}"]
    return []


RUNNERS = {
    "cli": run_cli_case,
    "workbook": run_workbook_case,
    "call": run_call_case,
    "power": run_power_case,
}


# --- the driver -------------------------------------------------------------------------------


def worker(
    kind: str, seed: int, start: int, stop: int, timeout: float, results: str, keep: str | None
) -> None:
    """Run cases start..stop-1 of one kind, one JSON line each (flushed) in `results`."""
    warnings.simplefilter("ignore")
    keep_path = Path(keep) if keep else None
    with open(results, "a", encoding="utf-8") as handle:
        for index in range(start, stop):
            try:
                record = RUNNERS[kind](seed, index, timeout, keep_path)
            except Hang:
                record = {
                    "kind": kind,
                    "index": index,
                    "problems": ["hang"],
                    "hang": True,
                    "traceback": False,
                    "half_written": False,
                }
            except BaseException as exc:  # noqa: BLE001 - the generator itself failed
                record = {
                    "kind": kind,
                    "index": index,
                    "problems": [
                        "fuzz driver: " + "".join(traceback.format_exception(exc))[-1500:]
                    ],
                    "hang": False,
                    "traceback": True,
                    "half_written": False,
                }
            handle.write(json.dumps(record, default=str) + "\n")
            handle.flush()


def run_kind(
    kind: str, count: int, seed: int, timeout: float, keep: str | None, only: int | None
) -> list[dict[str, Any]]:
    records: dict[int, dict[str, Any]] = {}
    indices = [only] if only is not None else list(range(count))
    position = 0
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder) / "results.jsonl"
        results.touch()
        while position < len(indices):
            start, stop = indices[position], indices[-1] + 1
            env = {**os.environ, "PYTHONPATH": SRC, "MPLBACKEND": "Agg"}
            command = [
                sys.executable,
                __file__,
                "--worker",
                kind,
                str(seed),
                str(start),
                str(stop),
                str(timeout),
                str(results),
            ]
            if keep:
                command.append(keep)
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            seen = len(records)
            last = time.monotonic()
            while process.poll() is None:
                time.sleep(0.5)
                for line in results.read_text().splitlines():
                    record = json.loads(line)
                    records.setdefault(record["index"], record)
                if len(records) > seen:
                    seen, last = len(records), time.monotonic()
                    done = len(records)
                    if done % 100 == 0:
                        print(f"  {kind}: {done} cases", flush=True)
                elif time.monotonic() - last > 2 * timeout + 30:
                    process.kill()  # a hang the alarm could not break (in C code)
                    process.wait()
                    break
            for line in results.read_text().splitlines():
                record = json.loads(line)
                records.setdefault(record["index"], record)
            missing = [i for i in indices if i not in records]
            if not missing:
                break
            first = missing[0]
            if process.returncode not in (0, None) or first == start:
                # The worker died or hung on this case.
                error = (process.stderr.read() if process.stderr else b"").decode()[-1000:]
                records[first] = {
                    "kind": kind,
                    "index": first,
                    "problems": [f"worker stopped (exit {process.returncode}): {error}"],
                    "hang": process.returncode is None or process.returncode < 0,
                    "traceback": bool(error),
                    "half_written": False,
                }
            position = indices.index(first) + 1 if first in records else indices.index(first)
    return [records[i] for i in indices if i in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cli", type=int, default=1200)
    parser.add_argument("--workbooks", type=int, default=600)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--power", type=int, default=300, help="glmm-binomial power cases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    parser.add_argument("--json", help="write every case's record to this file")
    parser.add_argument("--keep", help="copy the folders of failing cases here")
    parser.add_argument("--only", help="one case, such as cli:17")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        kind, seed, start, stop, timeout, results, *keep = options.worker
        worker(
            kind,
            int(seed),
            int(start),
            int(stop),
            float(timeout),
            results,
            keep[0] if keep else None,
        )
        return
    if options.keep:
        Path(options.keep).mkdir(parents=True, exist_ok=True)
    plan = {
        "cli": options.cli,
        "workbook": options.workbooks,
        "call": options.calls,
        "power": options.power,
    }
    only = None
    if options.only:
        kind, _, number = options.only.partition(":")
        plan = {kind: int(number) + 1}
        only = int(number)
    print(f"fuzz seed {options.seed}, load average {os.getloadavg()[0]:.2f}", flush=True)
    everything = []
    for kind, count in plan.items():
        if count <= 0:
            continue
        began = time.perf_counter()
        records = run_kind(kind, count, options.seed, options.timeout, options.keep, only)
        everything += records
        failing = [r for r in records if r["problems"]]
        print(
            f"{kind}: {len(records)} cases in {time.perf_counter() - began:.0f} s; "
            f"tracebacks {sum(bool(r.get('traceback')) for r in records)}, "
            f"hangs {sum(bool(r.get('hang')) for r in records)}, "
            f"half-written files {sum(bool(r.get('half_written')) for r in records)}, "
            f"cases with any problem {len(failing)}"
            + (
                f"; full-disk cases {sum(bool(r.get('full_disk')) for r in records)}, "
                f"valid inputs {sum(bool(r.get('valid')) for r in records)}, exit statuses "
                + str({c: sum(r.get("code") == c for r in records) for c in (0, 1, 2, 3)})
                if kind == "cli"
                else ""
            ),
            flush=True,
        )
        for record in failing[:15]:
            print(
                f"  {kind}:{record['index']} {record.get('note', '')}: {record['problems'][:2]}",
                flush=True,
            )
    if options.json:
        Path(options.json).write_text(json.dumps(everything, indent=1, default=str))


if __name__ == "__main__":
    main()
