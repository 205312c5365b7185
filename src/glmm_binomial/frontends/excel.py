"""GLMM_BINOMIAL as an Excel custom function through xlwings (Lite, Server and classic).

In xlwings Lite add ``glmm-binomial`` to requirements.txt and this line to main.py::

    from glmm_binomial.excel import GLMM_BINOMIAL

xlwings passes an n x 1 range as a flat list unless told otherwise, so every range argument is
declared with ``ndim=2`` (a 2D list, as the spreadsheet core expects); the result, a 2D list,
spills from the formula's cell; a message is one cell. Omitted arguments arrive as None and
mean their defaults. The function is the spreadsheet core's (:mod:`.sheet`), nothing else.

xlwings is an optional extra (``pip install 'glmm-binomial[excel]'``): importing this module
does not import it; the first use of ``GLMM_BINOMIAL`` from here does, with a message naming
the extra when it is missing. Without Excel the decorated function is an ordinary function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from glmm_binomial.frontends import require
from glmm_binomial.frontends.sheet import glmm_binomial

__all__ = ["GLMM_BINOMIAL", "decorate"]  # noqa: F822 - GLMM_BINOMIAL is built by __getattr__

#: Arguments that are spreadsheet ranges (declared 2D to xlwings).
RANGE_ARGUMENTS = ("y", "x", "groups", "x_random")

#: Argument descriptions shown in Excel's function help.
ARGUMENT_DOCS = {
    "y": "n x 1 range of 0/1 (or TRUE/FALSE) outcomes",
    "x": "n x p range of fixed-effect predictors",
    "groups": "n x 1 range of group labels",
    "x_random": "optional n x k range of random-slope predictors (or fit_intercept)",
    "fit_intercept": "optional TRUE/FALSE (default TRUE): add a fixed intercept",
    "alpha": "optional, default 0.05: intervals at level 1 - alpha",
    "method": 'optional "vb" (default), "laplace", "agq", "vb_meanfield" or "mcmc"',
    "link": 'optional "logit" (default), "probit", "cloglog" or "cauchit" (laplace, agq)',
    "prior": 'optional, for "laplace"/"agq": "none" (default), "blme", or a prior text',
}


def decorate(func: Callable[..., Any] | None = None, arg: Callable[..., Any] | None = None) -> Any:
    """GLMM_BINOMIAL decorated with xlwings' ``func`` and ``arg`` (by default ``xlwings.func``
    and ``xlwings.arg``, which are right for the runtime xlwings finds itself in)."""
    if func is None or arg is None:
        xlwings: Any = require("xlwings", "excel", "glmm_binomial.excel")
        func, arg = xlwings.func, xlwings.arg

    def GLMM_BINOMIAL(  # noqa: N802 - Excel shows the Python name, upper-cased
        y: Any,
        x: Any,
        groups: Any,
        x_random: Any = None,
        fit_intercept: Any = None,
        alpha: Any = None,
        method: Any = None,
        link: Any = None,
        prior: Any = None,
    ) -> Any:
        """Binomial GLMM (logit link by default, random intercept per group, optional
        independent random slopes): a table of coefficients, variance components,
        log-likelihood, AIC and BIC."""
        return glmm_binomial(y, x, groups, x_random, fit_intercept, alpha, method, link, prior)

    # Excel shows the docstring as the function's description: one line.
    GLMM_BINOMIAL.__doc__ = " ".join((GLMM_BINOMIAL.__doc__ or "").split())
    decorated: Any = GLMM_BINOMIAL
    for name, doc in ARGUMENT_DOCS.items():
        options: dict[str, Any] = {"ndim": 2} if name in RANGE_ARGUMENTS else {}
        decorated = arg(name, doc=doc, **options)(decorated)
    return func(decorated)


def __getattr__(name: str) -> Any:
    # GLMM_BINOMIAL is built on first use, so importing this module needs no xlwings.
    if name == "GLMM_BINOMIAL":
        value = decorate()
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
