"""What an estimation method is: the interface every method object implements.

A method object holds its own settings (controls, number of quadrature points, priors), checks
them when it is made, and owns everything that differs between methods: which models it can
fit (``check``), its objective on a ModelData (``objective``, also used on each Dask partition),
whether the design may be centred and scaled internally (``rescales``, ``centres_random``), the
label of its log-likelihood and the title of the result, the record of its tolerances, and the
fit itself (``fit``: ModelData -> FitOutput). Front ends and the Dask driver ask the method;
nothing compares method names. ``methods.registry`` lists the methods by name.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.arguments import positive
from glmm_binomial.family import Family
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.validation import check_identifiable, term_texts

FloatArray = NDArray[np.float64]

Start = tuple[FloatArray, FloatArray]
"""A starting point (theta, beta) in the user's units, e.g. an earlier fit's estimates."""


class Method(ABC):
    """One estimation method with its settings (a frozen dataclass in each subclass).

    name: the method's name as users write it (``fit(..., method=name)``).
    posterior: True when the estimates are posterior summaries (means, SDs, credible
        intervals) rather than maximum-likelihood estimates with standard errors.
    control_type: the class of the ``control=`` object the method takes.
    """

    name: ClassVar[str]
    posterior: ClassVar[bool] = False
    control_type: ClassVar[type]

    @classmethod
    @abstractmethod
    def from_arguments(cls, **arguments: Any) -> Method:
        """The method made from fit()'s keyword arguments (n_agq, control, pirls_control,
        prior_fe_sd, prior_log_sd_sd, priors); arguments that do not apply to it must have their
        defaults (None), else ValueError naming them."""

    @property
    @abstractmethod
    def title(self) -> str:
        """What the fit is, as the summary's first line says it."""

    @property
    @abstractmethod
    def tolerances(self) -> Mapping[str, float | str]:
        """Every setting of the method, as OptSummary.tolerances records them."""

    @classmethod
    def supports(cls, family: Family) -> bool:
        """Whether the method fits this family and link (by default the binomial logit only:
        a method built on the logit refuses the others unless it says otherwise)."""
        return family.name == "binomial" and family.link == "logit"

    def check_family(self, family: Family) -> None:
        """Raise ValueError naming the method, the family and the link when the method does
        not fit this family and link (supports)."""
        if not self.supports(family):
            raise ValueError(
                f"method {self.name!r} fits the binomial family with the logit link only, not "
                f"family {family.name!r} with link {family.link!r}; use method='laplace' or "
                "'agq'"
            )

    def check(self, model: ModelData, design: Any = None) -> None:
        """Raise ValueError for a model this method cannot estimate on these data; `design`
        (a DesignInfo), when the model came from a formula, lets messages quote the user's
        terms. Every method refuses a family or link it does not fit, rows the family cannot
        be fitted to, and random-effect parameters the data cannot identify."""
        family = model.family
        self.check_family(family)
        if model.successes.size:
            # A structure without its rows (a Dask fit's) has none to check: the Dask fit
            # checks them after its first pass over the rows.
            family.check_data(model.successes, model.trials)
        check_identifiable(model, term_texts(model, design))

    @abstractmethod
    def fit(self, model: ModelData, start: Start | None = None) -> FitOutput:
        """Estimates of `model` (never reported converged with a non-finite number); `start`,
        when given, is where the search begins (an earlier fit of the same structure)."""

    def start_from(self, model: ModelData, start: Any) -> Start:
        """fit()'s start= as (theta, beta) for `model` (lme4's start: a mapping with "theta"
        and/or "fixef", or theta's values alone); ValueError for a method that takes none (the
        posterior methods)."""
        raise ValueError(
            f"start= is for the maximum-likelihood methods ('laplace', 'agq'), not method "
            f"{self.name!r}"
        )


def refuse_arguments(method: str, **given: Any) -> None:
    """ValueError naming fit() arguments given that `method` does not take (None: not given)."""
    extra = [name for name, value in given.items() if value is not None]
    if "priors" in extra:
        raise ValueError(
            f"priors= applies to the posterior-mode fits of methods 'laplace' and 'agq'; "
            f"method {method!r} keeps its own fixed priors"
        )
    if extra:
        names = ", ".join(extra)
        raise ValueError(
            f"{names} {'does' if len(extra) == 1 else 'do'} not apply to method {method!r}"
        )


def checked_control(
    method: str | None, control: Any, control_type: type, argument: str = "control"
) -> Any:
    """`control` if it is a control_type (None: the defaults; a mapping: a control_type with
    those settings, the others at their defaults) whose settings pass check_settings, else
    ValueError naming `argument` (and `method`, when given)."""
    if control is None:
        return control_type()
    if isinstance(control, Mapping):
        known = [f.name for f in dataclasses.fields(control_type)]
        unknown = [str(k) for k in control if k not in known]
        if unknown:
            lme4 = {"optimizer", "optCtrl", "calc.derivs", "check.conv.grad", "nAGQ0initStep"}
            hint = (
                "; lme4's glmerControl settings have no counterpart here (one optimizer: a "
                "quasi-Newton search on exact gradients finished by Newton steps)"
                if set(unknown) & lme4
                else ""
            )
            raise ValueError(
                f"{argument}: {', '.join(map(repr, unknown))} "
                f"{'is not a setting' if len(unknown) == 1 else 'are not settings'} of "
                f"{control_type.__name__} (its settings: {', '.join(known)}){hint}"
            )
        try:
            control = control_type(**control)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{argument}: {error}") from None
    if not isinstance(control, control_type):
        name = control_type.__name__
        article = "an" if name[0] in "AEIOU" else "a"
        where = f" for method {method!r}" if method is not None else ""
        raise ValueError(
            f"{argument}{where} must be {article} {name} (or a dict of its settings), "
            f"got {type(control).__name__}"
        )
    check_settings(control, argument)
    return control


def check_settings(control: Any, argument: str = "control") -> None:
    """ValueError naming a setting whose value is not of its default's kind (a number, a
    whole number, True/False or text; settings whose default is None take anything), or is a
    negative number (every tolerance, step, limit and cap is at least 0), or 0 where the
    control's class lists it in `positive_settings` (a finite difference's step, a tolerance
    compared on the log scale)."""
    positive_settings: frozenset[str] = getattr(type(control), "positive_settings", frozenset())
    for field in dataclasses.fields(control):
        default, value = field.default, getattr(control, field.name)
        if default is None or default is dataclasses.MISSING:
            continue
        number = False
        if isinstance(default, bool):
            ok = isinstance(value, (bool, np.bool_))
            kind = "True or False"
        elif isinstance(default, int):
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
            kind, number = "a whole number", True
        elif isinstance(default, float):
            ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                value, (bool, np.bool_)
            )
            ok = ok and not np.isnan(value)
            kind, number = "a number", True
        elif isinstance(default, str):
            ok, kind = isinstance(value, str), "text"
        else:
            continue
        if ok and number:
            if field.name in positive_settings:
                ok, kind = value > 0, f"{kind} above 0"
            else:
                ok, kind = value >= 0, f"{kind} at least 0"
        if not ok:
            raise ValueError(
                f"{argument}: {type(control).__name__}.{field.name} must be {kind}, got {value!r}"
            )


def require_positive(method: Any, *names: str) -> None:
    """Check that each named setting of a frozen method dataclass is a positive finite number
    and store it as a float; ValueError naming the setting otherwise."""
    for name in names:
        object.__setattr__(method, name, positive(getattr(method, name), name))


def prior_settings(
    method: str,
    control_type: type,
    prior_fe_sd: float | None,
    prior_log_sd_sd: float | None,
    control: Any,
    n_agq: int | None,
    others: Mapping[str, Any],
) -> dict[str, Any]:
    """The keyword arguments of a Bayesian method with the fixed priors (SD of the normal prior on
    each fixed effect, default 2; SD of the normal prior on each log SD, default 1) made from
    fit()'s arguments; ValueError for arguments that do not apply to it."""
    if n_agq not in (None, 1):
        raise ValueError("n_agq applies only to method='agq'")
    refuse_arguments(method, **others)
    return {
        "prior_fe_sd": 2.0 if prior_fe_sd is None else prior_fe_sd,
        "prior_log_sd_sd": 1.0 if prior_log_sd_sd is None else prior_log_sd_sd,
        "control": checked_control(method, control, control_type),
    }
