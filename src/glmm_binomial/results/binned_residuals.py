"""Binned residuals (Gelman & Hill 2007, section 5.6), as performance::binned_residuals 0.10.2.

The rows are cut into bins of their fitted probability mu (random effects at their conditional
modes, as R's fitted()), and each bin gives the mean fitted probability and the mean residual
y - mu (y the observed proportion, successes / trials) with a normal interval. Performance's
binning (its source, 0.10.2):

    n_bins = round(sqrt(n));  breaks = unique(-inf, sort(mu)[floor(n * (1:(n_bins - 1)) / n_bins)],
    inf);  bins by cut(mu, breaks) (right-closed);

per bin xbar = mean(mu), ybar = mean(y - mu), n, x_lo / x_hi = range(mu), and the residuals'
SD s (n - 1 denominator). Bins with fewer than two rows (no SD) are dropped, as performance
drops incomplete rows. Returned columns:

- se = s / sqrt(n): the standard error of ybar (performance calls it ``ci_range``; its own
  ``se`` column is the interval's half-width qnorm(0.975) * s / sqrt(n));
- ci_lower, ci_upper = ybar -/+ qnorm(0.975) * se (performance's CI_low, CI_high);
- inside: |ybar| <= qnorm(0.975) * se, zero within the interval (performance's group "yes").

Rows with several trials enter with their observed proportion, unweighted (as one row each).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from glmm_binomial.results.base import require_rows
from glmm_binomial.results.simulated_residuals import require_pyplot

if TYPE_CHECKING:
    from glmm_binomial.results.result import GLMMResult

#: Normal quantile of the intervals (performance's qnorm(0.975)).
Z_975 = float(stats.norm.ppf(0.975))

COLUMNS = ("xbar", "ybar", "n", "x_lo", "x_hi", "se", "ci_lower", "ci_upper", "inside")


def default_bins(n: int) -> int:
    """performance's default number of bins: round(sqrt(n)) (R rounds half to even; sqrt of
    an integer is never exactly half an odd integer, so np.round agrees)."""
    return int(np.round(np.sqrt(n)))


def bin_residuals(mu: Any, y: Any, n_bins: int | None = None) -> pd.DataFrame:
    """The binned-residual table of fitted probabilities `mu` and observed proportions `y`
    (see the module docstring); one row per bin with at least two rows, in bin order."""
    mu = np.asarray(mu, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(mu)
    if y.shape != mu.shape or mu.ndim != 1:
        raise ValueError("mu and y need the same length")
    if n_bins is None:
        n_bins = default_bins(n)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)):
        raise ValueError(f"n_bins must be an integer, got {n_bins!r}")
    if not 2 <= n_bins <= n:
        raise ValueError(f"n_bins must be between 2 and the number of rows ({n}), got {n_bins}")
    residual = y - mu
    # R: sort(pred)[floor(n * (1:(n_bins - 1)) / n_bins)] with 1-based indices.
    index = np.floor(n * np.arange(1, n_bins) / n_bins).astype(np.intp) - 1
    breaks = np.unique(np.r_[-np.inf, np.sort(mu)[index], np.inf])
    # cut(..., right = TRUE): bin b holds breaks[b - 1] < mu <= breaks[b] (b = 1, 2, ...).
    bins = np.searchsorted(breaks, mu, side="left") - 1
    n_used = len(breaks) - 1
    counts = np.bincount(bins, minlength=n_used)
    sum_mu = np.bincount(bins, weights=mu, minlength=n_used)
    sum_r = np.bincount(bins, weights=residual, minlength=n_used)
    lo = np.full(n_used, np.inf)
    hi = np.full(n_used, -np.inf)
    np.minimum.at(lo, bins, mu)
    np.maximum.at(hi, bins, mu)
    keep = counts >= 2
    with np.errstate(divide="ignore", invalid="ignore"):
        xbar = sum_mu / counts
        ybar = sum_r / counts
        # Two-pass variance per bin (as R's var): deviations from each bin's own mean.
        squares = np.bincount(bins, weights=(residual - ybar[bins]) ** 2, minlength=n_used)
        se = np.sqrt(squares / (counts - 1)) / np.sqrt(counts)
    table = pd.DataFrame(
        {
            "xbar": xbar,
            "ybar": ybar,
            "n": counts,
            "x_lo": lo,
            "x_hi": hi,
            "se": se,
            "ci_lower": ybar - Z_975 * se,
            "ci_upper": ybar + Z_975 * se,
            "inside": np.abs(ybar) <= Z_975 * se,
        }
    )
    table = table[keep].reset_index(drop=True)
    table.index.name = "bin"
    return table


def binned_residuals(result: GLMMResult, n_bins: int | None = None) -> pd.DataFrame:
    """performance::binned_residuals of a fit: bins of the fitted probabilities (conditional
    on the random effects' modes; posterior means for "vb"), per bin xbar, ybar (mean of
    y - mu), n, x_lo, x_hi, se (standard error of ybar), ci_lower, ci_upper (ybar -/+
    qnorm(0.975) se) and inside (zero inside the interval). n_bins: default round(sqrt(nobs)).
    ``table.attrs["resid_ok"]`` is the share of bins inside (performance's attribute)."""
    model = require_rows(result, "binned_residuals")
    table = bin_residuals(result.fitted(), model.successes / model.trials, n_bins)
    table.attrs["resid_ok"] = float(table["inside"].mean()) if len(table) else float("nan")
    return table


def binned_residuals_panel(table: pd.DataFrame, ax: Any) -> None:
    """Mean residual per bin against the mean fitted probability, with the band
    +- qnorm(0.975) se around zero (Gelman & Hill's two-SE band); bins outside it in red."""
    x = table["xbar"].to_numpy()
    half = Z_975 * table["se"].to_numpy()
    order = np.argsort(x)
    ax.fill_between(x[order], -half[order], half[order], color="0.85", label="± 1.96 SE")
    ax.plot(x[order], half[order], color="0.55", linewidth=0.8)
    ax.plot(x[order], -half[order], color="0.55", linewidth=0.8)
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    inside = table["inside"].to_numpy(dtype=bool)
    ax.scatter(x[inside], table["ybar"].to_numpy()[inside], s=14, color="C0", label="inside")
    ax.scatter(x[~inside], table["ybar"].to_numpy()[~inside], s=14, color="red", label="outside")
    share = float(inside.mean()) if len(inside) else float("nan")
    ax.set_xlabel("mean fitted probability in bin")
    ax.set_ylabel("mean residual (observed - fitted)")
    ax.set_title(f"Binned residuals: {len(table)} bins, {share:.0%} inside")
    ax.legend(loc="best", fontsize=7.5, framealpha=0.8)


def plot_binned_residuals(source: Any, n_bins: int | None = None) -> Any:
    """Figure of the binned residuals (a fit, or a table from binned_residuals) with the
    +- 1.96 SE band (matplotlib, extra `plot`)."""
    plt = require_pyplot()
    table = source if isinstance(source, pd.DataFrame) else binned_residuals(source, n_bins)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    binned_residuals_panel(table, ax)
    fig.tight_layout()
    return fig
