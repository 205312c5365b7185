"""check(): one figure of model checks (as performance::check_model and DHARMa's plot).

Panels, each titled and labelled:
1. QQ plot of the simulated (DHARMa) residuals against U(0, 1), with the uniformity,
   dispersion and outlier tests' p-values written in it;
2. the simulated residuals against the rank-transformed fitted probability (fixed effects
   alone), with quantile regression curves at 0.25, 0.5 and 0.75;
3. the dispersion test: the simulated dispersion statistics (histogram) and the observed one;
4. binned residuals (performance::binned_residuals) with the +- 1.96 SE band;
5. one normal QQ plot per random-effect term: the conditional modes (posterior means for
   "vb") divided by their own SD, against normal quantiles, with the identity line.
See results/simulated_residuals.py and results/binned_residuals.py for what is computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from glmm_binomial.arguments import positive
from glmm_binomial.results.base import require_rows
from glmm_binomial.results.binned_residuals import binned_residuals, binned_residuals_panel
from glmm_binomial.results.simulated_residuals import (
    MAX_PLOT_POINTS,
    RE_DESCRIPTIONS,
    dispersion_panel,
    qq_panel,
    require_pyplot,
    residual_vs_predicted_panel,
    simulate_residuals,
)

if TYPE_CHECKING:
    from glmm_binomial.results.result import GLMMResult

#: DHARMa's default seed (simulateResiduals(seed = 123)): the same fit gives the same figure.
DEFAULT_SEED = 123
#: Panels per row of the figure.
COLUMNS = 3


def random_effect_qq_panel(
    ax: Any, modes: Any, group: str, term: str, sd: float, posterior: bool
) -> None:
    """Normal QQ plot of one term's conditional modes divided by their SD (n - 1), with the
    identity line; the modes' SD and the estimated SD of the term written in it."""
    modes = np.sort(np.asarray(modes, dtype=np.float64))
    n = len(modes)
    spread = float(np.std(modes, ddof=1)) if n > 1 else 0.0
    expected = stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n)
    standardized = modes / spread if spread > 0 else modes
    if n > MAX_PLOT_POINTS:
        keep = np.unique(np.linspace(0, n - 1, MAX_PLOT_POINTS).round().astype(np.intp))
        expected, standardized = expected[keep], standardized[keep]
    low = float(min(expected.min(initial=0.0), standardized.min(initial=0.0)))
    high = float(max(expected.max(initial=0.0), standardized.max(initial=0.0)))
    ax.plot([low, high], [low, high], color="0.4", linewidth=1, zorder=1)
    ax.scatter(expected, standardized, s=10, color="C0", zorder=2, rasterized=True)
    what = "posterior means" if posterior else "conditional modes"
    ax.text(
        0.03,
        0.97,
        f"{n} levels; SD of the {what} {spread:.3g}\nestimated SD {sd:.3g}",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
    )
    ax.set_xlabel("normal quantile")
    ax.set_ylabel(f"{what[:-1]} / SD of the {what}" if spread > 0 else f"{what[:-1]} (all 0)")
    ax.set_title(f"Random effects: {group}, {term}")


def check(
    result: GLMMResult,
    path: Any = None,
    n_sim: int = 250,
    seed: Any = DEFAULT_SEED,
    re: str = "posterior",
    n_bins: int | None = None,
    dpi: int = 110,
) -> Any:
    """One figure of model checks (see the module docstring), saved to `path` (PNG, or any
    format matplotlib writes, by its extension) when given; returns the figure.

    n_sim, seed, re: the simulated residuals' (simulate_residuals; seed defaults to DHARMa's
    123 so that the same fit gives the same figure). n_bins: the binned residuals' (default
    round(sqrt(nobs))). Needs matplotlib (extra `plot`); refuses a Dask fit (its rows stay on
    the cluster)."""
    positive(dpi, "dpi")
    model = require_rows(result, "check")
    plt = require_pyplot()
    residuals = simulate_residuals(result, n_sim=n_sim, seed=seed, re=re)
    table = binned_residuals(result, n_bins)
    fit = result.fit_output
    terms = []
    for block, modes, cov in zip(
        model.blocks, fit.ranef, result.covariance_matrices(), strict=True
    ):
        for c, term in enumerate(block.terms):
            terms.append((block.group, term, modes[:, c], float(np.sqrt(cov[c, c]))))
    n_panels = 4 + len(terms)
    rows = -(-n_panels // COLUMNS)
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(5.4 * COLUMNS, 4.4 * rows), squeeze=False)
    flat = list(axes.ravel())
    qq_panel(residuals, flat[0])
    residual_vs_predicted_panel(residuals, flat[1])
    dispersion_panel(residuals, flat[2])
    binned_residuals_panel(table, flat[3])
    posterior = result.method_object.posterior
    for ax, (group, term, modes, sd) in zip(flat[4:], terms, strict=False):
        random_effect_qq_panel(ax, modes, group, term, sd, posterior)
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    seed_text = f", seed {seed}" if isinstance(seed, (int, np.integer)) else ""
    fig.suptitle(
        f"Model checks: {result.formula} (method {result.method}, {result.nobs:,} rows)\n"
        f"{n_sim} simulations{seed_text}, {RE_DESCRIPTIONS[re]},\n{residuals.note}",
        fontsize=11,
    )
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.93))
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig
