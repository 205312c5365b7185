"""Power over sample sizes (simr's powerCurve): power_sim on designs of several sizes.

Each break resizes the design (power.design: the first n levels of a grouping factor, new
levels copying existing ones beyond its size, or n rows per level) and runs power_sim on it
with the same parameters; break k simulates with the seeds SeedSequence(seed).spawn(len(breaks))
[k].spawn(nsim), so every point is reproducible on its own and the whole curve is the same bit
for bit whatever n_jobs.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from glmm_binomial.arguments import fraction, positive_int
from glmm_binomial.power.design import (
    group_codes,
    resize_levels,
    resize_within,
    with_design,
)
from glmm_binomial.power.simulation import (
    PowerResult,
    make_plan,
    plan_simulations,
    run_simulations,
    summarize,
)

DEFAULT_POINTS = 10
"""Breaks chosen when none are given: up to this many sizes from 3 levels (1 row) to the
current size."""


@dataclass(frozen=True)
class PowerCurve:
    """Power at each break: ``table`` has one row per break (the size, rows, power, its
    interval, valid, failed and singular refits); ``results`` the PowerResult of each."""

    along: str
    by: Literal["levels", "rows"]
    table: pd.DataFrame
    results: tuple[PowerResult, ...]

    def plot(self, ax: Any = None, target: float | None = 0.8) -> Any:
        """Power against the size with the intervals as error bars (extra `plot`:
        matplotlib), a dashed line at `target` (None: none); returns the figure."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("plots need matplotlib: pip install 'glmm-binomial[plot]'") from None
        if ax is None:
            fig, ax = plt.subplots(figsize=(6.0, 4.0))
        else:
            fig = ax.get_figure()
        t = self.table
        x = t[self.size_column].to_numpy()
        power = t["power"].to_numpy()
        errors = np.vstack([power - t["ci_lower"].to_numpy(), t["ci_upper"].to_numpy() - power])
        ax.errorbar(x, power, yerr=errors, fmt="o-", capsize=3)
        if target is not None:
            ax.axhline(target, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel(self.size_column)
        ax.set_ylabel(f"power ({self.results[0].test})" if self.results else "power")
        ax.set_ylim(0.0, 1.0)
        return fig

    @property
    def size_column(self) -> str:
        return str(self.table.columns[0])

    def summary(self) -> str:
        """The test, its level, the simulations per break and the effect, then the table."""
        first = self.results[0]
        return (
            f"Power for {first.test} ({first.method} test, alpha {first.alpha:g}, "
            f"{first.nsim} simulations each; effect {first.effect_text}):\n{self}"
        )

    def __str__(self) -> str:
        return self.table.to_string()


def power_curve(
    model: Any,
    test: str | Sequence[str] | None = None,
    along: str | None = None,
    breaks: Sequence[int] | None = None,
    nsim: int = 1000,
    alpha: float = 0.05,
    method: Literal["wald", "lrt"] = "wald",
    *,
    within: str | None = None,
    effect: Mapping[str, Any] | None = None,
    seed: Any = None,
    n_jobs: int = 1,
    progress: bool | None = None,
    conf_level: float = 0.95,
    start_method: str | None = None,
) -> PowerCurve:
    """power_sim at several sample sizes: `along` a grouping factor and `breaks` its numbers of
    levels (fewer than now: the first ones; more: copies of existing levels), or `within` a
    grouping factor and `breaks` rows per level. breaks None: up to 10 sizes from 3 levels
    (1 row) to the current size. The other arguments are power_sim's; the default `along` is
    the first grouping factor."""
    plan, sequence = plan_simulations(model, test, nsim, alpha, method, effect, seed, n_jobs)
    source = plan.source
    if along is not None and within is not None:
        raise ValueError(
            "give along= (levels of a grouping factor) or within= (rows per level), not both"
        )
    by: Literal["levels", "rows"] = "rows" if within is not None else "levels"
    group = within if within is not None else along
    if group is None:
        if not source.model.blocks:
            raise ValueError("the model has no grouping factor to vary")
        group = source.model.blocks[0].group
    codes, m = group_codes(source.model, group, "within" if within is not None else "along")
    sizes = _breaks(breaks, m if by == "levels" else int(np.max(np.bincount(codes))), by)
    if start_method is not None and start_method not in multiprocessing.get_all_start_methods():
        raise ValueError(f"start_method {start_method!r} is not available on this platform")
    conf_level = fraction(conf_level, "conf_level")
    points = sequence.spawn(len(sizes))
    rows, results = [], []
    for size, point in zip(sizes, points, strict=True):
        if by == "levels":
            resized = resize_levels(source.model, group, size, "along")
            what = f"{size} levels of {group}"
        else:
            resized = resize_within(source.model, group, size, "within")
            what = f"{size} rows per level of {group}"
        sized = with_design(source, resized, what)
        sized_plan = make_plan(sized, plan.label, plan.columns, plan.test, plan.alpha)
        outcomes = run_simulations(
            sized_plan, point.spawn(int(nsim)), int(n_jobs), progress, start_method, what
        )
        result = summarize(sized_plan, outcomes, sequence.entropy, conf_level)
        results.append(result)
        rows.append(
            {
                "size": size,
                "n_obs": result.n_obs,
                "power": result.power,
                "ci_lower": result.ci_lower,
                "ci_upper": result.ci_upper,
                "n_valid": result.n_valid,
                "n_failed": result.n_failed,
                "n_singular": result.n_singular,
            }
        )
    size_column = f"levels of {group}" if by == "levels" else f"rows per {group}"
    table = pd.DataFrame(rows).rename(columns={"size": size_column})
    return PowerCurve(group, by, table, tuple(results))


def _breaks(breaks: Sequence[int] | None, current: int, by: str) -> list[int]:
    if breaks is None:
        low = min(3 if by == "levels" else 1, current)
        values = np.unique(np.round(np.linspace(low, current, DEFAULT_POINTS)).astype(int))
        return [int(v) for v in values]
    if isinstance(breaks, (str, bytes)) or not isinstance(breaks, Sequence) or not breaks:
        raise ValueError(f"breaks must be a non-empty list of sizes, got {breaks!r}")
    return [positive_int(b, "each of breaks") for b in breaks]
