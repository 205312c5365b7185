"""Parse lme4 model formulas into a response, a fixed part and random-effect terms.

Parsing never touches data. The fixed part and the left side of every random-effect bar are
returned as formulaic-ready text; the data-dependent work (design matrices, grouping factors) is
done elsewhere.

lme4 semantics implemented here:

* ``cbind(successes, failures) ~ ...`` or ``y ~ ...`` responses;
* random-effect bars ``(expr | group)`` anywhere at the top level of the right-hand side;
* uncorrelated bars ``(1 + x || g)``, expanded into ``(1 | g) + (0 + x | g)``, one term per
  column expression of the left side;
* glmmTMB's structured covariance terms ``ar1(f + 0 | g)``, ``cs(f + 0 | g)``,
  ``diag(f + 0 | g)`` and ``us(f + 0 | g)`` (the last the same as ``(0 + f | g)``), with the
  structure's name in ``RandomTerm.structure`` (model.covariance.STRUCTURES);
* nested grouping ``(1 | a/b)``, expanded into ``(1 | a) + (1 | b:a)`` (lme4's names);
* R's power inside ``I(...)``: ``I(age^2)`` becomes ``I(age**2)``;
* ``offset(expr)`` terms of the right-hand side, any expression inside, returned apart
  (``ParsedFormula.offsets``; ``offset(age/10)`` as formulaic's ``I(age/10)``);
* R's ``a %in% b`` (the interaction ``a:b``, with no main effect of ``b``);
* R-style dotted column names (``age.c``) without backticks: a dotted name that is not called
  as a function is a column name, as in R.

Text returned by the parser is in one canonical spacing (R's deparse style: spaces around
``~``, ``|``, ``+``, ``-``, ``*``, none around ``:``, ``/``, ``^``, ``**``), so formulas that
differ only in whitespace parse to equal results.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from formulaic import Formula

from glmm_binomial.model.covariance import STRUCTURES

__all__ = [
    "ParsedFormula",
    "RandomTerm",
    "ResponseSpec",
    "clean_message",
    "expression_variables",
    "parse_formula",
    "python_source",
    "R_DOTTED_FUNCTIONS",
    "r_name",
    "r_names",
    "r_text",
    "update_formula",
]


@dataclass(frozen=True)
class ResponseSpec:
    """The left side of a formula.

    ``kind="column"``: ``successes`` is the expression of a 0/1 (or proportion) response and
    ``failures`` is None. ``kind="cbind"``: ``successes`` and ``failures`` are the two arguments of
    ``cbind(successes, failures)``, as expression text.
    """

    kind: Literal["column", "cbind"]
    successes: str
    failures: str | None


@dataclass(frozen=True)
class RandomTerm:
    """One (expanded) random-effect term ``(expr | group)``.

    ``expr`` is formulaic-ready text of the left side of the bar (formulaic adds an intercept
    unless ``0 +`` or ``- 1`` is present, as R does). ``group`` names the variables whose
    interaction is the grouping factor. ``text`` is the lme4 text of the term. ``structure``
    names its covariance structure ("us": lme4's unstructured one; "ar1", "cs", "diag": a
    glmmTMB structured term, written ``ar1(expr | group)``).
    """

    expr: str
    group: tuple[str, ...]
    text: str
    structure: str = "us"


@dataclass(frozen=True)
class ParsedFormula:
    """A parsed lme4 formula.

    ``fixed`` is the formulaic right-hand side of the fixed part (``"1"`` when only bars were
    given); ``random`` holds the expanded random-effect terms in formula order; ``variables``
    lists every data column the formula uses, sorted; ``offsets`` holds the formulaic text of the
    argument of each ``offset(...)`` term, added to the linear predictor.
    """

    text: str
    response: ResponseSpec
    fixed: str
    random: tuple[RandomTerm, ...]
    variables: tuple[str, ...]
    offsets: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Tokenizer and canonical rendering
# --------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<space>[\s\ufeff\u200b\u200c\u200d\u2060]+|\#[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<backtick>`[^`]*`)
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<name>(?:[^\W\d]|\.)[\w.]*)  # R_NAME_RE
    | (?P<special>%[^%\s]*%)
    | (?P<op>\*\*|\|\||&&|==|!=|<=|>=|//|[-+*/^:|~(),\[\]{}<>=!&@%])
    """,
    re.VERBOSE,
)

R_NAME_RE = re.compile(r"(?:[^\W\d]|\.)[\w.]*")
"""A name R reads without backticks: a letter (of any script) or a dot, then letters, digits,
"_" and "." (``age.c``, ``âge``); fullmatch it."""

# Binary operators rendered with a space on each side (R deparse style).
_SPACED = {
    "~",
    "|",
    "||",
    "+",
    "-",
    "*",
    "==",
    "!=",
    "<=",
    ">=",
    "<",
    ">",
    "&",
    "=",
    "//",
    "@",
    "%",
}
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {")", "]", "}"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "backtick", "number", "name", "special", "op"
    text: str
    start: int  # offset in the original formula text


_LOOKALIKES = {
    "\u2212": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u201c": '"',
    "\u201d": '"',
    "\u2018": "'",
    "\u2019": "'",
    "\u00d7": "*",
}
"""Characters a word processor or a web page puts where a formula has ASCII (pasted
formulas): the parse error names the one to type."""


def _tokenize(text: str, offset: int = 0) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None:
            character = text[position]
            hint = (
                f" (a typographic {character!r}, as a word processor writes it: type "
                f"{_LOOKALIKES[character]!r})"
                if character in _LOOKALIKES
                else ""
            )
            raise ValueError(
                f"cannot parse formula: unexpected character {character!r} "
                f"at {_excerpt(text, position)!r}{hint}"
            )
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), offset + position))
        position = match.end()
    return tokens


# contr.sum etc. are model.r_contrasts' (r_contrast.sum: the parser's C(f, sum)); pkg.f is
# R's pkg::f (R_NAMESPACES).
_MODULE_PREFIXES = {"np", "numpy", "math", "contr", "r_contrast", "base", "stats", "splines"}
_R_LITERALS = {"TRUE": "True", "FALSE": "False", "Inf": "np.inf"}
_R_SHORT_LOGICAL = frozenset({"T", "F"})
"""R's T and F: an argument's value (raw = T) names no column unless the data has one
(model.transforms' context binds them to TRUE and FALSE, as R's base does)."""
# R's functions with a dot in their name and the Python names model.transforms' context has
# for them (a column name R reads, ``age.c``, is backticked instead; r_text maps them back).
R_DOTTED_FUNCTIONS = {
    "as.numeric": "as_numeric",
    "as.integer": "as_integer",
    "as.factor": "as_factor",
    "as.character": "as_character",
    "as.logical": "as_logical",
    "as.vector": "as_vector",
    "is.na": "is_na",
}
R_NAMESPACES = ("base", "stats", "splines")
"""Packages whose functions a formula may call qualified (splines::ns(x, 3)): the parser reads
pkg::f as pkg.f, an attribute of model.transforms' namespace objects; r_text writes :: back."""
_R_ARITHMETIC = {"%%": "%", "%/%": "//"}  # R's modulo and integer division in I()


def _r_namespaces(tokens: list[_Token]) -> list[_Token]:
    """R's qualified calls pkg::f (pkg one of R_NAMESPACES, written without spaces) as one
    name token pkg.f (a dotted f by its Python name, R_DOTTED_FUNCTIONS)."""
    out: list[_Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        window = tokens[index : index + 4]
        if (
            len(window) == 4
            and token.kind == "name"
            and token.text in R_NAMESPACES
            and window[1].text == ":"
            and window[2].text == ":"
            and window[3].kind == "name"
            and window[3].start == token.start + len(token.text) + 2
        ):
            function = R_DOTTED_FUNCTIONS.get(window[3].text, window[3].text)
            out.append(_Token("name", f"{token.text}.{function}", token.start))
            index += 4
            continue
        out.append(token)
        index += 1
    return out


R_CONTRAST_NAMES = ("treatment", "sum", "helmert", "poly", "SAS")
"""The bare names R's C() reads as a contrast (C(f, sum) is C(f, "contr.sum")): the parser
writes them r_contrast.<name> (model.r_contrasts), r_text writes them back."""


def _r_contrast_names(tokens: list[_Token]) -> list[_Token]:
    """C()'s contrast given as a bare name (``C(f, sum)``, ``C(f, contr = helmert)``) as the name
    token r_contrast.<name>: a name of R's contrast list, not a column."""
    out = list(tokens)
    position = {id(token): index for index, token in enumerate(tokens)}
    for index, token in enumerate(tokens[:-1]):
        if not (token.kind == "name" and token.text == "C" and tokens[index + 1].text == "("):
            continue
        close = _matching(tokens, index + 1)
        for number, (_, argument) in enumerate(_split_top(tokens[index + 2 : close], {","})):
            if len(argument) == 3 and argument[0].text == "contr" and argument[1].text == "=":
                argument = argument[2:]
            elif number != 1:
                continue
            word = argument[0] if len(argument) == 1 else None
            if word is not None and word.kind == "name" and word.text in R_CONTRAST_NAMES:
                out[position[id(word)]] = _Token("name", f"r_contrast.{word.text}", word.start)
    return out


def _r_tokens(tokens: list[_Token]) -> list[_Token]:
    """R spellings formulaic does not read: ``a %in% b`` -> ``a:b``; ``TRUE``/``FALSE`` ->
    ``True``/``False`` (``poly(x, 2, raw = TRUE)``), ``Inf`` -> ``np.inf``; ``%%`` and ``%/%``
    -> ``%`` and ``//``; a dotted keyword argument (``include.lowest = TRUE``) -> its Python
    name (``include_lowest``); R's dotted functions (``as.numeric(f)``) -> their Python names
    (R_DOTTED_FUNCTIONS); any other dotted name that is not called (``age.c``) -> the
    backticked column name `` `age.c` ``, as R reads it. r_text maps these back."""
    out: list[_Token] = []
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.kind == "special" and token.text == "%in%":
            out.append(_Token("op", ":", token.start))
        elif token.kind == "special" and token.text in _R_ARITHMETIC:
            out.append(_Token("op", _R_ARITHMETIC[token.text], token.start))
        elif (
            token.kind == "name"
            and token.text in R_DOTTED_FUNCTIONS
            and following is not None
            and following.text == "("
        ):
            out.append(_Token("name", R_DOTTED_FUNCTIONS[token.text], token.start))
        elif token.kind == "name" and token.text in _R_LITERALS:
            out.append(_Token("name", _R_LITERALS[token.text], token.start))
        elif (
            token.kind == "name"
            and "." in token.text
            and following is not None
            and (following.kind == "op" and following.text == "=")
        ):
            # R's dotted keyword argument (cut(x, 3, include.lowest = TRUE)): Python's name.
            out.append(_Token("name", token.text.replace(".", "_"), token.start))
        elif (
            token.kind == "name"
            and "." in token.text
            and (following is None or following.text != "(")
            and token.text.split(".")[0] not in _MODULE_PREFIXES
        ):
            out.append(_Token("backtick", f"`{token.text}`", token.start))
        else:
            out.append(token)
    return out


def _check_adjacent(text: str, tokens: list[_Token]) -> None:
    """Two operands with no operator between them: most often a column name with a space."""
    for previous, token in zip(tokens[:-1], tokens[1:], strict=True):
        if _is_operand_end(previous) and token.kind in {"name", "number", "backtick", "string"}:
            pair = text[previous.start : token.start + len(token.text)]
            raise ValueError(
                f"cannot parse formula: no operator between {previous.text!r} and "
                f"{token.text!r} in {pair!r}; write a column name with spaces or symbols in "
                f"backticks, as in `{pair}`"
            )


def _excerpt(text: str, position: int, width: int = 30) -> str:
    return text[position : position + width]


def _is_operand_end(token: _Token) -> bool:
    """True if ``token`` can end an operand (so a following ``-``/``+`` is binary)."""
    return token.kind in {"string", "backtick", "number", "name"} or token.text in _CLOSERS


def _render(tokens: list[_Token]) -> str:
    """Render tokens in canonical (R deparse-like) spacing."""
    out: list[str] = []
    previous: _Token | None = None
    for token in tokens:
        text = token.text
        unary = text in {"-", "+"} and (previous is None or not _is_operand_end(previous))
        if token.kind == "special" or (text in _SPACED and not unary):
            out.append(f" {text} ")
        elif text == ",":
            out.append(", ")
        else:
            out.append(text)
        previous = token
    rendered = "".join(out)
    rendered = re.sub(r" {2,}", " ", rendered)
    rendered = re.sub(r"([(\[{]) ", r"\1", rendered)
    rendered = re.sub(r" ([)\]},])", r"\1", rendered)
    return rendered.strip()


def _check_balance(text: str, tokens: list[_Token]) -> None:
    stack: list[_Token] = []
    for token in tokens:
        if token.text in _OPENERS:
            stack.append(token)
        elif token.text in _CLOSERS:
            if not stack or _OPENERS[stack[-1].text] != token.text:
                raise ValueError(
                    f"unbalanced parentheses in formula: unexpected {token.text!r} "
                    f"in {text[: token.start + 1]!r}"
                )
            stack.pop()
    if stack:
        start = stack[-1].start
        raise ValueError(
            f"unbalanced parentheses in formula: {stack[-1].text!r} is never closed "
            f"in {text[start:]!r}"
        )


def _matching(tokens: list[_Token], index: int) -> int:
    """Index of the token closing the bracket opened at ``tokens[index]``."""
    depth = 0
    for j in range(index, len(tokens)):
        if tokens[j].text in _OPENERS:
            depth += 1
        elif tokens[j].text in _CLOSERS:
            depth -= 1
            if depth == 0:
                return j
    raise AssertionError("unbalanced brackets after balance check")  # pragma: no cover


def _is_call(tokens: list[_Token], name: str) -> bool:
    """Whether ``tokens`` are exactly one call ``name(...)`` (brackets closing at the end)."""
    return (
        len(tokens) >= 3
        and tokens[0].kind == "name"
        and tokens[0].text == name
        and tokens[1].text == "("
        and _matching(tokens, 1) == len(tokens) - 1
    )


def _split_top(
    tokens: list[_Token], separators: set[str]
) -> list[tuple[_Token | None, list[_Token]]]:
    """Split at top-level separator tokens; each piece carries the separator before it."""
    pieces: list[tuple[_Token | None, list[_Token]]] = []
    current: list[_Token] = []
    separator: _Token | None = None
    for token, level in zip(tokens, _levels(tokens), strict=True):
        if level == 0 and token.text in separators:
            pieces.append((separator, current))
            current = []
            separator = token
        else:
            current.append(token)
    pieces.append((separator, current))
    return pieces


def _levels(tokens: list[_Token]) -> list[int]:
    """Each token's bracket depth: 0 outside every bracket (a top-level bracket itself is at
    0, what it encloses at 1)."""
    out: list[int] = []
    depth = 0
    for token in tokens:
        if token.text in _CLOSERS:
            depth -= 1
        out.append(depth)
        if token.text in _OPENERS:
            depth += 1
    return out


def _source(text: str, tokens: list[_Token]) -> str:
    """The original text spanned by ``tokens``."""
    if not tokens:
        return ""
    last = tokens[-1]
    return text[tokens[0].start : last.start + len(last.text)]


R_OPERATOR_FUNCTIONS = {
    "!": "r_not",
    "&": "r_and",
    "|": "r_or",
    "%in%": "r_in",
    "(": "r_paren",
    ":": "r_seq",
}
"""R's logical operators, value matching and parentheses inside an expression, as the calls of
model.transforms' context that evaluate them (Python's & and | bind tighter than a comparison,
R's looser: x > 0 & b is (x > 0) & b in R; parentheses as a call, the identity, because
formulaic drops those Python does not need, which R's names keep: I(!(x > 0))TRUE); r_text
writes them back."""

_R_SCALAR_LOGICAL = {"&&": "&", "||": "|"}


def _r_expressions(tokens: list[_Token]) -> list[_Token]:
    """The formula's R expressions in Python's spelling: the response (left of ``~``) and
    every argument of a call (``I(...)``, ``log(...)``, ``ifelse(...)``; not a covariance
    structure's ``diag(x | g)``, whose argument is formula syntax, but the calls inside it),
    where R's operators mean arithmetic and logic rather than model terms: ``^`` -> ``**``,
    ``a & b`` -> ``r_and(a, b)``, ``a | b`` -> ``r_or(a, b)``, ``!a`` -> ``r_not(a)`` with
    R's precedence (``!`` below a comparison, ``&`` below ``!``, ``|`` lowest), ``a %in% b``
    -> ``r_in(a, b)`` (value matching; at the formula's top level %in% is nesting)."""
    sides = _split_top(tokens, {"~"})
    if len(sides) == 2 and sides[0][1]:
        left = _r_expression(sides[0][1])
        tilde = sides[1][0]
        assert tilde is not None
        return [*left, tilde, *_r_calls(sides[1][1])]
    return _r_calls(tokens)


def _r_calls(tokens: list[_Token]) -> list[_Token]:
    """Formula-level tokens with each call's arguments made Python (_r_arguments); a
    covariance structure's call is formula syntax inside: only its calls are."""
    out: list[_Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.kind == "name" and following is not None and following.text == "(":
            close = _matching(tokens, index + 1)
            inner = tokens[index + 2 : close]
            if token.text in STRUCTURES or (
                token.text in _OTHER_GLMMTMB_STRUCTURES and _top_level_bars(inner)
            ):
                inner = _r_calls(inner)
            else:
                inner = _r_arguments(inner)
            out += [token, following, *inner, tokens[close]]
            index = close + 1
            continue
        if token.text in _OPENERS:
            close = _matching(tokens, index)
            out += [token, *_r_calls(tokens[index + 1 : close]), tokens[close]]
            index = close + 1
            continue
        out.append(token)
        index += 1
    return out


def _r_arguments(tokens: list[_Token]) -> list[_Token]:
    """A call's argument list with each argument (the value of ``name = value``) made Python
    (_r_expression)."""
    out: list[_Token] = []
    for separator, piece in _split_top(tokens, {","}):
        if separator is not None:
            out.append(separator)
        if len(piece) >= 2 and piece[0].kind == "name" and piece[1].text == "=":
            out += [*piece[:2], *_r_expression(piece[2:])]
        else:
            out += _r_expression(piece)
    return out


def _r_call(name: str, at: _Token, *arguments: list[_Token]) -> list[_Token]:
    """Tokens of the call name(arguments...), placed at `at` (for error excerpts)."""
    out = [_Token("name", name, at.start), _Token("op", "(", at.start)]
    for index, argument in enumerate(arguments):
        if index:
            out.append(_Token("op", ",", at.start))
        out += argument
    return [*out, _Token("op", ")", at.start)]


def _r_expression(tokens: list[_Token]) -> list[_Token]:
    """One R expression in Python's spelling (see _r_expressions): ``|`` lowest, then ``&``,
    then a prefix ``!``, each left-associative."""
    top = [t.text for t, level in zip(tokens, _levels(tokens), strict=True) if level == 0]
    for scalar, elementwise in _R_SCALAR_LOGICAL.items():
        if scalar in top:
            raise ValueError(
                f"'{scalar}' compares single values in R (the first of each side); use "
                f"'{elementwise}' to combine the conditions row by row"
            )
    return _r_binary(tokens, "|", lambda piece: _r_binary(piece, "&", _r_not))


def _r_binary(
    tokens: list[_Token], operator: str, operand: Callable[[list[_Token]], list[_Token]]
) -> list[_Token]:
    """tokens split at the top-level `operator`, each piece made Python by `operand`, joined
    as left-nested calls of R_OPERATOR_FUNCTIONS[operator]."""
    pieces = _split_top(tokens, {operator})
    result = operand(pieces[0][1])
    for separator, piece in pieces[1:]:
        assert separator is not None
        result = _r_call(R_OPERATOR_FUNCTIONS[operator], separator, result, operand(piece))
    return result


def _r_not(tokens: list[_Token]) -> list[_Token]:
    """A prefix ``!`` at the top level: its operand is the rest of the piece (R's ``!``
    binds below a comparison: ``!x > 0`` is ``!(x > 0)``)."""
    for index, (token, level) in enumerate(zip(tokens, _levels(tokens), strict=True)):
        if level == 0 and token.text == "!":
            operand = _r_not(tokens[index + 1 :])
            head = _r_operand(tokens[:index])
            return [*head, *_r_call(R_OPERATOR_FUNCTIONS["!"], token, operand)]
    return _r_operand(tokens)


def _r_operand(tokens: list[_Token]) -> list[_Token]:
    """Tokens without a top-level ``&``, ``|`` or ``!``: the brackets' contents made Python
    (calls' arguments; a parenthesised expression -> ``r_paren(...)``), ``^`` -> ``**``, then
    each top-level ``a %in% b`` -> ``r_in(a, b)`` (a and b the atoms beside it: a name,
    number or string, with its call or index brackets, or a bracketed group)."""
    out: list[_Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.text in _OPENERS:
            close = _matching(tokens, index)
            inner = tokens[index + 1 : close]
            called = bool(out) and out[-1].kind == "name" and token.text == "("
            if called or token.text != "(":
                out += [token, *_r_arguments(inner), tokens[close]]
            else:
                out += _r_call(R_OPERATOR_FUNCTIONS["("], token, _r_expression(inner))
            index = close + 1
            continue
        out.append(_Token("op", "**", token.start) if token.text == "^" else token)
        index += 1
    out = _r_sequences(out)
    while True:
        levels = _levels(out)
        at = next((i for i, t in enumerate(out) if levels[i] == 0 and t.text == "%in%"), None)
        if at is None:
            return out
        start = _atom_start(out, at)
        end = _atom_end(out, at + 1)
        if start == at or end == at + 1:
            raise ValueError('\'%in%\' needs a value on each side, as in f %in% c("a", "b")')
        call = _r_call(R_OPERATOR_FUNCTIONS["%in%"], out[at], out[start:at], out[at + 1 : end])
        out = [*out[:start], *call, *out[end:]]


def _number_end(tokens: list[_Token], at: int) -> int | None:
    """One past the number at `at`, with its unary minus (-5 of -5:5), or None."""
    first = at + 1 if at < len(tokens) and tokens[at].text == "-" else at
    return first + 1 if first < len(tokens) and tokens[first].kind == "number" else None


def _number_start(tokens: list[_Token], at: int) -> int | None:
    """Where the number ending at `at` starts, with its unary minus (R's -5:5 is (-5):5; the
    minus of x - 1:3 is binary), or None when no number ends there."""
    if at < 0 or tokens[at].kind != "number":
        return None
    sign = at - 1
    unary = (
        sign >= 0
        and tokens[sign].text == "-"
        and (
            sign == 0 or tokens[sign - 1].kind in ("op", "special") and tokens[sign - 1].text != ")"
        )
    )
    return sign if unary else at


def _r_sequences(tokens: list[_Token]) -> list[_Token]:
    """Each top-level ``a:b`` of two numbers (R's sequence, as in ``x %in% 1:10``) ->
    ``r_seq(a, b)``. Between names, ``:`` is left as it is (an interaction)."""
    out = list(tokens)
    while True:
        levels = _levels(out)
        found = None
        for i, token in enumerate(out):
            if token.text != ":" or levels[i] != 0:
                continue
            start, end = _number_start(out, i - 1), _number_end(out, i + 1)
            if start is not None and end is not None:
                found = (start, i, end)
                break
        if found is None:
            return out
        start, colon, end = found
        left, right = out[start:colon], out[colon + 1 : end]
        call = _r_call(R_OPERATOR_FUNCTIONS[":"], out[colon], left, right)
        out = [*out[:start], *call, *out[end:]]


def _atom_start(tokens: list[_Token], before: int) -> int:
    """Where the atom ending just before index `before` starts (before itself when there is
    none): a bracketed group with the name it calls, or one name, number, string."""
    index = before - 1
    if index < 0:
        return before
    if tokens[index].text in _CLOSERS:
        # Its opener: the last bracket before it at the same depth.
        levels = _levels(tokens)
        index = max(
            j for j in range(index) if tokens[j].text in _OPENERS and levels[j] == levels[index]
        )
        if index > 0 and tokens[index - 1].kind == "name":
            index -= 1
        return index
    if tokens[index].kind in {"name", "number", "string", "backtick"}:
        return index
    return before


def _atom_end(tokens: list[_Token], start: int) -> int:
    """Where the atom starting at `start` ends (exclusive; start itself when there is none):
    a name with its call or index brackets, a number, a string, or a bracketed group."""
    if start >= len(tokens):
        return start
    token = tokens[start]
    if token.text in _OPENERS:
        return _matching(tokens, start) + 1
    if token.kind not in {"name", "number", "string", "backtick"}:
        return start
    end = start + 1
    while end < len(tokens) and tokens[end].text in {"(", "["}:
        end = _matching(tokens, end) + 1
    return end


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def parse_formula(text: str) -> ParsedFormula:
    """Parse an lme4 formula such as ``"use ~ age + I(age^2) + urban + (1 + urban | district)"``.

    Returns the response, the formulaic fixed part, the expanded random-effect terms and the data
    columns used. Raises ``ValueError`` quoting the offending part of the formula when the text
    is not a valid binomial mixed-model formula.
    """
    if not isinstance(text, str):
        raise TypeError(f"formula must be a string, not {type(text).__name__}")
    tokens = _tokenize(text)
    _check_balance(text, tokens)
    if any(t.kind == "name" and t.text == "." for t in tokens):
        # A "." standing alone (not 1.5, .5 or x.y, which are one token each).
        raise ValueError(
            "the formula uses '.' (R's 'every other column'), which is not expanded here: name "
            "the columns (in lme4 it would make the grouping columns fixed effects too)"
        )
    tokens = _r_tokens(_r_expressions(_r_contrast_names(_r_namespaces(tokens))))

    sides = _split_top(tokens, {"~"})
    if len(sides) == 1:
        raise ValueError(f"formula has no '~' separating response and predictors: {text!r}")
    if len(sides) > 2:
        second = sides[2][0]
        assert second is not None
        raise ValueError(
            f"formula has more than one '~': {text!r} (second at {text[second.start :]!r})"
        )
    left, right = sides[0][1], sides[1][1]
    _check_adjacent(text, tokens)
    if not left:
        raise ValueError(f"formula has an empty response (left of '~'): {text!r}")
    if not right:
        raise ValueError(f"formula has no predictors (right of '~'): {text!r}")

    response = _parse_response(text, left)
    fixed_pieces, random_terms = _parse_rhs(text, right)
    fixed_pieces, offsets = _split_offsets(text, fixed_pieces)
    fixed = _render_sum(fixed_pieces) if fixed_pieces else "1"
    variables = _collect_variables(text, left, fixed, random_terms, offsets)
    return ParsedFormula(
        text=text,
        response=response,
        fixed=fixed,
        random=tuple(random_terms),
        variables=variables,
        offsets=offsets,
    )


def _split_offsets(
    text: str, pieces: list[tuple[str, list[_Token]]]
) -> tuple[list[tuple[str, list[_Token]]], tuple[str, ...]]:
    """Take ``offset(expr)`` terms out of the fixed part (R adds them to the linear predictor)."""
    kept: list[tuple[str, list[_Token]]] = []
    offsets: list[str] = []
    for sign, piece in pieces:
        if _is_call(piece, "offset"):
            if sign == "-" or len(piece) == 3:
                raise ValueError(
                    f"offset term must be added with '+' and name an expression, as in "
                    f"'+ offset(log(n))': {_source(text, piece)!r}"
                )
            offsets.append(_offset_expression(piece[2:-1]))
        else:
            kept.append((sign, piece))
    return kept, tuple(offsets)


def _offset_expression(tokens: list[_Token]) -> str:
    """The formulaic text of an offset's argument: any expression, as R evaluates it. A column
    name or one function call is a formulaic term already; anything else (``age/10``,
    ``log(n) + 1``, ``x^2``) is wrapped in ``I(...)``, formulaic's "evaluate as written", so
    that formula operators in it keep their arithmetic meaning."""
    single = (len(tokens) == 1 and tokens[0].kind in {"name", "backtick"}) or (
        len(tokens) >= 3
        and tokens[0].kind == "name"
        and tokens[1].text == "("
        and _matching(tokens, 1) == len(tokens) - 1
    )
    if not single:
        start = tokens[0].start
        tokens = [_Token("name", "I", start), _Token("op", "(", start), *tokens]
        tokens.append(_Token("op", ")", tokens[-1].start))
    return _render(tokens)


def _parse_response(text: str, tokens: list[_Token]) -> ResponseSpec:
    if _is_call(tokens, "cbind"):
        arguments = _split_top(tokens[2:-1], {","})
        if len(arguments) != 2 or not all(piece for _, piece in arguments):
            raise ValueError(
                "cbind() response needs exactly two arguments (successes, failures): "
                f"{_source(text, tokens)!r}"
            )
        # R's cbind takes names for its columns (cbind(dead = k, alive = n - k)): dropped.
        pieces = [
            piece[2:]
            if len(piece) > 2 and piece[0].kind == "name" and piece[1].text == "="
            else piece
            for _, piece in arguments
        ]
        successes, failures = (_render(piece) for piece in pieces)
        return ResponseSpec(kind="cbind", successes=successes, failures=failures)
    if any(token.text == "|" or token.text == "||" for token in tokens):
        raise ValueError(f"response contains '|': {_source(text, tokens)!r}")
    return ResponseSpec(kind="column", successes=_render(tokens), failures=None)


def _is_wrapped(tokens: list[_Token]) -> bool:
    """True if ``tokens`` is one parenthesised group ``( ... )`` (not a function call)."""
    return len(tokens) >= 2 and tokens[0].text == "(" and _matching(tokens, 0) == len(tokens) - 1


def _top_level_bars(tokens: list[_Token]) -> list[_Token]:
    depth = 0
    bars = []
    for token in tokens:
        if token.text in _OPENERS:
            depth += 1
        elif token.text in _CLOSERS:
            depth -= 1
        elif depth == 0 and token.text in {"|", "||"}:
            bars.append(token)
    return bars


def _contains_bar_group(tokens: list[_Token]) -> bool:
    """True if a non-call parenthesised group anywhere in ``tokens`` holds a top-level bar."""
    for index, token in enumerate(tokens):
        if token.text != "(":
            continue
        if index > 0 and tokens[index - 1].kind == "name":
            continue  # a function call such as I(...)
        close = _matching(tokens, index)
        if _top_level_bars(tokens[index + 1 : close]):
            return True
    return False


def _parse_rhs(
    text: str, tokens: list[_Token]
) -> tuple[list[tuple[str, list[_Token]]], list[RandomTerm]]:
    """Split the right-hand side into fixed pieces (sign, tokens) and random-effect terms."""
    fixed: list[tuple[str, list[_Token]]] = []
    random: list[RandomTerm] = []
    for separator, piece in _split_top(tokens, {"+", "-"}):
        sign = "+" if separator is None else separator.text
        if not piece:
            if separator is None:
                continue  # leading unary sign: "-1 + x" or "+x"
            raise ValueError(
                f"formula has a dangling {sign!r} at {text[max(0, separator.start - 20) :]!r}"
            )
        term = _random_term(piece)
        if term is not None:
            if sign == "-":
                raise ValueError(
                    f"random-effect term cannot be subtracted: {_source(text, piece)!r}"
                )
            inner, structure = term
            if structure is not None:
                random.extend(_parse_bar(text, inner[1:], structure, _source(text, inner)))
            else:
                random.extend(_parse_bar(text, inner))
            continue
        if _top_level_bars(piece):
            raise ValueError(
                "random-effect term must be enclosed in parentheses, as in '(1 | g)': "
                f"{_source(text, piece)!r}"
            )
        if _contains_bar_group(piece):
            raise ValueError(
                "random-effect term must be a separate '+' term of the formula: "
                f"{_source(text, piece)!r}"
            )
        levels = _levels(piece)
        top = [t for t, level in zip(piece, levels, strict=True) if level == 0]
        if any(t.text in ("%", "//") for t in top):
            # R reads x %% 2 as one variable; formulaic's parser stops at the % (its quote).
            written = _source(text, piece)
            raise ValueError(
                f"write R's %% and %/% inside I() in a formula's terms: I({written}) for "
                f"{written!r}"
            )
        fixed.append((sign, piece))
    return fixed, random


def update_formula(old: str, new: str) -> str:
    """R's update.formula for lme4 formulas: `new` with each "." standing for that side of
    `old` ("~ . + x" or ". ~ . + x": add a term; ". ~ . - x": drop one; "log(.) ~ .": a new
    response from the old; ". ~ . - (1 | g)": drop a random-effect term). Fixed terms keep
    their signs (formulaic's expansion drops a "- x" from "x * z" as R's terms() does; the
    intercept as "- 1"/"0 + "); random-effect terms are added once and dropped where they
    match (spaces and redundant parentheses aside). The text of the updated formula."""
    if not isinstance(new, str):
        raise ValueError(f"formula must be a string such as '. ~ . - x', not {type(new).__name__}")
    old_left, old_right = _sides(old, "the fit's formula")
    new_tokens = _tokenize(new)
    _check_balance(new, new_tokens)
    sides = _split_top(new_tokens, {"~"})
    if len(sides) != 2:
        raise ValueError(
            f"formula must have one '~', as in '. ~ . - x' (the fit's formula is {old!r}): {new!r}"
        )
    left_tokens, right_tokens = sides[0][1], sides[1][1]
    old_left_text = _source(old, old_left)
    if not left_tokens or [t.text for t in left_tokens] == ["."]:
        left = old_left_text
    else:
        simple = len(old_left) == 1 or _is_call(old_left, old_left[0].text)
        stand_in = old_left_text if simple else f"({old_left_text})"
        # Each "." of the new response replaced in its text, from the right.
        left = _source(new, left_tokens)
        first = left_tokens[0].start
        for t in reversed(left_tokens):
            if t.kind == "name" and t.text == ".":
                left = left[: t.start - first] + stand_in + left[t.start - first + 1 :]
    fixed: list[tuple[str, str]] = []
    random: list[str] = []
    for sign, text, is_random in _signed_pieces(new, right_tokens):
        if text == ".":
            if sign == "-":
                raise ValueError(f"formula {new!r}: '- .' would drop every term")
            for old_sign, old_text, old_random in _signed_pieces(old, old_right):
                _apply_piece(fixed, random, old_sign, old_text, old_random)
            continue
        _apply_piece(fixed, random, sign, text, is_random)
    if any(sign == "-" and text.strip() != "1" for sign, text in fixed):
        fixed = _expanded_terms(fixed)
    pieces = [f"{sign} {text}" for sign, text in fixed] + [f"+ {text}" for text in random]
    right = " ".join(pieces).removeprefix("+ ") if pieces else "1"
    return f"{left} ~ {right}"


def _expanded_terms(fixed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Fixed pieces with a term taken away written as R's update writes them: the terms left
    after the expansion (". ~ . - age:urban" of age * urban: age + urban), "- 1" for no
    intercept, offsets as written."""
    offsets = [(sign, text) for sign, text in fixed if text.startswith("offset(")]
    rest = [(sign, text) for sign, text in fixed if not text.startswith("offset(")]
    body = " ".join(f"{sign} {text}" for sign, text in rest).removeprefix("+ ") or "1"
    parsed = parse_formula(f"y ~ {body} + (1 | g)")
    terms = [str(term) for term in Formula(parsed.fixed)]
    out = [("+", r_text(term)) for term in terms if term != "1"]
    if "1" not in terms:
        out.append(("-", "1"))
    return (out or [("+", "1")]) + offsets


def _sides(text: str, what: str) -> tuple[list[_Token], list[_Token]]:
    tokens = _tokenize(text)
    sides = _split_top(tokens, {"~"})
    if len(sides) != 2 or not sides[0][1] or not sides[1][1]:
        raise ValueError(f"{what} must have a response and predictors: {text!r}")
    return sides[0][1], sides[1][1]


def _signed_pieces(text: str, tokens: list[_Token]) -> list[tuple[str, str, bool]]:
    """A right-hand side's top-level terms: (sign, text as written, whether a random-effect
    term)."""
    out = []
    for separator, piece in _split_top(tokens, {"+", "-"}):
        if not piece:
            if separator is None:
                continue
            raise ValueError(f"formula has a dangling {separator.text!r}: {text!r}")
        term = _random_term(piece)
        sign = "+" if separator is None else separator.text
        out.append((sign, _source(text, piece if term is None else term[0]), term is not None))
    return out


def _apply_piece(
    fixed: list[tuple[str, str]], random: list[str], sign: str, text: str, is_random: bool
) -> None:
    key = "".join(text.split())
    if not is_random:
        # A term given again is not repeated; one given with the other sign is cancelled
        # (". ~ . - livch" leaves no "livch - livch"); anything else is left to the expansion.
        same = [(s, t) for s, t in fixed if "".join(t.split()) == key]
        if any(s == sign for s, _ in same):
            return
        if same:
            fixed.remove(same[0])
        else:
            fixed.append((sign, text))
        return
    present = [r for r in random if "".join(r.split()) == key]
    if sign == "+" and not present:
        random.append(text)
    elif sign == "-":
        for r in present:
            random.remove(r)


def _random_term(piece: list[_Token]) -> tuple[list[_Token], str | None] | None:
    """A top-level piece of a right-hand side as a random-effect term: its tokens without
    redundant parentheses (((1 | g)) -> (1 | g)) and its structure's name (ar1(..), None for a
    bar in parentheses); None for a fixed-effects piece."""
    inner = piece
    while _is_wrapped(inner) and _is_wrapped(inner[1:-1]):
        inner = inner[1:-1]
    structure = _structure_call(inner)
    if structure is not None or (_is_wrapped(inner) and _top_level_bars(inner[1:-1])):
        return inner, structure
    return None


def _structure_call(tokens: list[_Token]) -> str | None:
    """The structure's name when `tokens` are one glmmTMB term ``ar1(lhs | group)`` (also cs,
    diag, us), else None."""
    if len(tokens) < 3 or tokens[0].kind != "name":
        return None
    name = tokens[0].text
    if name not in STRUCTURES and name not in _OTHER_GLMMTMB_STRUCTURES:
        return None
    if not _is_call(tokens, name) or not _top_level_bars(tokens[2:-1]):
        return None
    if name not in STRUCTURES:
        # Was a fixed term to formulaic (or "no random-effect term" when it was the only one).
        raise ValueError(
            f"covariance structure {name}() in '{_render(tokens)}' is one of glmmTMB's that "
            f"glmm-binomial does not fit; known: {', '.join(STRUCTURES)} (written as "
            "us(terms | group)), or lme4's (terms | group) and (terms || group)"
        )
    return name


_OTHER_GLMMTMB_STRUCTURES = frozenset(
    {"homdiag", "homcs", "hetar1", "ou", "exp", "gau", "mat", "toep", "rr", "propto", "equalto"}
)
"""glmmTMB's covariance structures besides STRUCTURES: refused by name, not read as a call."""


def _render_sum(pieces: list[tuple[str, list[_Token]]]) -> str:
    parts: list[str] = []
    for index, (sign, piece) in enumerate(pieces):
        body = _render(piece)
        if index == 0:
            parts.append(f"-{body}" if sign == "-" else body)
        else:
            parts.append(f"{sign} {body}")
    return " ".join(parts)


def _parse_bar(
    text: str, wrapped: list[_Token], structure: str = "us", call_text: str = ""
) -> list[RandomTerm]:
    """Expand one ``(lhs | group)`` or ``(lhs || group)`` into random-effect terms; with a
    structure other than lme4's ("us" written as us(...) included), ``name(lhs | group)``."""
    term_text = call_text or _source(text, wrapped)
    inner = wrapped[1:-1]
    bars = _top_level_bars(inner)
    if len(bars) > 1:
        raise ValueError(f"random-effect term has more than one bar: {term_text!r}")
    bar = bars[0]
    position = inner.index(bar)
    lhs, rhs = inner[:position], inner[position + 1 :]
    if not lhs:
        raise ValueError(f"random-effect term has an empty left side: {term_text!r}")
    if not rhs:
        raise ValueError(f"random-effect term has an empty grouping factor: {term_text!r}")
    groups = _parse_groups(text, rhs, term_text)
    expr_tokens = lhs
    if call_text and bar.text == "||":
        raise ValueError(
            f"a {structure}() term takes a single bar '|' (its structure sets the "
            f"correlations): {term_text!r}"
        )
    exprs = [_render(expr_tokens)] if bar.text == "|" else _expand_uncorrelated(expr_tokens)
    if not exprs or any(_has_no_terms(expr) for expr in exprs):
        raise ValueError(f"random-effect term has no columns: {term_text!r}")
    prefix = structure if call_text else ""
    return [
        RandomTerm(
            expr=expr,
            group=group,
            text=f"{prefix}({expr} | {_group_text(group)})",
            structure=structure,
        )
        for expr in exprs
        for group in groups
    ]


def _has_no_terms(expr: str) -> bool:
    try:
        return len(list(Formula(expr))) == 0
    except Exception as error:  # formulaic raises several exception types
        raise ValueError(
            f"cannot parse random-effect expression {expr!r}: {clean_message(error)}"
        ) from None


def _group_text(group: tuple[str, ...]) -> str:
    return ":".join(name if R_NAME_RE.fullmatch(name) else f"`{name}`" for name in group)


def _group_name(token: _Token) -> str:
    return token.text[1:-1] if token.kind == "backtick" else token.text


_GROUPING_CALLS = frozenset({"factor", "as_factor", "as.factor"})
"""Calls around a grouping variable that change nothing (its values are labels already)."""


def _parse_groups(text: str, tokens: list[_Token], term_text: str) -> list[tuple[str, ...]]:
    """``g`` -> [(g,)]; ``a:b`` -> [(a, b)]; ``a/b`` -> [(a,), (b, a)] (lme4's b:a)."""
    while _is_wrapped(tokens):
        tokens = tokens[1:-1]
    nested: list[tuple[str, ...]] = []
    for separator, piece in _split_top(tokens, {"/"}):
        names: list[str] = []
        for colon, factor in _split_top(piece, {":"}):
            while _is_wrapped(factor):
                factor = factor[1:-1]
            if (
                len(factor) == 4
                and factor[0].text in _GROUPING_CALLS
                and factor[1].text == "("
                and factor[2].kind in {"name", "backtick"}
            ):
                # (1 | factor(id)): a grouping factor's labels are a factor's levels anyway.
                factor = [factor[2]]
            if len(factor) != 1 or factor[0].kind not in {"name", "backtick"}:
                what = _source(text, factor) or (separator or colon or tokens[0]).text
                raise ValueError(
                    f"grouping factor must be variable names joined by ':' or '/', "
                    f"got {what!r} in {term_text!r}"
                )
            names.append(_group_name(factor[0]))
        # lme4 names the inner factor first: a/b is (1 | a) + (1 | b:a), a/b/c adds c:b:a
        # (glmmTMB's name; lme4 writes c:(b:a)). The levels are then R's too: "b1:a1".
        previous = nested[-1] if nested else ()
        nested.append(tuple(names) + previous)
    return nested


def _expand_uncorrelated(tokens: list[_Token]) -> list[str]:
    """lme4's ``||``: one term for the intercept (if any) and one ``0 + column`` per column."""
    rendered = _render(tokens)
    try:
        formula = Formula(rendered)
    except Exception as error:  # formulaic raises several exception types
        raise ValueError(
            f"cannot parse random-effect expression {rendered!r}: {clean_message(error)}"
        ) from None
    exprs: list[str] = []
    for term in formula:
        if str(term) == "1":
            exprs.append("1")
            continue
        factors = [_quote_factor(str(factor.expr)) for factor in term.factors]
        column = _render(_tokenize(":".join(factors)))
        exprs.append(f"0 + {column}")
    return exprs


def _quote_factor(expr: str) -> str:
    try:
        ast.parse(expr, mode="eval")
    except SyntaxError:
        return f"`{expr}`"
    return expr


def _collect_variables(
    text: str,
    response: list[_Token],
    fixed: str,
    random: list[RandomTerm],
    offsets: tuple[str, ...] = (),
) -> tuple[str, ...]:
    variables: set[str] = set()
    variables |= _response_variables(text, response)
    for expression in [fixed, *(term.expr for term in random), *offsets]:
        variables |= _formula_variables(expression)
    for term in random:
        variables |= set(term.group)
    return tuple(sorted(variables))


_CONSTANTS = {"True", "False", "None", "pi", "inf", "nan"}


def _formula_variables(expression: str) -> set[str]:
    """Data columns an expression reads: names neither called (``log``), nor keyword arguments
    (``df`` in ``bs(x, df = 3)``), nor constants; backticked names as written. (formulaic's
    ``required_variables`` misses the arguments of stateful transforms such as ``scale(age)``.)"""
    try:
        Formula(expression)
    except Exception as error:  # formulaic raises several exception types
        raise ValueError(
            f"cannot parse formula part {expression!r}: {clean_message(error)}"
        ) from None
    return expression_variables(expression)


def expression_variables(expression: str) -> set[str]:
    """Column names read by a formula or Python expression (see ``_formula_variables``)."""
    return set(_expression_variables(expression))


@functools.lru_cache(maxsize=1024)
def _expression_variables(expression: str) -> frozenset[str]:
    # Cached: the design stage asks for the same few expressions on every fit.
    tokens = _tokenize(expression)
    names: set[str] = set()
    for index, token in enumerate(tokens):
        following = tokens[index + 1].text if index + 1 < len(tokens) else None
        previous = tokens[index - 1].text if index > 0 else None
        if token.kind == "backtick":
            names.add(token.text[1:-1])
        elif (
            token.kind == "name"
            and following not in {"(", "="}
            and previous != "."
            and token.text not in _CONSTANTS
            and not (token.text in _R_SHORT_LOGICAL and previous == "=")
            # np.log, contr.sum, stats.poly are calls' names; a bare base or stats is a column.
            and not ("." in token.text and token.text.split(".")[0] in _MODULE_PREFIXES)
        ):
            names.add(token.text)
    return frozenset(names)


_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def clean_message(error: BaseException | str) -> str:
    """An error message from formulaic without its terminal colour codes and markers."""
    text = _ANSI_RE.sub("", str(error))
    return text.replace("⧛", "").replace("⧚", "").strip()


def python_source(expression: str) -> tuple[str, dict[str, str]]:
    """``expression`` (formula text, R's operators already Python: _r_expressions) as Python
    source in which each backticked column name is a placeholder identifier; with the map from
    placeholders to column names."""
    return _python_source(_tokenize(expression))


def _python_source(tokens: list[_Token]) -> tuple[str, dict[str, str]]:
    placeholders: dict[str, str] = {}
    pieces: list[_Token] = []
    for token in tokens:
        if token.kind == "backtick":
            name = f"__column_{len(placeholders)}__"
            placeholders[name] = token.text[1:-1]
            pieces.append(_Token("name", name, token.start))
        else:
            pieces.append(token)
    return _render(pieces), placeholders


def _response_variables(text: str, tokens: list[_Token]) -> set[str]:
    """Data columns named in the response, found with Python's ``ast``."""
    source, placeholders = _python_source(tokens)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        raise ValueError(f"cannot parse response {_source(text, tokens)!r}: {error.msg}") from None
    called: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called.add(id(node.func))
        if isinstance(node, ast.Attribute):
            called.add(id(node.value))  # module prefixes such as np in np.log
    names = {
        node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and id(node) not in called
    }
    return {placeholders.get(name, name) for name in names}


# --------------------------------------------------------------------------------------------
# Column names
# --------------------------------------------------------------------------------------------

_LEVEL_RE = re.compile(r"^(?P<base>.*?)\[(?:T\.)?(?P<level>.*)\]$", re.DOTALL)


def r_name(formulaic_column_name: str) -> str:
    """Map a formulaic design-matrix column name to the name R gives the same column.

    ``Intercept`` -> ``(Intercept)``, ``urban[T.Y]`` -> ``urbanY``, ``livch[3+]`` -> ``livch3+``,
    ``I(age ** 2)`` -> ``I(age^2)``, ``a[T.x]:b`` -> ``ax:b``.
    """
    if formulaic_column_name == "Intercept":
        return "(Intercept)"
    return ":".join(_r_factor_name(part) for part in _split_interaction(formulaic_column_name))


def r_names(formulaic_column_names: Sequence[str]) -> list[str]:
    """r_name of each column of one design matrix (a factor coded in C() is named by its
    contrast's columns already: model.r_contrasts)."""
    return [r_name(column) for column in formulaic_column_names]


def _split_interaction(name: str) -> list[str]:
    return _split_text(name, ":")


def r_text(text: str) -> str:
    """Expression text as R deparses it, from formulaic's or the parser's Python spelling:
    keyword arguments spaced (``df = 3``) and dotted (``include.lowest``), TRUE/FALSE, Inf,
    strings in double quotes, ``x/3``, ``%%`` and ``%/%``, R's dotted function names
    (``as.numeric``), ``^``, and R's ``!``, ``&``, ``|`` and ``%in%`` (R_OPERATOR_FUNCTIONS)."""
    text = _r_operator_text(text)
    # R's deparse spacing of keyword arguments, as in R's names: bs(x, df=3) -> bs(x, df = 3).
    text = re.sub(r"(?<=[\w)\]])=(?![=])", " = ", text)
    text = re.sub(r"\b(True|False)\b", lambda m: m.group(1).upper(), text)
    text = re.sub(r"\bnp\.inf\b", "Inf", text)
    # R's dotted keyword arguments were read as Python names: include_lowest -> include.lowest.
    text = re.sub(
        r"([(,]\s*)([A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+)(\s*=(?!=))",
        lambda m: m.group(1) + m.group(2).replace("_", ".") + m.group(3),
        text,
    )
    # R deparses a string in double quotes: I(urban == "Y"), where formulaic's text has
    # single quotes.
    text = re.sub(
        r"'((?:[^'\\]|\\.)*)'", lambda m: json.dumps(m.group(1).replace("\\'", "'")), text
    )
    # R deparses a division without spaces: exp(x/3), as formulaic's text has exp(x / 3);
    # so its %% and %/%, which were Python's % and //.
    text = re.sub(r"(?<=[\w)\]])\s+/\s+(?=[\w(.])", "/", text)
    text = re.sub(r"(?<=[\w)\]])\s+//\s+(?=[\w(.])", "%/%", text)
    text = re.sub(r"(?<=[\w)\]])\s+%\s+(?=[\w(.])", "%%", text)
    for r_function, python in R_DOTTED_FUNCTIONS.items():
        text = re.sub(rf"\b{python}\(", f"{r_function}(", text)
    text = re.sub(rf"\b({'|'.join(R_NAMESPACES)})\.(?=[\w.]+\()", r"\1::", text)
    text = re.sub(r"\br_contrast\.(\w+)", r"\1", text)
    return re.sub(r"\s*\*\*\s*", "^", text)


_OPERATOR_CALL_RE = re.compile(r"\b(" + "|".join(R_OPERATOR_FUNCTIONS.values()) + r")\(")
_OPERATOR_OF = {name: operator for operator, name in R_OPERATOR_FUNCTIONS.items()}


def _r_operator_text(text: str) -> str:
    """The parser's calls of R_OPERATOR_FUNCTIONS written back as R's operators:
    ``r_and(x > 0, b)`` -> ``x > 0 & b``, ``r_not(b)`` -> ``!b``, ``r_in(f, c('a'))`` ->
    ``f %in% c('a')``, ``r_paren(x + 1)`` -> ``(x + 1)`` (the parser made each call of its
    operands as written, parentheses included, so the text is R's again)."""
    match = _OPERATOR_CALL_RE.search(text)
    if match is None:
        return text
    close = _closing_parenthesis(text, match.end() - 1)
    operator = _OPERATOR_OF[match.group(1)]
    arguments = [_r_operator_text(a.strip()) for a in _split_text(text[match.end() : close], ",")]
    if operator == "(":
        joined = f"({arguments[0]})"
    elif operator == ":":
        joined = ":".join(arguments)  # R deparses a sequence without spaces
    elif operator == "!":
        joined = "!" + arguments[0]
    else:
        joined = f" {operator} ".join(arguments)
    return text[: match.start()] + joined + _r_operator_text(text[close + 1 :])


def _scan(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """Each character of text from `start` outside quoted strings, with the bracket depth
    after it (an opening bracket counts in, a closing one out)."""
    depth = 0
    quote = ""
    for index in range(start, len(text)):
        character = text[index]
        if quote:
            if character == quote and text[index - 1] != "\\":
                quote = ""
            continue
        if character in "'\"":
            quote = character
            continue
        if character in "([{":
            depth += 1
        elif character in ")]}":
            depth -= 1
        yield index, character, depth


def _closing_parenthesis(text: str, opening: int) -> int:
    """The index of the bracket closing the one at `opening` (quoted text skipped)."""
    for index, character, depth in _scan(text, opening):
        if character in ")]}" and depth == 0:
            return index
    raise ValueError(f"unbalanced brackets in {text!r}")  # pragma: no cover


def _split_text(text: str, separator: str) -> list[str]:
    """Text split at each `separator` character outside brackets and quotes (a call's
    arguments at ",", an interaction's factors at ":")."""
    parts: list[str] = []
    start = 0
    for index, character, depth in _scan(text):
        if character == separator and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _r_factor_name(part: str) -> str:
    level = ""
    match = _LEVEL_RE.match(part)
    if match is not None and _balanced(match.group("base")):
        part, level = match.group("base"), match.group("level")
    if "(" not in part:
        return re.sub(r"\s*\*\*\s*", "^", part) + level
    part = r_text(part)
    if level.isdigit() and re.match(r"(?:stats::)?poly\(.*raw = (?:TRUE|T)\b", part):
        level = str(int(level) + 1)  # formulaic numbers raw powers from 0, R from 1
    return part + level


def _balanced(text: str) -> bool:
    depth = 0
    for character in text:
        if character in "([{":
            depth += 1
        elif character in ")]}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0
