"""The ``glmm-binomial`` command: fit a formula to a data file, or evaluate GLMM_BINOMIAL.

    glmm-binomial fit DATA "FORMULA" [options]     DATA: .csv/.tsv/.txt, .xlsx, .parquet,
                                                   or a bundled data set's name
    glmm-binomial sheet BOOK.xlsx [-o OUT.xlsx]    evaluate the GLMM_BINOMIAL formulas in it
    glmm-binomial sheet '=GLMM_BINOMIAL({0;1;...},{...},{...})'
    glmm-binomial power DATA "FORMULA" --test X    power of a test by simulation
    glmm-binomial "FORMULA" [DATA] [--dataset NAME]  (the earlier form: same as fit)

Exit status: 0 fitted; 1 data, file or fit error (one line on stderr; --debug shows the
traceback); 2 usage error (one line on stderr); 3 fitted, but the fit did not converge (a
convergence or separation warning: converged is false); 130 interrupted. This module imports
only the standard library at start, so ``--help`` answers at once; pandas and the fit are
imported when used.

Files: every output is written atomically (a temporary file in the same folder, renamed over
the target), so a full disk or a failing write leaves no half-written file. Output paths are
checked before the fit (two outputs to one file, an output over an input, a missing folder).
The fit's -o file is written before --predict runs, so a failing prediction keeps it. Without
-o or --json the summary is printed; otherwise one line names each file written.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
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
  1  data, file or fit error: one line on stderr (--debug for the traceback)
  2  usage error (unknown option, missing argument, two outputs to one file): one line
  3  fitted, but not converged (a convergence or separation warning; JSON "converged": false)
  130 interrupted

output (-o FILE, by extension): .txt text summary, .json strict JSON (null for NaN/inf; every
statistic and the warnings with their kinds), .csv tables one after another, .xlsx one sheet
per table (needs the xlsx extra).
"""

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class CommandError(Exception):
    """A problem to report in one line with exit status 1."""


class UsageError(Exception):
    """Arguments that do not make a command (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors raised as UsageError (one line, exit status 2) instead of
    printed with the usage text."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


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


def _data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="DATA FORMULA",
        help="data file (.csv, .tsv, .txt, .xlsx, .parquet) or bundled data set name, and an "
        "lme4 formula such as 'y ~ x + (1 | g)' (in either order; DATA may be left out with "
        "--dataset)",
    )


def _reading_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", help="a bundled data set: " + ", ".join(_bundled_names()))
    parser.add_argument("--sep", help="CSV separator (default: detected from the file)")
    parser.add_argument(
        "--decimal",
        help="CSV decimal mark (default: ',' when a ';'- or tab-separated file writes its "
        "numbers with decimal commas, else '.')",
    )
    parser.add_argument(
        "--encoding", help="CSV text encoding (default: from a byte-order mark, else utf-8)"
    )
    parser.add_argument("--sheet", help="worksheet of an .xlsx file (name or 0-based index)")


def _column_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", help="column holding prior weights / trials")
    parser.add_argument("--offset", help="column holding an offset")
    parser.add_argument(
        "--subset",
        help="R code of the columns selecting the rows to use (glmer's subset), e.g. "
        "\"age > 20 & urban == 'Y'\"",
    )
    parser.add_argument(
        "--contrasts",
        help="comma-separated NAME=CONTRAST, glmer's contrasts argument for factors of the "
        "fixed effects: period=contr.sum (contr.treatment, contr.sum, contr.helmert, "
        "contr.poly, contr.SAS)",
    )
    parser.add_argument(
        "--factors",
        default="",
        help="comma-separated columns to read as labels (grouping columns always are)",
    )


def _fit_parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Fit a binomial GLMM written in lme4's formula syntax.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _data_argument(parser)
    _reading_options(parser)
    # Lower-cased before the choices are checked: --method AGQ as method="AGQ" in Python.
    parser.add_argument("--method", type=str.lower, choices=METHODS, default="laplace")
    parser.add_argument(
        "--n-agq", type=_positive_int, default=1, help="quadrature points (method agq)"
    )
    parser.add_argument(
        "--draws", type=_positive_int, help="kept draws per chain (method mcmc; 1000)"
    )
    parser.add_argument(
        "--warmup", type=_non_negative_int, help="warm-up sweeps per chain (method mcmc; 1000)"
    )
    parser.add_argument("--chains", type=_positive_int, help="independent chains (method mcmc; 4)")
    parser.add_argument(
        "--seed",
        type=_non_negative_int,
        help="seed of the draws (method mcmc; default: a fixed seed, so that the same command "
        "gives the same draws)",
    )
    parser.add_argument(
        "--family",
        default="binomial",
        help="binomial (default) or betabinomial (its dispersion phi estimated), also as R "
        "writes it: \"binomial(link = 'probit')\"",
    )
    parser.add_argument(
        "--link", help="logit (default), probit, cloglog, cauchit or log (laplace and agq)"
    )
    _column_options(parser)
    parser.add_argument(
        "--prior",
        action="append",
        metavar="KEY=PRIOR",
        help="fit the posterior mode under a prior (methods laplace and agq; blme's "
        "spellings): fixef='normal(sd=3)', fixef='t(df=7, scale=2.5)', cov=wishart, "
        "cov='lkj(2)' (repeat for several), or 'blme' (a Wishart prior on each covariance, "
        "bglmer's default)",
    )
    parser.add_argument("--conf-level", type=_fraction, default=0.95)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    parser.add_argument("-o", "--output", help="write the result to FILE (.txt .json .csv .xlsx)")
    parser.add_argument(
        "--ranef", metavar="FILE", help="write the random effects (conditional modes, SDs) to FILE"
    )
    parser.add_argument(
        "--anova",
        metavar="FILE",
        help="write a Wald chi-square test of each fixed-effects term (car's Anova, Type II) "
        "to FILE",
    )
    parser.add_argument(
        "--slopes",
        metavar="FILE",
        help="write the average marginal effects (the mean change in probability per variable, "
        "marginaleffects' avg_slopes) to FILE",
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
    parser.add_argument(
        "--check",
        metavar="FILE",
        help="save the model-check panel (simulated and binned residuals, random effects, "
        "dispersion) to FILE (.png; needs the plot extra)",
    )
    _common(parser)
    return parser


POWER_EPILOG = """\
exit status:
  0  power estimated (the pilot fit converged)
  1  data, file or fit error: one line on stderr (--debug for the traceback)
  2  usage error: one line
  3  power estimated, but the pilot fit did not converge (its estimates are the simulated
     model's parameters: check them)
  130 interrupted

output (-o FILE, by extension): .txt the summary, .json strict JSON (null for NaN; the
settings, the pilot fit's logLik and warnings, the power or the curve), .csv the power table.
The same command gives the same numbers (a fixed default --seed), whatever --n-jobs.
"""


def _argument_type(
    convert: Callable[[str], Any], accept: Callable[[Any], bool], wanted: str
) -> Callable[[str], Any]:
    """An argparse type: convert(text), refused (a one-line usage error naming the option)
    when it fails or the value is not accepted."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return parse


_positive_int = _argument_type(int, lambda v: v >= 1, "a positive whole number")
_non_negative_int = _argument_type(int, lambda v: v >= 0, "a whole number >= 0")
_fraction = _argument_type(float, lambda v: 0.0 < v < 1.0, "a number between 0 and 1")


def _power_parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Power of a test by simulation (simr's powerSim and powerCurve): FORMULA is "
        "fitted to DATA as a pilot, responses are simulated from that fit (--effect sets fixed "
        "effects first), the model is refitted to each and the test applied. With --along or "
        "--within (and --breaks) the power at several sample sizes.",
        epilog=POWER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _data_argument(parser)
    _reading_options(parser)
    _column_options(parser)
    parser.add_argument(
        "--method",
        type=str.lower,
        choices=("laplace", "agq"),
        default="laplace",
        help="the pilot fit's and the refits' method",
    )
    parser.add_argument(
        "--n-agq", type=_positive_int, default=1, help="quadrature points (method agq)"
    )
    parser.add_argument("--family", default="binomial", help="binomial or betabinomial")
    parser.add_argument("--link", help="logit (default), probit, cloglog, cauchit or log")
    parser.add_argument(
        "--test",
        help="the fixed effect to test: a column ('age') or a term ('livch', its columns "
        "jointly); default the first term after the intercept",
    )
    parser.add_argument(
        "--test-method",
        choices=("wald", "lrt"),
        default="wald",
        help="z test from the refit's standard errors (default), or likelihood ratio",
    )
    parser.add_argument(
        "--nsim", type=_positive_int, default=1000, help="simulations (default 1000)"
    )
    parser.add_argument("--alpha", type=_fraction, default=0.05, help="the test's level")
    parser.add_argument(
        "--effect",
        action="append",
        metavar="NAME=VALUE",
        help="set a fixed effect of the simulated model (log-odds scale), e.g. age=-0.02; "
        "a term of several columns takes one value each, comma-separated (repeatable)",
    )
    parser.add_argument(
        "--seed", type=_non_negative_int, default=1, help="seed of the simulations (default 1)"
    )
    parser.add_argument("--n-jobs", type=_positive_int, default=1, help="worker processes")
    parser.add_argument(
        "--along", metavar="FACTOR", help="power curve over numbers of levels of FACTOR"
    )
    parser.add_argument(
        "--within", metavar="FACTOR", help="power curve over rows per level of FACTOR"
    )
    parser.add_argument(
        "--breaks",
        metavar="N,N,...",
        help="the curve's sizes, comma-separated (default: up to 10 sizes up to the current "
        "one; alone: along the first grouping factor)",
    )
    parser.add_argument(
        "--conf-level", type=_fraction, default=0.95, help="of the power's interval"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    parser.add_argument("-o", "--output", help="write the result to FILE (.txt .json .csv)")
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="save the power curve (with the intervals) to FILE (.png; needs the plot extra)",
    )
    _common(parser)
    return parser


def _sheet_parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
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
    parser = _Parser(
        prog="glmm-binomial",
        description="Binomial GLMMs (logit, probit, cloglog, cauchit or log link; "
        "beta-binomial) with lme4 formula syntax.\n\n"
        "  glmm-binomial fit DATA FORMULA [options]   fit a formula to a data file\n"
        "  glmm-binomial sheet BOOK.xlsx [-o OUT]     evaluate GLMM_BINOMIAL in a workbook\n"
        "  glmm-binomial sheet '=GLMM_BINOMIAL(...)'   evaluate one formula\n"
        "  glmm-binomial power DATA FORMULA --test X   power of a test by simulation\n"
        '  glmm-binomial "FORMULA" DATA [options]     the earlier form of fit\n\n'
        "glmm-binomial fit --help (sheet, power) lists a command's options.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", help="fit, sheet or power")
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


def read_table(
    path_text: str, args: argparse.Namespace | None, labels: set[str]
) -> tuple[Any, Any]:
    """A data file as a DataFrame and how it was read (reader.ReadInfo); CommandError with the
    file's name when it cannot be read. The reading options (--sep, --decimal, --encoding,
    --sheet) come from args; None: everything detected (the --predict file)."""
    from glmm_binomial.frontends import reader

    try:
        if args is None:
            frame, info = reader.read_table(path_text, labels=labels)
        else:
            frame, info = reader.read_table(
                path_text, args.sep, args.decimal, args.encoding, args.sheet, labels
            )
    except reader.ReadError as exc:
        raise CommandError(str(exc)) from None
    # --factors columns are made factors: the model's reader policy (model/frame.py) reads any
    # other column of numbers, text or not, as numbers, and keeps a factor a factor.
    chosen = [c for c in frame.columns if c in labels]
    if chosen:
        frame = frame.assign(**{c: frame[c].astype("category") for c in chosen})
    return frame, info


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


def _labels(args: argparse.Namespace) -> set[str]:
    return {c.strip() for c in args.factors.split(",") if c.strip()}


def _is_bundled(args: argparse.Namespace, data: str | None) -> bool:
    name = args.dataset or data
    return bool(args.dataset) or (
        name is not None and not Path(name).exists() and name in _bundled_names()
    )


def _load(args: argparse.Namespace, data: str | None) -> tuple[Any, str, Any]:
    """The data frame, its name for the summary, and how it was read (None: bundled)."""
    labels = _labels(args)
    if args.dataset and data:
        raise UsageError("give a data file or --dataset, not both")
    name = args.dataset or data
    if name is None:
        raise UsageError("give a data file (or --dataset NAME)")
    if _is_bundled(args, data):
        from glmm_binomial import datasets

        try:
            return datasets.load(name), name, None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    frame, info = read_table(name, args, labels)
    return frame, name, info


# --- output paths -----------------------------------------------------------------------------


def _outputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(option, path) of each file the command will write."""
    named = [
        ("-o", args.output),
        ("--ranef", args.ranef),
        ("--anova", getattr(args, "anova", None)),
        ("--slopes", getattr(args, "slopes", None)),
        ("--predict-out", args.predict_out),
        ("--check", getattr(args, "check", None)),
    ]
    return [(option, path) for option, path in named if path]


def _same_file(a: str, b: str) -> bool:
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def check_outputs(outputs: list[tuple[str, str]], inputs: list[tuple[str, str]]) -> None:
    """Before any work: each output a known format in an existing, writable folder, no two
    outputs on one file (UsageError) and no output over an input (UsageError)."""
    from glmm_binomial.frontends import output

    for i, (option, path) in enumerate(outputs):
        for other, earlier in outputs[:i]:
            if _same_file(path, earlier):
                raise UsageError(
                    f"{other} and {option} both write {path}: give each output its own file"
                )
        for what, source in inputs:
            if _same_file(path, source):
                raise UsageError(f"{option} {path} would overwrite the {what}")
        try:
            output.check_writable(path)
        except ValueError as exc:
            raise CommandError(str(exc)) from None


# --- running ----------------------------------------------------------------------------------


def _clean(exc: BaseException) -> str:
    """An exception's message on one line, without terminal colour codes."""
    text = _ANSI.sub("", str(exc)).strip() or type(exc).__name__
    return " ".join(text.split())


def _sampler_options(args: argparse.Namespace) -> dict[str, Any]:
    """--draws, --warmup, --chains and --seed as fit()'s keywords (method mcmc only; its seed
    defaults to the spreadsheet's fixed one, so that a command repeated gives the same
    draws), and with --no-progress a control without the sampler's progress bar."""
    given = {
        key: value
        for key, value in (
            ("draws", args.draws),
            ("warmup", args.warmup),
            ("chains", args.chains),
            ("seed", args.seed),
        )
        if value is not None
    }
    if args.method != "mcmc":
        if given:
            options = ", ".join(f"--{key}" for key in given)
            raise UsageError(f"{options} apply to --method mcmc only")
        return {}
    from glmm_binomial.frontends.sheet import MCMC_SETTINGS
    from glmm_binomial.methods.mcmc import McmcControl

    # The other settings are the sampler's defaults; its progress bar follows --no-progress.
    control = McmcControl(progress=False) if args.no_progress else None
    return {"seed": int(MCMC_SETTINGS["seed"]), "control": control, **given}


def _fit_command(args: argparse.Namespace) -> int:
    from glmm_binomial.frontends import output

    data, formula = _data_and_formula(args)
    for option, path in _outputs(args):
        if option == "--check":
            continue  # a figure: checked by _check_figure_format
        try:
            kind = output.output_format(path)
        except ValueError as exc:
            raise UsageError(f"{option}: {exc}") from None
        if kind == "text" and option != "-o":
            raise UsageError(f"{option} writes .csv, .json or .xlsx")
    if args.predict_out and not args.predict:
        raise UsageError("--predict-out needs --predict NEWDATA")
    if args.check:
        _check_figure_format(args.check)
    inputs = _data_inputs(args, data)
    if args.predict:
        inputs.append(("--predict file", args.predict))
    check_outputs(_outputs(args), inputs)
    priors = _priors(args.prior)
    family = _model_family(args)
    sampler = _sampler_options(args)
    frame, name, info = _load(args, data)
    # The new data are read before the fit, so that an unreadable file costs no fit; their
    # separator, decimal mark and encoding are detected on their own (the options name DATA's).
    newdata = read_table(args.predict, None, _labels(args))[0] if args.predict else None
    _note_decimal(name, info)
    # The sampler shows its own progress bar on a terminal (sweeps done), instead of the spinner.
    shown = not args.no_progress and args.method != "mcmc"
    result = _fit_data(
        args,
        formula,
        frame,
        family,
        shown,
        f"fitting {formula}",
        conf_level=args.conf_level,
        priors=priors,
        **sampler,
    )
    document = output.report(result, name)
    if info is not None:
        document["data_format"] = info.as_record()
        document["data_description"] = f"{name} ({info.describe()})"
    written: list[tuple[str, str]] = []
    # The fit first: a later step that fails (ranef, predict) keeps it.
    if args.output:
        output.write(args.output, result, document)
        written.append((args.output, "the fit"))
    if args.ranef:
        _write_records(args.ranef, "ranef", _ranef_records(result))
        written.append((args.ranef, "the random effects"))
    if args.anova:
        _write_records(args.anova, "anova", *_anova_records(result))
        written.append((args.anova, "the tests of the terms"))
    if args.slopes:
        _write_records(args.slopes, "slopes", *_slopes_records(result))
        written.append((args.slopes, "the average marginal effects"))
    if args.check:
        _write_check(result, args.check)
        written.append((args.check, "the model checks"))
    failure = None
    if newdata is not None:
        try:
            predictions, caught = _predict(result, newdata)
        except Exception as exc:  # noqa: BLE001 - reported in one line, after the fit is kept
            if args.debug:
                raise
            failure = f"cannot predict {args.predict}: {_clean(exc)}"
        else:
            document["prediction_warnings"] = caught
            if args.predict_out:
                _write_records(args.predict_out, "predictions", predictions)
                written.append((args.predict_out, "the predictions"))
            else:
                document["predictions"] = predictions
                if args.output:
                    output.write(args.output, result, document)  # again, now with them
                    written[0] = (args.output, "the fit and the predictions")
    if args.json:
        print(output.to_json(document))
    elif not args.output:
        print(output.to_text(result, document), end="")
    _say_written(args, written)
    for record in document.get("prediction_warnings", []):
        print(
            f"glmm-binomial: predict: {record['kind']} warning: {record['message']}",
            file=sys.stderr,
        )
    if args.output or args.json:
        # The text summary lists the warnings itself; otherwise say them on stderr too.
        for record in document["warnings"]:
            print(f"glmm-binomial: {record['kind']} warning: {record['message']}", file=sys.stderr)
    if failure is not None:
        kept = f" (the fit is in {args.output})" if args.output else ""
        print(f"glmm-binomial: error: {failure}{kept}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK if result.converged else EXIT_NOT_CONVERGED


def _say_written(args: argparse.Namespace, written: list[tuple[str, str]]) -> None:
    """One line per file written: on stdout when it carries nothing else (-o without --json),
    so that a summary or JSON there stays clean; else on stderr."""
    stream = sys.stdout if (args.output and not args.json) else sys.stderr
    for path, what in written:
        print(f"glmm-binomial: wrote {what} to {path}", file=stream)


def _note_decimal(name: str, info: Any) -> None:
    """On stderr, how a file with decimal commas was read (info: reader.ReadInfo; None for a
    bundled data set)."""
    if info is not None and "decimal" in info.detected:
        print(f"glmm-binomial: read {name}: {info.describe()}", file=sys.stderr)


def _fit_data(
    args: argparse.Namespace,
    formula: str,
    frame: Any,
    family: Any,
    shown: bool,
    text: str,
    **extra: Any,
) -> Any:
    """fit() with the command's --method, --n-agq, --weights and --offset (and `extra`
    keywords), with a spinner saying `text` on a terminal when `shown`."""
    from glmm_binomial.api import fit

    with progress(text, shown):
        return fit(
            formula,
            frame,
            method=args.method,
            family=family,
            n_agq=args.n_agq,
            weights=args.weights,
            offset=args.offset,
            contrasts=_contrasts(args.contrasts),
            subset=args.subset,
            **extra,
        )


def _pairs(items: list[str], option: str, usage: str) -> dict[str, str]:
    """NAME=VALUE items of an option, by name (UsageError naming the option: `usage` says how
    to write one; a name given twice)."""
    out: dict[str, str] = {}
    for item in items:
        name, sign, value = (part.strip() for part in item.partition("="))
        if not sign or not name or not value:
            raise UsageError(f"{option} {item!r}: {usage}")
        if name in out:
            raise UsageError(f"{option} {name}=... given twice")
        out[name] = value
    return out


def _contrasts(text: str | None) -> dict[str, str] | None:
    """--contrasts NAME=CONTRAST,... as fit()'s contrasts= (the contrasts themselves are
    checked by fit)."""
    if text is None:
        return None
    usage = (
        "write NAME=CONTRAST separated by commas, as in "
        "--contrasts period=contr.sum,herd=contr.helmert"
    )
    return _pairs(text.split(","), "--contrasts", usage)


def _effects(given: list[str] | None) -> dict[str, Any] | None:
    """--effect NAME=VALUE options as power_sim's effect= (a comma-separated list of values
    for a term of several columns); UsageError naming the option otherwise."""
    if not given:
        return None
    usage = (
        "write NAME=VALUE (log-odds), as in --effect age=-0.02, "
        "or NAME=V1,V2 for a term of several columns"
    )
    out: dict[str, Any] = {}
    for (name, value), item in zip(_pairs(given, "--effect", usage).items(), given, strict=False):
        try:
            values = [float(v) for v in value.split(",")]
        except ValueError:
            raise UsageError(f"--effect {item!r}: {usage}") from None
        out[name] = values[0] if len(values) == 1 else values
    return out


def _breaks(text: str | None) -> list[int] | None:
    """--breaks N,N,... as whole numbers (UsageError naming the option otherwise)."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(
            f"--breaks {text!r}: write whole numbers separated by commas, as in --breaks 10,20,40"
        ) from None


def _power_command(args: argparse.Namespace) -> int:
    from glmm_binomial.frontends import output

    data, formula = _data_and_formula(args)
    kind = None
    if args.output:
        try:
            kind = output.output_format(args.output)
        except ValueError as exc:
            raise UsageError(f"-o: {exc}") from None
        if kind not in ("text", "json", "csv"):
            raise UsageError("-o writes .txt, .json or .csv")
    if args.along and args.within:
        raise UsageError("give --along (levels of a factor) or --within (rows per level), not both")
    curve = bool(args.along or args.within or args.breaks)
    if args.plot:
        if not curve:
            raise UsageError("--plot draws a power curve: give --along, --within or --breaks")
        _check_figure_format(args.plot, "--plot")
    inputs = _data_inputs(args, data)
    named = [("-o", args.output), ("--plot", args.plot)]
    check_outputs([(option, path) for option, path in named if path], inputs)
    family = _model_family(args)
    effect = _effects(args.effect)
    breaks = _breaks(args.breaks)
    frame, name, info = _load(args, data)
    _note_decimal(name, info)
    from glmm_binomial.power import power_curve, power_sim

    pilot = _fit_data(
        args, formula, frame, family, not args.no_progress, f"fitting the pilot {formula}"
    )
    settings = {
        "test": args.test,
        "nsim": args.nsim,
        "alpha": args.alpha,
        "method": args.test_method,
        "effect": effect,
        "seed": args.seed,
        "n_jobs": args.n_jobs,
        "progress": False if args.no_progress else None,
        "conf_level": args.conf_level,
    }
    document: dict[str, Any] = {
        "command": "power",
        "data": name,
        "formula": formula,
        "fit_method": args.method,
        "pilot": {
            "converged": bool(pilot.converged),
            "loglik": output.plain(pilot.loglik),
            "warnings": output.warning_records(pilot),
        },
    }
    if curve:
        found = power_curve(pilot, along=args.along, within=args.within, breaks=breaks, **settings)
        first = found.results[0]
        table = found.table
        text = found.summary() + "\n"
    else:
        first = power_sim(pilot, **settings)
        table = None
        text = first.summary()
    document.update(
        {
            "test": first.test,
            "test_method": first.method,
            "alpha": first.alpha,
            "nsim": first.nsim,
            "seed": output.plain(first.seed),
            "conf_level": first.conf_level,
            "effect": {str(k): output.plain(v) for k, v in first.effect.items()},
        }
    )
    if table is not None:
        document["curve"] = output.frame_records(table.set_index(table.columns[0]))
        header = [str(c) for c in table.columns]
        rows = [[output.plain(v) for v in row] for row in table.itertuples(index=False)]
    else:
        document.update(
            {
                "power": output.plain(first.power),
                "ci_lower": output.plain(first.ci_lower),
                "ci_upper": output.plain(first.ci_upper),
                "n_valid": first.n_valid,
                "n_failed": first.n_failed,
                "n_singular": first.n_singular,
                "failures": [[i, reason] for i, reason in first.failures[:10]],
            }
        )
        text = text + "\n"
        header = ["test", "power", "ci_lower", "ci_upper", "nsim", "n_valid", "n_failed"]
        rows = [
            [first.test]
            + [output.plain(v) for v in (first.power, first.ci_lower, first.ci_upper)]
            + [first.nsim, first.n_valid, first.n_failed]
        ]
    pilot_line = (
        f"Pilot fit: {formula} on {name}, logLik {pilot.loglik:.4f}"
        + ("" if pilot.converged else " (not converged)")
        + "\n"
    )
    text = (
        pilot_line
        + "".join(
            f"Pilot warning: {record['message']}\n" for record in document["pilot"]["warnings"]
        )
        + text
    )
    written: list[tuple[str, str]] = []
    if args.output:
        if kind == "json":
            output.write_text(args.output, output.to_json(document) + "\n")
        elif kind == "csv":
            output.write_text(args.output, output.csv_text([(None, header, rows)]))
        else:
            output.write_text(args.output, text)
        written.append((args.output, "the power"))
    if args.plot:
        _write_figure(found.plot(), args.plot)
        written.append((args.plot, "the power curve"))
    if args.json:
        print(output.to_json(document))
    elif not args.output:
        print(text, end="")
    _say_written(args, written)
    return EXIT_OK if pilot.converged else EXIT_NOT_CONVERGED


def _model_family(args: argparse.Namespace) -> Any:
    """The model options fit and power share, checked before any data are read: --family and
    --link as a Family object, --n-agq only with --method agq (UsageError naming the option)."""
    from glmm_binomial.family import make_family

    if args.n_agq != 1 and args.method != "agq":
        raise UsageError("--n-agq applies to --method agq only")
    try:
        return make_family(args.family, args.link)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _data_inputs(args: argparse.Namespace, data: str | None) -> list[tuple[str, str]]:
    """The data file as an input no output may overwrite (none for a bundled data set)."""
    return [] if _is_bundled(args, data) else [("data file", str(args.dataset or data))]


def _priors(given: list[str] | None) -> Any:
    """--prior options as fit()'s priors: 'blme' or 'none' alone, else KEY=PRIOR pairs
    (fixef once; cov repeatable, its priors combined)."""
    if not given:
        return None
    if len(given) == 1 and given[0].strip().lower() in ("blme", "none"):
        return given[0].strip().lower()
    out: dict[str, Any] = {}
    for item in given:
        key, sign, value = item.partition("=")
        key = key.strip()
        if not sign or key not in ("fixef", "cov"):
            raise UsageError(
                f"--prior {item!r}: write fixef=PRIOR or cov=PRIOR (or --prior blme), as in "
                "--prior fixef='normal(sd=3)'"
            )
        if key == "fixef":
            if key in out:
                raise UsageError("--prior fixef=... given twice")
            out[key] = value.strip()
        else:
            out.setdefault("cov", []).append(value.strip())
    return out


def _ranef_records(result: Any) -> list[dict[str, Any]]:
    """The conditional modes and SDs of every grouping factor as records (group, level, ...)."""
    import pandas as pd

    from glmm_binomial.frontends import output

    frames = result.ranef(condvar=True)
    records = []
    for group, table in frames.items():
        flat = table.reset_index().rename(columns={group: "level"})
        flat.insert(0, "group", group)
        records.append(flat)
    return output.frame_records(pd.concat(records, ignore_index=True).set_index("group"))


def _anova_records(result: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The Type II Wald chi-square test of each fixed-effects term as records, and their
    columns (term, Chisq, Df, Pr(>Chisq), note; a model without terms has none)."""
    from glmm_binomial.frontends import output

    table = result.wald_test_terms("II")
    return output.frame_records(table), [table.index.name, *table.columns]


SLOPES_COLUMNS = (
    "term",
    "contrast",
    "estimate",
    "std_error",
    "z",
    "p_value",
    "ci_lower",
    "ci_upper",
)
"""The columns of --slopes' table (glmm_binomial.avg_slopes')."""


def _slopes_records(result: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The average marginal effect of each variable of the fixed part as records (none for a
    model without one), and their columns."""
    from glmm_binomial.frontends import output
    from glmm_binomial.model.formula import expression_variables
    from glmm_binomial.results.slopes import avg_slopes

    if result.design is None or not expression_variables(result.design.formula.fixed):
        return [], list(SLOPES_COLUMNS)
    table = avg_slopes(result)
    return output.frame_records(table.set_index("term")), list(SLOPES_COLUMNS)


def _predict(result: Any, newdata: Any) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """newdata's columns with the predicted probability and log-odds (columns "probability"
    and "link", or "predicted_probability" / "predicted_link" when newdata has those names),
    and the package's warnings about the new data (new grouping levels)."""
    from glmm_binomial.frontends import output

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        probability = result.predict(newdata, type="response")
        link = result.predict(newdata, type="link")
    names = ("probability", "link")
    if any(name in newdata.columns for name in names):
        names = ("predicted_probability", "predicted_link")
    table = newdata.copy()
    table[names[0]] = list(probability)
    table[names[1]] = list(link)
    records = [
        {str(k): output.plain(v) for k, v in record.items()}
        for record in table.to_dict(orient="records")
    ]
    return records, _glmm_warnings(caught)


def _check_figure_format(path: str, option: str = "--check") -> None:
    """Before the fit: a figure option needs matplotlib and a format it writes (by the
    extension)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise CommandError(f"{option} needs matplotlib: pip install 'glmm-binomial[plot]'")
    import matplotlib

    matplotlib.use("Agg")  # a command draws to a file, never to a window
    from matplotlib.figure import Figure

    suffix = Path(path).suffix.lower().lstrip(".")
    known = Figure().canvas.get_supported_filetypes()
    if suffix not in known:
        raise UsageError(
            f"{option}: cannot tell the figure format of {path!r}: use .png (or "
            + ", ".join(f".{k}" for k in sorted(known) if k != "png")
            + ")"
        )


def _write_check(result: Any, path: str) -> None:
    """The model-check figure (glmm_binomial.check) saved to `path` (_write_figure)."""
    import inspect

    import matplotlib

    matplotlib.use("Agg")  # a command draws to a file, never to a window
    from glmm_binomial.results.check import check

    _write_figure(check(result), path, inspect.signature(check).parameters["dpi"].default)


def _write_figure(figure: Any, path: str, dpi: Any = None) -> None:
    """A matplotlib figure saved to `path` atomically, drawn in memory first, in the format
    the extension names; the figure is closed."""
    import io

    import matplotlib.pyplot as plt

    from glmm_binomial.frontends import output

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format=Path(path).suffix.lower().lstrip("."), dpi=dpi)
    finally:
        plt.close(figure)
    data = buffer.getvalue()
    output.atomic_write(path, lambda handle: handle.write(data))


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


def _write_records(
    path: str, name: str, records: list[dict[str, Any]], columns: Sequence[str] = ()
) -> None:
    """Records as one table in the format path's extension names (written atomically);
    `columns` is the header where there are no records."""
    from glmm_binomial.frontends import output

    kind = output.output_format(path)
    if kind == "json":
        output.write_text(path, output.to_json({name: records}))
        return
    header = list(records[0]) if records else list(columns)
    rows = [[r[c] for c in header] for r in records]
    if kind == "xlsx":
        output.write_xlsx(path, {name: (header, rows)})
        return
    output.write_text(path, output.csv_text([(None, header, rows)]))


def _sheet_command(args: argparse.Namespace) -> int:
    from glmm_binomial.frontends import workbook

    if args.output and Path(args.source).is_file() and _same_file(args.source, args.output):
        raise UsageError(f"-o {args.output} would overwrite the workbook read")
    with progress("evaluating GLMM_BINOMIAL", not args.no_progress):
        return workbook.run(args.source, args.output)


def _split(argv: list[str]) -> tuple[str, list[str]]:
    """The sub-command and its arguments; the earlier form (a formula first) is fit."""
    if argv and argv[0] in ("fit", "sheet", "power"):
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
        elif command == "power":
            args = _power_parser("glmm-binomial power").parse_args(rest)
        else:
            parsed = _top_parser().parse_args(rest)
            if parsed.command is None:
                raise UsageError("give a command: fit, sheet or power (see glmm-binomial --help)")
            raise UsageError(
                f"unknown command {parsed.command!r}: use fit, sheet or power (see "
                "glmm-binomial --help)"
            )
    except SystemExit as exc:  # argparse: --help / --version
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    except UsageError as exc:
        where = f"glmm-binomial {command}" if command else "glmm-binomial"
        print(f"{where}: error: {_clean(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with warnings.catch_warnings():
            # Numerical warnings from numpy/scipy are not the user's business; the fit's own
            # warnings are reported with the result.
            warnings.simplefilter("ignore")
            if command == "fit":
                return _fit_command(args)
            if command == "power":
                return _power_command(args)
            return _sheet_command(args)
    except UsageError as exc:
        print(f"glmm-binomial {command}: error: {_clean(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("glmm-binomial: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (glmm-binomial ... | head): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - one line, no traceback (exit status 1)
        if args.debug:
            raise
        print(f"glmm-binomial: error: {_clean(exc)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
