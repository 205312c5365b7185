"""The estimation methods by name: the one list every entry point and front end reads.

Adding a method is one module in methods/ with a Method subclass (methods.base), plus one line
in METHODS. The table names each class by its module, imported when the method is first used:
listing the names (the command line's --help, the spreadsheet's messages) loads no numerics.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glmm_binomial.methods.base import Method

METHODS: dict[str, str] = {
    "laplace": "glmm_binomial.methods.laplace:Laplace",
    "agq": "glmm_binomial.methods.agq:Agq",
    "vb": "glmm_binomial.methods.structured_vb:VariationalBayes",
    "vb_meanfield": "glmm_binomial.methods.variational:MeanFieldVB",
    "mcmc": "glmm_binomial.methods.mcmc:Mcmc",
}
"""Method name (as users write it) -> "module:class", in the order front ends list them."""

DEFAULT_METHOD = "laplace"


def method_names() -> tuple[str, ...]:
    """The names of the methods, in METHODS order."""
    return tuple(METHODS)


def method_class(name: str) -> type[Method]:
    """The Method subclass registered under `name`, in any letter case ("Laplace", "AGQ", as
    the spreadsheet takes them); ValueError naming the choices."""
    key = name.lower() if isinstance(name, str) else name
    if not isinstance(key, str) or key not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {name!r}")
    module, _, attribute = METHODS[key].partition(":")
    cls: type[Method] = getattr(importlib.import_module(module), attribute)
    return cls


def make_method(method: str | Method, **arguments: Any) -> Method:
    """The method object for `method`: a name in METHODS, made from fit()'s keyword arguments
    (n_agq, control, pirls_control, prior_fe_sd, prior_log_sd_sd; None: not given), or a Method
    object, returned as it is (its settings are its own: then no other argument may be given)."""
    if not isinstance(method, str):
        from glmm_binomial.methods.base import Method

        if not isinstance(method, Method):
            raise ValueError(
                f"method must be one of {', '.join(map(repr, METHODS))} or a method object, "
                f"got {method!r}"
            )
        given = [name for name, value in arguments.items() if value is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)}: give the settings to the method object ({method.name!r}) "
                "itself, not beside it"
            )
        return method
    return method_class(method).from_arguments(**arguments)
