"""Profile-likelihood confidence intervals for every parameter (lme4's confint(profile(m))).

Parameters are profiled on lme4's scale: the SD of each random-effect term, the correlation of
each pair of terms in one block (`cor_<term_r>.<term_c>|<group>`), and the fixed effects. For a
parameter held at a value v, the fit's deviance (the Laplace approximation's, or AGQ's with the
fit's n_agq, as lme4 profiles an nAGQ > 1 fit) is minimized over all the others; the
interval is where the profiled deviance exceeds its minimum by at most the chi-square(1)
quantile of the level, found by Brent's method on that difference. A profile that stays below
the cut-off up to a boundary (an SD of 0, a correlation of -1 or 1) gives that boundary.

Covariance parameters are handled through Sigma_t = D C D with D = diag(SDs) and C = L L' the
correlation matrix, L its Cholesky factor written in canonical partial correlations z (each in
(-1, 1)): Lambda_t = D L is lower triangular, so theta follows directly. The first partial
correlation is the correlation of the block's first two terms; a correlation of other terms is
profiled on a copy of the model whose block lists those two terms first (the deviance depends
on the covariance only, not on the order of the terms; not so AGQ's product rule, whose fits
are not profiled over those correlations).

The beta-binomial's dispersion phi is profiled as `phi` (on its own scale, held above
ProfileControl.phi_lower; the deviance is evaluated at log phi, theta's tail).

A structured term (ar1, cs, diag: model.covariance) is profiled over its own parameters, its
SD(s) and rho, named as covariance entries (ar1: sd_<first term>|g and cor_<second>.<first>|g
for rho). A penalized fit (priors) is profiled on its penalized objective, deviance plus prior
deviance, as the curvature of that objective gives its standard errors.

If a re-fit finds a deviance below the fit's (the fit stopped short, as lme4's does when it
reports "profiling detected new, lower deviance"), the profile moves to the better optimum and
starts again, and says so in `warnings`.

SDs on the boundary: the deviance is even in each SD (it depends on SD^2), so SD = 0 is always
a stationary point of a re-fit, a minimum or not. On a singular fit (an SD estimated at 0),
holding another parameter (the intercept, say) away from its estimate can move the conditional
minimum of that SD off 0; a re-fit started at SD = 0 would stay there, reporting a deviance
too high, and the profile would depend on the order its points were visited (Brent's method
then saw "f(a) and f(b) must have different signs"). A re-fit that ends with a free SD at 0 is
therefore repeated from that SD at a positive value (``ProfileControl.sd_restart`` over the
largest |z| of its column), and the lower deviance is kept; and the SD of a one-term block runs
over the whole line in re-fits (the deviance is even in it, so its sign does not matter), so
that a step past 0 is not projected onto that stationary point. Brent's method gets a bracket whose
ends are evaluated again first (moved inward or outward if a re-evaluation changed sides).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.linalg
from numpy.typing import NDArray

from glmm_binomial.arguments import fraction
from glmm_binomial.methods.base import checked_control
from glmm_binomial.methods.laplace import LaplaceObjective
from glmm_binomial.model.covariance import ScaledCorrelation
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.model.validation import block_text
from glmm_binomial.numerics import normal
from glmm_binomial.numerics.hessian import gradient_hessian
from glmm_binomial.numerics.optimize import deviance_or_none
from glmm_binomial.results.base import ResultBase
from glmm_binomial.results.parameters import chosen_parameters

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ProfileControl:
    """Tolerances of the profile.

    xtol: Brent's tolerance on an interval end. gtol, ftol, max_iter: of each constrained
    re-fit (L-BFGS-B in scaled coordinates); restart_gtol, restart_ftol, restart_max_iter: of
    the search for the better optimum a re-fit found (tighter, as its end is the profile's new
    minimum). max_doublings: cap on doublings of the bracket (first
    step: the parameter's Wald standard error on the profile scale). hessian_step: relative
    finite-difference step of the Hessian that scales the re-fits. correlation_limit: how close
    to -1 / 1 partial correlations may go. lower_deviance_tol: a re-fit this far below the
    minimum counts as a better optimum; max_restarts caps the restarts from one. phi_lower:
    the smallest beta-binomial phi the profile visits; phi_upper: the largest its search for
    phi's upper end visits (the deviance there is the binomial limit's to about rows x trials
    / phi_upper; an end not crossed by then is infinite).
    """

    xtol: float = 1e-6
    gtol: float = 1e-6
    ftol: float = 1e-14
    max_iter: int = 500
    restart_gtol: float = 1e-8
    restart_ftol: float = 1e-15
    restart_max_iter: int = 5000
    max_doublings: int = 30
    hessian_step: float = 1e-4
    correlation_limit: float = 1.0 - 1e-8
    lower_deviance_tol: float = 1e-5
    max_restarts: int = 3
    sd_restart: float = 0.5
    sd_boundary_tol: float = 1e-3
    refit_restarts: int = 3
    curve_points: int = 0
    phi_lower: float = 1e-6
    phi_upper: float = 1e6
    positive_settings: ClassVar[frozenset[str]] = frozenset({"hessian_step"})


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
    control: ProfileControl = field(default_factory=ProfileControl)  # the settings used

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
    """theta of one block from (SDs, partial correlations); a structured block's (ar1, cs,
    diag) from its own parameters (SDs, rho)."""
    if isinstance(block.covariance, ScaledCorrelation):
        return block.covariance.theta_from_parameters(np.asarray(p).real)[0]
    k = block.k
    lam: NDArray[np.generic] = np.multiply(p[:k, None], _cholesky_of_correlation(p[k:], k))
    rows, cols = block.lower_indices()
    return lam[rows, cols]


def _block_parameters(block: RandomBlock, theta: FloatArray) -> FloatArray:
    """(SDs, partial correlations) of one block from its theta (a structured block: its SDs
    and rho)."""
    if isinstance(block.covariance, ScaledCorrelation):
        return block.covariance.parameters(theta)
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
    objective: Any
    lower: FloatArray
    upper: FloatArray
    kinds: list[str]
    n_var: int
    unit: FloatArray  # per SD coordinate 1 / max |z| of its column (1 elsewhere)
    even: NDArray[np.bool_]  # SDs of one-term blocks: the deviance is even in them
    _hessian: tuple[bytes, FloatArray] | None = None

    @classmethod
    def build(
        cls,
        model: ModelData,
        limit: float,
        make_objective: Callable[[ModelData], Any],
        phi_lower: float = 1e-6,
    ) -> _Coordinates:
        """`make_objective`: the fit's objective on a model (the Laplace deviance, plus the
        prior deviance for a penalized fit: the profile is then of the penalized objective).
        phi_lower: the smallest beta-binomial phi visited."""
        lower: list[float] = []
        upper: list[float] = []
        kinds: list[str] = []
        unit: list[float] = []
        even: list[bool] = []
        for b in model.blocks:
            structure = b.covariance
            if isinstance(structure, ScaledCorrelation):
                low, high = structure.parameter_bounds()
                margin = 1.0 - limit  # correlations stay this far inside their interval
                n_sd = structure.n_sd
                lower += list(low[:n_sd]) + [float(v) + margin for v in low[n_sd:]]
                upper += list(high[:n_sd]) + [float(v) - margin for v in high[n_sd:]]
                kinds += ["sd"] * n_sd + ["cor"] * structure.n_correlation
                # Not even in its SDs in the sense of a one-term block; unit steps.
                even += [False] * (n_sd + structure.n_correlation)
                unit += [1.0] * (n_sd + structure.n_correlation)
                continue
            even += [b.k == 1] * b.k + [False] * (b.n_theta - b.k)
            lower += [0.0] * b.k + [-limit] * (b.n_theta - b.k)
            upper += [np.inf] * b.k + [limit] * (b.n_theta - b.k)
            kinds += ["sd"] * b.k + ["cor"] * (b.n_theta - b.k)
            spread = np.max(np.abs(b.z), axis=0) if b.z.shape[0] else np.ones(b.k)
            unit += [1.0 / s if s > 0 else 1.0 for s in spread] + [1.0] * (b.n_theta - b.k)
        n_family = model.family.n_parameters
        lower += [phi_lower] * n_family
        upper += [np.inf] * n_family
        kinds += ["phi"] * n_family
        unit += [1.0] * n_family
        even += [False] * n_family
        n_var = len(lower)
        lower += [-np.inf] * model.n_fixed
        upper += [np.inf] * model.n_fixed
        kinds += ["fixed"] * model.n_fixed
        unit += [1.0] * model.n_fixed
        even += [False] * model.n_fixed
        return cls(
            model,
            make_objective(model),
            np.array(lower),
            np.array(upper),
            kinds,
            n_var,
            np.array(unit),
            np.array(even),
        )

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
        # As the fit's own search: no deviance where the evaluation fails (a far trial step).
        dev, g_theta, g_beta = deviance_or_none(self.objective.deviance_and_gradient, theta, beta)
        if not np.isfinite(dev):
            return float("inf"), np.zeros(len(p))
        grad = np.empty(len(p))
        grad[self.n_var :] = g_beta
        for b, s in zip(model.blocks, model.theta_slices(), strict=True):
            if isinstance(b.covariance, ScaledCorrelation):
                # theta = (log SDs, phi(rho)): a diagonal Jacobian.
                grad[s] = b.covariance.theta_from_parameters(p[s])[1] * g_theta[s]
                continue
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
        hess = gradient_hessian(
            lambda q: self.deviance_and_gradient(q)[1],
            p,
            step,
            scheme="central",
            relative=True,
            lower=self.lower,
            upper=self.upper,
        )
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


def _targets(
    model: ModelData,
    limit: float,
    make_objective: Callable[[ModelData], Any],
    phi_lower: float = 1e-6,
) -> list[_Target]:
    """Every parameter in lme4's order: per block, SDs and correlations in theta's layout
    (sd_1, cor_2.1, ..., sd_2, ...), then the beta-binomial's phi, then the fixed effects. A
    structured block's parameters are its own (ar1: sd_<first term>, cor_<second>.<first> =
    rho; cs: the SDs and rho; diag: the SDs)."""
    base = _Coordinates.build(model, limit, make_objective, phi_lower)
    out: list[_Target] = []
    cache: dict[tuple[int, int, int], _Coordinates] = {}
    for t, (b, s) in enumerate(zip(model.blocks, model.theta_slices(), strict=True)):
        if isinstance(b.covariance, ScaledCorrelation):
            for position, (r, c) in enumerate(b.covariance.parameter_entries()):
                kind = "sd" if r == c else "cor"
                name = (
                    f"sd_{b.terms[r]}|{b.group}"
                    if r == c
                    else f"cor_{b.terms[r]}.{b.terms[c]}|{b.group}"
                )
                out.append(_Target(name, kind, base, s.start + position))
            continue
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
                    permuted = _permuted(model, t, order)
                    cache[key] = _Coordinates.build(permuted, limit, make_objective, phi_lower)
                coords, index = cache[key], s.start + b.k
            out.append(_Target(f"cor_{b.terms[r]}.{b.terms[c]}|{b.group}", "cor", coords, index))
    for j in range(model.family.n_parameters):
        out.append(_Target("phi", "phi", base, model.n_covariance + j))
    for j, name in enumerate(model.fixed_names):
        out.append(_Target(name, "fixed", base, base.n_var + j))
    return out


def _check(result: ResultBase, conf_level: float) -> None:
    if not isinstance(result, ResultBase):
        raise ValueError("result must be a GLMMResult")
    if result.method not in ("laplace", "agq"):
        hint = (
            "; confint('wald') gives the fixed effects' posterior mean -+ z SD"
            if getattr(result.method_object, "posterior", False)
            else ""
        )
        raise ValueError(
            "profile intervals are computed for method='laplace' or 'agq' fits (maximum "
            f"likelihood), not method {result.method!r}{hint}"
        )
    fraction(conf_level, "conf_level")
    blocks = result.fit_output.separation.blocks
    if blocks:
        # Every parameter moves along the variance's diverging path: there is no optimum to
        # profile around (refits keep finding lower deviances further out).
        terms = ", ".join(block_text(result.model.blocks[b]) for b in blocks)
        raise ValueError(
            f"no profile: the random-effect variance of {terms} has no finite maximum-"
            "likelihood estimate (separation within groups; see the fit's warning), so there "
            "is no optimum to profile around; a proper prior on the SD (a posterior mode, "
            "e.g. priors={'cov': 'gamma(shape = 2, rate = 0.5)'}; blme's default does not "
            "bound it) or method='vb' gives finite estimates"
        )
    if result.fit_output.link_bound_rows:
        # The maximum is on the boundary (mu = 1 at some rows): refits around it keep finding
        # lower deviances towards the bound.
        raise ValueError(
            f"no profile: the fit's linear predictor reaches the {result.model.family.link} "
            f"link's bound (mu = exp(eta) = 1) at {result.fit_output.link_bound_rows} row(s), "
            "so its maximum lies on the boundary of the parameter space (see the fit's "
            "warning): there is no optimum to profile around, and likelihood-ratio intervals "
            "do not hold there; the cloglog or logit link keeps the rates inside (0, 1)"
        )


def profile(
    result: ResultBase,
    conf_level: float = 0.95,
    which: Sequence[str] | str | None = None,
    control: ProfileControl | Mapping[str, Any] | None = None,
) -> LikelihoodProfile:
    """Profile the deviance of a fit (Laplace or AGQ, its own) over each parameter.

    which: parameter names (lme4's: `sd_<term>|<group>`, `cor_<a>.<b>|<group>`, fixed-effect
    names, "phi" for the beta-binomial's dispersion), or "theta_" for all covariance
    parameters (and phi), "beta_" for all fixed effects; None: all. Returns the profiles with
    the intervals at `conf_level`."""
    _check(result, conf_level)
    settings: ProfileControl = checked_control(None, control, ProfileControl)
    model = result.model
    if model.x.shape[0] != model.n_obs:
        raise ValueError(
            "profile intervals refit the model, and the rows of this fit are on a Dask cluster; "
            "use Wald intervals (confint(method='wald')), or fit the computed frame in memory "
            "(glmm_binomial.fit(formula, ddf.compute()))"
        )
    # The fit's own objective: for a penalized fit, the deviance plus the prior deviance.
    make_objective = getattr(result.method_object, "objective", LaplaceObjective)
    targets = _targets(model, settings.correlation_limit, make_objective, settings.phi_lower)
    picked = set(
        chosen_parameters([t.name for t in targets], [t.kind == "fixed" for t in targets], which)
    )
    chosen = [t for t in targets if t.name in picked]
    if not getattr(result.method_object, "centres_random", True):
        # A product quadrature rule (AGQ with n_agq > 1) depends on the order of a block's
        # terms, and these correlations are profiled on a copy with its terms reordered.
        reordered = [t.name for t in chosen if t.coords.model is not model]
        if reordered:
            raise ValueError(
                f"no profile of {', '.join(reordered)} for an AGQ fit: a correlation other "
                "than that of a block's first two terms is profiled with the terms reordered, "
                "which changes the quadrature rule; profile the others (which=), or use Wald "
                "intervals (confint(method='wald')) for these"
            )
    # scipy.stats.chi2.ppf(conf_level, 1): the square of the normal quantile.
    cutoff = normal.quantile(0.5 + conf_level / 2.0) ** 2

    theta, beta = result.theta, result.params.to_numpy()
    warnings: list[str] = []
    # Check the optimum first (a fit stopped short would shift every interval): a short
    # bound-constrained search from the estimates, kept only if it lowers the deviance.
    base = _Coordinates.build(model, settings.correlation_limit, make_objective, settings.phi_lower)
    p0 = base.from_theta_beta(theta, beta)
    deviance0 = base.deviance_and_gradient(p0)[0]
    p1 = _minimize_all(base, p0, settings)
    if base.deviance_and_gradient(p1)[0] < deviance0 - settings.lower_deviance_tol:
        theta, beta = base.theta(p1), p1[base.n_var :]
        warnings.append(
            "the fit's estimates are not at the minimum of the deviance; the profile is "
            "computed around the better optimum found from them"
        )
    # A fixed effect with no finite estimate (separation) lies at the end of a deviance that
    # falls towards its supremum as the effect grows: its interval is unbounded that way.
    unbounded = {
        name: float(np.sign(value))
        for name, value in result.params.items()
        if name in result.diverging
    }
    for name in unbounded:
        if any(t.name == name for t in chosen):
            warnings.append(
                f"{name} has no finite estimate (separation): its profile interval is unbounded "
                f"{'above' if unbounded[name] > 0 else 'below'}"
            )
    separation = result.fit_output.separation
    flat = separation.flat_directions(model.n_fixed) if separation.coefficients else None
    for _ in range(settings.max_restarts + 1):
        try:
            profiles, deviance = _profile_all(
                model, chosen, theta, beta, cutoff, settings, unbounded, flat
            )
            break
        except _BetterOptimum as better:
            found = better.coords
            theta = _permuted_theta(found.model, model, found.theta(better.p))
            base = _Coordinates.build(
                model, settings.correlation_limit, make_objective, settings.phi_lower
            )
            p = _minimize_all(base, base.from_theta_beta(theta, better.p[found.n_var :]), settings)
            theta, beta = base.theta(p), p[base.n_var :]
            warnings.append(
                "profiling found a lower deviance than the fit's; the profile was restarted "
                "from the better optimum"
            )
    else:
        why = (
            "the fit did not converge (see its warnings), so its estimates are no optimum"
            if not result.converged
            else "refit the model from these estimates (fit(..., start=result)) and profile "
            "that fit"
        )
        raise ValueError(
            f"no profile: profiling kept finding lower deviances than the fit's "
            f"({settings.max_restarts + 1} searches); {why}"
        )
    for prof in profiles:
        sides = [
            side for side, end in (("lower", prof.lower), ("upper", prof.upper)) if np.isnan(end)
        ]
        if sides:
            warnings.append(
                f"no {' and no '.join(sides)} end for {prof.name}: its profile did not cross the "
                "critical value in a bracket the re-fits agree on (they land in different "
                "optima, as on a singular fit of a model too rich for the data); the end is NaN"
            )
    return LikelihoodProfile(
        {p.name: p for p in profiles}, float(conf_level), deviance, tuple(warnings), settings
    )


def _minimize_all(coords: _Coordinates, p0: FloatArray, control: ProfileControl) -> FloatArray:
    import scipy.optimize  # here only: the package costs a first call about 0.2 s

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
        options={
            "gtol": control.restart_gtol,
            "ftol": control.restart_ftol,
            "maxiter": control.restart_max_iter,
        },
    )
    return np.asarray(found.x) * scale


def _profile_all(
    model: ModelData,
    targets: list[_Target],
    theta: FloatArray,
    beta: FloatArray,
    cutoff: float,
    control: ProfileControl,
    unbounded: dict[str, float],
    flat: FloatArray | None = None,
) -> tuple[list[ParameterProfile], float]:
    """Each target's profile (its end on the side unbounded[name], +1 or -1, infinite: a
    fixed effect with no finite estimate). flat: a separated fit's flat directions over the
    fixed effects (Separation.flat_directions), or None."""
    out = []
    deviance_hat = float("nan")
    for target in targets:
        coords = target.coords
        # A permuted copy: the same covariance with the terms reordered.
        theta_t = theta if coords.model is model else _permuted_theta(model, coords.model, theta)
        p_hat = coords.from_theta_beta(theta_t, beta)
        prof = _OneProfile(coords, p_hat, target.index, control, flat)
        deviance_hat = prof.deviance_hat
        out.append(prof.run(target, cutoff, unbounded.get(target.name, 0.0)))
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
        self,
        coords: _Coordinates,
        p_hat: FloatArray,
        index: int,
        control: ProfileControl,
        flat: FloatArray | None = None,
    ) -> None:
        self.coords, self.p_hat, self.index, self.control = coords, p_hat, index, control
        self.deviance_hat = coords.deviance_and_gradient(p_hat)[0]
        hess = coords.hessian(p_hat, control.hessian_step)
        n = len(p_hat)
        if flat is not None and flat.size:
            # A separated fit: the deviance is flat along the diverging directions (fixed
            # effects' rows of flat, orthonormal), where the re-fits need not move. Curvature
            # added there keeps the warm starts' direction and the whitening finite (solved
            # on the singular Hessian they sent the diverging coefficients back to finite
            # values, from where the re-fits did not return).
            embedded = np.zeros((n, flat.shape[1]))
            embedded[coords.n_var :] = flat
            weight = max(1.0, float(np.max(np.abs(np.diag(hess)), initial=0.0)))
            hess = hess + weight * embedded @ embedded.T
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
        self.sd = kinds == "sd"
        self.even = coords.even[self.free]
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
        fun, free_values = self._refit(p, start)
        # A free SD ending at 0 may sit on a stationary point that is not a minimum (the
        # deviance is even in the SD): try again from that SD off the boundary.
        restart = self.control.sd_restart * coords.unit[self.free]
        stuck = self.sd & (free_values <= lower + self.control.sd_boundary_tol * restart)
        if np.any(stuck):
            again = free_values.copy()
            again[stuck] = restart[stuck]
            other_fun, other_values = self._refit(p, np.clip(again, lower, upper))
            if other_fun < fun:
                fun, free_values = other_fun, other_values
        self.warm, self.warm_value = free_values, value
        difference = fun - self.deviance_hat
        if difference < -self.control.lower_deviance_tol:
            p[self.free] = free_values
            raise _BetterOptimum(coords, p.copy())
        zeta = float(np.sign(value - self.p_hat[self.index]) * np.sqrt(max(difference, 0.0)))
        self.points.append((value, zeta))
        return difference - cutoff

    def _refit(self, p: FloatArray, start: FloatArray) -> tuple[float, FloatArray]:
        """Minimize the deviance over the free coordinates from `start` (p holds the target's
        value): (deviance, free values). L-BFGS-B can stop on a negligible decrease away from
        a stationary point (the deviance is not convex in the SDs); it is restarted from where
        it stopped, with a fresh memory, while the projected gradient is above gtol (at most
        ``refit_restarts`` times)."""
        best_fun, best_values = float("inf"), start
        for _ in range(self.control.refit_restarts + 1):
            fun, values, gradient = self._minimize_from(p, start)
            improved = fun < best_fun
            if improved:
                best_fun, best_values = fun, values
            if gradient <= self.control.gtol or not improved:
                break
            start = values
        return best_fun, best_values

    def _minimize_from(self, p: FloatArray, start: FloatArray) -> tuple[float, FloatArray, float]:
        """One L-BFGS-B run: (deviance, free values, largest projected gradient entry)."""
        import scipy.optimize  # here only: the package costs a first call about 0.2 s

        coords = self.coords
        if not len(start):  # nothing else to fit (no fixed effect, one SD): the deviance at p
            return float(coords.deviance_and_gradient(p)[0]), start, 0.0
        lower, upper = coords.lower[self.free], coords.upper[self.free]
        transform = self.transform
        w0 = np.zeros(len(start))  # the origin of w is `start`
        bounds: list[tuple[float | None, float | None]] = []
        for j in range(len(start)):
            if self.beta[j] or self.even[j]:
                # An SD the deviance is even in runs over the whole line (its sign does not
                # matter): at the bound 0 its gradient vanishes, and L-BFGS-B, once projected
                # there, would stop on that stationary point even where it is a maximum.
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
                "ftol": self.control.ftol,
                "maxiter": self.control.max_iter,
            },
        )
        w = np.asarray(found.x)
        gradient = np.asarray(found.jac, dtype=np.float64).copy()
        for j, (lo, hi) in enumerate(bounds):
            # At a bound, a gradient pushing outwards is no reason to go on.
            if lo is not None and w[j] <= lo and gradient[j] > 0:
                gradient[j] = 0.0
            if hi is not None and w[j] >= hi and gradient[j] < 0:
                gradient[j] = 0.0
        values = start + transform @ w
        values[self.even] = np.abs(values[self.even])
        largest = float(np.max(np.abs(gradient), initial=0.0))
        return float(found.fun), values, largest if np.isfinite(largest) else 0.0

    def _crossing(
        self,
        estimate: float,
        inside: float,
        outside: float,
        bound: float,
        direction: float,
        critical: float,
    ) -> float:
        """Where |zeta| reaches the critical value between inside and outside, by Brent's
        method. Should a re-fit from another warm start land on the other side at an end of
        the bracket, the bracket is evaluated again and moved: towards the estimate (where the
        gap is -critical) or outwards, doubling, up to the bound. NaN where no bracket holds
        (profile() then warns that the end is missing)."""
        import scipy.optimize  # here only: the package costs a first call about 0.2 s

        xtol = self.control.xtol
        try:
            return float(
                scipy.optimize.brentq(self.zeta_gap, inside, outside, args=(critical,), xtol=xtol)
            )
        except ValueError:
            pass
        for _ in range(self.control.max_doublings):
            if self.zeta_gap(inside, critical) >= 0.0:
                inside, outside = estimate + 0.5 * (inside - estimate), inside
                continue
            if self.zeta_gap(outside, critical) <= 0.0:
                inside, outside = outside, estimate + 2.0 * (outside - estimate)
                if direction * (outside - bound) >= 0:
                    if self.zeta_gap(float(bound), critical) <= 0.0:
                        return float(bound)
                    outside = float(bound)
                continue
            try:
                return float(
                    scipy.optimize.brentq(
                        self.zeta_gap, inside, outside, args=(critical,), xtol=xtol
                    )
                )
            except ValueError:
                continue
        # The profile goes back and forth across the critical value (several optima of the
        # re-fits, as on a singular fit of an over-rich model): no end to report.
        return float("nan")

    def run(self, target: _Target, cutoff: float, unbounded: float = 0.0) -> ParameterProfile:
        """The profile of `target` and its interval at `cutoff`; on the side `unbounded` (+1
        or -1; 0: neither) the end is infinite without a search."""
        coords, index = self.coords, self.index
        estimate = float(self.p_hat[index])
        low_bound, high_bound = coords.lower[index], coords.upper[index]
        ends = []
        critical = float(np.sqrt(cutoff))
        for direction in (-1.0, 1.0):
            if direction == unbounded:
                ends.append(direction * np.inf)
                continue
            self.restart()
            bound = low_bound if direction < 0 else high_bound
            # phi's deviance flattens towards the binomial's as phi grows, and its evaluation
            # loses precision far out (lgamma of huge arguments made a crossing of noise at
            # 3e7): the search stops at phi_upper; not crossed there, the end is unbounded.
            phi_above = target.kind == "phi" and direction > 0
            if phi_above:
                bound = min(bound, self.control.phi_upper)
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
                end = float(bound) if np.isfinite(bound) and not phi_above else direction * np.inf
                if target.kind == "cor" and abs(end) >= self.control.correlation_limit:
                    end = float(np.sign(end))
                ends.append(end)
                continue
            end = self._crossing(estimate, inside, outside, bound, direction, critical)
            if phi_above and end >= bound:
                # A crossing of noise that re-evaluated below the cut-off up to phi_upper.
                end = np.inf
            if target.kind == "cor" and abs(end) >= self.control.correlation_limit:
                end = float(np.sign(end))
            ends.append(end)
        for end, bound in zip(ends, (low_bound, high_bound), strict=True):
            # Extra points between the estimate and each end, for a curve (plots).
            if self.control.curve_points and np.isfinite(end):
                self.restart()
                inner = float(np.clip(end, low_bound, high_bound)) if np.isfinite(bound) else end
                for fraction in np.arange(1, self.control.curve_points + 1) / (
                    self.control.curve_points + 1
                ):
                    self.excess(estimate + fraction * (inner - estimate))
        points = sorted(dict(self.points).items())  # a value visited twice is kept once
        values = np.array([v for v, _ in points])
        zeta = np.array([z for _, z in points])
        return ParameterProfile(target.name, target.kind, estimate, values, zeta, *ends)


def profile_confint(
    result: ResultBase,
    conf_level: float = 0.95,
    control: ProfileControl | Mapping[str, Any] | None = None,
    which: Sequence[str] | str | None = None,
) -> pd.DataFrame:
    """Profile-likelihood intervals (lower, upper) at `conf_level` for every parameter (or
    those in `which`), indexed by lme4's names: `sd_<term>|<group>`, `cor_<a>.<b>|<group>`,
    then the fixed effects. Laplace fits only."""
    return profile(result, conf_level, which=which, control=control).confint()
