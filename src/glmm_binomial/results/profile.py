"""Profile-likelihood confidence intervals for every parameter (lme4's confint(profile(m))).

Parameters are profiled on lme4's scale: the SD of each random-effect term, the correlation of
each pair of terms in one block (`cor_<term_r>.<term_c>|<group>`), and the fixed effects. For a
parameter held at a value v, the Laplace deviance is minimized over all the others; the
interval is where the profiled deviance exceeds its minimum by at most the chi-square(1)
quantile of the level, found by Brent's method on that difference. A profile that stays below
the cut-off up to a boundary (an SD of 0, a correlation of -1 or 1) gives that boundary.

Covariance parameters are handled through Sigma_t = D C D with D = diag(SDs) and C = L L' the
correlation matrix, L its Cholesky factor written in canonical partial correlations z (each in
(-1, 1)): Lambda_t = D L is lower triangular, so theta follows directly. The first partial
correlation is the correlation of the block's first two terms; a correlation of other terms is
profiled on a copy of the model whose block lists those two terms first (the deviance depends
on the covariance only, not on the order of the terms).

The beta-binomial's dispersion phi is profiled as `phi` (on its own scale, held above
ProfileControl.phi_lower; the deviance is evaluated at log phi, theta's tail).

If a re-fit finds a deviance below the fit's (the fit stopped short, as lme4's does when it
reports "profiling detected new, lower deviance"), the profile moves to the better optimum and
starts again, and says so in `warnings`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.optimize
from numpy.typing import NDArray
from scipy import stats

from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.model.data import ModelData, RandomBlock

if TYPE_CHECKING:
    from glmm_binomial.results.result import GLMMResult

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ProfileControl:
    """Tolerances of the profile.

    xtol: Brent's tolerance on an interval end. gtol, max_iter: of each constrained re-fit
    (L-BFGS-B in scaled coordinates). max_doublings: cap on doublings of the bracket (first
    step: the parameter's Wald standard error on the profile scale). hessian_step: relative
    finite-difference step of the Hessian that scales the re-fits. correlation_limit: how close
    to -1 / 1 partial correlations may go. lower_deviance_tol: a re-fit this far below the
    minimum counts as a better optimum; max_restarts caps the restarts from one. phi_lower:
    the smallest beta-binomial phi the profile visits.
    """

    xtol: float = 1e-6
    gtol: float = 1e-6
    max_iter: int = 500
    max_doublings: int = 30
    hessian_step: float = 1e-4
    correlation_limit: float = 1.0 - 1e-8
    lower_deviance_tol: float = 1e-5
    max_restarts: int = 3
    phi_lower: float = 1e-6


@dataclass(frozen=True)
class ParameterProfile:
    """The profile of one parameter: points visited (value, zeta = sign * sqrt(deviance
    excess)) and the interval at `conf_level`."""

    name: str
    kind: str  # "sd", "cor", "phi" or "fixed"
    estimate: float
    values: FloatArray
    zeta: FloatArray
    lower: float
    upper: float


@dataclass(frozen=True)
class LikelihoodProfile:
    """Profiles of several parameters of one fit (laplace deviance), as lme4's profile()."""

    parameters: dict[str, ParameterProfile]
    conf_level: float
    deviance: float
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def confint(self) -> pd.DataFrame:
        """Interval ends at the profile's level, one row per parameter (lme4's names)."""
        rows = [{"parameter": p.name, "lower": p.lower, "upper": p.upper} for p in self]
        table = pd.DataFrame(rows).set_index("parameter")
        table.attrs["warnings"] = self.warnings
        return table

    def __iter__(self) -> Iterator[ParameterProfile]:
        return iter(self.parameters.values())


# --- covariance parametrization ---------------------------------------------------------------
def _strict_lower(k: int) -> list[tuple[int, int]]:
    """(row, column) of the partial correlations, row by row."""
    return [(i, j) for i in range(1, k) for j in range(i)]


def _cholesky_of_correlation(z: NDArray[np.generic], k: int) -> NDArray[np.generic]:
    """L with unit-length rows from canonical partial correlations (complex-step safe)."""
    lower = np.zeros((k, k), dtype=z.dtype)
    position = 0
    for i in range(k):
        remaining = np.ones((), dtype=z.dtype)
        for j in range(i):
            lower[i, j] = z[position] * np.sqrt(remaining)
            remaining = remaining - lower[i, j] ** 2
            position += 1
        lower[i, i] = np.sqrt(remaining)
    return lower


def _block_theta(block: RandomBlock, p: NDArray[np.generic]) -> NDArray[np.generic]:
    """theta of one block from (SDs, partial correlations)."""
    k = block.k
    lam: NDArray[np.generic] = np.multiply(p[:k, None], _cholesky_of_correlation(p[k:], k))
    rows, cols = block.lower_indices()
    return lam[rows, cols]


def _block_parameters(block: RandomBlock, theta: FloatArray) -> FloatArray:
    """(SDs, partial correlations) of one block from its theta."""
    k = block.k
    lam = block.lambda_matrix(theta)
    sigma = lam @ lam.T
    sd = np.sqrt(np.clip(np.diag(sigma), 0.0, None))
    scale = np.where(sd > 0, sd, 1.0)
    corr = sigma / np.outer(scale, scale)
    corr[sd == 0, :] = 0.0
    corr[:, sd == 0] = 0.0
    np.fill_diagonal(corr, 1.0)
    try:
        lower = np.linalg.cholesky(corr + 1e-14 * np.eye(k))
    except np.linalg.LinAlgError:
        lower = np.linalg.cholesky(0.5 * corr + 0.5 * np.eye(k))
    z = []
    for i, j in _strict_lower(k):
        remaining = max(1.0 - float(np.sum(lower[i, :j] ** 2)), 1e-300)
        z.append(np.clip(lower[i, j] / np.sqrt(remaining), -1.0, 1.0))
    return np.concatenate([sd, np.array(z, dtype=np.float64)])


def _permuted(model: ModelData, t: int, order: Sequence[int]) -> ModelData:
    """The model with block t's terms (columns of Z) in `order`."""
    blocks = list(model.blocks)
    b = blocks[t]
    blocks[t] = RandomBlock(
        b.group, tuple(b.terms[i] for i in order), b.codes, b.levels, b.z[:, list(order)]
    )
    return replace(model, blocks=tuple(blocks))


@dataclass
class _Coordinates:
    """The deviance of one model in profile coordinates p = (per block: SDs, partial
    correlations; then the family's phi; then beta), with its exact gradient (the Jacobian of
    theta in p by complex steps; log phi' = 1 / phi)."""

    model: ModelData
    objective: LaplaceObjective
    lower: FloatArray
    upper: FloatArray
    kinds: list[str]
    n_var: int
    _hessian: tuple[bytes, FloatArray] | None = None

    @classmethod
    def build(cls, model: ModelData, limit: float, phi_lower: float = 1e-6) -> _Coordinates:
        lower: list[float] = []
        upper: list[float] = []
        kinds: list[str] = []
        for b in model.blocks:
            lower += [0.0] * b.k + [-limit] * (b.n_theta - b.k)
            upper += [np.inf] * b.k + [limit] * (b.n_theta - b.k)
            kinds += ["sd"] * b.k + ["cor"] * (b.n_theta - b.k)
        n_family = model.family.n_parameters
        lower += [phi_lower] * n_family
        upper += [np.inf] * n_family
        kinds += ["phi"] * n_family
        n_var = len(lower)
        lower += [-np.inf] * model.n_fixed
        upper += [np.inf] * model.n_fixed
        kinds += ["fixed"] * model.n_fixed
        return cls(model, LaplaceObjective(model), np.array(lower), np.array(upper), kinds, n_var)

    def from_theta_beta(self, theta: FloatArray, beta: FloatArray) -> FloatArray:
        parts = [
            _block_parameters(b, theta[s])
            for b, s in zip(self.model.blocks, self.model.theta_slices(), strict=True)
        ]
        family = np.exp(np.asarray(theta)[self.model.family_slice])
        return np.concatenate([*parts, family, beta])

    def theta(self, p: FloatArray) -> FloatArray:
        parts = [
            _block_theta(b, p[s])
            for b, s in zip(self.model.blocks, self.model.theta_slices(), strict=True)
        ]
        parts.append(np.log(np.asarray(p[self.model.family_slice], dtype=np.float64)))
        return np.concatenate(parts).real.astype(np.float64)

    def deviance_and_gradient(self, p: FloatArray) -> tuple[float, FloatArray]:
        model = self.model
        theta = self.theta(p)
        beta = p[self.n_var :]
        dev, g_theta, g_beta = self.objective.deviance_and_gradient(theta, beta)
        grad = np.empty(len(p))
        grad[self.n_var :] = g_beta
        for b, s in zip(model.blocks, model.theta_slices(), strict=True):
            local = p[s].astype(np.complex128)
            jac = np.empty((b.n_theta, b.n_theta))
            step = 1e-20
            for j in range(b.n_theta):
                shifted = local.copy()
                shifted[j] += 1j * step
                jac[:, j] = _block_theta(b, shifted).imag / step
            grad[s] = jac.T @ g_theta[s]
        family = model.family_slice
        grad[family] = g_theta[family] / p[family]
        if not np.isfinite(dev) or not np.all(np.isfinite(grad)):
            return float("inf"), np.zeros(len(p))
        return float(dev), grad

    def hessian(self, p: FloatArray, step: float) -> FloatArray:
        """Central differences of the exact gradient (steps relative to each coordinate, kept
        inside the bounds); remembered for the last p."""
        key = p.tobytes() + np.float64(step).tobytes()
        if self._hessian is not None and self._hessian[0] == key:
            return self._hessian[1]
        n = len(p)
        hess = np.zeros((n, n))
        for j in range(n):
            h = step * max(1.0, abs(p[j]))
            up = min(p[j] + h, self.upper[j])
            down = max(p[j] - h, self.lower[j])
            if up <= down:
                continue
            a, b = p.copy(), p.copy()
            a[j], b[j] = up, down
            hess[:, j] = (self.deviance_and_gradient(a)[1] - self.deviance_and_gradient(b)[1]) / (
                up - down
            )
        hess = 0.5 * (hess + hess.T)
        self._hessian = (key, hess)
        return hess


class _BetterOptimum(Exception):
    def __init__(self, coords: _Coordinates, p: FloatArray) -> None:
        super().__init__("lower deviance")
        self.coords, self.p = coords, p


@dataclass
class _Target:
    name: str
    kind: str
    coords: _Coordinates
    index: int  # in p


def _targets(model: ModelData, limit: float, phi_lower: float = 1e-6) -> list[_Target]:
    """Every parameter in lme4's order: per block, SDs and correlations in theta's layout
    (sd_1, cor_2.1, ..., sd_2, ...), then the fixed effects."""
    base = _Coordinates.build(model, limit, phi_lower)
    out: list[_Target] = []
    cache: dict[tuple[int, int, int], _Coordinates] = {}
    for t, (b, s) in enumerate(zip(model.blocks, model.theta_slices(), strict=True)):
        rows, cols = b.lower_indices()
        for r, c in zip(rows, cols, strict=True):
            if r == c:
                out.append(_Target(f"sd_{b.terms[r]}|{b.group}", "sd", base, s.start + int(r)))
                continue
            if c == 0 and r == 1:
                coords, index = base, s.start + b.k
            else:
                order = [int(c), int(r)] + [i for i in range(b.k) if i not in (r, c)]
                key = (t, int(c), int(r))
                if key not in cache:
                    cache[key] = _Coordinates.build(_permuted(model, t, order), limit, phi_lower)
                coords, index = cache[key], s.start + b.k
            out.append(_Target(f"cor_{b.terms[r]}.{b.terms[c]}|{b.group}", "cor", coords, index))
    for j in range(model.family.n_parameters):
        out.append(_Target("phi", "phi", base, model.n_covariance + j))
    for j, name in enumerate(model.fixed_names):
        out.append(_Target(name, "fixed", base, base.n_var + j))
    return out


def _check(result: GLMMResult, conf_level: float) -> None:
    from glmm_binomial.results.result import GLMMResult

    if not isinstance(result, GLMMResult):
        raise ValueError("result must be a GLMMResult")
    if result.method != "laplace":
        raise ValueError("profile intervals are computed for method='laplace' fits")
    if isinstance(conf_level, bool) or not 0.0 < float(conf_level) < 1.0:
        raise ValueError("conf_level must be strictly between 0 and 1")


def profile(
    result: GLMMResult,
    conf_level: float = 0.95,
    which: Sequence[str] | str | None = None,
    control: ProfileControl | None = None,
) -> LikelihoodProfile:
    """Profile the Laplace deviance of a fit over each parameter.

    which: parameter names (lme4's: `sd_<term>|<group>`, `cor_<a>.<b>|<group>`, fixed-effect
    names, "phi" for the beta-binomial's dispersion), or "theta_" for all covariance
    parameters (and phi), "beta_" for all fixed effects; None: all. Returns the profiles with
    the intervals at `conf_level`."""
    _check(result, conf_level)
    control = control or ProfileControl()
    model = result.model
    if model.x.shape[0] != model.n_obs:
        raise ValueError(
            "profile intervals refit the model, and the rows of this fit are on a Dask cluster; "
            "use Wald intervals (confint(method='wald')), or fit the computed frame in memory "
            "(glmm_binomial.fit(formula, ddf.compute()))"
        )
    targets = _targets(model, control.correlation_limit, control.phi_lower)
    names = [t.name for t in targets]
    if which is None:
        chosen = targets
    elif isinstance(which, str) and which in ("theta_", "beta_"):
        kinds = ("sd", "cor", "phi") if which == "theta_" else ("fixed",)
        chosen = [t for t in targets if t.kind in kinds]
    else:
        wanted = [which] if isinstance(which, str) else list(which)
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise ValueError(
                f"which: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(names)}"
            )
        chosen = [t for t in targets if t.name in wanted]
    cutoff = float(stats.chi2.ppf(conf_level, 1))

    theta, beta = result.theta, result.params.to_numpy()
    warnings: list[str] = []
    # Check the optimum first (a fit stopped short would shift every interval): a short
    # bound-constrained search from the estimates, kept only if it lowers the deviance.
    base = _Coordinates.build(model, control.correlation_limit, control.phi_lower)
    p0 = base.from_theta_beta(theta, beta)
    deviance0 = base.deviance_and_gradient(p0)[0]
    p1 = _minimize_all(base, p0, control)
    if base.deviance_and_gradient(p1)[0] < deviance0 - control.lower_deviance_tol:
        theta, beta = base.theta(p1), p1[base.n_var :]
        warnings.append(
            "the fit's estimates are not at the minimum of the deviance; the profile is "
            "computed around the better optimum found from them"
        )
    for _ in range(control.max_restarts + 1):
        try:
            profiles, deviance = _profile_all(model, chosen, theta, beta, cutoff, control)
            break
        except _BetterOptimum as better:
            found = better.coords
            theta = _permuted_theta(found.model, model, found.theta(better.p))
            base = _Coordinates.build(model, control.correlation_limit, control.phi_lower)
            p = _minimize_all(base, base.from_theta_beta(theta, better.p[found.n_var :]), control)
            theta, beta = base.theta(p), p[base.n_var :]
            warnings.append(
                "profiling found a lower deviance than the fit's; the profile was restarted "
                "from the better optimum"
            )
    else:
        raise RuntimeError("profiling kept finding lower deviances; refit the model")
    return LikelihoodProfile(
        {p.name: p for p in profiles}, float(conf_level), deviance, tuple(warnings)
    )


def _minimize_all(coords: _Coordinates, p0: FloatArray, control: ProfileControl) -> FloatArray:
    scale = np.where(np.abs(p0) > 0.1, np.abs(p0), 0.1)
    bounds = list(zip(coords.lower / scale, coords.upper / scale, strict=True))

    def fun(w: FloatArray) -> tuple[float, FloatArray]:
        dev, grad = coords.deviance_and_gradient(w * scale)
        return dev, grad * scale

    found = scipy.optimize.minimize(
        fun,
        p0 / scale,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"gtol": control.gtol * 1e-2, "ftol": 1e-15, "maxiter": 10 * control.max_iter},
    )
    return np.asarray(found.x) * scale


def _profile_all(
    model: ModelData,
    targets: list[_Target],
    theta: FloatArray,
    beta: FloatArray,
    cutoff: float,
    control: ProfileControl,
) -> tuple[list[ParameterProfile], float]:
    out = []
    deviance_hat = float("nan")
    for target in targets:
        coords = target.coords
        # A permuted copy: the same covariance with the terms reordered.
        theta_t = theta if coords.model is model else _permuted_theta(model, coords.model, theta)
        p_hat = coords.from_theta_beta(theta_t, beta)
        prof = _OneProfile(coords, p_hat, target.index, control)
        deviance_hat = prof.deviance_hat
        out.append(prof.run(target, cutoff))
    return out, deviance_hat


def _permuted_theta(original: ModelData, permuted: ModelData, theta: FloatArray) -> FloatArray:
    """theta of `permuted` (one block's terms reordered) with the same covariances."""
    parts = []
    for a, b, s in zip(original.blocks, permuted.blocks, original.theta_slices(), strict=True):
        if a.terms == b.terms:
            parts.append(theta[s])
            continue
        order = [a.terms.index(term) for term in b.terms]
        lam = a.lambda_matrix(theta[s])
        sigma = (lam @ lam.T)[np.ix_(order, order)]
        new = _psd_cholesky(sigma)
        rows, cols = b.lower_indices()
        parts.append(new[rows, cols])
    parts.append(np.asarray(theta)[original.family_slice])
    return np.concatenate(parts)


def _psd_cholesky(sigma: FloatArray) -> FloatArray:
    """Lower Cholesky factor of a positive semi-definite matrix (zero columns where singular)."""
    k = sigma.shape[0]
    lower = np.zeros((k, k))
    for j in range(k):
        d = sigma[j, j] - float(np.sum(lower[j, :j] ** 2))
        if d <= 1e-14 * max(1.0, float(np.max(np.diag(sigma)))):
            continue
        lower[j, j] = np.sqrt(d)
        for i in range(j + 1, k):
            lower[i, j] = (sigma[i, j] - float(np.sum(lower[i, :j] * lower[j, :j]))) / lower[j, j]
    return lower


class _OneProfile:
    """The deviance profiled over coordinate `index` of p, re-fits warm-started from the
    previous point moved along the Wald direction."""

    def __init__(
        self, coords: _Coordinates, p_hat: FloatArray, index: int, control: ProfileControl
    ) -> None:
        self.coords, self.p_hat, self.index, self.control = coords, p_hat, index, control
        self.deviance_hat = coords.deviance_and_gradient(p_hat)[0]
        hess = coords.hessian(p_hat, control.hessian_step)
        n = len(p_hat)
        self.free = np.ones(n, dtype=bool)
        self.free[index] = False
        h_ff = hess[np.ix_(self.free, self.free)]
        h_ff = h_ff + np.diag(np.where(np.diag(h_ff) > 1e-8, 0.0, 1.0))
        # Moving the target by dv moves the conditional optimum by direction * dv.
        try:
            self.direction = -np.linalg.solve(h_ff, hess[self.free, index])
        except np.linalg.LinAlgError:
            self.direction = np.zeros(n - 1)
        # Curvature along the profile gives the Wald SE on this scale (the first bracket).
        curvature = float(hess[index, index] + hess[index, self.free] @ self.direction)
        estimate = float(p_hat[index])
        self.se = (
            float(np.sqrt(2.0 / curvature)) if curvature > 1e-10 else 0.1 * max(1.0, abs(estimate))
        )
        diag = np.diag(h_ff)
        self.scale = 1.0 / np.sqrt(np.where(diag > 1e-8, diag, 1.0))
        # Fixed effects (unbounded) are whitened fully: badly scaled predictors (age, age^2)
        # are then no harder than others.
        kinds = np.array(coords.kinds)[self.free]
        self.beta = kinds == "fixed"
        self.transform = np.diag(self.scale)
        if np.any(self.beta):
            block = h_ff[np.ix_(self.beta, self.beta)]
            try:
                r = scipy.linalg.cholesky(block, lower=False)
                inv = scipy.linalg.solve_triangular(r, np.eye(len(block)), lower=False)
                self.transform[np.ix_(self.beta, self.beta)] = inv
            except scipy.linalg.LinAlgError:
                pass
        self.points: list[tuple[float, float]] = [(estimate, 0.0)]
        self.restart()

    def restart(self) -> None:
        self.warm_value = float(self.p_hat[self.index])
        self.warm = self.p_hat[self.free].copy()

    def zeta_gap(self, value: float, critical: float) -> float:
        """|zeta| at p[index] = value minus the critical value sqrt(cut-off): zeta is nearly
        linear in the value, so Brent's method needs few re-fits."""
        self.excess(value)
        return abs(self.points[-1][1]) - critical

    def excess(self, value: float, cutoff: float = 0.0) -> float:
        """Profiled deviance at p[index] = value, minus the minimum and the cut-off."""
        coords = self.coords
        p = self.p_hat.copy()
        p[self.index] = value
        lower, upper = coords.lower[self.free], coords.upper[self.free]
        start = np.clip(self.warm + self.direction * (value - self.warm_value), lower, upper)
        transform = self.transform
        inverse = np.linalg.inv(transform)
        w0 = inverse @ (start - start)  # the origin of w is `start`
        bounds = []
        for j in range(len(start)):
            if self.beta[j]:
                bounds.append((None, None))
            else:
                s = transform[j, j]
                lo = (lower[j] - start[j]) / s if np.isfinite(lower[j]) else None
                hi = (upper[j] - start[j]) / s if np.isfinite(upper[j]) else None
                bounds.append((lo, hi))

        def fun(w: FloatArray) -> tuple[float, FloatArray]:
            p[self.free] = start + transform @ w
            dev, grad = coords.deviance_and_gradient(p)
            return dev, transform.T @ grad[self.free]

        found = scipy.optimize.minimize(
            fun,
            w0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={
                "gtol": self.control.gtol,
                "ftol": 1e-14,
                "maxiter": self.control.max_iter,
            },
        )
        free_values = start + transform @ np.asarray(found.x)
        self.warm, self.warm_value = free_values, value
        difference = float(found.fun) - self.deviance_hat
        if difference < -self.control.lower_deviance_tol:
            p[self.free] = free_values
            raise _BetterOptimum(coords, p.copy())
        zeta = float(np.sign(value - self.p_hat[self.index]) * np.sqrt(max(difference, 0.0)))
        self.points.append((value, zeta))
        return difference - cutoff

    def run(self, target: _Target, cutoff: float) -> ParameterProfile:
        coords, index = self.coords, self.index
        estimate = float(self.p_hat[index])
        low_bound, high_bound = coords.lower[index], coords.upper[index]
        ends = []
        critical = float(np.sqrt(cutoff))
        for direction in (-1.0, 1.0):
            self.restart()
            bound = low_bound if direction < 0 else high_bound
            # First trial at the Wald end; then along the secant of |zeta| (nearly linear in
            # the value) aimed a little beyond the critical value, at most doubling the
            # distance, until the critical value is bracketed.
            inside, inside_zeta, outside = estimate, 0.0, None
            trial = estimate + direction * critical * self.se
            for _ in range(self.control.max_doublings):
                at_bound = bool(direction * (trial - bound) >= 0)
                if at_bound:
                    trial = float(bound)
                if trial == inside:
                    break
                gap = self.zeta_gap(trial, critical)
                if gap > 0.0:
                    outside = trial
                    break
                distance = abs(trial - estimate)
                slope = (gap + critical - inside_zeta) / abs(trial - inside)
                inside, inside_zeta = trial, gap + critical
                if at_bound:
                    break
                ahead = 2.0 * distance
                if slope > 0:
                    ahead = min(ahead, 1.02 * (-gap) / slope + 1e-3 * distance)
                trial = inside + direction * max(ahead, 1e-8 * max(1.0, abs(inside)))
            if outside is None:
                end = float(bound) if np.isfinite(bound) else direction * np.inf
                if target.kind == "cor" and abs(end) >= self.control.correlation_limit:
                    end = float(np.sign(end))
                ends.append(end)
                continue
            ends.append(
                float(
                    scipy.optimize.brentq(
                        self.zeta_gap, inside, outside, args=(critical,), xtol=self.control.xtol
                    )
                )
            )
        points = sorted(dict(self.points).items())  # a value visited twice is kept once
        values = np.array([v for v, _ in points])
        zeta = np.array([z for _, z in points])
        return ParameterProfile(target.name, target.kind, estimate, values, zeta, *ends)


def profile_confint(
    result: GLMMResult,
    conf_level: float = 0.95,
    control: ProfileControl | None = None,
    which: Sequence[str] | str | None = None,
) -> pd.DataFrame:
    """Profile-likelihood intervals (lower, upper) at `conf_level` for every parameter (or
    those in `which`), indexed by lme4's names: `sd_<term>|<group>`, `cor_<a>.<b>|<group>`,
    then the fixed effects. Laplace fits only."""
    return profile(result, conf_level, which=which, control=control).confint()
