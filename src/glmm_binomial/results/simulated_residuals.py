"""Simulation-based scaled residuals of a fit (DHARMa's method; Hartig, DHARMa vignette).

For each unit (a row of the fit, or a group of rows with ``by``) n_sim responses are simulated
from the fitted model, and the scaled residual is the observed value's position in the
empirical distribution of its simulations, randomized for integer responses:

    r_i = F_i(y_i-) + v_i (F_i(y_i) - F_i(y_i-)),    v_i ~ U(0, 1),

with F_i(y-) the share of unit i's simulations below the observed successes y_i and F_i(y) the
share at or below (DHARMa's "PIT" method, its default since 0.3.1). Under a correctly
specified model the r_i are close to uniform on (0, 1), whatever the trials.

Simulation (successes ~ Binomial(trials, F(eta)), F the family's inverse link, expit for the
logit; the beta-binomial's draws for that family; eta = X beta + offset + Z b), three ways to
treat the random effects b:
- re="posterior" (the default): b drawn once from its conditional distribution given the data,
  p(b | y) at the estimates (a Gaussian draw around the conditional modes refined by
  Metropolis-Hastings, posterior_draw), and every simulation conditional on that draw. Under
  the model, the drawn b and the true b have the same joint distribution with y (Johnson 2007,
  pivotal discrepancies from one posterior draw), so the observed response and its
  simulations are exchangeable given the draw: the residuals are independent and uniform and
  every simulation test is calibrated, up to the estimation of theta and beta;
- re="conditional" (DHARMa 0.5.0's default, simulateREs = "conditional"; lme4's
  simulate(use.u = TRUE), re.form = NULL): b held at the conditional modes. The modes are
  fitted to the same responses, so the observed values sit nearer the middle of their
  simulations than chance allows: the tests are conservative (bench/bench_residuals_calibration:
  uniformity rejected in 0 of 200 correct models at 5%, and residuals grouped by the random
  effects' factor are all near 1/2);
- re="unconditional" (DHARMa's default before 0.5.0; lme4's simulate() default, re.form =
  NA): new b = Lambda u, u ~ N(0, I), for each simulation. The residuals of one group share
  the group's effect, so they are not independent and the tests are off (the uniformity
  test's p-values are not uniform; the dispersion test rejected 0 of 200).
The parameters are the fit's estimates (for "vb" its posterior means: the simulations are from
the model at those means, not from the posterior of theta and beta; `note` says so).

`fitted` is, as DHARMa's fittedPredictedResponse (predict(re.form = ~0)), the probability from
the fixed effects and offset alone; it is the x axis of the residual plot (rank transformed)
and, times the trials, the centre of the dispersion statistic.

Tests (DHARMa's defaults):
- test_uniformity: Kolmogorov-Smirnov of the residuals against U(0, 1) (testUniformity);
- test_dispersion: var(y - centre) over the units divided by its mean over the simulated
  responses, p two-sided from the simulated statistics themselves (testDispersion, type
  "DHARMa", refit = FALSE, with getP). The centre is DHARMa's m * fitted for "conditional"
  and "unconditional"; for "posterior" it is the expected successes given the drawn random
  effects, m expit(X beta + offset + Z b): observed and simulated responses are exchangeable
  given the draw, so the test stays calibrated, and the groups' spread (the same in both)
  no longer dilutes the statistic (200 sets with beta-binomial phi = 30: rejected in 100%
  against 88% with DHARMa's centre);
- test_outliers: the number of residuals closer than 1/(n_sim + 1) to 0 or to 1 against
  Binomial(n_units, 2/(n_sim + 1)), exact binomial test (testOutliers, type "binomial").

Speed: the responses are drawn by inversion of each row's binomial CDF from one uniform per
draw, vectorized over rows, for rows with at most MAX_INVERSION_TRIALS trials (numpy's binomial
sampler costs about 100 ns per draw: 2.5 s for 250 draws of 100,000 Bernoulli rows); rows with
more trials use Generator.binomial. Quantiles are counted with comparisons broadcast over
blocks of simulations, never a Python loop over rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from glmm_binomial.model.data import ModelData
from glmm_binomial.numerics.seeds import seed_sequence
from glmm_binomial.results.autocorrelation import check_alternative, durbin_watson, moran_i
from glmm_binomial.results.base import require_rows
from glmm_binomial.results.simulate import linear_predictor

if TYPE_CHECKING:
    from glmm_binomial.results.result import GLMMResult

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

RE_MODES = ("posterior", "conditional", "unconditional")
#: How each `re` treats the random effects, in words (in the printed summary and the plots).
RE_DESCRIPTIONS = {
    "posterior": "random effects drawn once from their conditional distribution (re='posterior')",
    "conditional": "random effects at their conditional modes (re='conditional')",
    "unconditional": "new random effects for each simulation (re='unconditional')",
}
#: Rows with at most this many trials are drawn by inversion of their CDF (one uniform per
#: draw, vectorized); rows with more use Generator.binomial, faster there.
MAX_INVERSION_TRIALS = 16
#: Simulations compared with the observed values at once (bounds the temporary arrays).
SIMULATION_BLOCK = 32
#: At most this many points are drawn in the QQ plot (evenly spaced quantiles) and used by the
#: quantile regressions of the residual plot (a systematic sample in the predictor's order).
MAX_PLOT_POINTS = 2000
#: Significance level at which the plots mark a test in red (as DHARMa does).
PLOT_ALPHA = 0.05


# --- shared checks ----------------------------------------------------------------------------


def estimates_note(result: GLMMResult) -> str:
    """Which estimates the simulations use, in words (said on the object and in plots)."""
    method = result.method_object
    if method.posterior:
        return f"at the posterior means (method {method.name}), not from posterior draws"
    return f"at the maximum-likelihood estimates (method {method.name})"


def require_pyplot() -> Any:
    """matplotlib.pyplot, or an ImportError naming the `plot` extra."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'glmm-binomial[plot]'") from None
    return plt


# --- simulation -------------------------------------------------------------------------------


def whole_trials(model: ModelData) -> NDArray[np.int64]:
    """The trials per row as integers; a ValueError when they are not whole numbers."""
    trials = model.trials
    whole = np.round(trials)
    if not np.allclose(trials, whole):
        row = int(np.flatnonzero(~np.isclose(trials, whole))[0])
        raise ValueError(
            "simulated residuals need whole numbers of trials (weights); row "
            f"{row} has {trials[row]!r}"
        )
    return whole.astype(np.int64)


def inversion_table(mu: FloatArray, trials: NDArray[np.int64]) -> tuple[FloatArray, NDArray[Any]]:
    """CDF table for drawing Binomial(trials, mu) by inversion: cdf[k, i] = P(X_i <= k) for
    X_i ~ Binomial(trials_i, q_i), q_i = min(mu_i, 1 - mu_i) (so that (1 - q)^trials does not
    underflow), k = 0 .. max(trials) - 1, and +inf where k >= trials_i. A draw is the number of
    k with u > cdf[k] (u uniform), mirrored (trials - draw) where mu > 1/2 (the flip mask)."""
    flip = mu > 0.5
    q = np.where(flip, 1.0 - mu, mu)
    m = trials.astype(np.float64)
    n_k = max(int(trials.max(initial=0)), 1)
    cdf = np.empty((n_k, len(mu)))
    pmf = np.power(1.0 - q, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = q / (1.0 - q)
    cdf[0] = pmf
    for k in range(1, n_k):  # a loop over the trials' values, vectorized over rows
        pmf = pmf * ((m - k + 1.0) / k) * odds
        cdf[k] = cdf[k - 1] + pmf
    cdf[np.arange(n_k)[:, None] >= trials[None, :]] = np.inf
    return cdf, flip


def draw_by_inversion(
    cdf: FloatArray, flip: NDArray[Any], trials: NDArray[np.int64], u: FloatArray
) -> NDArray[np.int64]:
    """Binomial draws from inversion_table's table and one uniform per row."""
    x = np.count_nonzero(u[None, :] > cdf, axis=0).astype(np.int64)
    return np.where(flip, trials - x, x)


def simulate_successes_matrix(
    model: ModelData,
    theta: FloatArray,
    beta: FloatArray,
    n_sim: int,
    rng: np.random.Generator,
    modes: tuple[FloatArray, ...] | None,
) -> NDArray[Any]:
    """n_sim simulated responses (successes per row), shape (n_sim, n_rows), in the smallest
    unsigned integer type that holds the trials. modes: the random effects to hold fixed
    (conditional simulation), or None to draw new ones for each simulation (linear_predictor
    of glmm_binomial.results.simulate). Draws come from `rng` in a fixed order (simulation by
    simulation: random effects, then the rows' uniforms, then the large rows' binomials)."""
    trials = whole_trials(model)
    n = model.n_obs
    dtype = np.min_scalar_type(int(trials.max(initial=0)))
    out = np.empty((n_sim, n), dtype=dtype)
    small = trials <= MAX_INVERSION_TRIALS
    all_small = bool(np.all(small))
    idx_small = np.flatnonzero(small)
    idx_large = np.flatnonzero(~small)
    trials_small, trials_large = trials[idx_small], trials[idx_large]
    u = np.empty(len(idx_small))
    mu = np.empty(n)
    table: tuple[FloatArray, NDArray[Any]] | None = None
    family = model.family_at(theta)
    if family.n_parameters:
        # The beta-binomial draws each row's success probability anew in every simulation
        # (p ~ Beta(mu phi, (1 - mu) phi)): no inversion table; the family's own draws.
        for j in range(n_sim):
            eta = linear_predictor(model, theta, beta, None if modes is not None else rng, modes)
            out[j] = family.simulate(eta, model.trials, rng)
        return out
    if modes is not None:
        mu = model.family.inverse_link(linear_predictor(model, theta, beta, None, modes))
        table = inversion_table(mu[idx_small], trials_small)
    for j in range(n_sim):
        if modes is None:
            mu = model.family.inverse_link(linear_predictor(model, theta, beta, rng, None))
            table = inversion_table(mu[idx_small], trials_small)
        assert table is not None
        rng.random(out=u)
        draws = draw_by_inversion(table[0], table[1], trials_small, u)
        if all_small:
            out[j] = draws
        else:
            out[j, idx_small] = draws
            out[j, idx_large] = rng.binomial(trials_large, mu[idx_large])
    return out


def scaled_residuals(observed: Any, simulated: Any, uniforms: Any) -> FloatArray:
    """r_i = F_i(y_i-) + v_i (F_i(y_i) - F_i(y_i-)): F_i the empirical CDF of column i of
    `simulated` (shape (n_sim, n_units)), y_i = observed[i], v_i = uniforms[i] in [0, 1).
    Counted by comparisons broadcast over blocks of simulations."""
    simulated = np.asarray(simulated)
    observed = np.asarray(observed, dtype=np.float64)
    uniforms = np.asarray(uniforms, dtype=np.float64)
    n_sim, n_units = simulated.shape
    if observed.shape != (n_units,) or uniforms.shape != (n_units,):
        raise ValueError("observed and uniforms need one value per column of simulated")
    if np.issubdtype(simulated.dtype, np.integer) and np.array_equal(observed, np.round(observed)):
        # Whole observed counts compare exactly in the simulations' integer type (no copies
        # of the simulations as floats); values beyond the type's range are clipped to it.
        info = np.iinfo(simulated.dtype)
        target: NDArray[Any] = np.clip(observed, info.min, info.max).astype(simulated.dtype)
        below_min, above_max = observed < info.min, observed > info.max
    else:
        target = observed
        below_min = above_max = np.zeros(n_units, dtype=bool)
    below = np.zeros(n_units, dtype=np.int64)
    at_or_below = np.zeros(n_units, dtype=np.int64)
    for start in range(0, n_sim, SIMULATION_BLOCK):
        block = simulated[start : start + SIMULATION_BLOCK]
        below += np.count_nonzero(block < target, axis=0)
        at_or_below += np.count_nonzero(block <= target, axis=0)
    below[above_max] = at_or_below[above_max] = n_sim
    below[below_min] = at_or_below[below_min] = 0
    lower = below / n_sim
    upper = at_or_below / n_sim
    return np.asarray(lower + uniforms * (upper - lower), dtype=np.float64)


def child_seed(parent: np.random.SeedSequence, index: int) -> np.random.SeedSequence:
    """The parent's child stream `index` (as parent.spawn would give, without changing the
    parent): 0 simulations, 1 the rows' randomization, 2 the groups' randomization, 3 the
    draw of the random effects (re="posterior")."""
    return np.random.SeedSequence(parent.entropy, spawn_key=(*parent.spawn_key, index))


#: Metropolis-Hastings sweeps that refine the Gaussian draw of re="posterior" towards an exact
#: draw from the random effects' conditional distribution given the data.
POSTERIOR_SWEEPS = 20


def posterior_draw(
    model: ModelData,
    theta: FloatArray,
    beta: FloatArray,
    modes: tuple[FloatArray, ...],
    covariances: tuple[FloatArray, ...],
    rng: np.random.Generator,
    sweeps: int = POSTERIOR_SWEEPS,
) -> tuple[tuple[FloatArray, ...], float]:
    """One draw of the random effects from their conditional distribution given the data,
    p(b | y) at (theta, beta), and the Metropolis-Hastings acceptance rate.

    Start: b ~ N(mode, conditional covariance) level by level (the Laplace approximation).
    Then `sweeps` sweeps of Metropolis-within-Gibbs: block by block, given the other blocks
    the levels of a block are conditionally independent (each row has one level of each
    block), so every level gets an independence proposal b' from the same Gaussian q, accepted
    with probability min(1, pi(b') q(b) / (pi(b) q(b'))), pi(b) = p(y_j | b, other blocks)
    p(b_j) (vectorized over levels with bincount). A block whose covariance (or a level's
    conditional covariance) is singular keeps its Gaussian draw (its effects are at the mode
    along the singular directions)."""
    lambdas = model.lambdas(theta)
    eta_fixed = model.x @ beta + model.offset
    roots: list[FloatArray] = []
    draws: list[FloatArray] = []
    for mode, cov in zip(modes, covariances, strict=True):
        values, vectors = np.linalg.eigh(cov)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))[:, None, :]
        roots.append(root)
        draws.append(mode + np.einsum("lij,lj->li", root, rng.standard_normal(mode.shape)))
    contributions = [
        np.einsum("ic,ic->i", block.z, b[block.codes])
        for block, b in zip(model.blocks, draws, strict=True)
    ]
    eta = eta_fixed + np.sum(contributions, axis=0) if contributions else eta_fixed.copy()
    k_obs, m_obs = model.successes, model.trials
    family = model.family_at(theta)
    logit = family.name == "binomial" and family.link == "logit"
    # Per block, the prior and proposal precisions, or None when a covariance is singular.
    precisions: list[tuple[FloatArray, FloatArray] | None] = []
    for lam, cov in zip(lambdas, covariances, strict=True):
        singular = abs(float(np.prod(np.diag(lam)))) <= 0.0 or bool(
            np.any(np.linalg.eigvalsh(cov) <= 0.0)
        )
        if singular:
            precisions.append(None)
        else:
            prior = np.asarray(np.linalg.inv(lam @ lam.T), dtype=np.float64)
            precisions.append((prior, np.asarray(np.linalg.inv(cov), dtype=np.float64)))

    def log_density(t: int, b: FloatArray, eta_rows: FloatArray) -> FloatArray:
        """log p(y_j | b) + log p(b_j) - log q(b_j) per level j of block t (constants
        dropped)."""
        block = model.blocks[t]
        precision_prior, precision_proposal = precisions[t]  # type: ignore[misc]
        if logit:
            rows = k_obs * eta_rows - m_obs * np.logaddexp(0.0, eta_rows)
        else:
            rows = family.loglik_rows(eta_rows, k_obs, m_obs)
        loglik = np.bincount(block.codes, weights=rows, minlength=block.n_levels)
        prior = -0.5 * np.einsum("li,ij,lj->l", b, precision_prior, b)
        d = b - modes[t]
        proposal = -0.5 * np.einsum("li,lij,lj->l", d, precision_proposal, d)
        return np.asarray(loglik + prior - proposal)

    accepted = proposed = 0
    for _ in range(max(int(sweeps), 0)):
        for t, block in enumerate(model.blocks):
            if precisions[t] is None:
                continue
            eta_rest = eta - contributions[t]
            current = log_density(t, draws[t], eta)
            candidate = modes[t] + np.einsum(
                "lij,lj->li", roots[t], rng.standard_normal(draws[t].shape)
            )
            candidate_part = np.einsum("ic,ic->i", block.z, candidate[block.codes])
            proposal = log_density(t, candidate, eta_rest + candidate_part)
            accept = np.log(rng.random(block.n_levels)) < proposal - current
            draws[t] = np.where(accept[:, None], candidate, draws[t])
            contributions[t] = np.where(accept[block.codes], candidate_part, contributions[t])
            eta = eta_rest + contributions[t]
            accepted += int(np.count_nonzero(accept))
            proposed += block.n_levels
    rate = accepted / proposed if proposed else float("nan")
    return tuple(draws), rate


# --- result objects -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ResidualTest:
    """One test on the scaled residuals: its statistic and p-value, what was tested, and for
    the dispersion test the simulated statistics (`simulated`, each divided by their mean)."""

    name: str
    statistic: float
    p_value: float
    alternative: str
    description: str
    simulated: FloatArray | None = None

    def __str__(self) -> str:
        return (
            f"{self.name}: statistic {self.statistic:.6g}, p-value {self.p_value:.4g} "
            f"({self.alternative}); {self.description}"
        )


@dataclass(frozen=True, eq=False)
class SimulatedResiduals:
    """DHARMa-style scaled residuals of a fit (see the module docstring).

    residuals: the scaled residuals in (0, 1), one per unit: the fit's rows in its row order,
    or the groups of `by` in `labels` order. observed / trials: successes and trials per unit;
    fitted: probability from the fixed effects (and offset) alone, per unit (for groups: the
    trial-weighted mean); simulated: simulated successes, shape (units, n_sim) as
    GLMMResult.simulate; randomization: the uniforms v_i of the randomization; re: how the
    random effects were simulated; note: at which estimates; seed: the SeedSequence used;
    random_effects: the effects held fixed in every simulation (per block, levels x k: the
    draw for re="posterior", the modes for "conditional"; None for "unconditional");
    acceptance_rate: the Metropolis-Hastings acceptance of the posterior draw; centre: the
    expected successes given the drawn random effects (re="posterior"), the dispersion test's
    centre (None: m * fitted, as DHARMa).
    """

    result: GLMMResult
    residuals: FloatArray
    observed: FloatArray
    trials: FloatArray
    fitted: FloatArray
    simulated_successes: NDArray[Any]  # (n_sim, units): simulations in rows
    randomization: FloatArray
    n_sim: int
    re: str
    note: str
    seed: np.random.SeedSequence
    by: str | None = None
    labels: pd.Index | None = None
    random_effects: tuple[FloatArray, ...] | None = None
    acceptance_rate: float | None = None
    centre: FloatArray | None = None

    def __post_init__(self) -> None:
        # The arrays this object owns are read-only (the fit's own arrays are left alone).
        for name in (
            "residuals",
            "observed",
            "trials",
            "fitted",
            "simulated_successes",
            "randomization",
            "centre",
        ):
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                value.flags.writeable = False

    @property
    def simulated(self) -> NDArray[Any]:
        """Simulated successes, shape (units, n_sim) (a read-only view)."""
        return self.simulated_successes.T

    @property
    def n_units(self) -> int:
        return int(self.residuals.shape[0])

    # --- tests ---------------------------------------------------------------------------------
    def test_uniformity(self, alternative: str = "two.sided") -> ResidualTest:
        """Kolmogorov-Smirnov test of the residuals against U(0, 1) (DHARMa's testUniformity);
        statistic D."""
        check_alternative(alternative)
        scipy_alternative = {"two.sided": "two-sided", "greater": "greater", "less": "less"}
        found = stats.kstest(self.residuals, "uniform", alternative=scipy_alternative[alternative])
        return ResidualTest(
            "uniformity (Kolmogorov-Smirnov)",
            float(found.statistic),
            float(found.pvalue),
            alternative,
            "scaled residuals against U(0, 1)",
        )

    def dispersion_statistics(self) -> tuple[float, FloatArray]:
        """var(y - centre) of the observed successes and of each simulated response (units
        as observations, ddof 1; centre: m fitted, or `centre` when set): the ingredients of
        test_dispersion."""
        expected = self.trials * self.fitted if self.centre is None else self.centre
        observed = float(np.var(self.observed - expected, ddof=1))
        simulated = np.empty(self.n_sim)
        block_size = SIMULATION_BLOCK
        for start in range(0, self.n_sim, block_size):
            block = self.simulated_successes[start : start + block_size]
            simulated[start : start + len(block)] = np.var(block - expected, axis=1, ddof=1)
        return observed, simulated

    def test_dispersion(self, alternative: str = "two.sided") -> ResidualTest:
        """DHARMa's default dispersion test (testDispersion, type "DHARMa", without refits):
        statistic = var(y - c) / mean over simulations of var(y_sim - c), c = m fitted (or
        `centre`: the expected successes given the drawn random effects, re="posterior"); the
        p-value compares the observed variance with the simulated ones (DHARMa's getP:
        two-sided min(1, 2 min(P(sim <= obs), P(sim >= obs))), "greater" P(sim >= obs): tests
        overdispersion). `simulated`: the simulated variances divided by their mean."""
        check_alternative(alternative)
        observed, simulated = self.dispersion_statistics()
        mean = float(np.mean(simulated))
        p = _simulation_p_value(simulated, observed, alternative)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = observed / mean
            ratios = simulated / mean
        return ResidualTest(
            "dispersion (simulated variance ratio)",
            float(ratio),
            p,
            alternative,
            "var(observed - expected) / mean var(simulated - expected); > 1 overdispersion",
            np.asarray(ratios, dtype=np.float64),
        )

    def test_outliers(self, alternative: str = "two.sided") -> ResidualTest:
        """DHARMa's testOutliers(type = "binomial", margin = "both"): the count of residuals
        below 1/(n_sim + 1) or above 1 - 1/(n_sim + 1) (at or next to 0 and 1: outside the
        simulation envelope) against Binomial(units, 2/(n_sim + 1)), exact binomial test.
        statistic: the count; the expected count is units * 2/(n_sim + 1). As DHARMa warns,
        for integer responses the expectation is approximate."""
        check_alternative(alternative)
        edge = 1.0 / (self.n_sim + 1)
        count = int(np.count_nonzero(self.residuals < edge))
        count += int(np.count_nonzero(self.residuals > 1.0 - edge))
        found = stats.binomtest(count, self.n_units, 2.0 * edge, alternative=_scipy(alternative))
        return ResidualTest(
            "outliers (binomial)",
            float(count),
            float(found.pvalue),
            alternative,
            f"residuals within 1/(n_sim + 1) of 0 or 1; expected {self.n_units * 2 * edge:.3g}",
        )

    def test_temporal_autocorrelation(
        self, time: Any, alternative: str = "two.sided"
    ) -> ResidualTest:
        """Durbin-Watson test of the residuals in the order of `time` (one distinct value per
        unit; for groups a pandas Series indexed by their labels is aligned), DHARMa's
        testTemporalAutocorrelation: lmtest's dwtest(residuals ~ 1, order.by = time), exact
        below 100 units, else its normal approximation; statistic DW (2: none, below 2:
        positive autocorrelation, which "greater" tests). Several rows per time: test the
        residuals grouped by time (grouped(by=...)) or one series at a time."""
        check_alternative(alternative)
        order = self._per_unit(time, "time")
        _require_distinct(order, "time", "time value", "time step")
        statistic, p = durbin_watson(self.residuals, order, alternative)
        return ResidualTest(
            "temporal autocorrelation (Durbin-Watson)",
            statistic,
            p,
            alternative,
            "residuals ordered by time; DW 2 without autocorrelation, < 2 positive",
        )

    def test_spatial_autocorrelation(
        self, x: Any, y: Any, alternative: str = "two.sided"
    ) -> ResidualTest:
        """Moran's I of the residuals at the points (x, y) (one distinct point per unit; for
        groups pandas Series indexed by their labels are aligned), weights the inverse
        distances scaled to sum 1 per point, DHARMa's testSpatialAutocorrelation (ape's
        Moran.I); statistic I, expected -1/(n - 1) without autocorrelation, larger for
        positive ("greater"). Computed in blocks of rows, never the n x n distance matrix.
        Several rows per place: test the residuals grouped by place (grouped(by=...))."""
        check_alternative(alternative)
        xs, ys = self._per_unit(x, "x"), self._per_unit(y, "y")
        _require_distinct(xs + 1j * ys, "x, y", "location", "location")
        if self.n_units < 4:
            raise ValueError("Moran's I needs at least 4 units (points)")
        observed, expected, sd, p = moran_i(self.residuals, xs, ys, alternative)
        return ResidualTest(
            "spatial autocorrelation (Moran's I)",
            observed,
            p,
            alternative,
            f"inverse-distance weights; expected {expected:.4g}, sd {sd:.4g} without "
            "autocorrelation",
        )

    def _per_unit(self, values: Any, name: str) -> FloatArray:
        """One finite number per unit from `values` (a pandas Series indexed by the groups'
        labels is aligned to them)."""
        if isinstance(values, pd.Series) and self.labels is not None:
            missing = [label for label in self.labels if label not in values.index]
            if missing:
                raise ValueError(f"{name} has no value for the group(s) {missing[:5]}")
            values = values.loc[list(self.labels)]
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numbers, one per unit") from None
        if array.ndim != 1 or array.size != self.n_units:
            raise ValueError(
                f"{name} must have one value per unit ({self.n_units}: "
                f"{'rows of the fit' if self.by is None else f'groups of {self.by}'}), got "
                f"shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"{name} has missing or infinite values")
        return array

    def tests(self) -> dict[str, ResidualTest]:
        """The three tests with their default alternatives."""
        return {
            "uniformity": self.test_uniformity(),
            "dispersion": self.test_dispersion(),
            "outliers": self.test_outliers(),
        }

    # --- grouping ------------------------------------------------------------------------------
    def grouped(self, by: Any) -> SimulatedResiduals:
        """Residuals of groups (DHARMa's recalculateResiduals(group = ...)): observed and
        simulated successes (and trials) summed per group, quantiles recomputed with fresh
        uniforms of the group stream. by: a grouping factor of the model ("herd") or one label
        per row of the fit."""
        if self.by is not None:
            raise ValueError("these residuals are grouped already; group the rows' residuals")
        codes, labels, name = grouping_codes(self.result.model, by)
        n_groups = len(labels)
        order = np.argsort(codes, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
        observed = np.asarray(
            np.bincount(codes, weights=self.observed, minlength=n_groups), dtype=np.float64
        )
        trials = np.asarray(
            np.bincount(codes, weights=self.trials, minlength=n_groups), dtype=np.float64
        )
        expected = np.bincount(codes, weights=self.trials * self.fitted, minlength=n_groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            fitted = np.where(trials > 0, expected / trials, np.nan)
        centre = None
        if self.centre is not None:
            centre = np.asarray(
                np.bincount(codes, weights=self.centre, minlength=n_groups), dtype=np.float64
            )
        dtype = np.min_scalar_type(int(trials.max(initial=0)))
        simulated = np.add.reduceat(
            self.simulated_successes[:, order], starts, axis=1, dtype=np.int64
        ).astype(dtype)
        uniforms = np.random.default_rng(child_seed(self.seed, 2)).random(n_groups)
        residuals = scaled_residuals(observed, simulated, uniforms)
        return SimulatedResiduals(
            self.result,
            residuals,
            observed,
            trials,
            fitted,
            simulated,
            uniforms,
            self.n_sim,
            self.re,
            self.note,
            self.seed,
            by=name,
            labels=labels,
            random_effects=self.random_effects,
            acceptance_rate=self.acceptance_rate,
            centre=centre,
        )

    # --- display -------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """One row per unit: residual, observed, trials, fitted (indexed by the group labels
        when grouped)."""
        frame = pd.DataFrame(
            {
                "residual": self.residuals,
                "observed": self.observed,
                "trials": self.trials,
                "fitted": self.fitted,
            }
        )
        if self.labels is not None:
            frame.index = self.labels
        return frame

    def __str__(self) -> str:
        unit = "rows" if self.by is None else f"groups of {self.by}"
        lines = [
            f"Simulated (DHARMa) residuals: {self.n_units} {unit}, {self.n_sim} simulations, "
            f"{RE_DESCRIPTIONS[self.re]}, {self.note}",
        ]
        lines += [f"  {test}" for test in self.tests().values()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        unit = "rows" if self.by is None else f"groups of {self.by}"
        return f"<SimulatedResiduals: {self.n_units} {unit}, n_sim {self.n_sim}, re {self.re}>"

    def plot(self, quantiles: Sequence[float] = (0.25, 0.5, 0.75)) -> Any:
        """DHARMa's two plots side by side: QQ plot of the residuals against U(0, 1) with the
        three tests' p-values, and residuals against the rank-transformed fitted probability
        with quantile regression curves at `quantiles` (matplotlib, extra `plot`). Returns the
        figure."""
        plt = require_pyplot()
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5.2))
        qq_panel(self, left)
        residual_vs_predicted_panel(self, right, quantiles)
        fig.suptitle(_figure_title(self), fontsize=10)
        fig.tight_layout()
        return fig


def simulate_residuals(
    result: GLMMResult,
    n_sim: int = 250,
    seed: Any = None,
    re: str = "posterior",
    by: Any = None,
) -> SimulatedResiduals:
    """DHARMa's scaled residuals of a fit (see the module docstring).

    n_sim: simulated responses per row (at least 2; DHARMa's default 250). seed: None, an int,
    a SeedSequence or a Generator (the same seed gives the same residuals bit for bit).
    re: "posterior" (default: one draw of the random effects from their conditional
    distribution given the data, every simulation conditional on it: calibrated tests),
    "conditional" (DHARMa 0.5.0's default: effects at their conditional modes, as lme4's
    use.u = TRUE; conservative) or "unconditional" (new effects for each simulation, lme4's
    simulate() default). by: a grouping factor name ("herd") or one label per row: residuals
    of the groups, responses and simulations summed per group. Works for every method (for
    "vb" at the posterior means); a Dask fit is refused (its rows stay on the cluster)."""
    model = require_rows(result, "simulate_residuals")
    if isinstance(n_sim, bool) or not isinstance(n_sim, (int, np.integer)) or n_sim < 2:
        raise ValueError(f"n_sim must be an integer of at least 2, got {n_sim!r}")
    if re not in RE_MODES:
        raise ValueError(f"re must be one of {', '.join(map(repr, RE_MODES))}, got {re!r}")
    if by is not None:
        grouping_codes(model, by)  # a bad `by` is refused before the simulations
    sequence = seed_sequence(seed)
    fit = result.fit_output
    held: tuple[FloatArray, ...] | None = None
    acceptance: float | None = None
    if re == "conditional":
        held = fit.ranef
    elif re == "posterior":
        held, acceptance = posterior_draw(
            model,
            fit.theta,
            fit.beta,
            fit.ranef,
            fit.ranef_cov,
            np.random.default_rng(child_seed(sequence, 3)),
        )
    simulated = simulate_successes_matrix(
        model,
        fit.theta,
        fit.beta,
        int(n_sim),
        np.random.default_rng(child_seed(sequence, 0)),
        held,
    )
    uniforms = np.random.default_rng(child_seed(sequence, 1)).random(model.n_obs)
    residuals = scaled_residuals(model.successes, simulated, uniforms)
    fitted = model.family.inverse_link(model.x @ fit.beta + model.offset)
    centre = None
    if re == "posterior":
        assert held is not None
        centre = model.trials * model.family.inverse_link(
            linear_predictor(model, fit.theta, fit.beta, None, held)
        )
    out = SimulatedResiduals(
        result,
        residuals,
        model.successes.copy(),
        model.trials.copy(),
        fitted,
        simulated,
        uniforms,
        int(n_sim),
        re,
        "simulated " + estimates_note(result),
        sequence,
        random_effects=held,
        acceptance_rate=acceptance,
        centre=centre,
    )
    return out if by is None else out.grouped(by)


def grouping_codes(model: ModelData, by: Any) -> tuple[IntArray, pd.Index, str]:
    """Codes 0..G-1 per row, the G labels and a name, from a grouping factor's name or from
    one label per row."""
    if isinstance(by, str):
        for block in model.blocks:
            if block.group == by:
                return block.codes, pd.Index(list(block.levels), name=by), by
        names = ", ".join(dict.fromkeys(repr(b.group) for b in model.blocks))
        raise ValueError(
            f"by must be a grouping factor of the model ({names}) or one label per row, got {by!r}"
        )
    try:
        values = np.asarray(by, dtype=object)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        raise ValueError("by must be a grouping factor's name or one label per row") from None
    if values.ndim != 1 or len(values) != model.n_obs:
        raise ValueError(
            f"by must be a grouping factor's name or one label per row of the fit "
            f"({model.n_obs}), got shape {values.shape}"
        )
    missing = pd.isna(values)
    if np.any(missing):
        raise ValueError(f"by has a missing label in row {int(np.flatnonzero(missing)[0])}")
    try:
        codes, labels = pd.factorize(values, sort=True)
    except TypeError:  # labels of types that do not sort together
        codes, labels = pd.factorize(values)
    name = str(getattr(by, "name", None) or "by")
    return codes.astype(np.intp), pd.Index(labels, name=name), name


def _require_distinct(values: NDArray[Any], name: str, what: str, step: str) -> None:
    """ValueError where two units share a value (DHARMa's rule for these tests)."""
    if np.unique(values).size != values.size:
        raise ValueError(
            f"{name}: testing for autocorrelation needs one unit per {what}; with several "
            f"rows per {step}, test the residuals grouped by it (grouped(by=...), DHARMa's "
            "recalculateResiduals) or one series at a time"
        )


def _scipy(alternative: str) -> str:
    return "two-sided" if alternative == "two.sided" else alternative


def _simulation_p_value(simulated: FloatArray, observed: float, alternative: str) -> float:
    """DHARMa's getP: the observed statistic's position among the simulated ones."""
    greater = float(np.mean(simulated >= observed))
    less = float(np.mean(simulated <= observed))
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    return min(2.0 * min(greater, less), 1.0)


# --- plots (matplotlib imported by the callers that make a figure) ---------------------------


def _figure_title(res: SimulatedResiduals) -> str:
    unit = "rows" if res.by is None else f"groups of {res.by}"
    return (
        f"Simulated residuals of {res.result.formula}: {res.n_units} {unit}, {res.n_sim} "
        f"simulations,\n{RE_DESCRIPTIONS[res.re]},\n{res.note}"
    )


def _p_text(p: float) -> str:
    return "p < 1e-4" if p < 1e-4 else f"p = {p:.3g}"


def qq_panel(res: SimulatedResiduals, ax: Any) -> None:
    """QQ plot of the residuals against U(0, 1), with the three tests written in it (red when
    p < PLOT_ALPHA)."""
    r = np.sort(res.residuals)
    n = len(r)
    expected = (np.arange(1, n + 1) - 0.5) / n
    if n > MAX_PLOT_POINTS:
        keep = np.unique(np.linspace(0, n - 1, MAX_PLOT_POINTS).round().astype(np.intp))
        r, expected = r[keep], expected[keep]
    ax.plot([0, 1], [0, 1], color="0.4", linewidth=1, zorder=1)
    ax.scatter(expected, r, s=6, color="C0", zorder=2, rasterized=True)
    for i, test in enumerate(res.tests().values()):
        bad = test.p_value < PLOT_ALPHA
        ax.text(
            0.03,
            0.97 - 0.075 * i,
            f"{test.name.split(' (')[0]}: {_p_text(test.p_value)}"
            + (" (significant)" if bad else " (n.s.)"),
            transform=ax.transAxes,
            va="top",
            fontsize=8.5,
            color="red" if bad else "black",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("expected quantile (uniform)")
    ax.set_ylabel("observed scaled residual")
    ax.set_title("Simulated residuals: QQ plot")


def rank_transform(values: FloatArray) -> FloatArray:
    """Average ranks divided by the largest (DHARMa's rank transform): values in (0, 1]."""
    ranks = stats.rankdata(values, method="average")
    return np.asarray(ranks / ranks.max(), dtype=np.float64)


#: With fewer distinct predicted values than this, the quantile curves are per value (the
#: predictor is treated as a factor, as DHARMa does).
FEW_VALUES = 10


#: Fewer points than this get a straight quantile line, fewer than a tenth of it a constant,
#: instead of the cubic spline (which would follow single points).
SPLINE_POINTS = 100


def quantile_regression(
    x: FloatArray, y: FloatArray, quantile: float, grid: FloatArray, n_knots: int = 3
) -> FloatArray | None:
    """The `quantile` regression of y on a cubic B-spline basis of x in [0, 1] (n_knots
    interior knots, equally spaced), fitted by linear programming (minimize the check loss
    sum(quantile * e+ + (1 - quantile) * e-) subject to B c + e+ - e- = y, HiGHS), evaluated
    at `grid`. With fewer than SPLINE_POINTS points the basis is a straight line (a constant
    below SPLINE_POINTS / 10); with fewer than FEW_VALUES distinct x it is one indicator per
    value (the sample quantile of each value's y; `grid` must then hold x's values). None when
    the LP fails."""
    import scipy.optimize
    import scipy.sparse
    from scipy.interpolate import BSpline

    values = np.unique(x)
    factor = len(values) < FEW_VALUES
    if len(x) >= SPLINE_POINTS:
        degree, interior = 3, np.linspace(0, 1, n_knots + 2)[1:-1]
    else:
        degree, interior = (1 if len(x) >= SPLINE_POINTS // 10 else 0), np.zeros(0)

    def basis(points: FloatArray) -> Any:
        if factor:
            columns = np.searchsorted(values, points)
            if np.any(columns >= len(values)) or np.any(values[columns] != points):
                raise ValueError("grid must hold values of x when x has few distinct values")
            rows = np.arange(len(points))
            shape = (len(points), len(values))
            return scipy.sparse.csr_matrix((np.ones(len(points)), (rows, columns)), shape=shape)
        if degree == 0:
            return scipy.sparse.csr_matrix(np.ones((len(points), 1)))
        knots = np.r_[np.zeros(degree + 1), interior, np.ones(degree + 1)]
        return BSpline.design_matrix(np.clip(points, 0.0, 1.0), knots, degree)

    design = basis(x)
    n, p = design.shape
    identity = scipy.sparse.identity(n, format="csr")
    a_eq = scipy.sparse.hstack([design, identity, -identity], format="csr")
    cost = np.r_[np.zeros(p), np.full(n, quantile), np.full(n, 1.0 - quantile)]
    bounds = [(None, None)] * p + [(0.0, None)] * (2 * n)
    found = scipy.optimize.linprog(cost, A_eq=a_eq, b_eq=y, bounds=bounds, method="highs")
    if not found.success:
        return None
    coefficients = np.asarray(found.x[:p])
    return np.asarray(basis(grid) @ coefficients, dtype=np.float64)


def residual_vs_predicted_panel(
    res: SimulatedResiduals, ax: Any, quantiles: Sequence[float] = (0.25, 0.5, 0.75)
) -> None:
    """Residuals against the rank-transformed fitted probability (fixed effects alone), with
    quantile regression curves at `quantiles` (solid; per predicted value when there are fewer
    than FEW_VALUES of them) and their expected levels (dashed)."""
    for q in quantiles:
        if not 0.0 < float(q) < 1.0:
            raise ValueError(f"quantiles must be strictly between 0 and 1, got {q!r}")
    x = rank_transform(res.fitted)
    y = res.residuals
    n = len(y)
    alpha = float(np.clip(3000.0 / max(n, 1), 0.08, 0.8))
    size = float(np.clip(4000.0 / max(n, 1), 4.0, 14.0))  # larger points when there are few
    ax.scatter(x, y, s=size, alpha=alpha, color="0.35", linewidths=0, rasterized=True)
    if n > MAX_PLOT_POINTS:
        order = np.argsort(x, kind="stable")
        sample = order[np.linspace(0, n - 1, MAX_PLOT_POINTS).round().astype(np.intp)]
        xs, ys = x[sample], y[sample]
        ax.text(
            0.99,
            0.01,
            f"quantile curves from {MAX_PLOT_POINTS:,} of {n:,} points",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            color="0.3",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
    else:
        xs, ys = x, y
    few = len(np.unique(xs)) < FEW_VALUES
    grid = np.unique(xs) if few else np.linspace(0.0, 1.0, 101)
    for i, q in enumerate(quantiles):
        ax.axhline(float(q), color="0.3", linestyle="--", linewidth=0.8)
        curve = quantile_regression(xs, ys, float(q), grid)
        if curve is not None:
            style = "o-" if few else "-"
            ax.plot(grid, curve, style, color=f"C{i + 1}", linewidth=2, label=f"quantile {q:g}")
    ax.set_xlim(-0.02 if few else 0.0, 1.02 if few else 1.0)
    ax.set_ylim(0, 1)
    unit = "" if res.by is None else f" of the {res.by} group"
    ax.set_xlabel(f"predicted probability{unit}, fixed effects only (rank)")
    ax.set_ylabel("scaled residual")
    ax.set_title("Simulated residuals vs predicted")
    ax.legend(loc="upper right", fontsize=7.5, framealpha=0.8)


def dispersion_panel(res: SimulatedResiduals, ax: Any, test: ResidualTest | None = None) -> None:
    """Histogram of the simulated dispersion statistics (each simulated variance over their
    mean) with the observed ratio as a red line and the test's p-value."""
    test = res.test_dispersion() if test is None else test
    simulated = test.simulated if test.simulated is not None else np.zeros(0)
    finite = simulated[np.isfinite(simulated)]
    from matplotlib.ticker import MaxNLocator

    ax.hist(finite, bins=max(10, min(30, res.n_sim // 8)), color="0.75", edgecolor="0.5")
    ax.axvline(test.statistic, color="red", linewidth=2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    bad = test.p_value < PLOT_ALPHA
    # The text on the side away from the observed line.
    middle = float(np.median(finite)) if len(finite) else test.statistic
    left = test.statistic > middle
    ax.text(
        0.03 if left else 0.97,
        0.97,
        f"observed {test.statistic:.3g}\n{_p_text(test.p_value)} ({test.alternative})",
        transform=ax.transAxes,
        ha="left" if left else "right",
        va="top",
        fontsize=8.5,
        color="red" if bad else "black",
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
    )
    ax.set_xlabel("variance of residuals / mean simulated variance")
    ax.set_ylabel("simulations")
    ax.set_title("Dispersion: simulated (grey) vs observed (red)")
