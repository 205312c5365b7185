"""The ``glmm-binomial`` command: fit a formula to a data file, or evaluate GLMM_BINOMIAL.

    glmm-binomial fit DATA "FORMULA" [options]     DATA: .csv/.tsv/.txt, .xlsx, .parquet,
                                                   or a bundled data set's name
    glmm-binomial sheet BOOK.xlsx [-o OUT.xlsx]    evaluate the GLMM_BINOMIAL formulas in it
    glmm-binomial sheet '=GLMM_BINOMIAL({0;1;...},{...},{...})'
    glmm-binomial "FORMULA" [DATA] [--dataset NAME]  (the earlier form: same as fit)

Exit status: 0 fitted; 1 data or fit error (one line on stderr; --debug shows the traceback);
2 usage error; 3 fitted, but the fit did not converge (a convergence or separation warning:
converged is false). This module imports only the standard library at start, so ``--help``
answers at once; pandas and the fit are imported when used.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from glmm_binomial.methods.registry import method_names

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_CONVERGED = 3

METHODS = method_names()
EPILOG = """\
exit status:
  0  fitted (converged)
  1  data or fit error: one line on stderr (--debug for the traceback)
  2  usage error (unknown option, missing argument)
  3  fitted, but not converged (a convergence or separation warning; JSON "converged": false)

output (-o FILE, by extension): .txt text summary, .json strict JSON (null for NaN/inf; every
statistic and the warnings with their kinds), .csv tables one after another, .xlsx one sheet
per table (needs the xlsx extra).
"""

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class CommandError(Exception):
    """A problem to report in one line with exit status 1."""


class UsageError(Exception):
    """Arguments that do not make a command (exit status 2)."""


def _version() -> str:
    from glmm_binomial import __version__

    return f"glmm-binomial {__version__}"


def _bundled_names() -> list[str]:
    """Bundled data sets (the CSV files beside the package; no pandas import)."""
    from importlib import resources

    folder = resources.files("glmm_binomial").joinpath("data")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".csv"))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress indication on a terminal"
    )


def _fit_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Fit a binomial GLMM written in lme4's formula syntax.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="DATA FORMULA",
        help="data file (.csv, .tsv, .txt, .xlsx, .parquet) or bundled data set name, and an "
        "lme4 formula such as 'y ~ x + (1 | g)' (in either order; DATA may be left out with "
        "--dataset)",
    )
    parser.add_argument("--dataset", help="a bundled data set: " + ", ".join(_bundled_names()))
    parser.add_argument("--sep", help="CSV delimiter (default: sniffed from the file)")
    parser.add_argument("--decimal", default=".", help="CSV decimal mark (default '.')")
    parser.add_argument("--encoding", default="utf-8", help="CSV text encoding (default utf-8)")
    parser.add_argument("--sheet", help="worksheet of an .xlsx file (name or 0-based index)")
    parser.add_argument("--method", choices=METHODS, default="laplace")
    parser.add_argument("--n-agq", type=int, default=1, help="quadrature points (method agq)")
    parser.add_argument(
        "--family",
        default="binomial",
        help="binomial (default) or betabinomial (its dispersion phi estimated), also as R "
        "writes it: \"binomial(link = 'probit')\"",
    )
    parser.add_argument(
        "--link", help="logit (default), probit, cloglog, cauchit or log (laplace and agq)"
    )
    parser.add_argument("--weights", help="column holding prior weights / trials")
    parser.add_argument("--offset", help="column holding an offset")
    parser.add_argument(
        "--factors",
        default="",
        help="comma-separated columns to read as labels (grouping columns always are)",
    )
    parser.add_argument("--conf-level", type=float, default=0.95)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    parser.add_argument("-o", "--output", help="write the result to FILE (.txt .json .csv .xlsx)")
    parser.add_argument(
        "--ranef", metavar="FILE", help="write the random effects (conditional modes, SDs) to FILE"
    )
    parser.add_argument(
        "--predict",
        metavar="NEWDATA",
        help="predict probabilities for the rows of NEWDATA (a data file)",
    )
    parser.add_argument(
        "--predict-out",
        metavar="FILE",
        help="write the predictions to FILE (default: with the result)",
    )
    _common(parser)
    return parser


def _sheet_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate GLMM_BINOMIAL formulas: every one in an .xlsx workbook (engine: "
        "the formulas package, extra xlsx), or one formula given as text.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", help="an .xlsx workbook, or formula text '=GLMM_BINOMIAL(...)'")
    parser.add_argument(
        "-o",
        "--output",
        help="save a copy of the workbook with each table spilled from its formula's cell "
        "(.xlsx), or write the tables (.json, .csv, .txt)",
    )
    _common(parser)
    return parser


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glmm-binomial",
        description="Binomial GLMMs (logit link) with lme4 formula syntax.\n\n"
        "  glmm-binomial fit DATA FORMULA [options]   fit a formula to a data file\n"
        "  glmm-binomial sheet BOOK.xlsx [-o OUT]     evaluate GLMM_BINOMIAL in a workbook\n"
        "  glmm-binomial sheet '=GLMM_BINOMIAL(...)'   evaluate one formula\n"
        '  glmm-binomial "FORMULA" DATA [options]     the earlier form of fit\n\n'
        "glmm-binomial fit --help and glmm-binomial sheet --help list the options.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", help="fit or sheet")
    parser.add_argument("--version", action="version", version=_version())
    return parser


# --- progress ---------------------------------------------------------------------------------


@contextlib.contextmanager
def progress(text: str, enabled: bool = True) -> Iterator[None]:
    """A spinner with the elapsed time on stderr while work runs, only when stderr is a
    terminal (rich or tqdm, the ``progress`` extra; a one-line note without them)."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    import importlib

    try:
        rich_console: Any = importlib.import_module("rich.console")
    except ImportError:
        rich_console = None
    if rich_console is not None:
        with rich_console.Console(stderr=True).status(text):
            yield
        return
    try:
        tqdm: Any = importlib.import_module("tqdm")
    except ImportError:
        print(f"{text} ...", file=sys.stderr, flush=True)
        yield
        return
    with tqdm.tqdm(total=None, desc=text, bar_format="{desc} {elapsed}", file=sys.stderr):
        yield


# --- reading data -----------------------------------------------------------------------------


def _kind_of(path: Path) -> str:
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


def _sniff_delimiter(path: Path, encoding: str) -> str:
    import csv

    with path.open("r", encoding=encoding, newline="") as handle:
        sample = handle.read(65536)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def read_table(path_text: str, args: argparse.Namespace, labels: set[str]) -> Any:
    """A data file as a DataFrame; CommandError with the file's name when it cannot be read."""
    path = Path(path_text)
    if not path.is_file():
        raise CommandError(f"cannot read {path_text}: no such file")
    import pandas as pd

    kind = _kind_of(path)
    try:
        if kind == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise CommandError(
                    f"cannot read {path_text}: Parquet files need pyarrow: "
                    "pip install 'glmm-binomial[parquet]'"
                ) from None
            frame = pd.read_parquet(path)
            for column in labels & set(frame.columns):
                frame[column] = frame[column].astype(str)
            return frame
        if kind == "xlsx":
            try:
                import openpyxl  # noqa: F401
            except ImportError:
                raise CommandError(
                    f"cannot read {path_text}: .xlsx files need openpyxl: "
                    "pip install 'glmm-binomial[xlsx]'"
                ) from None
            sheet: Any = 0 if args.sheet is None else args.sheet
            if isinstance(sheet, str) and sheet.isdigit():
                sheet = int(sheet)
            return pd.read_excel(path, sheet_name=sheet, dtype={c: str for c in labels})
        sep = args.sep or _sniff_delimiter(path, args.encoding)
        return pd.read_csv(
            path,
            sep=sep,
            decimal=args.decimal,
            encoding=args.encoding,
            dtype={c: str for c in labels},
        )
    except CommandError:
        raise
    except UnicodeDecodeError as exc:
        raise CommandError(
            f"cannot read {path_text}: it is not {args.encoding} text (byte "
            f"0x{exc.object[exc.start]:02x} at position {exc.start}); give --encoding "
            "(e.g. --encoding latin-1) or save it as UTF-8"
        ) from None
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
        raise CommandError(f"cannot read {path_text}: {_clean(exc)}") from None


def _data_and_formula(args: argparse.Namespace) -> tuple[str | None, str]:
    inputs = list(args.inputs)
    if len(inputs) > 2:
        raise UsageError(f"give DATA and FORMULA only; got {len(inputs)} arguments")
    formulas = [text for text in inputs if "~" in text]
    if len(formulas) != 1:
        raise UsageError("give one formula with a '~', such as 'y ~ x + (1 | g)'")
    formula = formulas[0]
    others = [text for text in inputs if text is not formula]
    return (others[0] if others else None), formula


def _load(args: argparse.Namespace, data: str | None) -> tuple[Any, str]:
    labels = {c.strip() for c in args.factors.split(",") if c.strip()}
    if args.dataset and data:
        raise UsageError("give a data file or --dataset, not both")
    name = args.dataset or data
    if name is None:
        raise UsageError("give a data file (or --dataset NAME)")
    if args.dataset or (not Path(name).exists() and name in _bundled_names()):
        from glmm_binomial import datasets

        try:
            return datasets.load(name), name
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    return read_table(name, args, labels), name


# --- running ----------------------------------------------------------------------------------


def _clean(exc: BaseException) -> str:
    """An exception's message on one line, without terminal colour codes."""
    text = _ANSI.sub("", str(exc)).strip() or type(exc).__name__
    return " ".join(text.split())


def _fit_command(args: argparse.Namespace) -> int:
    from glmm_binomial.frontends import output

    data, formula = _data_and_formula(args)
    if args.output:
        output.output_format(args.output)
    for option in ("ranef", "predict_out"):
        path = getattr(args, option)
        if path:
            kind = output.output_format(path)
            if kind == "text":
                raise CommandError(f"--{option.replace('_', '-')} writes .csv, .json or .xlsx")
    if args.predict_out and not args.predict:
        raise CommandError("--predict-out needs --predict NEWDATA")
    from glmm_binomial.family import make_family

    try:
        family = make_family(args.family, args.link)
    except ValueError as error:
        raise UsageError(str(error)) from None
    frame, name = _load(args, data)
    from glmm_binomial.api import fit

    with progress(f"fitting {formula}", not args.no_progress):
        result = fit(
            formula,
            frame,
            method=args.method,
            family=family,
            n_agq=args.n_agq,
            weights=args.weights,
            offset=args.offset,
            conf_level=args.conf_level,
        )
    document = output.report(result, name)
    if args.ranef:
        import pandas as pd

        frames = result.ranef(condvar=True)
        records = []
        for group, table in frames.items():
            flat = table.reset_index().rename(columns={group: "level"})
            flat.insert(0, "group", group)
            records.append(flat)
        ranef_records = output.frame_records(
            pd.concat(records, ignore_index=True).set_index("group")
        )
        _write_records(args.ranef, "ranef", ranef_records)
    if args.predict:
        labels = {c.strip() for c in args.factors.split(",") if c.strip()}
        newdata = read_table(args.predict, args, labels)
        with warnings.catch_warnings(record=True) as caught:
            # Warnings about the new data (new grouping levels) are the user's business.
            warnings.simplefilter("always")
            probability = result.predict(newdata, type="response")
            link = result.predict(newdata, type="link")
        document["prediction_warnings"] = _glmm_warnings(caught)
        predictions = [
            {"row": i + 1, "probability": output.plain(p), "link": output.plain(e)}
            for i, (p, e) in enumerate(zip(list(probability), list(link), strict=True))
        ]
        if args.predict_out:
            _write_records(args.predict_out, "predictions", predictions)
        else:
            document["predictions"] = predictions
    if args.output:
        output.write(args.output, result, document)
    elif args.json:
        print(output.to_json(document))
    else:
        print(output.to_text(result, document), end="")
    for record in document.get("prediction_warnings", []):
        print(
            f"glmm-binomial: predict: {record['kind']} warning: {record['message']}",
            file=sys.stderr,
        )
    if args.output or args.json:
        # The text summary lists the warnings itself; otherwise say them on stderr too.
        for record in document["warnings"]:
            print(f"glmm-binomial: {record['kind']} warning: {record['message']}", file=sys.stderr)
    return EXIT_OK if result.converged else EXIT_NOT_CONVERGED


def _glmm_warnings(caught: list[warnings.WarningMessage]) -> list[dict[str, str]]:
    """The package's own warnings among those caught (each once), as kind/message records."""
    from glmm_binomial.diagnostics import FitWarning, GLMMWarning

    records: list[dict[str, str]] = []
    for item in caught:
        if issubclass(item.category, GLMMWarning):
            record = {
                "kind": FitWarning(str(item.message), item.category).kind,
                "message": str(item.message),
            }
            if record not in records:
                records.append(record)
    return records


def _write_records(path: str, name: str, records: list[dict[str, Any]]) -> None:
    from glmm_binomial.frontends import output

    kind = output.output_format(path)
    if kind == "json":
        Path(path).write_text(output.to_json({name: records}), encoding="utf-8")
        return
    header = list(records[0]) if records else []
    rows = [[r[c] for c in header] for r in records]
    if kind == "xlsx":
        output.write_xlsx(path, {name: (header, rows)})
        return
    import csv

    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(["" if c is None else c for c in row] for row in rows)


def _sheet_command(args: argparse.Namespace) -> int:
    from glmm_binomial.frontends import workbook

    with progress("evaluating GLMM_BINOMIAL", not args.no_progress):
        return workbook.run(args.source, args.output)


def _split(argv: list[str]) -> tuple[str, list[str]]:
    """The sub-command and its arguments; the earlier form (a formula first) is fit."""
    if argv and argv[0] in ("fit", "sheet"):
        return argv[0], argv[1:]
    if any("~" in a for a in argv if not a.startswith("-")):
        return "fit", argv
    return "", argv


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``glmm-binomial`` command; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    command, rest = _split(arguments)
    try:
        if command == "fit":
            args = _fit_parser("glmm-binomial fit").parse_args(rest)
        elif command == "sheet":
            args = _sheet_parser("glmm-binomial sheet").parse_args(rest)
        else:
            top = _top_parser()
            parsed = top.parse_args(rest)
            if parsed.command is None:
                top.print_help(sys.stderr)
            else:
                top.error(f"unknown command {parsed.command!r}: use fit or sheet")
            return EXIT_USAGE
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        with warnings.catch_warnings():
            # Numerical warnings from numpy/scipy are not the user's business; the fit's own
            # warnings are reported with the result.
            warnings.simplefilter("ignore")
            if command == "fit":
                return _fit_command(args)
            return _sheet_command(args)
    except UsageError as exc:
        print(f"glmm-binomial {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("glmm-binomial: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (glmm-binomial ... | head): stop quietly, as Unix tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - one line, no traceback (exit status 1)
        if args.debug:
            raise
        print(f"glmm-binomial: error: {_clean(exc)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
