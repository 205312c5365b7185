"""Warning classes of a fit, and the message record that carries one on a result.

Every message a fit reports is a ``FitWarning``: a ``str`` (so it prints, compares and joins as
the text it is) that also carries its class, one of the ``GLMMWarning`` subclasses below. The
result keeps them in ``result.warnings``; ``summary()``, the spreadsheet table and the CLI's JSON
show them; ``FitWarning.emit()`` raises them through Python's ``warnings`` module, so users can
filter by class (``warnings.simplefilter("error", glmm_binomial.SeparationWarning)``).
"""

from __future__ import annotations

import warnings


class GLMMWarning(UserWarning):
    """Base class of every warning glmm-binomial reports about a fit or its input."""


class SeparationWarning(GLMMWarning):
    """A fixed effect (or a random-effect variance) has no finite estimate: the data separate."""


class BoundaryWarning(GLMMWarning):
    """A random-effect variance (or covariance factor) is estimated on its boundary (singular)."""


class ConvergenceWarning(GLMMWarning):
    """The optimizer stopped short of a verified optimum (gradient or Hessian check failed)."""


class RankDeficiencyWarning(GLMMWarning):
    """Columns of the fixed-effects design are aliased and were dropped."""


class NewLevelsWarning(GLMMWarning):
    """New data hold grouping levels the fit has not seen (their random effect is zero)."""


class NonIntegerCountsWarning(GLMMWarning):
    """Successes or trials (weights included) are not whole numbers (R: "non-integer #successes
    in a binomial glm!"); the fit goes on with the binomial likelihood at those values."""


class IdentifiabilityWarning(GLMMWarning):
    """A parameter is not identified by the data (e.g. one Bernoulli row per group)."""


class FitWarning(str):
    """A message about a fit: the text, plus the warning class it belongs to (``.category``)."""

    category: type[GLMMWarning]

    def __new__(cls, message: str, category: type[GLMMWarning] = GLMMWarning) -> FitWarning:
        obj = super().__new__(cls, message)
        obj.category = category
        return obj

    @property
    def kind(self) -> str:
        """Short lower-case name of the class ("separation", "boundary", ...), as JSON shows it."""
        name = self.category.__name__
        return name[: -len("Warning")].lower() if name != "GLMMWarning" else "warning"

    def emit(self, stacklevel: int = 2) -> None:
        """Raise this message through ``warnings.warn`` with its class."""
        warnings.warn(str(self), self.category, stacklevel=stacklevel + 1)

    def __reduce__(self) -> tuple[object, ...]:
        return (FitWarning, (str(self), self.category))


def as_fit_warning(message: str, category: type[GLMMWarning] = GLMMWarning) -> FitWarning:
    """``message`` as a FitWarning (kept as it is when it already is one)."""
    if isinstance(message, FitWarning):
        return message
    return FitWarning(message, category)


__all__ = [
    "BoundaryWarning",
    "ConvergenceWarning",
    "FitWarning",
    "GLMMWarning",
    "IdentifiabilityWarning",
    "NewLevelsWarning",
    "NonIntegerCountsWarning",
    "RankDeficiencyWarning",
    "SeparationWarning",
    "as_fit_warning",
]
