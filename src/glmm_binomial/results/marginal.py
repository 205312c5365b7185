"""Marginal (population-averaged) probabilities and coefficients, which lme4 and glmmTMB do not
give.

Marginal probability of a row: E_b[F(x'beta + offset + sum_t z_t' b_t)] (F the family's inverse
link: expit for the logit) with the random effects integrated out, b_t ~ N(0, Sigma_t)
independent across terms and levels. Whatever the number of random-effect columns k, the
random part of the linear predictor is one normal variable with variance
s^2 = sum_t z_t' Sigma_t z_t, so the integral is one-dimensional:
E[F(eta + s Z)], Z ~ N(0, 1), computed by Gauss-Hermite quadrature with many nodes
(N_NODES, accurate to ~1e-12 for s up to 5 on the log-odds scale). The beta-binomial's mean
proportion is F(eta) as the binomial's, so its marginal probabilities are the same integral.

Marginal coefficients (GLMMadaptive's marginal_coefs, Hedeker et al. 2018): the least-squares
fit of F^{-1}(marginal probability) on X over the fit's rows, beta_m = (X'X)^{-1} X' F^{-1}(mu_m)
(offset removed), with delta-method standard errors from the covariance of (theta, beta)
(inverse of half the Hessian of the Laplace deviance; a variance on the boundary held fixed).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.arguments import positive_int
from glmm_binomial.family import Family
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.newdata import new_data_design
from glmm_binomial.numerics import normal
from glmm_binomial.results.base import ResultBase
from glmm_binomial.results.simulate import deviance_hessian

FloatArray = NDArray[np.float64]

N_NODES = 120
"""Gauss-Hermite nodes of the marginal integral."""


@lru_cache(maxsize=4)
def _nodes(n: int) -> tuple[FloatArray, FloatArray]:
    """Nodes and weights for E[f(Z)], Z ~ N(0, 1)."""
    x, w = np.polynomial.hermite.hermgauss(n)
    return np.sqrt(2.0) * x, w / np.sqrt(np.pi)


def marginal_mean(
    eta: FloatArray, sd: FloatArray, n_nodes: int = N_NODES, family: Family | None = None
) -> FloatArray:
    """E[F(eta + sd Z)], Z ~ N(0, 1), row by row; F the family's inverse link (None: expit)."""
    from scipy.special import expit  # here only: its import costs a first call about 0.15 s

    nodes, weights = _nodes(n_nodes)
    shifted = eta[:, None] + sd[:, None] * nodes[None, :]
    values = (
        expit(shifted) if family is None or family.link == "logit" else family.inverse_link(shifted)
    )
    return np.asarray(values @ weights)


def random_sd(z_blocks: list[FloatArray], covariances: list[FloatArray]) -> FloatArray:
    """sqrt(sum_t z_t' Sigma_t z_t) per row: the SD of the random part of the linear
    predictor."""
    n = z_blocks[0].shape[0] if z_blocks else 0
    variance = np.zeros(n)
    for z, cov in zip(z_blocks, covariances, strict=True):
        variance += np.einsum("ic,cd,id->i", z, cov, z)
    return np.sqrt(np.clip(variance, 0.0, None))


def _covariances(model: ModelData, theta: FloatArray) -> list[FloatArray]:
    return [lam @ lam.T for lam in model.lambdas(theta)]


def marginal_predict(
    result: ResultBase, newdata: Any = None, offset: Any = None, n_nodes: int = N_NODES
) -> FloatArray:
    """Population-averaged probabilities of the rows of newdata (None: the fit's rows)."""
    positive_int(n_nodes, "n_nodes")
    fit = result.fit_output
    covariances = result.covariance_matrices()
    if newdata is None:
        if offset is not None:
            raise ValueError("offset applies only with newdata")
        model = result.model
        eta = model.x @ fit.beta + model.offset
        sd = random_sd([b.z for b in model.blocks], covariances)
        return marginal_mean(eta, sd, n_nodes, model.family)
    if result.design is None:
        raise ValueError("marginal_predict with newdata needs a model fitted from a formula")
    design = new_data_design(result.design, newdata, offset)
    eta = design.x @ fit.beta + design.offset
    sd = random_sd([z for _, z in design.random], covariances)
    # Rows missing a needed value predict NaN, as predict() does.
    out = np.full(len(design.complete), np.nan)
    out[design.complete] = marginal_mean(eta, sd, n_nodes, result.model.family)
    return out


def _marginal_coefficients(
    model: ModelData, theta: FloatArray, beta: FloatArray, n_nodes: int
) -> FloatArray:
    eta = model.x @ beta + model.offset
    sd = random_sd([b.z for b in model.blocks], _covariances(model, theta))
    family = model.family
    mu = np.clip(marginal_mean(eta, sd, n_nodes, family), 1e-300, 1.0 - 1e-16)
    from scipy.special import logit  # here only: its import costs a first call about 0.15 s

    target = (logit(mu) if family.link == "logit" else family.link_values(mu)) - model.offset
    coefficients, *_ = np.linalg.lstsq(model.x, target, rcond=None)
    return np.asarray(coefficients, dtype=np.float64)


def marginal_coefs(
    result: ResultBase, std_errors: bool = True, n_nodes: int = N_NODES, step: float = 1e-5
) -> pd.DataFrame:
    """Marginal coefficients (the link of the population-averaged probability: log-odds for
    the logit) with
    delta-method standard errors (Laplace fits; `step` is the relative central-difference step
    of their Jacobian). Columns: estimate, std_error, z, p; NaN for a coefficient with no finite
    estimate (separation: `diverging`)."""
    positive_int(n_nodes, "n_nodes")
    model, fit = result.model, result.fit_output
    estimate = _marginal_coefficients(model, fit.theta, fit.beta, n_nodes)
    se = np.full(len(estimate), np.nan)
    if std_errors:
        if result.method != "laplace":
            raise ValueError("marginal_coefs standard errors need a method='laplace' fit")
        covariance, free = _parameter_covariance(result)
        x0 = np.concatenate([fit.theta, fit.beta])
        n_theta = model.n_theta
        jacobian = np.zeros((len(estimate), len(x0)))
        for j in np.flatnonzero(free):
            h = step * max(1.0, abs(x0[j]))
            up, down = x0.copy(), x0.copy()
            up[j] += h
            down[j] -= h
            jacobian[:, j] = (
                _marginal_coefficients(model, up[:n_theta], up[n_theta:], n_nodes)
                - _marginal_coefficients(model, down[:n_theta], down[n_theta:], n_nodes)
            ) / (2.0 * h)
        jf = jacobian[:, free]
        se = np.sqrt(np.clip(np.diag(jf @ covariance @ jf.T), 0.0, None))
    # No estimate where the conditional coefficient has none (its value is a point on a
    # diverging path), as fixed_effects_table.
    estimate[list(fit.diverging)] = np.nan
    se[list(fit.diverging)] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        z = estimate / se
    return pd.DataFrame(
        {"estimate": estimate, "std_error": se, "z": z, "p": 2.0 * normal.upper_tail(np.abs(z))},
        index=pd.Index(result.fixed_names, name="term"),
    )


def _parameter_covariance(result: ResultBase) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Covariance of the free entries of (theta, beta): inverse of half the Laplace deviance
    Hessian (central differences of the exact gradient); theta on the boundary is held fixed."""
    model, fit = result.model, result.fit_output
    hessian = deviance_hessian(result, central=True)
    lower = model.theta_lower_bounds()
    tol = float(fit.opt_summary.tolerances.get("boundary_tol", 1e-4))
    boundary = np.isfinite(lower) & (fit.theta < tol)
    free = np.concatenate([~boundary, np.ones(model.n_fixed, dtype=bool)])
    # A coefficient with no finite estimate (separation) is held at its value, as in the
    # fixed effects' covariance (numerics.covariance): the Hessian there is flat.
    free[model.n_theta + np.asarray(fit.diverging, dtype=np.intp)] = False
    info = 0.5 * hessian[np.ix_(free, free)]
    return np.linalg.pinv(info), free
