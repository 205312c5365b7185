"""Pictures of a fit (matplotlib, the optional extra `plot`); each function returns the figure.

- caterpillar_plot: conditional modes of the random effects with intervals (mode +- z *
  conditional SD), one row of panels per grouping factor and one panel per term; the levels are
  labelled on the y axis and share one order across the panels of a factor, sorted by the
  first term's modes (lme4's dotplot(ranef)).
- profile_plot: zeta = sign * sqrt(deviance excess) against each profiled parameter, a smooth
  curve through the profile's points (a monotone cubic spline, as lme4's xyplot(profile)
  interpolates with a spline), with the interval's critical values; a straight line means
  Wald is fine.
- calibration_plot: per level of a grouping factor, observed proportion against the mean fitted
  probability (conditional on the modes, and marginal), points sized by the number of trials.
- effect_plot: a table of estimates with intervals (predictions, slopes, comparisons; drawn
  for results.effect_plots) against its first key, coloured by the second, one panel per value
  of the third and per contrast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from glmm_binomial.arguments import fraction
from glmm_binomial.numerics import normal
from glmm_binomial.results.aliases import renamed_level
from glmm_binomial.results.base import ResultBase
from glmm_binomial.results.marginal import marginal_predict
from glmm_binomial.results.profile import LikelihoodProfile, ProfileControl, profile


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'glmm-binomial[plot]'") from None
    return plt


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return int(np.ceil(n / cols)), cols


#: Most level labels drawn on a caterpillar panel; with more levels every k-th is labelled.
MAX_LEVEL_LABELS = 60
#: Points of the spline drawn through a profile's points.
PROFILE_CURVE_POINTS = 200
#: Profile points evaluated between the estimate and each interval end when the plot profiles
#: a fit itself (ProfileControl.curve_points), beside those the interval search visits.
PROFILE_EXTRA_POINTS = 5


def caterpillar_plot(
    result: ResultBase,
    conf_level: float = 0.95,
    group: str | None = None,
    *,
    level: float | None = None,
) -> Any:
    """Conditional modes with `conf_level` intervals: a row of panels per grouping factor, a
    panel per term, the levels on the y axis in one order per factor (by the first term's
    modes). level: the deprecated name of conf_level."""
    conf_level = fraction(renamed_level(conf_level, level), "conf_level")
    plt = _pyplot()
    ranef = result.ranef(condvar=True)
    if group is not None:
        if group not in ranef:
            raise ValueError(f"group must be one of {', '.join(map(repr, ranef))}, got {group!r}")
        ranef = {group: ranef[group]}
    factors = []
    for name, frame in ranef.items():
        terms = [c for c in frame.columns if not str(c).endswith("_sd")]
        # One order for every panel of the factor: by the first term's modes (lme4's dotplot).
        order = np.argsort(frame[terms[0]].to_numpy(), kind="stable")
        factors.append((name, frame.iloc[order], terms))
    cols = max(len(terms) for _, _, terms in factors)
    heights = [max(2.5, 0.16 * len(frame) + 1.0) for _, frame, _ in factors]
    fig, axes = plt.subplots(
        len(factors),
        cols,
        figsize=(3.6 * cols + 1.2, sum(heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    q = normal.quantile(0.5 + conf_level / 2.0)  # scipy.stats.norm.ppf
    for row, (name, frame, terms) in enumerate(factors):
        position = np.arange(len(frame))
        labels = [str(v) for v in frame.index]
        step = max(1, int(np.ceil(len(labels) / MAX_LEVEL_LABELS)))
        for col in range(cols):
            ax = axes[row, col]
            if col >= len(terms):
                ax.set_visible(False)
                continue
            term = terms[col]
            modes = frame[term].to_numpy()
            sds = frame[f"{term}_sd"].to_numpy()
            ax.errorbar(modes, position, xerr=q * sds, fmt="o", markersize=3, elinewidth=0.8)
            ax.axvline(0.0, color="grey", linewidth=0.8)
            ax.set_title(f"{name}: {term}")
            ax.set_xlabel("conditional mode (log-odds)")
            ax.set_ylim(-0.7, len(frame) - 0.3)
            ax.set_yticks(position[::step])
            if col == 0:
                ax.set_yticklabels(labels[::step], fontsize=8 if len(labels) <= 30 else 6)
                ax.set_ylabel(name)
            else:
                ax.set_yticklabels([])  # the same levels as the first panel of the row
    fig.tight_layout()
    return fig


def _profile_curve(values: Any, zeta: Any) -> tuple[Any, Any]:
    """A smooth curve through the points (value, zeta): a monotone cubic (PCHIP) spline,
    which follows the points without overshooting where they bunch; straight lines through
    fewer than three points."""
    from scipy.interpolate import PchipInterpolator

    values = np.asarray(values, dtype=np.float64)
    zeta = np.asarray(zeta, dtype=np.float64)
    keep = np.isfinite(values) & np.isfinite(zeta)
    values, zeta = values[keep], zeta[keep]
    order = np.argsort(values, kind="stable")
    values, zeta = values[order], zeta[order]
    if len(values) < 3:
        return values, zeta
    grid = np.linspace(values[0], values[-1], PROFILE_CURVE_POINTS)
    return grid, PchipInterpolator(values, zeta)(grid)


def _profile_label(name: str, kind: str) -> str:
    """The x label of a profile panel: the parameter, in words."""
    if kind == "sd":
        term, _, group = name[len("sd_") :].partition("|")
        return f"SD of {term} | {group} (log-odds)"
    if kind == "cor":
        terms, _, group = name[len("cor_") :].partition("|")
        return f"correlation {terms} | {group}"
    return f"coefficient of {name} (log-odds)"


def profile_plot(
    source: ResultBase | LikelihoodProfile,
    which: Any = None,
    conf_level: float = 0.95,
    *,
    level: float | None = None,
) -> Any:
    """zeta against each parameter's value (a spline through the profile's points, which are
    marked), with the +-critical values of `conf_level` and the interval ends; `source` is a
    fit (profiled here, `which` as in profile()) or a profile (drawn at its own conf_level).
    level: the deprecated name of conf_level."""
    conf_level = renamed_level(conf_level, level)
    plt = _pyplot()
    if isinstance(source, LikelihoodProfile):
        prof = source
    else:
        control = ProfileControl(curve_points=PROFILE_EXTRA_POINTS)
        prof = profile(source, conf_level, which, control=control)
    traces = list(prof)
    rows, cols = _grid(len(traces))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
    critical = normal.quantile(0.5 + prof.conf_level / 2.0)  # the root of chi2(1)'s quantile
    for ax, trace in zip(axes.ravel(), traces, strict=False):
        x, y = _profile_curve(trace.values, trace.zeta)
        ax.plot(x, y, "-", linewidth=1.2)
        ax.plot(trace.values, trace.zeta, "o", markersize=2.5, color="C0")
        for value in (-critical, critical):
            ax.axhline(value, color="grey", linestyle="--", linewidth=0.8)
        for end in (trace.lower, trace.upper):
            if np.isfinite(end):
                ax.axvline(end, color="grey", linestyle=":", linewidth=0.8)
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.set_title(trace.name, fontsize=9)
        ax.set_xlabel(_profile_label(trace.name, trace.kind), fontsize=8)
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


def _numeric_axis(values: pd.Series) -> bool:
    """Whether a key is drawn as a continuous axis (a line): numbers with more than two
    values; else as categories (points)."""
    if isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(values):
        return False
    return bool(pd.api.types.is_numeric_dtype(values)) and values.nunique() > 2


def effect_plot(table: pd.DataFrame, names: Sequence[str], ylabel: str, title: str) -> Any:
    """``table``'s estimates with their intervals (ci_lower, ci_upper) against ``names[0]``,
    one colour per value of ``names[1]``, one panel per value of ``names[2]`` and per contrast
    (when the table has several); returns the figure."""
    plt = _pyplot()
    x, colour = names[0], names[1] if len(names) > 1 else None
    panel_keys = [k for k in (*names[2:],) if k in table.columns]
    if "contrast" in table.columns and table["contrast"].nunique() > 1:
        panel_keys = ["contrast", *panel_keys]
    panels = (
        list(table.groupby(panel_keys, sort=False, observed=True)) if panel_keys else [("", table)]
    )
    rows, cols = _grid(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.5 * rows), squeeze=False)
    numeric = _numeric_axis(table[x])
    categories = list(pd.unique(table[x])) if not numeric else []
    colours = list(pd.unique(table[colour])) if colour is not None else [None]
    for ax, (key, part) in zip(axes.ravel(), panels, strict=False):
        for k, value in enumerate(colours):
            rows_of = part if value is None else part[part[colour] == value]
            label = None if value is None else str(value)
            if numeric:
                ordered = rows_of.sort_values(x)
                line = ax.plot(ordered[x], ordered["estimate"], label=label)[0]
                ax.fill_between(
                    ordered[x],
                    ordered["ci_lower"],
                    ordered["ci_upper"],
                    color=line.get_color(),
                    alpha=0.2,
                    linewidth=0,
                )
            else:
                # the colours side by side within each category
                shift = (k - (len(colours) - 1) / 2) * 0.8 / max(len(colours), 1)
                position = np.array([categories.index(v) for v in rows_of[x]]) + shift
                ax.errorbar(
                    position,
                    rows_of["estimate"],
                    yerr=[
                        rows_of["estimate"] - rows_of["ci_lower"],
                        rows_of["ci_upper"] - rows_of["estimate"],
                    ],
                    fmt="o",
                    capsize=3,
                    label=label,
                )
        if not numeric:
            ax.set_xticks(range(len(categories)))
            ax.set_xticklabels([str(c) for c in categories])
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        key_text = ", ".join(map(str, key)) if isinstance(key, tuple) else str(key)
        ax.set_title(f"{title}: {key_text}" if key_text else title)
        if colour is not None:
            ax.legend(title=colour, fontsize="small")
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
