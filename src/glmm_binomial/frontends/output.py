"""A fitted model as the command line writes it: strict JSON, CSV sections, XLSX sheets, text.

Numbers that are not estimates are not shown as estimates: when the fit reports separation,
the coefficients with no finite maximum-likelihood estimate (as the fit found them, recorded on
its FitOutput) are written as null / blank, and so are the variance components under complete
separation; the warnings travel with their classes (``FitWarning.kind``).

Every file is written atomically (``atomic_write``): the bytes go to a temporary file in the
target's folder, are flushed to disk, and the temporary file is renamed over the target
(``os.replace``). A failing write (a full disk, an I/O error) removes the temporary file and
leaves the target as it was: never a half-written file. Workbooks are built in memory first,
so a failure never leaves a half-closed zip archive behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from glmm_binomial.frontends import require

FIXED_COLUMNS = ("estimate", "std_error", "z", "p", "ci_lower", "ci_upper", "odds_ratio")
#: Output formats by file extension.
FORMATS = {".txt": "text", ".text": "text", ".json": "json", ".csv": "csv", ".xlsx": "xlsx"}


def output_format(path: str) -> str:
    """The format for a file name, by its extension (ValueError naming the known ones)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise ValueError(f"cannot tell the output format of {path!r}: use one of {known}")
    return FORMATS[suffix]


def check_writable(path: str) -> None:
    """ValueError naming the path when a file cannot be written there: a missing or read-only
    folder, or a folder where the file should be."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder")
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: no folder {str(folder)!r}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: the folder {str(folder)!r} is not writable")


def _file_mode(target: Path) -> int:
    """The mode a new file gets (0o666 less the umask), or the existing target's mode."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path: str, write: Callable[[IO[bytes]], object]) -> None:
    """Write a file all or nothing: ``write`` fills a temporary file in the same folder, which
    is flushed to disk and renamed over ``path``. On any failure the temporary file is removed,
    ``path`` is left as it was and the error is raised again as ValueError naming the path."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        handle = tempfile.NamedTemporaryFile(
            "wb", dir=folder, prefix=f".{target.name}.", suffix=".tmp", delete=False
        )
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, _file_mode(target))
        os.replace(handle.name, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        if isinstance(exc, OSError):
            raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def write_text(path: str, text: str) -> None:
    """UTF-8 text to ``path``, atomically."""
    data = text.encode("utf-8")
    atomic_write(path, lambda handle: handle.write(data))


def plain(value: Any) -> Any:
    """A JSON-safe Python value: numpy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return plain(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


def not_estimable(result: Any) -> tuple[set[str], bool]:
    """Fixed effects with no finite ML estimate, and whether the variance components have none
    either (complete separation), as the fit found them (FitOutput.separation); (set(), False)
    when it found none, and always for "vb"."""
    separation = result.fit_output.separation
    names = list(result.model.fixed_names)
    return {names[j] for j in separation.coefficients}, bool(separation.complete)


def vb_note(method: str = "vb") -> str:
    """What the standard errors of a Bayesian method ("vb", "vb_meanfield", "mcmc") are (the
    spreadsheet table's note row says the same)."""
    from glmm_binomial.frontends.sheet import NOTES

    note = NOTES[method].replace("z_statistic, p_value", "z, p")
    # A formula may have correlated terms (the spreadsheet's components are independent).
    return note.replace("random effect N(0, 1))", "random effect N(0, 1), correlations LKJ(2))")


def warning_records(result: Any) -> list[dict[str, str]]:
    return [{"kind": getattr(w, "kind", "warning"), "message": str(w)} for w in result.warnings]


def report(result: Any, source: str) -> dict[str, Any]:
    """Every statistic of the fit as plain data (the JSON document; other formats derive)."""
    blank, blank_random = not_estimable(result)
    fixed = []
    table = result.fixed_effects
    for term in table.index:
        record: dict[str, Any] = {"term": str(term)}
        for column in FIXED_COLUMNS:
            record[column] = None if term in blank else plain(table.loc[term, column])
        record["estimable"] = term not in blank
        fixed.append(record)
    varcorr = []
    for record in result.varcorr.to_dict(orient="records"):
        record = plain(record)
        if blank_random:
            record.update({"variance": None, "std_dev": None})
        varcorr.append(record)
    summary = result.opt_summary
    optimizer = {
        name: plain(getattr(summary, name))
        for name in getattr(summary, "__dataclass_fields__", {})
        if name != "seconds"  # the same input gives the same document
    }
    return {
        "formula": result.formula,
        "data": source,
        "method": result.method,
        "n_agq": result.n_agq,
        "family": result.family,
        "link": result.link,
        "phi": plain(result.phi),
        "phi_std_error": plain(result.phi_se),
        "nobs": result.nobs,
        "n_dropped": result.n_dropped,
        "ngroups": plain(result.ngroups),
        "loglik": plain(result.loglik),
        "loglik_method": result.loglik_method,
        "deviance": plain(result.deviance),
        "aic": plain(result.aic),
        "bic": plain(result.bic),
        "df_model": result.df_model,
        "conf_level": plain(result.conf_level) if hasattr(result, "conf_level") else None,
        "converged": bool(result.converged),
        "singular": bool(result.singular),
        "penalized": bool(result.penalized),
        "priors": list(result.priors),
        "prior_deviance": plain(result.prior_deviance),
        "penalized_objective": plain(result.penalized_objective),
        "warnings": warning_records(result),
        "notes": [vb_note(result.method)] if result.method_object.posterior else [],
        "elbo": plain(result.elbo) if getattr(result, "elbo", None) is not None else None,
        "fixed_effects": fixed,
        "varcorr": varcorr,
        "theta": None if blank_random else plain(result.theta),
        "optimizer": optimizer,
        **posterior_records(result),
    }


def posterior_records(result: Any) -> dict[str, Any]:
    """For a fit with posterior draws ("mcmc"): each parameter's row of result.mcmc_summary
    (mean, sd, mcse_mean, ess_bulk, ess_tail, r_hat) and the sampler's settings (timings
    left out: the same input gives the same document); nothing for other fits."""
    posterior = getattr(result, "posterior", None)
    if posterior is None:
        return {}
    records = [
        {"parameter": str(name), **plain(row)}
        for name, row in result.mcmc_summary.to_dict(orient="index").items()
    ]
    settings = {k: plain(v) for k, v in posterior.settings.items() if k != "seconds"}
    return {"posterior": records, "sampler": settings}


def to_json(document: dict[str, Any]) -> str:
    """Strict JSON (no NaN or Infinity tokens)."""
    return json.dumps(plain(document), indent=1, allow_nan=False)


def tables(document: dict[str, Any]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The document as named tables (header, rows): the sections of CSV, the sheets of XLSX."""
    out: dict[str, tuple[list[str], list[list[Any]]]] = {}
    fixed_header = ["term", *FIXED_COLUMNS]
    out["fixed_effects"] = (
        fixed_header,
        [[r[c] for c in fixed_header] for r in document["fixed_effects"]],
    )
    random_header = ["group", "term", "variance", "std_dev"]
    out["random_effects"] = (
        random_header,
        [[r.get(c) for c in random_header] for r in document["varcorr"]],
    )
    scalars = [
        "formula",
        "data",
        "method",
        "n_agq",
        "family",
        "link",
        "phi",
        "nobs",
        "n_dropped",
        "loglik",
        "deviance",
        "aic",
        "bic",
        "df_model",
        "converged",
        "singular",
        "penalized",
        "prior_deviance",
        "penalized_objective",
    ]
    out["fit"] = (["statistic", "value"], [[k, document[k]] for k in scalars])
    warning_rows = [[w["kind"], w["message"]] for w in document["warnings"]]
    warning_rows += [["note", note] for note in document.get("notes", [])]
    out["warnings"] = (["kind", "message"], warning_rows)
    for name in ("posterior", "ranef", "predictions"):
        if name in document:
            records = document[name]
            header = list(records[0]) if records else []
            out[name] = (header, [[r[c] for c in header] for r in records])
    return out


def csv_text(sections: Sequence[tuple[str | None, Sequence[Any], Sequence[Sequence[Any]]]]) -> str:
    """Tables as CSV text: each under a line "# name" (when named), separated by a blank line;
    None as an empty field."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for i, (name, header, rows) in enumerate(sections):
        if i:
            writer.writerow([])
        if name is not None:
            writer.writerow([f"# {name}"])
        writer.writerow(header)
        writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return buffer.getvalue()


def to_csv(document: dict[str, Any]) -> str:
    """The tables one after another, each under a line naming it, separated by a blank line."""
    return csv_text([(name, header, rows) for name, (header, rows) in tables(document).items()])


def workbook_bytes(book: Any) -> bytes:
    """An openpyxl workbook saved in memory (a failure cannot leave a half-written archive)."""
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def save_workbook(path: str, book: Any) -> None:
    """An openpyxl workbook written to ``path`` atomically."""
    data = workbook_bytes(book)
    atomic_write(path, lambda handle: handle.write(data))


def _xlsx_cell(cell: Any) -> Any:
    """A value openpyxl can store: lists and mappings as their text, and text without the
    control characters a worksheet cannot hold (each shown as U+FFFD)."""
    if isinstance(cell, (list, dict, tuple)):
        cell = str(cell)
    if isinstance(cell, str):
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        cell = ILLEGAL_CHARACTERS_RE.sub("\ufffd", cell)
    return cell


def write_xlsx(path: str, sheets: dict[str, tuple[list[str], list[list[Any]]]]) -> None:
    """One worksheet per table (needs openpyxl: the ``xlsx`` extra), written atomically."""
    openpyxl: Any = require("openpyxl", "xlsx", "writing .xlsx files")
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, (header, rows) in sheets.items():
        sheet = book.create_sheet(title=name[:31])
        sheet.append([_xlsx_cell(c) for c in header])
        for row in rows:
            sheet.append([_xlsx_cell(cell) for cell in row])
    save_workbook(path, book)


def to_text(result: Any, document: dict[str, Any]) -> str:
    """lme4-style summary, with the estimable caveat and the requested extra tables."""
    lines = [result.summary(data_name=document.get("data_description", document["data"])).rstrip()]
    missing = [r["term"] for r in document["fixed_effects"] if not r["estimable"]]
    if missing:
        lines.append(
            "\nNo finite maximum-likelihood estimate for "
            + ", ".join(missing)
            + " (separation): the numbers above for them are not estimates."
        )
    lines.extend(f"\nNote: {note}." for note in document.get("notes", []))
    for name in ("posterior", "ranef", "predictions"):
        if name in document:
            header, rows = tables(document)[name]
            lines.append(f"\n{name}:")
            lines.append("\t".join(header))
            lines.extend("\t".join("" if c is None else f"{c}" for c in row) for row in rows)
    return "\n".join(lines) + "\n"


def write(path: str, result: Any, document: dict[str, Any]) -> None:
    """Write the document to ``path`` in the format its extension names."""
    kind = output_format(path)
    if kind == "xlsx":
        write_xlsx(path, tables(document))
        return
    text = {
        "json": lambda: to_json(document),
        "csv": lambda: to_csv(document),
        "text": lambda: to_text(result, document),
    }[kind]()
    write_text(path, text)


def frame_records(frame: Any) -> list[dict[str, Any]]:
    """A DataFrame's rows (index as the first column) as JSON-safe records."""
    flat = frame.reset_index()
    return [plain(record) for record in flat.to_dict(orient="records")]
