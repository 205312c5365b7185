"""Convergence diagnostics of MCMC draws, computed as ArviZ (0.23) computes them.

For one parameter's draws of shape (chains, draws):

- ``rhat``: rank-normalized split R-hat (Vehtari, Gelman, Simpson, Carpenter & Buerkner 2021):
  each chain is split in halves, the draws are replaced by the normal scores of their ranks
  ((rank - 3/8) / (N + 1/4), average ranks for ties), and R-hat is the larger of that of the
  scores and that of the scores of the folded draws |x - median| (as ArviZ's summary()).
- ``ess_bulk``: effective sample size of the rank-normalized split chains.
- ``ess_tail``: the smaller effective sample size of the indicators x <= q05 and x <= q95.
- ``mcse_mean``: sample SD / sqrt(ESS of the split chains, not rank-normalized).

Effective sample sizes use the autocovariances of each chain (by FFT), the combined variance
estimate var+ of Gelman et al., Geyer's initial positive sequence and its monotone version, and
ArviZ's floor tau >= 1 / log10(N). The tests compare these numbers with ArviZ's.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

TAIL_PROBABILITIES = (0.05, 0.95)
"""Quantiles whose indicators give the tail effective sample size (ArviZ's default)."""


def split_chains(draws: FloatArray) -> FloatArray:
    """Each chain's first and last halves as separate chains (the middle draw of an odd
    number dropped): (chains, draws) -> (2 chains, draws // 2)."""
    half = draws.shape[1] // 2
    return np.vstack((draws[:, :half], draws[:, draws.shape[1] - half :]))


def rank_normalize(draws: FloatArray) -> FloatArray:
    """Normal scores of the average ranks over all draws, (rank - 3/8) / (N - 3/4 + 1)."""
    # Imported here: the results import this module for its intervals, and a fit's first call
    # should not pay for scipy.stats (issue 23).
    from scipy.stats import rankdata

    ranks = rankdata(draws, method="average").reshape(draws.shape)
    from scipy.special import ndtri  # here only: its import costs a first call about 0.15 s

    return np.asarray(ndtri((ranks - 0.375) / (draws.size + 0.25)))


def autocovariance(draws: FloatArray) -> FloatArray:
    """Autocovariance of each chain (row) at every lag, divided by the chain length."""
    from scipy.fft import next_fast_len

    n = draws.shape[1]
    size = next_fast_len(2 * n)
    centred = draws - draws.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    spectrum *= np.conjugate(spectrum)
    return np.asarray(np.fft.irfft(spectrum, n=size, axis=1)[:, :n] / n)


def effective_sample_size(draws: FloatArray) -> float:
    """ESS of (chains, draws) as they are (no splitting or rank normalization)."""
    draws = np.asarray(draws, dtype=np.float64)
    if not np.all(np.isfinite(draws)):
        return float("nan")
    if np.max(draws) - np.min(draws) < np.finfo(float).resolution:
        return float(draws.size)
    n_chain, n_draw = draws.shape
    acov = autocovariance(draws)
    mean_var = float(np.mean(acov[:, 0])) * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus += float(np.var(draws.mean(axis=1), ddof=1))
    rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus
    rho_hat = np.zeros(n_draw)
    rho_hat[0] = 1.0
    rho_hat[1] = rho[1]
    # Geyer's initial positive sequence: pairs (t + 1, t + 2) while the previous pair's sum > 0.
    even, odd = 1.0, float(rho[1])
    t = 1
    while t < n_draw - 3 and even + odd > 0.0:
        even, odd = float(rho[t + 1]), float(rho[t + 2])
        if even + odd >= 0:
            rho_hat[t + 1] = even
            rho_hat[t + 2] = odd
        t += 2
    max_t = t - 2
    if even > 0:
        rho_hat[max_t + 1] = even
    # Geyer's initial monotone sequence.
    t = 1
    while t <= max_t - 2:
        if rho_hat[t + 1] + rho_hat[t + 2] > rho_hat[t - 1] + rho_hat[t]:
            rho_hat[t + 1] = (rho_hat[t - 1] + rho_hat[t]) / 2.0
            rho_hat[t + 2] = rho_hat[t + 1]
        t += 2
    total = n_chain * n_draw
    tau = (
        -1.0
        + 2.0 * float(np.sum(rho_hat[: max_t + 1]))
        + float(np.sum(rho_hat[max_t + 1 : max_t + 2]))
    )
    tau = max(tau, 1.0 / np.log10(total))
    if np.any(np.isnan(rho_hat)):
        return float("nan")
    return float(total / tau)


def _split_rhat(draws: FloatArray) -> float:
    """Potential scale reduction of (chains, draws) (already split)."""
    n = draws.shape[1]
    chain_mean = draws.mean(axis=1)
    within = float(np.mean(np.var(draws, axis=1, ddof=1)))
    between = n * float(np.var(chain_mean, ddof=1))
    return float(np.sqrt((between / within + n - 1) / n))


def rhat(draws: FloatArray) -> float:
    """Rank-normalized split R-hat (NaN with fewer than 2 chains or 4 draws, or non-finite
    draws)."""
    draws = np.asarray(draws, dtype=np.float64)
    if draws.shape[0] < 2 or draws.shape[1] < 4 or not np.all(np.isfinite(draws)):
        return float("nan")
    bulk = _split_rhat(rank_normalize(split_chains(draws)))
    # Folded about the median of all draws (as ArviZ's summary(); az.rhat() takes the median
    # of the split chains, which differs when the number of draws is odd).
    folded = np.abs(draws - np.median(draws))
    tail = _split_rhat(rank_normalize(split_chains(folded)))
    return max(bulk, tail)


def ess_bulk(draws: FloatArray) -> float:
    """Bulk effective sample size: ESS of the rank-normalized split chains."""
    draws = np.asarray(draws, dtype=np.float64)
    if draws.shape[1] < 4 or not np.all(np.isfinite(draws)):
        return float("nan")
    return effective_sample_size(rank_normalize(split_chains(draws)))


def ess_tail(draws: FloatArray) -> float:
    """Tail effective sample size: the smaller ESS of the indicators below the 5% and 95%
    quantiles (split chains)."""
    draws = np.asarray(draws, dtype=np.float64)
    if draws.shape[1] < 4 or not np.all(np.isfinite(draws)):
        return float("nan")
    values = []
    for probability in TAIL_PROBABILITIES:
        quantile = np.quantile(draws, probability)
        values.append(effective_sample_size(split_chains((draws <= quantile).astype(float))))
    return min(values)


def ess_mean(draws: FloatArray) -> float:
    """ESS for the mean: split chains, not rank-normalized."""
    draws = np.asarray(draws, dtype=np.float64)
    if draws.shape[1] < 4 or not np.all(np.isfinite(draws)):
        return float("nan")
    return effective_sample_size(split_chains(draws))


def mcse_mean(draws: FloatArray) -> float:
    """Monte Carlo standard error of the posterior mean: SD / sqrt(ess_mean)."""
    draws = np.asarray(draws, dtype=np.float64)
    return float(np.std(draws, ddof=1) / np.sqrt(ess_mean(draws)))


SUMMARY_COLUMNS = ("mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat")


def summarize(draws: FloatArray) -> dict[str, float]:
    """mean, sd (over all draws, ddof 1), mcse_mean, ess_bulk, ess_tail and r_hat, as ArviZ's
    summary() columns of those names."""
    draws = np.asarray(draws, dtype=np.float64)
    return {
        "mean": float(np.mean(draws)),
        "sd": float(np.std(draws, ddof=1)),
        "mcse_mean": mcse_mean(draws),
        "ess_bulk": ess_bulk(draws),
        "ess_tail": ess_tail(draws),
        "r_hat": rhat(draws),
    }


def equal_tailed_interval(draws: FloatArray, tail: float) -> tuple[float, float]:
    """The equal-tailed credible interval at level 1 - 2 tail: the quantiles tail and 1 - tail
    of the draws (all chains pooled; numpy's linear interpolation). (NaN, NaN) when fewer than
    one draw is expected beyond either end (tail x number of draws < 1): the extreme draws are
    then no estimate of those quantiles."""
    values = np.asarray(draws, dtype=np.float64).ravel()
    if not 0.0 <= tail < 0.5:
        raise ValueError(f"tail must be at least 0 and below 0.5, got {tail!r}")
    if tail * values.size < 1.0:
        return float("nan"), float("nan")
    lower, upper = np.quantile(values, [tail, 1.0 - tail])
    return float(lower), float(upper)
