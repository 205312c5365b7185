"""Tests of functions of a table's estimates, as marginaleffects 0.11.0's ``hypothesis``
argument makes them: the estimates b1, ..., bm of a table (average slopes, comparisons or
predictions) are replaced by

- a keyword's differences of pairs of them: "pairwise" (b_i - b_j for every i < j),
  "revpairwise" (b_j - b_i), "reference" (b_i - b1), "revreference" (b1 - b_i), "sequential"
  (b_{i+1} - b_i), "revsequential" (b_i - b_{i+1}); labelled by the rows' labels
  ("(1 - 0) - (2 - 0)", "Y - N") or by their numbers ("Row 2 - Row 1") where the labels do not
  tell the rows apart;
- an equation "lhs = rhs", estimated as lhs - (rhs): of the rows b1, b2, ... or, when the
  table's terms are distinct and the text names no bN, of the terms by name ("age = urban");
  + - * / ^ (or **), parentheses, numbers and exp, log, sqrt; labelled by the equation without
  its spaces ("b1=b2"), as marginaleffects labels it;
- linear combinations: a vector of one weight per row (one combination, "custom") or a
  matrix with a row per estimate and a column per combination (a DataFrame's column names
  label them, else "custom").

A single number is not a function of the estimates: it is the null value of every test (z =
(estimate - value) / SE), see ``null_value``.

The new estimates' Jacobian in the fixed effects is the function's exact derivative in the
estimates (forward-mode, through the equation's tree) times the estimates' Jacobian, so their
delta-method SEs are exact as the estimates' are.

``Tests`` carries the rest of marginaleffects' inference arguments to the tables: equivalence
bounds (the one-sided tests and the TOST: ``equivalence_tests``), a p_adjust method (R's
p.adjust, results.multiplicity.p_adjust), a transform of the estimates and limits, and the
degrees of freedom of t tests (inf: z).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special

from glmm_binomial.numerics import normal
from glmm_binomial.results.multiplicity import P_ADJUST_METHODS

__all__ = [
    "HYPOTHESIS_KEYWORDS",
    "KEYWORD_ROWS_LIMIT",
    "Tested",
    "Tests",
    "check_hypothesis",
    "equation_draws",
    "equivalence_tests",
    "null_value",
    "apply_hypothesis",
]

FloatArray = NDArray[np.float64]

HYPOTHESIS_KEYWORDS = (
    "pairwise",
    "reference",
    "sequential",
    "revpairwise",
    "revreference",
    "revsequential",
)

KEYWORD_ROWS_LIMIT = 25
"""Most estimates a keyword may compare (marginaleffects' limit: "pairwise" of more grows as
their square); more: narrow the table with by=, variables= or newdata=."""


@dataclass(frozen=True)
class Tested:
    """The tested functions of the estimates: labels, values and their Jacobian in the fixed
    effects (one row per function)."""

    labels: list[str]
    estimate: FloatArray
    jacobian: FloatArray


@dataclass(frozen=True)
class Tests:
    """What the marginal-effect functions test besides each estimate against 0, and how they
    report it: ``hypothesis`` (module docstring), ``equivalence`` bounds (lo, hi) of the TOST,
    a ``p_adjust`` method (results.multiplicity.P_ADJUST_METHODS) of the p-values, and a
    ``transform`` of the estimates and interval limits ("exp", or a function of an array)."""

    hypothesis: Any = None
    equivalence: Any = None
    p_adjust: str | None = None
    transform: Any = None
    df: Any = math.inf

    def lower_tail(self, t: FloatArray) -> FloatArray:
        """P(T <= t) for the tests' reference distribution: the normal (df inf) or Student's
        t with df degrees of freedom."""
        if math.isinf(self.df):
            return normal.upper_tail(-np.asarray(t, dtype=np.float64))
        return np.asarray(special.stdtr(self.df, t), dtype=np.float64)

    def quantile(self, probability: float) -> float:
        """The reference distribution's quantile (intervals estimate -/+ q SE)."""
        if math.isinf(self.df):
            return normal.quantile(probability)
        return float(special.stdtrit(self.df, probability))

    def transformed(self, values: FloatArray) -> FloatArray:
        """``values`` through the transform (the identity without one)."""
        if self.transform is None:
            return values
        function = np.exp if self.transform == "exp" else self.transform
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out = np.asarray(function(values.copy()), dtype=np.float64)
        if out.shape != values.shape:
            raise ValueError(
                f"transform must return one number per estimate ({values.shape[0]}), got "
                f"shape {out.shape}"
            )
        return np.where(np.isfinite(out), out, np.nan)

    def check(self) -> tuple[float, float] | None:
        """ValueError for arguments that cannot be what they say; the equivalence bounds
        (a single number: both bounds)."""
        if (
            isinstance(self.df, (bool, np.bool_))
            or not isinstance(self.df, (int, float, np.integer, np.floating))
            or not self.df > 0
        ):
            raise ValueError(
                f"df must be a positive number of degrees of freedom (inf: z tests), got "
                f"{self.df!r}"
            )
        if self.transform is not None and not (
            self.transform == "exp"
            or (callable(self.transform) and not isinstance(self.transform, type))
        ):
            raise ValueError(
                f"transform must be 'exp' or a function of an array, got {self.transform!r}"
            )
        check_hypothesis(self.hypothesis)
        if self.p_adjust is not None:
            if self.p_adjust not in P_ADJUST_METHODS:
                raise ValueError(
                    f"p_adjust must be one of {', '.join(map(repr, P_ADJUST_METHODS))}, got "
                    f"{self.p_adjust!r}"
                )
            if self.equivalence is not None:
                raise ValueError("equivalence and p_adjust cannot be used together")
        if self.equivalence is None:
            return None
        try:
            bounds = np.atleast_1d(np.asarray(self.equivalence, dtype=np.float64))
        except (TypeError, ValueError):
            bounds = np.array([])
        if (
            isinstance(self.equivalence, (bool, str))
            or bounds.ndim != 1
            or not 1 <= len(bounds) <= 2
            or not np.all(np.isfinite(bounds))
        ):
            raise ValueError(
                "equivalence must be one or two finite numbers (the bounds of the equivalence "
                f"region), got {self.equivalence!r}"
            )
        return float(bounds[0]), float(bounds[-1])


def equivalence_tests(
    estimate: FloatArray, se: FloatArray, bounds: tuple[float, float], tests: Tests | None = None
) -> dict[str, FloatArray]:
    """marginaleffects' (and emmeans') one-sided tests against equivalence bounds (lo, hi):
    non-inferiority z = (estimate - lo) / SE with p = P(Z > z), non-superiority z =
    (estimate - hi) / SE with p = P(Z < z), and the TOST's equivalence p-value, the larger of
    the two (Student's t with ``tests.df`` degrees of freedom where finite)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        noninf = (estimate - bounds[0]) / se
        nonsup = (estimate - bounds[1]) / se
    # no SE (zero or unknown): no statistic, NaN rather than inf
    noninf = np.where(np.isfinite(noninf), noninf, np.nan)
    nonsup = np.where(np.isfinite(nonsup), nonsup, np.nan)
    lower_tail = (tests or Tests()).lower_tail
    p_noninf = lower_tail(-noninf)
    p_nonsup = lower_tail(nonsup)
    return {
        "z_noninf": noninf,
        "z_nonsup": nonsup,
        "p_value_noninf": p_noninf,
        "p_value_nonsup": p_nonsup,
        "p_value_equiv": np.maximum(p_noninf, p_nonsup),
    }


def check_hypothesis(hypothesis: Any) -> None:
    """ValueError for a ``hypothesis`` that cannot be one, said before anything is computed
    (what depends on the table's rows is checked by apply_hypothesis)."""
    if hypothesis is None:
        return
    if _is_number(hypothesis):
        null_value(hypothesis)
        return
    if isinstance(hypothesis, str):
        if hypothesis in HYPOTHESIS_KEYWORDS:
            return
        if "=" not in hypothesis:
            raise ValueError(
                f"hypothesis must be one of {', '.join(map(repr, HYPOTHESIS_KEYWORDS))}, an "
                f"equation such as 'b1 = b2', weights or a number, got {hypothesis!r}"
            )
        sides = hypothesis.split("=")
        if len(sides) != 2 or not sides[0].strip() or not sides[1].strip():
            raise ValueError(
                f"hypothesis: an equation needs one '=' between two sides, got {hypothesis!r}"
            )
        return
    _weights(hypothesis, None)  # numbers in a vector or matrix, finite


def null_value(hypothesis: Any) -> float:
    """The null value of the tests: ``hypothesis`` when it is a single number, else 0."""
    if _is_number(hypothesis):
        value = float(hypothesis)
        if not math.isfinite(value):
            raise ValueError(f"hypothesis: the null value must be finite, got {hypothesis!r}")
        return value
    return 0.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def apply_hypothesis(
    hypothesis: Any,
    estimate: FloatArray,
    jacobian: FloatArray,
    row_labels: Sequence[str] | None,
    terms: Sequence[str] | None,
) -> Tested | None:
    """The functions of ``estimate`` that ``hypothesis`` asks for (module docstring), or None
    when it asks for none (None or a single number). ``jacobian``: the estimates' derivatives
    in the fixed effects (one row per estimate); ``row_labels``: the rows' labels for the
    keywords (None: none tell the rows apart); ``terms``: the rows' term names for equations
    (None: the table has no term column)."""
    if hypothesis is None or _is_number(hypothesis):
        return None
    m = len(estimate)
    if isinstance(hypothesis, str):
        if hypothesis in HYPOTHESIS_KEYWORDS:
            weights, labels = _keyword(hypothesis, m, row_labels)
            return Tested(labels, weights.T @ estimate, weights.T @ jacobian)
        check_hypothesis(hypothesis)  # an equation, or a clear error
        value, gradient = _equation(hypothesis, estimate, terms)
        label = re.sub(r"\s+", "", hypothesis)
        return Tested([label], np.array([value]), gradient[None, :] @ jacobian)
    weights, labels = _weights(hypothesis, m)
    return Tested(labels, weights.T @ estimate, weights.T @ jacobian)


def _weights(hypothesis: Any, m: int | None) -> tuple[FloatArray, list[str]]:
    """A vector or matrix of weights as an m x k matrix and the combinations' labels (m None:
    any number of rows)."""
    labels: list[str] | None = None
    if isinstance(hypothesis, pd.DataFrame):
        labels = [str(c) for c in hypothesis.columns]
        hypothesis = hypothesis.to_numpy()
    try:
        weights = np.array(hypothesis, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "hypothesis must be a keyword, an equation, a number, or weights (a vector with one "
            f"per estimate or a matrix with a row per estimate), got {hypothesis!r}"
        ) from None
    if m is None:
        m = weights.shape[0] if weights.ndim >= 1 else -1
    if weights.ndim == 1:
        if len(weights) != m:
            raise ValueError(
                f"hypothesis: a vector of weights needs one per estimate ({m}), got {len(weights)}"
            )
        weights = weights[:, None]
    elif weights.ndim != 2 or weights.shape[0] != m or weights.shape[1] == 0:
        raise ValueError(
            f"hypothesis: a matrix of weights needs a row per estimate ({m}) and at least one "
            f"column, got shape {weights.shape}"
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError("hypothesis: the weights must be finite numbers")
    return weights, labels or ["custom"] * weights.shape[1]


def _keyword(
    keyword: str, m: int, row_labels: Sequence[str] | None
) -> tuple[FloatArray, list[str]]:
    """The keyword's m x k weights and the k differences' labels."""
    if m > KEYWORD_ROWS_LIMIT:
        raise ValueError(
            f"hypothesis={keyword!r} compares at most {KEYWORD_ROWS_LIMIT} estimates, this "
            f"table has {m}: narrow it with by=, variables= or newdata=, or give weights"
        )
    if m < 2 and keyword != "pairwise" and keyword != "revpairwise":
        pairs: list[tuple[int, int]] = []
    elif keyword in ("pairwise", "revpairwise"):
        pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
        if keyword == "revpairwise":
            pairs = [(j, i) for i, j in pairs]
    elif keyword == "reference":
        pairs = [(i, 0) for i in range(1, m)]
    elif keyword == "revreference":
        pairs = [(0, i) for i in range(1, m)]
    elif keyword == "sequential":
        pairs = [(i + 1, i) for i in range(m - 1)]
    else:  # revsequential
        pairs = [(i, i + 1) for i in range(m - 1)]
    if not pairs:
        raise ValueError(f"hypothesis={keyword!r} needs at least two estimates, this table has {m}")
    usable = row_labels is not None and len(set(row_labels)) == m
    weights = np.zeros((m, len(pairs)))
    labels = []
    for k, (plus, minus) in enumerate(pairs):
        weights[plus, k] += 1.0
        weights[minus, k] -= 1.0
        if usable:
            assert row_labels is not None
            labels.append(f"{row_labels[plus]} - {row_labels[minus]}")
        else:
            labels.append(f"Row {plus + 1} - Row {minus + 1}")
    return weights, labels


_FUNCTIONS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "exp": (np.exp, np.exp),
    "log": (np.log, lambda v: 1.0 / v),
    "sqrt": (np.sqrt, lambda v: 0.5 / np.sqrt(v)),
}
"""The functions an equation may call: value and derivative."""


@dataclass(frozen=True)
class _Equation:
    """An equation read: lhs - (rhs) as a tree over the names ``_b0``, ``_b1``, ... of the
    estimates (``names``: name -> row), and how the user wrote each estimate."""

    body: ast.expr
    names: dict[str, int]
    written: list[str]


def _read_equation(text: str, m: int, terms: Sequence[str] | None) -> _Equation:
    """``text`` (one "=" between two sides) read over m estimates: rows b1, b2, ... or, when
    the terms are distinct and the text names no bN, the terms by name."""
    sides = text.split("=")
    expression = f"({sides[0]}) - ({sides[1]})"
    names: dict[str, int] = {}
    indexed = re.findall(r"\bb(\d+)\b", text)
    if indexed and not (terms and any(re.fullmatch(r"b\d+", t) for t in terms)):
        # b1, b2, ...: the rows in order
        for digits in indexed:
            if not 1 <= int(digits) <= m:
                raise ValueError(
                    f"hypothesis: b{digits} is not an estimate of this table (b1 to b{m}; the "
                    "same call without hypothesis shows them)"
                )
        expression = re.sub(r"\bb(\d+)\b", lambda hit: f"_b{int(hit.group(1)) - 1}", expression)
        names = {f"_b{i}": i for i in range(m)}
        written = [f"b{i + 1}" for i in range(m)]
    else:
        if terms is None or len(set(terms)) != len(terms):
            raise ValueError(
                "hypothesis: name the estimates b1, b2, ... (the rows in order): term names "
                "tell them apart only in a table with one row per term"
            )
        # Longest first, so that a term's name inside another's is not replaced first.
        for i, term in sorted(enumerate(terms), key=lambda item: -len(item[1])):
            pattern = rf"(?<![\w.]){re.escape(term)}(?![\w.])"
            expression = re.sub(pattern, f"_b{i}", expression)
            names[f"_b{i}"] = i
        written = list(terms)
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise ValueError(f"hypothesis: the equation {text!r} cannot be read") from None
    return _Equation(tree.body, names, written)


def _evaluated(
    text: str, estimate: FloatArray, terms: Sequence[str] | None, gradient: bool
) -> tuple[Any, Any]:
    """The equation's lhs - (rhs) at ``estimate`` (one value per row; or rows x draws, one
    value per draw) and, with ``gradient``, its gradient in the estimates (else None). A value
    that is not defined (log of a negative number, ...) is NaN, not an error."""
    equation = _read_equation(text, len(estimate), terms)
    try:
        with np.errstate(all="ignore"):
            return _evaluate(equation.body, estimate, equation.names, gradient)
    except _Unknown as unknown:
        # the placeholders back as the user wrote them
        shown = re.sub(
            r"\b_b(\d+)\b", lambda hit: equation.written[int(hit.group(1))], str(unknown)
        )
        raise ValueError(
            f"hypothesis: {shown} in {text!r} is not an estimate, a number or one of the "
            f"functions {', '.join(_FUNCTIONS)}"
        ) from None


def _equation(
    text: str, estimate: FloatArray, terms: Sequence[str] | None
) -> tuple[float, FloatArray]:
    """The equation's lhs - (rhs) at the estimates and its gradient in them."""
    value, gradient = _evaluated(text, estimate, terms, True)
    if not np.isfinite(value):  # no value: no derivative either
        return math.nan, np.full(len(estimate), math.nan)
    return float(value), np.asarray(gradient, dtype=np.float64)


def equation_draws(text: str, draws: FloatArray, terms: Sequence[str] | None) -> FloatArray:
    """The equation ``text`` (module docstring) at every draw of the estimates (``draws``:
    one row per estimate, one column per draw), all draws at once: one value per draw."""
    check_hypothesis(text)
    value, _ = _evaluated(text, draws, terms, False)
    return np.broadcast_to(np.asarray(value, dtype=np.float64), draws.shape[1:]).copy()


class _Unknown(Exception):
    """A part of an equation that is not an estimate, a number or a known function."""


def _evaluate(
    node: ast.AST, estimate: FloatArray, names: dict[str, int], gradient: bool
) -> tuple[Any, Any]:
    """The value of the expression ``node`` at ``estimate`` (numpy arithmetic: a row per
    estimate, values per draw when it has columns) and, with ``gradient``, its gradient in
    the estimates (forward mode; None without)."""
    m = len(estimate)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        if isinstance(node.value, bool):
            raise _Unknown(repr(node.value))
        return np.float64(node.value), np.zeros(m) if gradient else None
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise _Unknown(repr(node.id))
        i = names[node.id]
        if not gradient:
            return estimate[i], None
        unit = np.zeros(m)
        unit[i] = 1.0
        return estimate[i], unit
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value, d = _evaluate(node.operand, estimate, names, gradient)
        if isinstance(node.op, ast.UAdd):
            return value, d
        return -value, None if d is None else -d
    if isinstance(node, ast.BinOp):
        a, da = _evaluate(node.left, estimate, names, gradient)
        b, db = _evaluate(node.right, estimate, names, gradient)
        if isinstance(node.op, ast.Add):
            return a + b, None if not gradient else da + db
        if isinstance(node.op, ast.Sub):
            return a - b, None if not gradient else da - db
        if isinstance(node.op, ast.Mult):
            return a * b, None if not gradient else da * b + a * db
        if isinstance(node.op, ast.Div):
            return a / b, None if not gradient else (da * b - a * db) / b**2
        if isinstance(node.op, ast.Pow):
            # numpy's power: a negative number to a fractional power is NaN
            value = np.power(a, b)
            if not gradient:
                return value, None
            d = b * np.power(a, b - 1.0) * da if b != 0.0 else np.zeros(m)
            if np.any(db != 0.0):
                d = d + value * np.log(a) * db
            return value, d
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and len(node.args) == 1
        and not node.keywords
    ):
        function, derivative = _FUNCTIONS[node.func.id]
        a, da = _evaluate(node.args[0], estimate, names, gradient)
        return function(a), None if not gradient else derivative(a) * da
    raise _Unknown(repr(ast.unparse(node)))
