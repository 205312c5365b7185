"""Priors for a posterior-mode (penalized) fit, spelled as blme's bglmer spells them.

A penalized fit minimizes deviance(theta, beta) + prior deviance, the prior deviance being
-2 log p(beta) - 2 sum_t log p(Sigma_t) (blme's "penalty"; bglmer's objective is the same sum).
Each prior here is stated in the user's units (the fixed effects as the user's design columns
define them, Sigma_t the covariance of the user's random-effect columns) and gives its
deviance and its exact gradient: in beta for a fixed-effect prior, in Sigma for a covariance
prior (G = d/dSigma, symmetric; methods.penalty carries it to theta).

Spellings, with blme's meanings and defaults (p fixed effects, q the dimension of a term):

* ``normal(sd = ...)``: N(0, diag(sd^2)); sd a number (every coefficient), two numbers (the
  first coefficient, then the others: blme's c(intercept, slopes) rule when p > 2) or p numbers;
  ``normal(cov = ...)`` a variance per coefficient or a p x p matrix. Default sd = c(10, 2.5).
  Deviance p log(2 pi) + log det(cov) + beta' cov^-1 beta.
* ``t(df = 3, mean = 0, scale = c(10^2, 2.5^2))``: ONE multivariate t over the whole vector
  beta, scale a matrix in VARIANCE units (a number s: diag(s); two numbers: first coefficient,
  others; p numbers: the diagonal). So t(df = 7, scale = 2.5) has SD-scale sqrt(2.5) = 1.58 per
  coefficient. Deviance -2 lgamma((df + d) / 2) + 2 lgamma(df / 2) + d log(df pi) + log det(scale)
  + (df + d) log(1 + (beta - mean)' scale^-1 (beta - mean) / df).
* ``cauchy(scale = c(10^2, 2.5^2))``: t with df = 1 (scale in variance units, as t's; the
  default is Gelman's Cauchy with SD-scale 10 for the first coefficient and 2.5 for the others).
* ``wishart(df = q + 2.5, scale = Inf)`` (bglmer's default covariance prior): with scale Inf it
  contributes -(df - q - 1) log det(Sigma) and no constant; a finite scale S (a number, q numbers
  or a q x q matrix) adds tr(S^-1 Sigma) and the Wishart constant.
* ``invwishart(df = q - 0.5, scale = diag(10^2 / (df + q + 1)))``: (df + q + 1) log det(Sigma)
  + tr(S Sigma^-1) + its constant.
* ``gamma(shape = 2.5, rate = 0)`` on each SD of a term (posterior_scale = "sd"; "var" puts it
  on the variance): -2 (shape - 1) log sd + 2 rate sd (+ the constant when rate > 0). blme
  takes it for one-dimensional terms only (and ignores it, with a warning, on a vector term);
  here a vector term gets it on each of its SDs, as glmmTMB's sd prior.
* ``invgamma(shape = 0.5, scale = 10^2)`` on each SD: 2 (shape + 1) log sd + 2 scale / sd
  (+ its constant).
* ``lkj(eta)`` on the correlation matrix R of a term (glmmTMB's): -2 (eta - 1) log det(R),
  without the normalizing constant (it does not depend on the parameters); nothing for a
  one-dimensional term. Combine it with a prior on the SDs: cov = ["gamma", "lkj(2)"].
* ``none`` (or ``flat``): no prior.

``parse_priors`` reads what fit(priors=...) takes: a dict {"fixef": ..., "cov": ...} (cov: one
spelling, a list of them, or a dict {group: spelling(s)} for particular grouping factors), a
string "fixef = normal(sd = 3); cov = wishart", "blme" (bglmer's default: a Wishart covariance
prior, no fixed-effect prior), "none", or a Priors object.
"""

from __future__ import annotations

import ast
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
Number = float | tuple[float, ...] | tuple[tuple[float, ...], ...]


# --- fixed-effect priors ---------------------------------------------------------------------


class BoundFixefPrior(ABC):
    """A fixed-effect prior for p coefficients: its deviance -2 log p(beta) and gradient."""

    @abstractmethod
    def deviance_and_gradient(self, beta: FloatArray) -> tuple[float, FloatArray]:
        """-2 log p(beta) and its gradient in beta."""

    @abstractmethod
    def curvature(self, beta: FloatArray) -> FloatArray:
        """A positive semi-definite p x p curvature of the deviance at beta (the Hessian, or
        for the t its positive part): for the starting point and the search's whitening."""

    @abstractmethod
    def describe(self) -> str:
        """The prior with its resolved values, as blme prints it."""


class FixefPrior(ABC):
    """A fixed-effect prior as the user spelled it (resolved for p coefficients by bind)."""

    @abstractmethod
    def bind(self, p: int) -> BoundFixefPrior:
        """The prior for p coefficients (ValueError when its sizes do not fit p)."""


def _numbers(value: Any, what: str, max_ndim: int) -> FloatArray:
    """value as a float array of at most max_ndim dimensions, else ValueError naming it."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers, got {value!r}") from None
    if array.ndim > max_ndim or array.size == 0 or np.any(np.isnan(array)):
        shape = "a number or a vector" if max_ndim == 1 else "a number, a vector or a matrix"
        raise ValueError(f"{what} must be {shape}, got {value!r}")
    return array


def _per_coefficient(values: tuple[float, ...], p: int, what: str) -> FloatArray:
    """blme's rule for a per-coefficient setting: one value for all; two values (p > 2): the
    first coefficient, then the others; else one value per coefficient."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        return np.full(p, float(v[0]))
    if v.size == 2 and p > 2:
        return np.concatenate([v[:1], np.full(p - 1, float(v[1]))])
    if v.size == p:
        return v
    raise ValueError(
        f"{what} has {v.size} values for {p} fixed effects: give 1, 2 (first coefficient, then "
        f"the others) or {p}"
    )


def _square_or_diagonal(value: Number, p: int, what: str) -> FloatArray:
    """A p x p matrix from a matrix, or from the per-coefficient diagonal rule."""
    array = _numbers(value, what, 2)
    if array.ndim == 2:
        if array.shape != (p, p):
            raise ValueError(f"{what} must be {p} x {p}, got {array.shape[0]} x {array.shape[1]}")
        if not np.allclose(array, array.T):
            raise ValueError(f"{what} must be symmetric")
        return array
    return np.diag(_per_coefficient(tuple(np.atleast_1d(array).tolist()), p, what))


def _vector_text(values: FloatArray) -> str:
    """One number when all are equal, else R's c(...) (the first three, then "...")."""
    shown = [f"{v:g}" for v in values[:3]]
    if len(values) == 1 or np.all(values == values[0]):
        return shown[0]
    return "c(" + ", ".join(shown) + (", ...)" if len(values) > 3 else ")")


def _finite_positive_definite(matrix: FloatArray, what: str) -> None:
    finite = np.isfinite(np.diag(matrix))
    inner = matrix[np.ix_(finite, finite)]
    if not np.all(np.isfinite(inner)):
        raise ValueError(f"{what}: only diagonal entries may be Inf")
    if np.any(~finite) and np.any(matrix[~finite][:, finite] != 0):
        raise ValueError(f"{what}: a coefficient with an Inf variance has no covariances")
    if inner.size and np.min(np.linalg.eigvalsh(inner)) <= 0:
        raise ValueError(f"{what} must be positive definite")


def _precision_and_logdet(matrix: FloatArray) -> tuple[FloatArray, float, int]:
    """The inverse of a covariance whose Inf diagonal entries mean "no prior on that
    coefficient" (their rows of the inverse are zero), log det over the finite part, and the
    number of finite entries."""
    finite = np.isfinite(np.diag(matrix))
    inner = matrix[np.ix_(finite, finite)]
    precision = np.zeros_like(matrix)
    logdet = 0.0
    if inner.size:
        precision[np.ix_(finite, finite)] = np.linalg.inv(inner)
        logdet = float(np.linalg.slogdet(inner)[1])
    return precision, logdet, int(np.sum(finite))


@dataclass(frozen=True)
class _BoundNormal(BoundFixefPrior):
    precision: FloatArray  # cov^-1 (zero rows for coefficients with an Inf variance)
    constant: float  # d log(2 pi) + log det(cov)
    label: str

    def deviance_and_gradient(self, beta: FloatArray) -> tuple[float, FloatArray]:
        pb = self.precision @ beta
        return float(self.constant + beta @ pb), 2.0 * pb

    def curvature(self, beta: FloatArray) -> FloatArray:
        return 2.0 * self.precision

    def describe(self) -> str:
        return self.label


@dataclass(frozen=True)
class Normal(FixefPrior):
    """blme's normal(sd = ..., cov = ...) on the fixed effects (sd in the coefficients' units;
    cov: variances, or a covariance matrix). Default sd = c(10, 2.5)."""

    sd: Number | None = None
    cov: Number | None = None

    def bind(self, p: int) -> BoundFixefPrior:
        if self.cov is not None:
            cov = _square_or_diagonal(self.cov, p, "normal(cov = ...)")
            label = f"normal(cov = {_vector_text(np.diag(cov))})"
        else:
            sd = (10.0, 2.5) if self.sd is None else self.sd
            values = _numbers(sd, "normal(sd = ...)", 1)
            sds = _per_coefficient(tuple(np.atleast_1d(values).tolist()), p, "sd")
            if np.any(sds <= 0) or np.any(np.isnan(sds)):
                raise ValueError("normal(sd = ...) needs positive SDs")
            cov = np.diag(sds * sds)
            label = f"normal(sd = {_vector_text(sds)})"
        _finite_positive_definite(cov, "normal prior covariance")
        precision, logdet, d = _precision_and_logdet(cov)
        return _BoundNormal(precision, d * math.log(2.0 * math.pi) + logdet, label)


@dataclass(frozen=True)
class _BoundT(BoundFixefPrior):
    df: float
    d: int  # coefficients with a finite scale
    mean: FloatArray
    precision: FloatArray  # scale^-1
    constant: float
    label: str

    def deviance_and_gradient(self, beta: FloatArray) -> tuple[float, FloatArray]:
        centred = beta - self.mean
        pb = self.precision @ centred
        distance = float(centred @ pb)
        nu, d = self.df, self.d
        value = self.constant + (nu + d) * math.log1p(distance / nu)
        return float(value), (nu + d) / (nu + distance) * 2.0 * pb

    def curvature(self, beta: FloatArray) -> FloatArray:
        """2 (df + d) / (df + distance) scale^-1: the Hessian without its negative rank-one
        part (the weights of the t's EM algorithm), positive semi-definite."""
        centred = beta - self.mean
        distance = float(centred @ self.precision @ centred)
        return 2.0 * (self.df + self.d) / (self.df + distance) * self.precision

    def describe(self) -> str:
        return self.label


@dataclass(frozen=True)
class StudentT(FixefPrior):
    """blme's t(df, mean, scale): one multivariate t over the whole fixed-effect vector, scale
    in VARIANCE units (a number s means diag(s)). Defaults df = 3, mean 0, scale c(10^2,
    2.5^2)."""

    df: float = 3.0
    mean: Number = 0.0
    scale: Number = (100.0, 6.25)
    name: str = "t"

    def __post_init__(self) -> None:
        if not (isinstance(self.df, (int, float)) and math.isfinite(self.df) and self.df > 0):
            raise ValueError(f"{self.name} prior: df must be a positive number, got {self.df!r}")

    def bind(self, p: int) -> BoundFixefPrior:
        values = _numbers(self.mean, f"{self.name}(mean = ...)", 1)
        mean = _per_coefficient(tuple(np.atleast_1d(values).tolist()), p, "mean")
        scale = _square_or_diagonal(self.scale, p, f"{self.name}(scale = ...)")
        _finite_positive_definite(scale, f"{self.name} prior scale")
        shown = [f"df = {self.df:g}"]
        if np.any(mean != 0):
            shown.append(f"mean = {_vector_text(mean)}")
        shown.append(f"scale = {_vector_text(np.diag(scale))}")
        precision, logdet, d = _precision_and_logdet(scale)
        nu = float(self.df)
        constant = (
            -2.0 * math.lgamma(0.5 * (nu + d))
            + 2.0 * math.lgamma(0.5 * nu)
            + d * math.log(nu * math.pi)
            + logdet
        )
        label = f"{self.name}({', '.join(shown)})"
        return _BoundT(nu, d, mean, precision, constant, label)


def cauchy(scale: Number = (100.0, 6.25), mean: Number = 0.0) -> StudentT:
    """The Cauchy prior: t with df = 1 (scale in variance units, as t's)."""
    return StudentT(1.0, mean, scale, name="cauchy")


# --- covariance priors -----------------------------------------------------------------------


class BoundCovariancePrior(ABC):
    """A prior on the covariance Sigma of one q-dimensional term."""

    @abstractmethod
    def deviance_and_gradient(self, sigma: FloatArray) -> tuple[float, FloatArray]:
        """-2 log p(Sigma) and G = its derivative in Sigma (symmetric; d = <G, dSigma>);
        (inf, zeros) where Sigma is singular and the prior has no density there."""

    @abstractmethod
    def describe(self) -> str:
        """The prior with its resolved values, as blme prints it."""


class CovariancePrior(ABC):
    """A covariance prior as the user spelled it (resolved for a q-dimensional term by
    bind)."""

    @abstractmethod
    def bind(self, q: int) -> BoundCovariancePrior:
        """The prior for a q x q covariance."""


def _inverse_and_logdet(sigma: FloatArray) -> tuple[FloatArray, float] | None:
    """Sigma^-1 and log det Sigma by Cholesky; None when Sigma is not positive definite."""
    if sigma.shape == (1, 1):
        # A scalar term (the common (1 | g)): no LAPACK call for one number.
        variance = float(sigma[0, 0])
        if not (variance > 0.0 and math.isfinite(variance)):
            return None
        return np.array([[1.0 / variance]]), math.log(variance)
    try:
        lower = np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        return None
    diagonal = np.diag(lower)
    if np.any(diagonal <= 0) or not np.all(np.isfinite(diagonal)):
        return None
    inverse_lower = np.linalg.inv(lower)
    return inverse_lower.T @ inverse_lower, 2.0 * float(np.sum(np.log(diagonal)))


def _scale_matrix(scale: Number, q: int, what: str) -> FloatArray | None:
    """A q x q scale from a number, q numbers or a matrix; None for Inf (no exponential
    term)."""
    array = _numbers(scale, what, 2)
    if array.ndim == 0 or array.size == 1:
        value = float(array.reshape(-1)[0])
        if math.isinf(value) and value > 0:
            return None
        matrix = np.eye(q) * value
    elif array.ndim == 1:
        if array.size != q:
            raise ValueError(f"{what} has {array.size} values for a {q}-dimensional term")
        matrix = np.diag(array)
    else:
        if array.shape != (q, q):
            raise ValueError(f"{what} must be {q} x {q} for a {q}-dimensional term")
        matrix = array
    if not np.all(np.isfinite(matrix)) or np.min(np.linalg.eigvalsh(matrix)) <= 0:
        raise ValueError(f"{what} must be positive definite (or Inf)")
    return matrix


def _wishart_constant(df: float, q: int, logdet_scale: float) -> float:
    """blme's constant term: df (q log 2 + log det S) + q (q - 1) / 2 log pi
    + 2 sum_i lgamma((df + 1 - i) / 2)."""
    total = df * (q * math.log(2.0) + logdet_scale) + 0.5 * q * (q - 1.0) * math.log(math.pi)
    for i in range(1, q + 1):
        total += 2.0 * math.lgamma(0.5 * (df + 1.0 - i))
    return total


@dataclass(frozen=True)
class _BoundWishart(BoundCovariancePrior):
    df: float
    q: int
    scale: FloatArray | None  # None: Inf

    def deviance_and_gradient(self, sigma: FloatArray) -> tuple[float, FloatArray]:
        found = _inverse_and_logdet(sigma)
        power = self.df - self.q - 1.0
        if found is None:
            return (float("inf") if power > 0 else 0.0), np.zeros_like(sigma)
        inverse, logdet = found
        value, grad = -power * logdet, -power * inverse
        if self.scale is not None:
            scale_inverse = np.linalg.inv(self.scale)
            logdet_scale = float(np.linalg.slogdet(self.scale)[1])
            value += float(np.sum(scale_inverse * sigma))
            value += _wishart_constant(self.df, self.q, logdet_scale)
            grad = grad + scale_inverse
        return float(value), grad

    def describe(self) -> str:
        scale = "Inf" if self.scale is None else _vector_text(np.diag(self.scale))
        return f"wishart(df = {self.df:g}, scale = {scale})"


def _degrees_of_freedom(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} prior: df must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Wishart(CovariancePrior):
    """blme's wishart(df = q + 2.5, scale = Inf) on Sigma (bglmer's default)."""

    df: float | None = None
    scale: Number = float("inf")

    def bind(self, q: int) -> BoundCovariancePrior:
        df = q + 2.5 if self.df is None else _degrees_of_freedom(self.df, "wishart")
        if not df > q - 1:
            raise ValueError(f"wishart prior: df must exceed {q - 1} for a {q}-dimensional term")
        return _BoundWishart(df, q, _scale_matrix(self.scale, q, "wishart(scale = ...)"))


@dataclass(frozen=True)
class _BoundInverseWishart(BoundCovariancePrior):
    df: float
    q: int
    scale: FloatArray

    def deviance_and_gradient(self, sigma: FloatArray) -> tuple[float, FloatArray]:
        found = _inverse_and_logdet(sigma)
        if found is None:
            return float("inf"), np.zeros_like(sigma)
        inverse, logdet = found
        power = self.df + self.q + 1.0
        logdet_scale = float(np.linalg.slogdet(self.scale)[1])
        constant = _wishart_constant(self.df, self.q, -logdet_scale)
        value = power * logdet + float(np.sum(self.scale * inverse)) + constant
        grad = power * inverse - inverse @ self.scale @ inverse
        return float(value), grad

    def describe(self) -> str:
        return f"invwishart(df = {self.df:g}, scale = {_vector_text(np.diag(self.scale))})"


@dataclass(frozen=True)
class InverseWishart(CovariancePrior):
    """blme's invwishart(df = q - 0.5, scale = diag(10^2 / (df + q + 1))) on Sigma."""

    df: float | None = None
    scale: Number | None = None

    def bind(self, q: int) -> BoundCovariancePrior:
        df = q - 0.5 if self.df is None else _degrees_of_freedom(self.df, "invwishart")
        if not df > q - 1:
            raise ValueError(f"invwishart prior: df must exceed {q - 1} for a {q}-dimensional term")
        scale_value = 100.0 / (df + q + 1.0) if self.scale is None else self.scale
        scale = _scale_matrix(scale_value, q, "invwishart(scale = ...)")
        if scale is None:
            raise ValueError("invwishart(scale = ...) must be finite")
        return _BoundInverseWishart(df, q, scale)


@dataclass(frozen=True)
class _BoundScalePrior(BoundCovariancePrior):
    """Independent priors on each SD (or variance) of a term, and the SDs' chain rule to
    Sigma."""

    kind: str  # "gamma" or "invgamma"
    shape: float
    rate: float  # gamma's rate, invgamma's scale
    posterior_scale: str

    def _one(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Deviance of each value x (an SD or a variance) and its derivative in x."""
        with np.errstate(divide="ignore"):
            log_x = np.log(x)
        if self.kind == "gamma":
            value = -2.0 * (self.shape - 1.0) * log_x + 2.0 * self.rate * x
            slope = -2.0 * (self.shape - 1.0) / x + 2.0 * self.rate
        else:
            value = 2.0 * (self.shape + 1.0) * log_x + 2.0 * self.rate / x
            slope = 2.0 * (self.shape + 1.0) / x - 2.0 * self.rate / (x * x)
        return value, slope

    def _constant(self) -> float:
        if self.shape == 0.0 or self.rate == 0.0:
            return 0.0
        return -2.0 * (self.shape * math.log(self.rate) - math.lgamma(self.shape))

    def deviance_and_gradient(self, sigma: FloatArray) -> tuple[float, FloatArray]:
        variance = np.diag(sigma).astype(np.float64)
        if np.any(variance <= 0):
            return float("inf"), np.zeros_like(sigma)
        if self.posterior_scale == "sd":
            sd = np.sqrt(variance)
            value, slope = self._one(sd)
            diagonal = slope / (2.0 * sd)  # d sd / d variance = 1 / (2 sd)
        else:
            value, diagonal = self._one(variance)
        total = float(np.sum(value)) + len(variance) * self._constant()
        return total, np.diag(diagonal)

    def describe(self) -> str:
        second = "rate" if self.kind == "gamma" else "scale"
        return (
            f"{self.kind}(shape = {self.shape:g}, {second} = {self.rate:g}, "
            f"posterior.scale = {self.posterior_scale})"
        )


@dataclass(frozen=True)
class Gamma(CovariancePrior):
    """blme's gamma(shape = 2.5, rate = 0, posterior.scale = "sd") on each SD of a term."""

    shape: float = 2.5
    rate: float = 0.0
    posterior_scale: str = "sd"

    def bind(self, q: int) -> BoundCovariancePrior:
        _check_scale_prior("gamma", self.shape, self.rate, self.posterior_scale)
        return _BoundScalePrior("gamma", float(self.shape), float(self.rate), self.posterior_scale)


@dataclass(frozen=True)
class InverseGamma(CovariancePrior):
    """blme's invgamma(shape = 0.5, scale = 10^2, posterior.scale = "sd") on each SD."""

    shape: float = 0.5
    scale: float = 100.0
    posterior_scale: str = "sd"

    def bind(self, q: int) -> BoundCovariancePrior:
        _check_scale_prior("invgamma", self.shape, self.scale, self.posterior_scale)
        return _BoundScalePrior(
            "invgamma", float(self.shape), float(self.scale), self.posterior_scale
        )


def _check_scale_prior(name: str, shape: float, rate: float, posterior_scale: str) -> None:
    for label, value in (("shape", shape), ("rate" if name == "gamma" else "scale", rate)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} prior: {label} must be a non-negative number, got {value!r}")
    if posterior_scale not in ("sd", "var"):
        raise ValueError(
            f"{name} prior: posterior_scale must be 'sd' or 'var', got {posterior_scale!r}"
        )


@dataclass(frozen=True)
class _BoundLkj(BoundCovariancePrior):
    eta: float

    def deviance_and_gradient(self, sigma: FloatArray) -> tuple[float, FloatArray]:
        q = sigma.shape[0]
        if q < 2 or self.eta == 1.0:
            return 0.0, np.zeros_like(sigma)
        found = _inverse_and_logdet(sigma)
        if found is None:
            return (float("inf") if self.eta > 1 else 0.0), np.zeros_like(sigma)
        inverse, logdet = found
        variance = np.diag(sigma)
        # log det R = log det Sigma - sum log Sigma_jj.
        log_det_r = logdet - float(np.sum(np.log(variance)))
        factor = -2.0 * (self.eta - 1.0)
        return factor * log_det_r, factor * (inverse - np.diag(1.0 / variance))

    def describe(self) -> str:
        return f"lkj(eta = {self.eta:g})"


@dataclass(frozen=True)
class Lkj(CovariancePrior):
    """The LKJ prior det(R)^(eta - 1) on a term's correlation matrix R (glmmTMB's lkj)."""

    eta: float = 1.0

    def bind(self, q: int) -> BoundCovariancePrior:
        eta = self.eta
        if not isinstance(eta, (int, float)) or not math.isfinite(eta) or eta <= 0:
            raise ValueError(f"lkj prior: eta must be a positive number, got {eta!r}")
        return _BoundLkj(float(eta))


# --- the priors of one fit -------------------------------------------------------------------


@dataclass(frozen=True)
class Priors:
    """The priors of a penalized fit: one on the fixed effects (or None), covariance priors
    applied to every random-effect term (``cov``), and per grouping factor (``by_group``,
    (group, priors) pairs, replacing ``cov`` for that factor's terms)."""

    fixef: FixefPrior | None = None
    cov: tuple[CovariancePrior, ...] = ()
    by_group: tuple[tuple[str, tuple[CovariancePrior, ...]], ...] = ()
    text: str = field(default="none", compare=False)

    @property
    def empty(self) -> bool:
        return self.fixef is None and not self.cov and not any(p for _, p in self.by_group)

    def for_group(self, group: str) -> tuple[CovariancePrior, ...]:
        """The covariance priors of a term whose grouping factor is `group`."""
        for name, priors in self.by_group:
            if name == group:
                return priors
        return self.cov

    def __str__(self) -> str:
        return self.text


NO_PRIORS = Priors()

_FIXEF: dict[str, Callable[..., FixefPrior]] = {"normal": Normal, "t": StudentT, "cauchy": cauchy}
_COVARIANCE: dict[str, Callable[..., CovariancePrior]] = {
    "wishart": Wishart,
    "invwishart": InverseWishart,
    "gamma": Gamma,
    "invgamma": InverseGamma,
    "lkj": Lkj,
}
_POSITIONAL = {
    "normal": ("sd", "cov"),
    "t": ("df", "mean", "scale"),
    "cauchy": ("scale", "mean"),
    "wishart": ("df", "scale"),
    "invwishart": ("df", "scale"),
    "gamma": ("shape", "rate", "posterior_scale"),
    "invgamma": ("shape", "scale", "posterior_scale"),
    "lkj": ("eta",),
}
_NONE = ("none", "flat", "")


def _value(node: ast.AST, text: str) -> Any:
    """A number, Inf, a string, or a (nested) vector from R's c(...) or a list."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
        if isinstance(node.value, bool):
            raise ValueError(f"cannot read prior {text!r}: unexpected {node.value!r}")
        return node.value if isinstance(node.value, str) else float(node.value)
    if isinstance(node, ast.Name) and node.id in ("Inf", "inf"):
        return math.inf
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _value(node.operand, text)
        if isinstance(inner, float):
            return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, text), _value(node.right, text)
        if isinstance(left, float) and isinstance(right, float):
            if isinstance(node.op, ast.Pow) and abs(right) > 1e4:
                raise ValueError(f"cannot read prior {text!r}: {ast.unparse(node)!r} is too large")
            operations = {
                ast.Add: lambda a, b: a + b,
                ast.Sub: lambda a, b: a - b,
                ast.Mult: lambda a, b: a * b,
                ast.Div: lambda a, b: a / b,
                ast.Pow: lambda a, b: a**b,
            }
            for kind, operation in operations.items():
                if isinstance(node.op, kind):
                    return float(operation(left, right))
    if isinstance(node, (ast.List, ast.Tuple)):
        return tuple(_value(e, text) for e in node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "c":
        if node.keywords:
            raise ValueError(f"cannot read prior {text!r}: c() takes values only")
        return tuple(_value(e, text) for e in node.args)
    raise ValueError(f"cannot read prior {text!r}: {ast.unparse(node)!r} is not a number")


def parse_prior(text: str) -> FixefPrior | CovariancePrior | None:
    """One prior from its spelling, e.g. "t(df = 7, scale = 2.5)", "wishart", "lkj(2)";
    None for "none". ValueError naming what cannot be read."""
    if not isinstance(text, str):
        raise ValueError(f"a prior must be written as text such as 'normal(sd = 3)', got {text!r}")
    source = text.strip()
    if source.lower() in _NONE:
        return None
    # R's spellings: 2.5^2, posterior.scale = "sd".
    source = re.sub(r"\bposterior\.scale\b", "posterior_scale", source).replace("^", "**")
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError:
        raise ValueError(
            f"cannot read prior {text!r}: write it as name(argument = value, ...)"
        ) from None
    args: list[Any] = []
    keywords: dict[str, Any] = {}
    if isinstance(tree, ast.Name):
        name = tree.id
    elif isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name):
        name = tree.func.id
        args = [_value(a, text) for a in tree.args]
        for keyword in tree.keywords:
            if keyword.arg is None:
                raise ValueError(f"cannot read prior {text!r}")
            keywords[keyword.arg] = _value(keyword.value, text)
    else:
        raise ValueError(f"cannot read prior {text!r}: write it as name(argument = value, ...)")
    maker: Callable[..., FixefPrior | CovariancePrior] | None = _FIXEF.get(name) or _COVARIANCE.get(
        name
    )
    if maker is None:
        known = ", ".join([*_FIXEF, *_COVARIANCE, "none"])
        raise ValueError(f"unknown prior {name!r} in {text!r}; known: {known}")
    names = _POSITIONAL[name]
    if len(args) > len(names):
        raise ValueError(f"prior {text!r}: {name}() takes at most {len(names)} values")
    for position, value in enumerate(args):
        if names[position] in keywords:
            raise ValueError(f"prior {text!r}: {names[position]} given twice")
        keywords[names[position]] = value
    unknown = [k for k in keywords if k not in names]
    if unknown:
        raise ValueError(
            f"prior {text!r}: {name}() has no argument {', '.join(unknown)}; "
            f"its arguments: {', '.join(names)}"
        )
    try:
        prior: FixefPrior | CovariancePrior = maker(**keywords)
    except TypeError as error:
        raise ValueError(f"cannot read prior {text!r}: {error}") from None
    return prior


def _fixef_prior(value: Any) -> FixefPrior | None:
    if value is None or isinstance(value, FixefPrior):
        return value
    prior = parse_prior(value)
    if prior is not None and not isinstance(prior, FixefPrior):
        raise ValueError(
            f"fixef prior {value!r} is a covariance prior; fixed-effect priors: normal, t, cauchy"
        )
    return prior


def _covariance_priors(value: Any, where: str) -> tuple[CovariancePrior, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, (str, CovariancePrior)) else list(value)
    out: list[CovariancePrior] = []
    for item in items:
        prior = item if isinstance(item, CovariancePrior) else parse_prior(item)
        if prior is None:
            continue
        if not isinstance(prior, CovariancePrior):
            raise ValueError(
                f"{where} prior {item!r} is a fixed-effect prior; covariance priors: "
                f"{', '.join(_COVARIANCE)}"
            )
        out.append(prior)
    return tuple(out)


def _split_text(text: str) -> dict[str, str]:
    """ "fixef = normal(sd = 3); cov = wishart" -> {"fixef": ..., "cov": ...}."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, sign, value = part.partition("=")
        key = key.strip()
        if not sign or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_:.]*", key):
            raise ValueError(
                f"cannot read priors {text!r}: write them as 'fixef = normal(sd = 3); "
                "cov = wishart' (or 'blme', or 'none')"
            )
        out[key] = value.strip()
    return out


def parse_priors(spec: Any) -> Priors:
    """Priors from fit(priors=...): None or "none" (no priors), "blme" (bglmer's default: a
    Wishart covariance prior on every term), a text "fixef = ...; cov = ...", a dict
    {"fixef": ..., "cov": ...}, or a Priors object. cov may be one spelling, a list of them,
    or a dict {group: spelling(s)}."""
    if spec is None:
        return NO_PRIORS
    if isinstance(spec, Priors):
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in _NONE:
            return NO_PRIORS
        if text.lower() == "blme":
            return Priors(cov=(Wishart(),), text="blme: cov = wishart")
        mapping: Mapping[str, Any] = _split_text(text)
        label = text
    elif isinstance(spec, Mapping):
        mapping, label = spec, ""
    else:
        raise ValueError(
            "priors must be a dict such as {'fixef': 'normal(sd = 3)', 'cov': 'wishart'}, "
            f"a text 'fixef = ...; cov = ...', 'blme' or 'none'; got {type(spec).__name__}"
        )
    unknown = [str(k) for k in mapping if k not in ("fixef", "cov")]
    if unknown:
        raise ValueError(
            f"priors: unknown key(s) {', '.join(map(repr, unknown))}; the keys are 'fixef' (the "
            "fixed effects) and 'cov' (the random-effect covariances)"
        )
    fixef = _fixef_prior(mapping.get("fixef"))
    cov_value = mapping.get("cov")
    cov: tuple[CovariancePrior, ...] = ()
    by_group: list[tuple[str, tuple[CovariancePrior, ...]]] = []
    if isinstance(cov_value, Mapping):
        for group, value in cov_value.items():
            by_group.append((str(group), _covariance_priors(value, f"cov[{group!r}]")))
    else:
        cov = _covariance_priors(cov_value, "cov")
    if not label:
        parts = []
        if "fixef" in mapping:
            parts.append(f"fixef = {_shown(mapping['fixef'])}")
        if "cov" in mapping:
            parts.append(f"cov = {_shown(mapping['cov'])}")
        label = "; ".join(parts) or "none"
    return Priors(fixef, cov, tuple(by_group), text=label)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return repr(value)
