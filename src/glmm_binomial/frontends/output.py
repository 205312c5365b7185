"""A fitted model as the command line writes it: strict JSON, CSV sections, XLSX sheets, text.

Numbers that are not estimates are not shown as estimates: when the fit reports separation,
the coefficients with no finite maximum-likelihood estimate (found by the same linear program
the spreadsheet uses) are written as null / blank, and so are the variance components under
complete separation; the warnings travel with their classes (``FitWarning.kind``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

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
    either (complete separation), when the fit reports separation; else (set(), False)."""
    kinds = {getattr(w, "kind", "") for w in result.warnings}
    if "separation" not in kinds or result.method == "vb":
        return set(), False
    from glmm_binomial.model.separation import detect_separation

    model = result.model
    separation = detect_separation(model.x, model.successes, model.trials)
    names = list(model.fixed_names)
    return {names[j] for j in separation.coefficients}, bool(separation.complete)


def vb_note() -> str:
    """What "vb" standard errors are (the spreadsheet table's note row says the same)."""
    from glmm_binomial.frontends.sheet import VB_NOTE

    return VB_NOTE.replace("z_statistic, p_value", "z, p")


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
        "warnings": warning_records(result),
        "notes": [vb_note()] if result.method == "vb" else [],
        "fixed_effects": fixed,
        "varcorr": varcorr,
        "theta": None if blank_random else plain(result.theta),
        "optimizer": optimizer,
    }


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
    ]
    out["fit"] = (["statistic", "value"], [[k, document[k]] for k in scalars])
    warning_rows = [[w["kind"], w["message"]] for w in document["warnings"]]
    warning_rows += [["note", note] for note in document.get("notes", [])]
    out["warnings"] = (["kind", "message"], warning_rows)
    for name in ("ranef", "predictions"):
        if name in document:
            records = document[name]
            header = list(records[0]) if records else []
            out[name] = (header, [[r[c] for c in header] for r in records])
    return out


def to_csv(document: dict[str, Any]) -> str:
    """The tables one after another, each under a line naming it, separated by a blank line."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for i, (name, (header, rows)) in enumerate(tables(document).items()):
        if i:
            writer.writerow([])
        writer.writerow([f"# {name}"])
        writer.writerow(header)
        writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return buffer.getvalue()


def write_xlsx(path: str, sheets: dict[str, tuple[list[str], list[list[Any]]]]) -> None:
    """One worksheet per table (needs openpyxl: the ``xlsx`` extra)."""
    openpyxl: Any = require("openpyxl", "xlsx", "writing .xlsx files")
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, (header, rows) in sheets.items():
        sheet = book.create_sheet(title=name[:31])
        sheet.append(header)
        for row in rows:
            sheet.append(
                [cell if not isinstance(cell, (list, dict)) else str(cell) for cell in row]
            )
    book.save(path)


def to_text(result: Any, document: dict[str, Any]) -> str:
    """lme4-style summary, with the estimable caveat and the requested extra tables."""
    lines = [result.summary().rstrip()]
    missing = [r["term"] for r in document["fixed_effects"] if not r["estimable"]]
    if missing:
        lines.append(
            "\nNo finite maximum-likelihood estimate for "
            + ", ".join(missing)
            + " (separation): the numbers above for them are not estimates."
        )
    lines.extend(f"\nNote: {note}." for note in document.get("notes", []))
    for name in ("ranef", "predictions"):
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
    Path(path).write_text(text, encoding="utf-8")


def frame_records(frame: Any) -> list[dict[str, Any]]:
    """A DataFrame's rows (index as the first column) as JSON-safe records."""
    flat = frame.reset_index()
    return [plain(record) for record in flat.to_dict(orient="records")]
