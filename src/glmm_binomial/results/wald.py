"""Wald chi-square tests of the fixed effects: linear hypotheses (car's linearHypothesis,
statsmodels' wald_test) and one test per formula term (car's Anova, Type II or III).

A hypothesis L beta = q of rank r is tested by chisq = (L b - q)' (L V L')^{-1} (L b - q) on r
degrees of freedom, b the estimates and V their covariance (the fit's vcov: the inverse
observed information; for the Bayesian methods the posterior covariance, so that the test is
one of the posterior's normal approximation).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import linalg

from glmm_binomial.model.design import term_columns, term_variables
from glmm_binomial.model.formula import r_text
from glmm_binomial.numerics import normal
from glmm_binomial.numerics.covariance import LimitCovariance, moving_rows
from glmm_binomial.results.base import ResultBase

FloatArray = NDArray[np.float64]

RANK_TOL = 1e-10
"""Relative singular value below which hypotheses count as linearly dependent (and below which
car's conjugate complement drops a direction)."""

JOINT_RANK_TOL = 1e-7
"""Relative singular value below which joint_chisq's linear functions count as dependent
(emmeans' test(joint = TRUE) tolerance)."""

_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class WaldTest:
    """A Wald chi-square test of L beta = rhs: `statistic` on `df` degrees of freedom, `pvalue`
    its upper tail; `hypotheses` as car prints them; `estimate` L b - rhs, `std_error` the
    square roots of diag(L V L'); `note` says why the test is NaN where it is."""

    hypotheses: tuple[str, ...]
    matrix: pd.DataFrame
    rhs: FloatArray
    estimate: FloatArray
    std_error: FloatArray
    statistic: float
    df: int
    pvalue: float
    note: str = ""

    @property
    def table(self) -> pd.DataFrame:
        """One row per hypothesis, each on its own (statsmodels' t_test): its value L b - rhs,
        standard error, z and two-sided p (standard normal)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            z = self.estimate / self.std_error
        return pd.DataFrame(
            {
                "estimate": self.estimate,
                "std_error": self.std_error,
                "z": z,
                "p": 2.0 * normal.upper_tail(np.abs(z)),
            },
            index=pd.Index(self.hypotheses, name="hypothesis"),
        )

    def __repr__(self) -> str:
        lines = ["Linear hypothesis test (Wald chi-square)", "", "Hypothesis:"]
        lines += list(self.hypotheses)
        test = f"Chisq = {self.statistic:.6g}, Df = {self.df}, Pr(>Chisq) = {self.pvalue:.6g}"
        lines += ["", test]
        if self.note:
            lines.append(f"note: {self.note}")
        return "\n".join(lines)


def wald_test(result: ResultBase, hypothesis: Any, rhs: Any = None) -> WaldTest:
    """Wald chi-square test of linear hypotheses about the fixed effects, as car's
    linearHypothesis(model, hypothesis) and statsmodels' wald_test.

    hypothesis: text in the fixed effects' names, as car reads it ("period2 = period3",
    "age + age:urbanY = 0", "2 * x1 - x2 = 0.5"; a side without "=" is "= 0"; names with
    blanks or operators in backticks where they would be ambiguous), several at once separated
    by commas or as a list of such texts; or the matrix L (one row per hypothesis, one column
    per fixed effect; a DataFrame's columns are matched by name) with `rhs` (default zeros).
    The hypotheses must be linearly independent. The test is NaN, with a note, where it
    involves a fixed effect with no finite estimate (separation) in a combination that still
    moves along the diverging path, or one with no standard error; a combination that stays
    finite there (a mixed cell's predictor) is tested at its limit, by the limit's covariance
    (as `hypotheses`)."""
    beta, vcov, names = _estimates(result)
    if isinstance(hypothesis, str) or (
        isinstance(hypothesis, Sequence)
        and not isinstance(hypothesis, str)
        and len(hypothesis) > 0
        and all(isinstance(h, str) for h in hypothesis)
    ):
        if rhs is not None:
            raise ValueError("rhs goes with a matrix hypothesis; in text write it after '='")
        texts = [hypothesis] if isinstance(hypothesis, str) else list(hypothesis)
        rows = [row for text in texts for row in parse_hypotheses(text, names)]
        matrix = np.array([row[0] for row in rows])
        q = np.array([row[1] for row in rows])
    else:
        matrix, q = _matrix_hypothesis(hypothesis, rhs, names)
    _check_independent(matrix)
    return _test(result, beta, vcov, names, matrix, q)


def wald_test_terms(result: ResultBase, type: Any = "II") -> pd.DataFrame:  # noqa: A002
    """One Wald chi-square test per fixed-effects term, as car's Anova(model, type = ...)
    (its default for a glmer fit).

    Type "II" (2): each term but the intercept, tested in the model without the terms that
    contain it (marginality: with age * urban, age is tested over age:urban's absence), by
    car's construction from the covariance (the part of the term's columns conjugate to its
    relatives' under V). Type "III" (3): the term's columns all zero, with the intercept's row;
    it depends on the factors' coding (with treatment contrasts, age in age * urban is age's
    slope at urban's first level). Columns Chisq, Df, Pr(>Chisq), note (why a row is NaN), one
    row per term in R's name. Needs a fit of glmm_binomial.fit(formula, data)."""
    kind = {"II": 2, "2": 2, "III": 3, "3": 3}.get(str(type).upper())
    if kind is None:
        raise ValueError(f"type must be 'II' or 'III' (car's Anova types), got {type!r}")
    design = result.design
    if design is None:
        raise ValueError(
            "wald_test_terms needs the formula's terms: a fit of glmm_binomial.fit(formula, "
            "data), not fit_model's; test the columns with wald_test"
        )
    beta, vcov, names = _estimates(result)
    columns = term_columns(design, len(names))
    variables = term_variables(design)
    labels = [label for label in variables if kind == 3 or label != "1"]
    identity = np.eye(len(names))
    rows = []
    for label in labels:
        mine = list(columns.get(label, ()))
        matrix = identity[mine]
        if kind == 2 and mine:
            relatives = [
                j
                for other, its in variables.items()
                if other not in (label, "1") and variables[label] <= its
                for j in columns.get(other, ())
            ]
            conjugate = _conjugate_complement(identity[relatives], identity[relatives + mine], vcov)
            if conjugate is None:
                # The part of the term conjugate to its relatives needs their covariance.
                rows.append(
                    {
                        "term": r_text(label),
                        "Chisq": math.nan,
                        "Df": len(mine),
                        "Pr(>Chisq)": math.nan,
                        "note": f"no test: {', '.join(result.diverging) or 'a fixed effect'} "
                        "has no finite estimate (separation), and this term's test needs the "
                        "covariance of the terms containing it",
                    }
                )
                continue
            matrix = conjugate
        name = "(Intercept)" if label == "1" else r_text(label)
        if matrix.shape[0] == 0:
            rows.append(
                {
                    "term": name,
                    "Chisq": math.nan,
                    "Df": 0,
                    "Pr(>Chisq)": math.nan,
                    "note": "no column of this term is estimable (aliased)",
                }
            )
            continue
        test = _test(result, beta, vcov, names, matrix, np.zeros(matrix.shape[0]))
        rows.append(
            {
                "term": name,
                "Chisq": test.statistic,
                "Df": test.df,
                "Pr(>Chisq)": test.pvalue,
                "note": test.note,
            }
        )
    # No term to test (y ~ 1 under Type II): an empty table with the columns.
    header = ["term", "Chisq", "Df", "Pr(>Chisq)", "note"]
    return pd.DataFrame(rows, columns=header).set_index("term")


def parse_hypotheses(text: str, names: Sequence[str]) -> list[tuple[FloatArray, float]]:
    """Rows (L's row, q) of the hypotheses in `text` (comma-separated equations of linear
    combinations of `names`, as wald_test takes them); ValueError naming what is not read."""
    if not text.strip():
        raise ValueError("hypothesis is empty; write e.g. 'x1 = 0' in the fixed effects' names")
    equations: list[list[list[tuple[str, Any]]]] = [[[]]]
    for token in _tokens(text, names):
        if token[0] == ",":
            equations.append([[]])
        elif token[0] == "=":
            if len(equations[-1]) == 2:
                raise ValueError(f"hypothesis {text!r}: more than one '=' in an equation")
            equations[-1].append([])
        else:
            equations[-1][-1].append(token)
    rows = []
    for sides in equations:
        combination = [_combination(side, names, text) for side in sides]
        if len(combination) == 1:
            combination.append((np.zeros(len(names)), 0.0))
        (left, left_constant), (right, right_constant) = combination
        row = left - right
        if not row.any():
            raise ValueError(
                f"hypothesis {text!r}: an equation without a fixed effect in it (each says "
                "something about the fixed effects, e.g. 'x1 = 0')"
            )
        rows.append((row, right_constant - left_constant))
    return rows


def _tokens(text: str, names: Sequence[str]) -> list[tuple[str, Any]]:
    """("name", index), ("number", value) and the operators + - * / = , of a hypothesis text;
    a name is matched longest first (names hold operators: I(age^2), livch3+) or in
    backticks."""
    by_length = sorted(range(len(names)), key=lambda j: -len(names[j]))
    tokens: list[tuple[str, Any]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise ValueError(f"hypothesis {text!r}: a backtick is not closed")
            name = text[i + 1 : end]
            if name not in names:
                raise ValueError(_unknown(name, names, text))
            tokens.append(("name", list(names).index(name)))
            i = end + 1
            continue
        match = next((j for j in by_length if text.startswith(names[j], i)), None)
        if match is not None:
            tokens.append(("name", match))
            i += len(names[match])
            continue
        number = _NUMBER.match(text, i)
        if number:
            tokens.append(("number", float(number.group())))
            i = number.end()
            continue
        if ch in "+-*/=,":
            if text.startswith("==", i):
                raise ValueError(f"hypothesis {text!r}: write '=' (one), not '=='")
            tokens.append((ch, None))
            i += 1
            continue
        word = re.match(r"[^\s+\-*/=,]+", text[i:])
        raise ValueError(_unknown(word.group() if word else ch, names, text))
    return tokens


def _unknown(word: str, names: Sequence[str], text: str) -> str:
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"hypothesis {text!r}: {word!r} is not a fixed effect; the fixed effects are {shown}"


def _combination(
    side: list[tuple[str, Any]], names: Sequence[str], text: str
) -> tuple[FloatArray, float]:
    """One side of an equation as (coefficients of the names, constant): terms joined by + and
    -, each a name, a number, or products and quotients of numbers with at most one name."""
    row = np.zeros(len(names))
    constant = 0.0
    if not side:
        raise ValueError(f"hypothesis {text!r}: an empty side of an equation")
    sign = 1.0
    i = 0
    expect_term = True
    while i < len(side):
        kind, value = side[i]
        if kind in "+-" and expect_term:
            sign = -sign if kind == "-" else sign
            i += 1
            continue
        if not expect_term:
            if kind not in "+-":
                shown = _shown(side[i], names)
                raise ValueError(f"hypothesis {text!r}: expected + or - before {shown}")
            expect_term = True
            continue
        factor, name, i = _product(side, i, names, text)
        if name is None:
            constant += sign * factor
        else:
            row[name] += sign * factor
        sign = 1.0
        expect_term = False
    if expect_term:
        raise ValueError(f"hypothesis {text!r}: an equation ends with an operator")
    return row, constant


def _product(
    side: list[tuple[str, Any]], i: int, names: Sequence[str], text: str
) -> tuple[float, int | None, int]:
    """The term starting at side[i]: its numeric factor, its name's index (None for a number)
    and the position after it."""
    factor = 1.0
    name: int | None = None
    operator = "*"
    while True:
        if i >= len(side):
            raise ValueError(f"hypothesis {text!r}: an equation ends with an operator")
        kind, value = side[i]
        if kind == "number":
            factor = factor * value if operator == "*" else factor / value
        elif kind == "name":
            if name is not None or operator == "/":
                raise ValueError(
                    f"hypothesis {text!r}: a term is not linear in the fixed effects "
                    f"(at {names[value]!r})"
                )
            name = value
        else:
            raise ValueError(f"hypothesis {text!r}: unexpected {kind!r}")
        i += 1
        if i < len(side) and side[i][0] in "*/":
            operator = side[i][0]
            i += 1
            continue
        return factor, name, i


def _shown(token: tuple[str, Any], names: Sequence[str]) -> str:
    kind, value = token
    if kind == "name":
        return repr(names[value])
    return repr(value) if kind == "number" else repr(kind)


def _matrix_hypothesis(
    hypothesis: Any, rhs: Any, names: Sequence[str]
) -> tuple[FloatArray, FloatArray]:
    """L and q of a matrix hypothesis (a DataFrame's columns matched to the names)."""
    if isinstance(hypothesis, pd.DataFrame):
        unknown = [c for c in hypothesis.columns if c not in names]
        if unknown:
            raise ValueError(_unknown(str(unknown[0]), names, "the matrix's columns"))
        hypothesis = hypothesis.reindex(columns=list(names), fill_value=0.0)
    try:
        matrix = np.array(hypothesis, dtype=np.float64, ndmin=2)
    except (TypeError, ValueError):
        raise ValueError(
            "hypothesis must be text ('x1 = 0'), a list of texts, or a matrix with one column "
            f"per fixed effect; got {type(hypothesis).__name__}"
        ) from None
    if matrix.ndim != 2 or matrix.shape[1] != len(names) or matrix.shape[0] == 0:
        raise ValueError(
            f"hypothesis matrix must have one column per fixed effect ({len(names)}: "
            f"{', '.join(names)}), got shape {matrix.shape}"
        )
    if not np.isfinite(matrix).all():
        raise ValueError("hypothesis matrix has missing or infinite values")
    if rhs is None:
        q = np.zeros(matrix.shape[0])
    else:
        q = np.array(rhs, dtype=np.float64, ndmin=1).ravel()
        if q.shape != (matrix.shape[0],) or not np.isfinite(q).all():
            raise ValueError(
                f"rhs must have one finite value per row of the hypothesis matrix "
                f"({matrix.shape[0]}), got {np.shape(rhs)}"
            )
    return matrix, q


def _check_independent(matrix: FloatArray) -> None:
    singular = np.linalg.svd(matrix, compute_uv=False)
    if (singular <= RANK_TOL * max(singular.max(), 1.0)).any() or matrix.shape[0] > matrix.shape[1]:
        raise ValueError(
            "the hypotheses are not linearly independent (one follows from the others, or they "
            "contradict each other); give each restriction once"
        )


def _estimates(result: ResultBase) -> tuple[FloatArray, FloatArray, list[str]]:
    if not isinstance(result, ResultBase):
        raise ValueError("a Wald test takes a GLMMResult (what glmm_binomial.fit returns)")
    beta = result.params.to_numpy(copy=True)
    beta[[result.fixed_names.index(n) for n in result.diverging]] = np.nan
    return beta, result.vcov.to_numpy(), result.fixed_names


def _conjugate_complement(
    relatives: FloatArray, larger: FloatArray, vcov: FloatArray
) -> FloatArray | None:
    """Rows spanning the part of `larger`'s row space conjugate (orthogonal under vcov) to
    `relatives`' (car's ConjComp): the hypothesis of a Type II test. None where the covariance
    it needs is not finite (a separated coefficient's)."""
    if relatives.shape[0] == 0:
        return larger
    # Only the columns the rows use: a separated coefficient elsewhere (NaN in vcov) is none
    # of this test's business.
    used = (larger != 0).any(axis=0) | (relatives != 0).any(axis=0)
    cross = larger[:, used] @ vcov[np.ix_(used, used)] @ relatives[:, used].T
    if not np.isfinite(cross).all():
        return None
    basis = linalg.null_space(cross.T, rcond=RANK_TOL)
    return basis.T @ larger


def _test(
    result: ResultBase,
    beta: FloatArray,
    vcov: FloatArray,
    names: Sequence[str],
    matrix: FloatArray,
    rhs: FloatArray,
) -> WaldTest:
    texts = tuple(_hypothesis_text(row, q, names) for row, q in zip(matrix, rhs, strict=True))
    frame = pd.DataFrame(matrix, columns=list(names), index=list(texts))
    used = np.abs(matrix).sum(axis=0) > 0
    diverging = [n for n, u in zip(names, used, strict=True) if u and n in result.diverging]
    limit = result.fit_output.vcov_limit
    if diverging and limit is not None and not moving_rows(matrix, limit).any():
        # Combinations of diverging coefficients that stay finite (a mixed cell's predictor):
        # their limit, from the point on the path, with the limit's covariance.
        beta = result.params.to_numpy()
        vcov = limit.matrix
        diverging = []
    value = matrix[:, used] @ beta[used] - rhs
    covariance = matrix[:, used] @ vcov[np.ix_(used, used)] @ matrix[:, used].T
    df = matrix.shape[0]
    nan = np.full(df, math.nan)
    if diverging:
        note = (
            f"no test: {', '.join(diverging)} has no finite estimate (separation); compare "
            "fits with and without it by a likelihood-ratio test (anova, drop1)"
        )
        return WaldTest(texts, frame, rhs, nan, nan, math.nan, df, math.nan, note)
    if not (np.isfinite(value).all() and np.isfinite(covariance).all()):
        note = "no test: a fixed effect involved has no standard error"
        return WaldTest(texts, frame, rhs, value, nan, math.nan, df, math.nan, note)
    try:
        factor = linalg.cho_factor(covariance)
    except linalg.LinAlgError:
        note = "no test: the covariance of the hypotheses is singular"
        return WaldTest(texts, frame, rhs, value, nan, math.nan, df, math.nan, note)
    # scipy.special only here: loading it costs a fit that never tests (test_import_cost).
    from scipy import special

    statistic = float(value @ linalg.cho_solve(factor, value))
    pvalue = float(special.chdtrc(df, statistic))
    return WaldTest(texts, frame, rhs, value, np.sqrt(np.diag(covariance)), statistic, df, pvalue)


def _hypothesis_text(row: FloatArray, q: float, names: Sequence[str]) -> str:
    """car's printed form of one hypothesis: "period2 - period3 = 0", "2 age + x = 0.5"."""
    parts: list[str] = []
    for coefficient, name in zip(row, names, strict=True):
        if coefficient == 0:
            continue
        magnitude = abs(coefficient)
        term = name if magnitude == 1 else f"{magnitude:.6g} {name}"
        if not parts:
            parts.append(term if coefficient > 0 else f"- {term}")
        else:
            parts.append(f"{'+' if coefficient > 0 else '-'} {term}")
    return f"{' '.join(parts)} = {q:.6g}"


def numerical_rank(singular: FloatArray) -> int:
    """How many of a matrix's singular values exceed JOINT_RANK_TOL times the largest (0 for
    a zero matrix): its rank as emmeans' (and R's qr()) tolerance counts it."""
    return int((singular > JOINT_RANK_TOL * max(float(singular.max(initial=0.0)), 1e-300)).sum())


def joint_chisq(
    functions: FloatArray,
    beta: FloatArray,
    vcov: FloatArray,
    limit: LimitCovariance | None = None,
) -> tuple[int, float]:
    """The rank of the linear functions' row space and the Wald chi-square that it is zero
    (dependent rows reduced to a basis, as emmeans' test(joint = TRUE); wald_test instead
    refuses them). With a separated fit's limit (FitOutput.vcov_limit): by its covariance,
    NaN where a function still moves along the diverging directions (no estimate to test)."""
    if functions.shape[0] == 0:
        return 0, 0.0
    u, singular, _ = np.linalg.svd(functions.T, full_matrices=False)
    basis = u[:, : numerical_rank(singular)]  # singular values in decreasing order
    if basis.shape[1] == 0:
        return 0, 0.0
    if limit is not None:
        if moving_rows(functions, limit).any():
            return int(basis.shape[1]), math.nan
        vcov = limit.matrix
    value = basis.T @ beta
    covariance = basis.T @ vcov @ basis
    return int(basis.shape[1]), float(value @ np.linalg.solve(covariance, value))
