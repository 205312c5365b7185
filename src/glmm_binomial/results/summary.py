"""The summary of a fit: text laid out as lme4's summary(glmerMod), HTML, and tables.

`Summary` is a str (the text), so printing it, str() of it and `"..." in summary` behave as
the text does; its tables are DataFrames (`criteria`, `scaled_residuals`, `random_effects`,
`fixed_effects`, `correlation`) and `_repr_html_` renders them for notebooks.

A number that is not an estimate is not shown as one: when the fit did not converge the
variance components are shown as NA, and so are the fixed effects of separated columns (their
values are points on a diverging path: FitOutput.diverging, as the fit found them), each with
the fit's warnings printed below.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.results.base import ResultBase
from glmm_binomial.results.posterior import summary_lines
from glmm_binomial.results.residuals import residuals

MAX_CORRELATION_TERMS = 12
"""As lme4: the correlation of fixed effects is printed for at most this many terms."""

NA = "NA"


class Summary(str):
    """The summary text, with its tables as DataFrames and an HTML form."""

    criteria: pd.DataFrame
    scaled_residuals: pd.Series
    random_effects: pd.DataFrame
    fixed_effects: pd.DataFrame
    correlation: pd.DataFrame
    warnings: tuple[str, ...]
    header: list[str]

    def __new__(cls, result: ResultBase, data_name: str | None = None) -> Summary:
        # Display only: NaN (diverging or boundary) entries are shown as NA, never warned about.
        with np.errstate(all="ignore"):
            parts = _Parts(result, data_name)
        obj = super().__new__(cls, parts.text())
        obj.criteria = parts.criteria
        obj.scaled_residuals = parts.scaled
        obj.random_effects = parts.random
        obj.fixed_effects = parts.fixed
        obj.correlation = parts.correlation
        obj.warnings = parts.warnings
        obj.header = parts.header
        return obj

    def __repr__(self) -> str:
        return str.__str__(self)

    def _repr_html_(self) -> str:
        def table(frame: pd.DataFrame | pd.Series, index: bool = True) -> str:
            return str(frame.to_html(index=index, float_format=lambda v: f"{v:.4g}", na_rep=NA))

        parts = [f"<pre>{_escape(chr(10).join(self.header))}</pre>", table(self.criteria, False)]
        parts += ["<p>Scaled residuals</p>", table(self.scaled_residuals.to_frame().T, False)]
        parts += ["<p>Random effects</p>", table(self.random_effects, False)]
        parts += ["<p>Fixed effects</p>", table(self.fixed_effects)]
        if not self.correlation.empty:
            parts += ["<p>Correlation of fixed effects</p>", table(self.correlation)]
        for message in self.warnings:
            parts.append(f"<p><b>Warning:</b> {_escape(message)}</p>")
        return "\n".join(parts)


class _Parts:
    def __init__(self, result: ResultBase, data_name: str | None) -> None:
        self.result = result
        title = result.method_object.title
        name = data_name or result.data_name or "data"
        self.header = [
            f"Generalized linear mixed model fit by {title}",
            f" Family: {result.model.family.title}",
            f"Formula: {result.formula}",
            f"   Data: {name}",
        ]
        if result.penalized:
            # As bglmer prints them: the priors and the prior deviance at the estimates.
            self.header += [
                f"{' Priors:' if i == 0 else '        '} {line}"
                for i, line in enumerate(result.priors)
            ]
            self.header.append(
                f"Prior dev: {result.prior_deviance:.4f}  (penalized objective "
                f"{result.penalized_objective:.4f} = deviance + prior dev)"
            )
        self.criteria = pd.DataFrame(
            [[result.aic, result.bic, result.loglik, result.deviance, result.df_resid]],
            columns=["AIC", "BIC", "logLik", "deviance", "df.resid"],
        )
        # A fit to a Dask DataFrame keeps its rows on the cluster: no residuals to show.
        rows_here = result.model.x.shape[0] == result.nobs
        pearson = residuals(result, "pearson") if rows_here else np.zeros(0)
        self.scaled = pd.Series(
            np.quantile(pearson, [0, 0.25, 0.5, 0.75, 1]) if len(pearson) else np.full(5, np.nan),
            index=["Min", "1Q", "Median", "3Q", "Max"],
        )
        warnings = [str(w) for w in result.warnings]
        # Posterior draws summarize the posterior whatever their diagnostics say (R-hat and
        # ESS warn of imprecision); an optimizer's stopping point that is not an optimum does
        # not estimate anything.
        estimated = result.converged or result.limit_verified or result.posterior is not None
        self.estimated = estimated
        if not estimated and not any("converge" in w for w in warnings):
            warnings.append("the optimizer did not report convergence")
        self.warnings = tuple(warnings)
        self.random = self._random_effects()
        self.fixed = self._fixed_effects()
        self.correlation = self._correlation()

    def _random_effects(self) -> pd.DataFrame:
        vc = self.result.varcorr
        table = pd.DataFrame(
            {
                "Groups": vc["group"],
                "Name": vc["term"],
                "Variance": vc["variance"].astype(float),
                "Std.Dev.": vc["std_dev"].astype(float),
            }
        )
        corr_cols = [c for c in vc.columns if c.startswith("corr_")]
        for c in corr_cols:
            table[c.replace("corr_", "Corr.")] = vc[c].astype(float)
        if not self.estimated:
            # Where the optimizer stopped is not an estimate (a separated fit whose end was not
            # verified may not have moved the variance from its start of 1).
            table.loc[:, table.columns[2:]] = np.nan
        return table

    def _separated(self) -> set[str]:
        """Fixed effects with no finite estimate, as the fit found them (FitOutput.diverging)."""
        return set(self.result.diverging)

    def _fixed_effects(self) -> pd.DataFrame:
        result = self.result
        fe = result.fixed_effects
        vb = result.method_object.posterior
        table = pd.DataFrame(
            {
                "Post.Mean" if vb else "Estimate": fe["estimate"],
                "Post.SD" if vb else "Std. Error": fe["std_error"],
                "z value": fe["z"],
                "Pr(>|z|)": fe["p"],
            }
        )
        # Separated columns, and any without a finite standard error (a diverging estimate),
        # have no estimate to show.
        hidden = sorted(self._separated() | set(fe.index[~np.isfinite(fe["std_error"])]))
        if hidden:
            table.loc[hidden, :] = np.nan
        return table

    def _correlation(self) -> pd.DataFrame:
        vcov = self.result.vcov.to_numpy()
        names = self.result.fixed_names
        # A diagonal covariance by construction (mean-field VB) has zero correlations that are
        # not estimates of anything.
        diagonal = not np.any(vcov - np.diag(np.diag(vcov)))
        if len(names) < 2 or len(names) > MAX_CORRELATION_TERMS or diagonal:
            return pd.DataFrame()
        sd = np.sqrt(np.diag(vcov))
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = vcov / np.outer(sd, sd)
        separated = self._separated()
        for j, name in enumerate(names):
            if name in separated:
                corr[j, :] = np.nan
                corr[:, j] = np.nan
        return pd.DataFrame(corr, index=names, columns=names)

    # --- text ------------------------------------------------------------------------------------
    def text(self) -> str:
        lines = list(self.header)
        lines.append("")
        lines += _named_vector(
            list(self.criteria.columns),
            [_number(v, 1) for v in self.criteria.iloc[0, :4]] + [str(self.result.df_resid)],
        )
        if self.result.method_object.posterior:
            lines.append(f"(logLik: {self.result.loglik_method})")
        if self.result.elbo is not None:
            lines.append(f"(ELBO, a lower bound on the log evidence: {self.result.elbo:.4f})")
        if self.result.posterior is not None:
            lines += summary_lines(self.result)
        lines += ["", "Scaled residuals: "]
        lines += _named_vector(list(self.scaled.index), [_number(v, 4) for v in self.scaled])
        lines += ["", "Random effects:"]
        lines += self._random_text()
        groups = ", ".join(f"{g}, {n}" for g, n in self.result.ngroups.items())
        lines.append(f"Number of obs: {self.result.nobs}, groups:  {groups}")
        if self.result.n_dropped:
            lines.append(f"({self.result.n_dropped} observations deleted due to missingness)")
        phi = self.result.phi
        if phi is not None:
            # glmmTMB's line (3 significant digits); NA where the fit did not converge, Inf
            # (R's) at the limit, where the fit is the binomial's.
            shown = f"{phi:.3g}" if self.result.converged and np.isfinite(phi) else NA
            if self.result.converged and phi == np.inf:
                shown = "Inf (at its limit: no overdispersion beyond the binomial)"
            lines += ["", f"Dispersion parameter for {self.result.family} family (): {shown}"]
        lines += ["", "Fixed effects:"]
        lines += self._fixed_text()
        lines.append("---")
        lines.append("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1")
        if not self.correlation.empty and self.correlation.notna().to_numpy().any():
            lines += ["", "Correlation of Fixed Effects:"]
            lines += self._correlation_text()
        if self.warnings:
            lines.append("")
            for message in self.warnings:
                lines.append(f"Warning: {message}")
            if self.result.limit_verified:
                lines.append("(NA: no finite estimate, the values are points on a diverging path)")
            elif not self.estimated:
                lines.append("(NA: not an estimate, the fit did not converge)")
        return "\n".join(lines)

    def _random_text(self) -> list[str]:
        table = self.random
        groups = table["Groups"].where(table["Groups"].ne(table["Groups"].shift()), "")
        has_corr = any(c.startswith("Corr.") for c in table.columns)
        rows = []
        for i in range(len(table)):
            row = [
                str(groups.iloc[i]),
                str(table["Name"].iloc[i]),
                _number(table["Variance"].iloc[i], 4),
                _number(table["Std.Dev."].iloc[i], 4),
            ]
            if has_corr:
                structured = self._structured_cell(i)
                row.append(
                    " ".join(_corr_cell(v) for v in self._row_correlations(i))
                    if structured is None
                    else structured
                )
            rows.append(row)
        if has_corr and not any(row[4] for row in rows):
            # Only diag() terms: no correlation to show, as glmmTMB prints them.
            has_corr = False
            rows = [row[:4] for row in rows]
        headers = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] if has_corr else [])
        # lme4's formatVC: each number column formatted to one width, the character matrix
        # printed with its columns aligned left.
        for column in (2, 3):
            width = max(len(row[column]) for row in rows)
            for row in rows:
                row[column] = row[column].rjust(width)
        return [" " + line for line in _aligned(headers, rows, right=False)]

    def _row_correlations(self, i: int) -> list[float]:
        """Correlations of term i with the earlier terms of its own block."""
        corr_cols = [c for c in self.random.columns if c.startswith("Corr.")]
        position = self._position_in_block(i)
        return [float(self.random[c].iloc[i]) for c in corr_cols[:position]]

    def _structured_cell(self, i: int) -> str | None:
        """The Corr cell of row i in a structured term, as glmmTMB prints it: its one
        correlation parameter and the structure's name on the term's first row ("0.75 (ar1)"),
        nothing on the others and in diag() terms; None for lme4's unstructured terms."""
        from glmm_binomial.model.covariance import ScaledCorrelation

        position = 0
        for block in self.result.model.blocks:
            if i < position + block.k:
                structure = block.covariance
                if not isinstance(structure, ScaledCorrelation):
                    return None
                if i > position or not structure.label:
                    return ""
                value = float(self.random["Corr.1"].iloc[i + 1])  # corr(term 2, term 1) = rho
                return f"{_corr_cell(value).strip()} {structure.label}"
            position += block.k
        return None

    def _position_in_block(self, i: int) -> int:
        position = 0
        for block in self.result.model.blocks:
            if i < position + block.k:
                return i - position
            position += block.k
        return 0

    def _fixed_text(self) -> list[str]:
        table = self.fixed
        rows = []
        pvalues = format_pvalues(table.iloc[:, 3].to_numpy(dtype=np.float64))
        for name, shown in zip(table.index, pvalues, strict=True):
            est, se, z, pv = table.loc[name]
            rows.append(
                [str(name), _number(est, 4), _number(se, 4), _number(z, 3), shown, _stars(pv)]
            )
        headers = ["", *table.columns, ""]
        return _aligned(headers, rows, right=[False, True, True, True, True, False])

    def _correlation_text(self) -> list[str]:
        corr = self.correlation
        names = list(corr.index)
        # lme4's print: rows abbreviated to 11 characters, columns to 6 (R's abbreviate).
        short = abbreviate(names, 6)[:-1]
        # R's format() of the lower triangle gives every value one width (a blank before the
        # positive ones), and print() of that character matrix aligns its columns left.
        values = {(i, j): _number(corr.iloc[i, j], 3) for i in range(len(names)) for j in range(i)}
        width = max((len(v) for v in values.values()), default=0)
        rows = []
        for i, name in enumerate(abbreviate(names, 11)[1:], start=1):
            cells = [values[i, j].rjust(width) if j < i else "" for j in range(len(names) - 1)]
            rows.append([name, *cells])
        return _aligned(["", *short], rows, right=False)


def _corr_cell(value: float) -> str:
    return f"{NA:>5}" if not np.isfinite(value) else f"{value:5.2f}"


def _number(value: Any, decimals: int) -> str:
    """Fixed decimals; NA for a missing value; scientific only for very large magnitudes."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return NA
    v = float(value)
    if not np.isfinite(v):
        return "Inf" if v > 0 else "-Inf"
    if abs(v) >= 1e8:
        return f"{v:.{max(decimals - 1, 1)}e}"
    return f"{v:.{decimals}f}"


P_DIGITS = 3
"""Significant digits of the p-values in the fixed-effects table (R's printCoefmat: dig.tst,
3 at R's default options)."""

P_EPS = float(np.finfo(np.float64).eps)
"""p-values below this are shown as "<2e-16" (R's eps.Pvalue, .Machine$double.eps)."""


def format_pvalues(pvalues: NDArray[np.float64], digits: int = P_DIGITS) -> list[str]:
    """R's format.pval(pvalues, digits) as printCoefmat shows a table's p-values: those from
    1e-4 up (1e-3 with one digit) formatted together in R's common format, the smaller ones
    together (so in e-notation as R chooses it), those below P_EPS "<2e-16" (with a blank
    where the others are wider than 6), NA for a missing one."""
    out = [NA] * len(pvalues)
    present = [i for i, p in enumerate(pvalues) if np.isfinite(p)]
    tiny = [i for i in present if pvalues[i] < P_EPS]
    rest = [i for i in present if pvalues[i] >= P_EPS]
    exponents = {i: np.floor(np.log10(pvalues[i])) if pvalues[i] > 0 else -50.0 for i in rest}
    fixed = [i for i in rest if exponents[i] >= -3 or (exponents[i] == -4 and digits > 1)]
    for group in (fixed, [i for i in rest if i not in fixed]):
        for i, text in zip(
            group, r_format([float(pvalues[i]) for i in group], digits), strict=True
        ):
            out[i] = text
    if tiny:
        shown = max(1, digits - 2)
        width = max((len(out[i]) for i in rest), default=0)
        if rest and shown > 1 and shown + 6 > width:
            shown = max(1, width - 7)
        separator = "" if shown == 1 and (not rest or width <= 6) else " "
        for i in tiny:
            out[i] = "<" + separator + r_format([P_EPS], shown)[0]
    return out


def r_format(values: list[float], digits: int) -> list[str]:
    """R's format() of finite numbers with `digits` significant digits: the fewest digits
    (at most `digits`) that show each value, one number of decimals for all, and e-notation
    for all where that is narrower than positional (R's scipen 0)."""
    if not values:
        return []
    significant, exponents = [], []
    for value in values:
        if value == 0:
            significant.append(1)
            exponents.append(0)
            continue
        mantissa, exponent = f"{abs(value):.{digits - 1}e}".split("e")
        significant.append(max(1, len(mantissa.replace(".", "").rstrip("0"))))
        exponents.append(int(exponent))
    negative = any(v < 0 for v in values)
    decimals = max(0, max(s - 1 - e for s, e in zip(significant, exponents, strict=True)))
    left = max(1, max(e + 1 for e in exponents))
    fixed_width = negative + left + (1 if decimals else 0) + decimals
    most = max(significant)
    exponent_width = 3 if max(abs(e) for e in exponents) >= 100 else 2
    sci_width = negative + most + (1 if most > 1 else 0) + 2 + exponent_width
    if fixed_width <= sci_width:
        texts = [f"{v:.{decimals}f}" for v in values]
    else:
        texts = [f"{v:.{most - 1}e}" for v in values]
    width = max(len(t) for t in texts)
    return [t.rjust(width) for t in texts]


def _stars(p: float) -> str:
    if p is None or np.isnan(p):
        return ""
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return mark
    return ""


def _named_vector(names: list[str], values: list[str]) -> list[str]:
    """R's print of a named vector: every name and value right-aligned to one common width."""
    width = max(len(text) for text in [*names, *values])
    return [" ".join(t.rjust(width) for t in texts) for texts in (names, values)]


def _aligned(
    headers: list[str], rows: list[list[str]], right: bool | list[bool] = True
) -> list[str]:
    """Columns padded to a common width (right- or left-aligned), one space apart."""
    n = len(headers)
    flags = [right] * n if isinstance(right, bool) else list(right)
    widths = [max([len(headers[j])] + [len(r[j]) for r in rows]) for j in range(n)]

    def line(cells: list[str]) -> str:
        out = [
            cell.rjust(widths[j]) if flags[j] else cell.ljust(widths[j])
            for j, cell in enumerate(cells)
        ]
        return " ".join(out).rstrip()

    return [line(headers)] + [line(r) for r in rows]


def abbreviate(names: list[str], minlength: int) -> list[str]:
    """R's abbreviate(names, minlength) (method "left.kept", not strict): each name without
    its leading and trailing blanks abbreviated (abbreviate_one), then the abbreviations that
    coincide made again one character longer until all differ."""
    stripped = [name.strip(" ") for name in names]
    distinct = list(dict.fromkeys(stripped))
    out = [abbreviate_one(name, minlength) for name in distinct]
    length = minlength
    while True:
        seen = Counter(out)
        clashing = [j for j, short in enumerate(out) if seen[short] > 1]
        if not clashing:
            break
        length += 1
        for j in clashing:
            out[j] = abbreviate_one(distinct[j], length)
    found = dict(zip(distinct, out, strict=True))
    return [found[name] for name in stripped]


def abbreviate_one(name: str, minlength: int) -> str:
    """R's C-level abbreviation of one name to `minlength` characters other than blanks:
    lower-case vowels are dropped from the right, first those ending a word, then any not
    starting one; then lower-case letters the same way; then any character not starting a
    word; blanks go last, where the result is still longer than minlength."""
    chars = list(name.lstrip(" "))

    def starts_word(i: int) -> bool:
        return chars[i - 1] == " "

    def ends_word(i: int) -> bool:
        return chars[i - 1] != " " and (i + 1 == len(chars) or chars[i + 1] == " ")

    def short_enough() -> bool:
        return sum(c != " " for c in chars) <= minlength

    vowel = "aeiou".__contains__
    passes = [
        (vowel, ends_word),
        (vowel, lambda i: not starts_word(i)),
        (str.islower, ends_word),
        (str.islower, lambda i: not starts_word(i)),
        (lambda c: c != " ", lambda i: not starts_word(i)),
    ]
    if len(chars) >= minlength:
        for removable, position in passes:
            if short_enough():
                break
            for i in range(len(chars) - 1, 0, -1):
                if i < len(chars) and removable(chars[i]) and position(i):
                    del chars[i]
                    if short_enough():
                        break
    if len(chars) > minlength:
        chars = [chars[0], *(c for c in chars[1:] if c != " ")]
    return "".join(chars)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
