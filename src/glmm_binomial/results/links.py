"""The link of a fit as the after-fit statistics need it, in one place.

emmeans back-transforms with the inverse link and its derivative (the delta method), and
Nakagawa's R2 uses the variance of the latent distribution the link implies (pi^2/3 for the
logistic distribution of the logit link). Today every fit uses the logit link; a result that
gains a ``link`` attribute (a name, or an object with ``name``, ``inverse`` and ``derivative``)
is read by ``link_of``, so other links plug in here without touching emmeans or R2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glmm_binomial.family import inverse_link

__all__ = ["LINKS", "LOGIT", "Link", "link_of"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Link:
    """A link g: ``inverse`` is mu = g^{-1}(eta), ``derivative`` is d mu / d eta, and
    ``latent_variance`` the variance of the latent error distribution on the link scale
    (the distribution-specific variance of Nakagawa & Schielzeth 2013)."""

    name: str
    inverse: Callable[[FloatArray], FloatArray]
    derivative: Callable[[FloatArray], FloatArray]
    latent_variance: float


def _logit_derivative(eta: FloatArray) -> FloatArray:
    mu = inverse_link(np.asarray(eta, dtype=np.float64))
    return mu * (1.0 - mu)


LOGIT = Link("logit", inverse_link, _logit_derivative, float(np.pi**2 / 3.0))

LINKS: dict[str, Link] = {"logit": LOGIT}
"""Links by name (a new link is one entry here)."""


def link_of(result: Any) -> Link:
    """The link of a fitted result (logit unless the result says otherwise)."""
    link = getattr(result, "link", None)
    if link is None:
        return LOGIT
    if isinstance(link, Link):
        return link
    name = getattr(link, "name", link)
    if isinstance(name, str) and name in LINKS:
        return LINKS[name]
    raise ValueError(f"link {name!r} is not supported by the after-fit statistics yet")
