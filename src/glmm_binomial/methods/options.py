"""FitOptions: everything about how to fit that is not the data, in one object.

fit(), fit_model(), the Dask fit, the command line and the spreadsheet all build one FitOptions
and hand it on; nothing forwards the individual arguments by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from glmm_binomial.arguments import fraction
from glmm_binomial.methods.base import Method
from glmm_binomial.methods.registry import DEFAULT_METHOD, make_method


@dataclass(frozen=True)
class FitOptions:
    """How to fit: the method object (with its own settings), the confidence level of the
    result's intervals, and the BLAS threads allowed during the fit (None: as configured; 1,
    the default, is fastest for these small matrix products, see numerics.blas)."""

    method: Method
    conf_level: float = 0.95
    blas_threads: int | None = 1

    def __post_init__(self) -> None:
        if not isinstance(self.method, Method):
            raise ValueError("method must be a method object (see fit_options)")
        fraction(self.conf_level, "conf_level")
        threads = self.blas_threads
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(f"blas_threads must be a positive integer or None, got {threads!r}")


def fit_options(
    method: str | Method = DEFAULT_METHOD,
    *,
    conf_level: float = 0.95,
    blas_threads: int | None = 1,
    **method_arguments: Any,
) -> FitOptions:
    """FitOptions from fit()'s keyword arguments: `method` a name or a method object, and the
    method's own arguments (n_agq, control, pirls_control, prior_fe_sd, prior_log_sd_sd, priors;
    None: the method's default)."""
    return FitOptions(make_method(method, **method_arguments), conf_level, blas_threads)


def options_or_arguments(
    options: FitOptions | None,
    method: str | Method = DEFAULT_METHOD,
    *,
    conf_level: float = 0.95,
    blas_threads: int | None = 1,
    **method_arguments: Any,
) -> FitOptions:
    """`options` when given (then the other arguments must keep their defaults: ValueError
    naming those that do not), else fit_options(method, ...) from the other arguments."""
    if options is None:
        return fit_options(
            method, conf_level=conf_level, blas_threads=blas_threads, **method_arguments
        )
    if not isinstance(options, FitOptions):
        raise ValueError(f"options must be a FitOptions, got {type(options).__name__}")
    given = [name for name, value in method_arguments.items() if value is not None]
    given += [
        name
        for name, value, default in (
            ("method", method, DEFAULT_METHOD),
            ("conf_level", conf_level, 0.95),
            ("blas_threads", blas_threads, 1),
        )
        if value != default
    ]
    if given:
        raise ValueError(f"give {', '.join(given)} in options, not beside it")
    return options
