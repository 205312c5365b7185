"""Pictures of a fit (matplotlib, the optional extra `plot`); each function returns the figure.

- caterpillar_plot: conditional modes of the random effects, sorted, with intervals
  (mode +- z * conditional SD), one panel per grouping factor and term (lme4's dotplot(ranef)).
- profile_plot: zeta = sign * sqrt(deviance excess) against each profiled parameter, with the
  interval's critical values (lme4's xyplot(profile)); a straight line means Wald is fine.
- calibration_plot: per level of a grouping factor, observed proportion against the mean fitted
  probability (conditional on the modes, and marginal), points sized by the number of trials.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from glmm_binomial.results.aliases import renamed_level
from glmm_binomial.results.base import ResultBase, check_conf_level
from glmm_binomial.results.marginal import marginal_predict
from glmm_binomial.results.profile import LikelihoodProfile, profile


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'glmm-binomial[plot]'") from None
    return plt


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return int(np.ceil(n / cols)), cols


def caterpillar_plot(
    result: ResultBase,
    conf_level: float = 0.95,
    group: str | None = None,
    *,
    level: float | None = None,
) -> Any:
    """Sorted conditional modes with `conf_level` intervals (mode +- z * conditional SD), one
    panel per (group, term). level: the deprecated name of conf_level."""
    conf_level = check_conf_level(renamed_level(conf_level, level))
    plt = _pyplot()
    ranef = result.ranef(condvar=True)
    if group is not None:
        if group not in ranef:
            raise ValueError(f"group must be one of {', '.join(map(repr, ranef))}, got {group!r}")
        ranef = {group: ranef[group]}
    panels = []
    for name, frame in ranef.items():
        for term in [c for c in frame.columns if not str(c).endswith("_sd")]:
            panels.append((name, term, frame[term].to_numpy(), frame[f"{term}_sd"].to_numpy()))
    rows, cols = _grid(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    q = stats.norm.ppf(0.5 + conf_level / 2.0)
    for ax, (name, term, modes, sds) in zip(axes.ravel(), panels, strict=False):
        order = np.argsort(modes, kind="stable")
        position = np.arange(len(modes))
        ax.errorbar(
            modes[order], position, xerr=q * sds[order], fmt="o", markersize=3, elinewidth=0.8
        )
        ax.axvline(0.0, color="grey", linewidth=0.8)
        ax.set_title(f"{name}: {term}")
        ax.set_xlabel("conditional mode (log-odds)")
        ax.set_yticks([])
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def profile_plot(
    source: ResultBase | LikelihoodProfile,
    which: Any = None,
    conf_level: float = 0.95,
    *,
    level: float | None = None,
) -> Any:
    """zeta against each parameter's value, with the +-critical values of `conf_level` and the
    interval ends; `source` is a fit (profiled here, `which` as in profile()) or a profile
    (drawn at its own conf_level). level: the deprecated name of conf_level."""
    conf_level = renamed_level(conf_level, level)
    plt = _pyplot()
    prof = source if isinstance(source, LikelihoodProfile) else profile(source, conf_level, which)
    traces = list(prof)
    rows, cols = _grid(len(traces))
    fig, axes = plt.subplots(rows, cols, figsize=(3.5 * cols, 3 * rows), squeeze=False)
    critical = float(np.sqrt(stats.chi2.ppf(prof.conf_level, 1)))
    for ax, trace in zip(axes.ravel(), traces, strict=False):
        ax.plot(trace.values, trace.zeta, "-o", markersize=2.5, linewidth=1)
        for value in (-critical, critical):
            ax.axhline(value, color="grey", linestyle="--", linewidth=0.8)
        for end in (trace.lower, trace.upper):
            if np.isfinite(end):
                ax.axvline(end, color="grey", linestyle=":", linewidth=0.8)
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.set_title(trace.name, fontsize=9)
        ax.set_ylabel("zeta")
    for ax in axes.ravel()[len(traces) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def calibration_plot(result: ResultBase, group: str | None = None) -> Any:
    """Observed proportion against mean fitted probability per level of `group` (default: the
    first grouping factor), conditional fits (filled) and marginal ones (open), sized by
    trials, with the identity line."""
    plt = _pyplot()
    model = result.model
    names = [b.group for b in model.blocks]
    group = names[0] if group is None else group
    if group not in names:
        raise ValueError(f"group must be one of {', '.join(map(repr, names))}, got {group!r}")
    block = model.blocks[names.index(group)]
    trials = model.trials
    counts = np.bincount(block.codes, weights=trials, minlength=block.n_levels)
    used = counts > 0
    observed = np.bincount(block.codes, weights=model.successes, minlength=block.n_levels)
    fitted = np.bincount(block.codes, weights=trials * result.fitted(), minlength=block.n_levels)
    marginal = np.bincount(
        block.codes, weights=trials * marginal_predict(result), minlength=block.n_levels
    )
    fig, ax = plt.subplots(figsize=(5, 5))
    size = 10 + 90 * counts[used] / counts[used].max()
    ax.scatter(
        fitted[used] / counts[used], observed[used] / counts[used], s=size, label="conditional"
    )
    ax.scatter(
        marginal[used] / counts[used],
        observed[used] / counts[used],
        s=size,
        facecolors="none",
        edgecolors="grey",
        label="marginal",
    )
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean fitted probability")
    ax.set_ylabel("observed proportion")
    ax.set_title(f"calibration by {group}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig
