"""Post-fit workflow fuzz: random calls of the result API with good and bad arguments.

Twenty-three fits of every kind (families, links, methods, priors, structured covariances,
weights, offsets, crossed factors, and seven that end awkwardly) are made once; each case then
calls one function of what a user does after a fit (confint, profile, emmeans / emtrends /
contrast / pairs, r2_nakagawa, icc, simulate_residuals (and its autocorrelation tests),
binned_residuals, resid, simulate, refit, predict, marginal_predict, marginal_coefs, summary,
ranef, coef, varcorr, anova, drop1, pb_test, update, wald_test, wald_test_terms, joint_tests,
vif, slopes / avg_slopes / comparisons / avg_comparisons / avg_predictions, tidy / glance /
augment, influence, bootstrap, power_sim, extend, the figures: check, plot_ranef,
plot_calibration, plot_profile; and fit itself) on a random fit, with arguments drawn from good
values and, in about half the cases, one bad value of one argument.

Failures:

* any exception but ValueError (a good call may be refused with a ValueError: some functions
  do not apply to some fits), or a ValueError for a bad argument whose message does not name
  that argument;
* a bad argument accepted;
* an argument the caller passed (frames, lists, dicts) changed by the call;
* a seeded call that gives another answer when repeated;
* an infinite number in a returned table (NaN is how a number that is not an estimate is
  shown; inf never is);
* a change of a canary (each fit's params, summary text, emmeans table, r2 and residuals,
  made before the first case and compared every few cases): a call must not change what later
  calls on the result return.

    python bench/fuzz_workflow.py --calls 400 --seed 1     # counts, and each failure
"""

from __future__ import annotations

import argparse
import copy
import math
import re
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import glmm_binomial as g
from glmm_binomial.model.design import droppable_terms


@dataclass
class Fit:
    """One fitted model with what the cases need to know about its variables."""

    name: str
    frame: pd.DataFrame
    formula: str
    factors: tuple[str, ...]
    numerics: tuple[str, ...]
    groups: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    result: Any = None


def frames() -> dict[str, pd.DataFrame]:
    cbpp = g.datasets.load("cbpp")
    contraception = g.datasets.load("contraception")
    verbagg = g.datasets.load("verbagg")
    ids = verbagg["id"].astype(str).unique()[:60]
    small_verbagg = verbagg[verbagg["id"].astype(str).isin(ids)].reset_index(drop=True)
    cbpp = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])
    contraception = contraception.assign(
        exposure=np.round(np.linspace(-0.2, 0.2, len(contraception)), 3)
    )
    return {
        "cbpp": cbpp,
        "contraception": contraception,
        "verbagg": small_verbagg,
        "awkward": awkward(),
        "pure_groups": pure_groups(),
        "plain_counts": plain_counts(),
    }


def pure_groups() -> pd.DataFrame:
    """50 rows in 10 groups of 5, each all 0 or all 1: the random-effect SD has no finite
    estimate (separation within groups)."""
    groups = np.arange(50) // 5
    x = np.round(np.linspace(-1.5, 1.5, 50) ** 3, 3)
    return pd.DataFrame({"y": (groups % 3 == 0).astype(int), "x": x, "g": groups})


def plain_counts() -> pd.DataFrame:
    """Binomial counts with no overdispersion beyond the herd effect (15 herds, 4 periods, 20
    trials): a beta-binomial fit with little overdispersion (phi about 50)."""
    rng = np.random.default_rng(11)
    herd = np.repeat(np.arange(15), 4)
    period = np.tile(["1", "2", "3", "4"], 15)
    eta = -1.0 + 0.4 * (period == "2") + rng.normal(0.0, 0.5, 15)[herd]
    successes = rng.binomial(20, 1.0 / (1.0 + np.exp(-eta)))
    # A categorical column: text of numbers alone is read as a number (README), which made
    # period one slope and left the beta-binomial's factor calls untested.
    frame = pd.DataFrame({"herd": herd, "period": pd.Categorical(period), "k": successes})
    return frame.assign(n=20)


def awkward() -> pd.DataFrame:
    """120 rows in 12 groups where fits end awkwardly: y does not depend on g (a variance at
    zero), every row of f's level "a" is a failure (quasi-separation: f's other levels'
    coefficients diverge upwards, the intercept downwards), x2 = 2 x (aliased)."""
    rng = np.random.default_rng(2027)
    n = 120
    x = np.round(rng.uniform(-2.0, 2.0, size=n), 2)
    f = np.repeat(["a", "b", "c"], n // 3)
    y = rng.integers(0, 2, size=n)
    y[f == "a"] = 0
    groups = np.tile([f"g{k}" for k in range(12)], n // 12)
    return pd.DataFrame({"y": y, "x": x, "x2": 2.0 * x, "f": f, "g": groups})


def fits() -> list[Fit]:
    data = frames()
    cbpp, con, verb, odd, pure, plain = (
        data[k]
        for k in ("cbpp", "contraception", "verbagg", "awkward", "pure_groups", "plain_counts")
    )
    herd = "cbind(incidence, size - incidence) ~ period + (1 | herd)"

    def of_cbpp(name: str, formula: str, **kwargs: Any) -> Fit:
        return Fit(name, cbpp, formula, ("period",), (), ("herd",), kwargs)

    def of_contraception(name: str, formula: str, **kwargs: Any) -> Fit:
        factors = tuple(f for f in ("urban", "livch") if f in formula)
        return Fit(name, con, formula, factors, ("age",), ("district",), kwargs)

    base = "use ~ age + urban + (1 | district)"
    return [
        of_cbpp("cbpp", herd),
        of_cbpp("cbpp_prop", "prop ~ period + (1 | herd)", weights="size"),
        of_cbpp("cbpp_bb", herd, family="betabinomial"),
        of_contraception("con_ri", "use ~ age + urban + livch + (1 | district)"),
        of_contraception("con_slope", "use ~ age + urban + livch + (1 + urban | district)"),
        of_contraception(
            "con_probit", "use ~ age + I(age^2) + urban + (1 | district)", link="probit"
        ),
        of_contraception("con_offset", "use ~ age + urban + offset(exposure) + (1 | district)"),
        of_contraception("con_agq", base, method="agq", n_agq=5),
        of_contraception("con_vb", "use ~ age + urban + livch + (1 | district)", method="vb"),
        of_contraception("con_mf", base, method="vb_meanfield"),
        of_contraception("con_mcmc", base, method="mcmc", draws=150, warmup=100, chains=2, seed=5),
        of_contraception("con_blme", "use ~ age + urban + (1 + urban | district)", priors="blme"),
        of_contraception("con_cs", "use ~ age + livch + cs(livch + 0 | district)"),
        Fit(
            "verb",
            verb,
            "r2 ~ Anger + Gender + btype + (1 | id) + (1 | item)",
            ("Gender", "btype"),
            ("Anger",),
            ("id", "item"),
        ),
        Fit("separated", odd, "y ~ x + f + (1 | g)", ("f",), ("x",), ("g",)),
        Fit("singular", odd[odd["f"] != "c"], "y ~ x + (1 + x | g)", (), ("x",), ("g",)),
        Fit("aliased", odd, "y ~ x + x2 + (1 | g)", (), ("x",), ("g",)),
        Fit("tiny", odd.iloc[40:56], "y ~ x + (1 | g)", (), ("x",), ("g",)),
        Fit("pure_groups", pure, "y ~ x + (1 | g)", (), ("x",), ("g",)),
        Fit(
            "sep_agq",
            odd,
            "y ~ x + f + (1 | g)",
            ("f",),
            ("x",),
            ("g",),
            {"method": "agq", "n_agq": 7},
        ),
        Fit("sep_vb", odd, "y ~ x + f + (1 | g)", ("f",), ("x",), ("g",), {"method": "vb"}),
        Fit(
            "bb_plain",
            plain,
            "cbind(k, n - k) ~ period + (1 | herd)",
            ("period",),
            (),
            ("herd",),
            {"family": "betabinomial"},
        ),
        of_contraception("con_ar1", "use ~ age + livch + ar1(livch + 0 | district)"),
    ]


# ---------------------------------------------------------------- argument pools

BAD_LEVELS: list[Any] = [1.5, -0.1, 0.0, 1.0, "0.9", float("nan"), True, None, [0.9]]
EMM_LEVELS = [v for v in BAD_LEVELS if v is not None]
"""contrast's and pairs' bad levels (None is the means' own level there)."""
BAD_COUNTS: list[Any] = [0, -3, 2.5, "10", float("nan"), True, None]
BAD_SEEDS: list[Any] = ["seed", 1.5, -1, [1, "a"], object()]
BAD_NAMES: list[Any] = ["nope", "", 3, None, ["nope"], ("period", 7)]


def pick(rng: np.random.Generator, values: list[Any]) -> Any:
    return values[int(rng.integers(len(values)))]


def seed_value(rng: np.random.Generator) -> Any:
    return pick(rng, [0, 1, 12345, [3, 4], np.random.SeedSequence(7)])


@dataclass
class Case:
    """One call: `call()` runs it; bad: the argument given a bad value (None: all good);
    seeded: repeating it must give the same answer; passed: what the caller passed, checked
    unchanged."""

    label: str
    call: Callable[[], Any]
    bad: str | None = None
    seeded: bool = False
    passed: tuple[Any, ...] = ()
    infinite_ok: bool = False


SCALE_OFFSET_BAD: dict[str, list[Any]] = {
    "scale": [0, "2", [1.0, float("nan")], [1.0] * 9],
    "offset": [float("inf"), ["a"], [0.1] * 9],
}
"""contrast()'s and pairs()' scale and offset that must be refused (these fits' means number
2, 3, 4, 6, 8 or 12: no family has 9 contrasts)."""


def scale_offset(rng: np.random.Generator) -> dict[str, Any]:
    """emmeans' scale= and/or offset= of contrast() and pairs(), one number each."""
    drawn = {"scale": pick(rng, [0.5, -2.0, 3]), "offset": pick(rng, [0.3, -1.0, 0])}
    return {k: v for k, v in drawn.items() if rng.random() < 0.7}


def with_bad(
    rng: np.random.Generator, good: dict[str, Any], bad_pools: dict[str, list[Any]], p: float
) -> tuple[dict[str, Any], str | None]:
    """good's arguments, one of them (chosen from bad_pools' keys) replaced by a bad value
    with probability p."""
    if not bad_pools or rng.random() >= p:
        return good, None
    name = pick(rng, sorted(bad_pools))
    args = dict(good)
    args[name] = pick(rng, bad_pools[name])
    return args, name


KINDS = (
    "confint",
    "profile",
    "emmeans",
    "emtrends",
    "contrast",
    "pairs",
    "cld",
    "r2",
    "icc",
    "simres",
    "binned",
    "resid",
    "simulate",
    "refit",
    "predict",
    "marginal_predict",
    "marginal_coefs",
    "summary",
    "ranef",
    "anova",
    "drop1",
    "pb",
    "update",
    "wald",
    "joint",
    "vif",
    "slopes",
    "tidy",
    "influence",
    "bootstrap",
    "power",
    "extend",
    "fixef_table",
    "fit",
    "plot",
)
"""The functions a case may call."""


def make_case(
    rng: np.random.Generator, fit: Fit, fits_by_name: dict[str, Fit], kinds: Sequence[str] = KINDS
) -> Case:
    r = fit.result
    p_bad = 0.5
    kind = pick(rng, list(kinds))
    if kind == "confint":
        method = pick(rng, [None, "wald", "profile", "boot", "posterior"])
        good: dict[str, Any] = {"method": method, "conf_level": pick(rng, [0.95, 0.9, 0.5])}
        if method == "boot":
            good.update(n_boot=int(rng.integers(3, 6)), seed=seed_value(rng))
        args, bad = with_bad(
            rng, good, {"conf_level": BAD_LEVELS, "method": ["bogus", 3, "Wald "]}, p_bad
        )
        # A profile interval of a coefficient with no finite estimate is unbounded on one side
        # (method None: a maximum-likelihood fit's default is the profile, as lme4's confint),
        # and a bootstrap interval of a coefficient reaches -+inf where enough replicates
        # are separated (whatever the fit), their coefficients at -+inf.
        unbounded = (bool(r.diverging) and args["method"] in ("profile", None)) or args[
            "method"
        ] == "boot"
        return Case(
            f"confint{args}", lambda: g.confint(r, **args), bad, method == "boot", (), unbounded
        )
    if kind == "profile":
        names = list(r.fixed_names)
        which = pick(rng, [None, pick(rng, names), names[:1], "theta_"])
        if which == "theta_":
            which = None
        good = {"which": which, "conf_level": pick(rng, [0.95, 0.8])}
        # which=None is every parameter: not a bad value here.
        names_pool = [v for v in BAD_NAMES if v is not None]
        args, bad = with_bad(rng, good, {"conf_level": BAD_LEVELS, "which": names_pool}, p_bad)
        passed = (args["which"],) if isinstance(args["which"], list) else ()
        return Case(
            f"profile{args}",
            lambda: g.profile(r, **args).confint(),
            bad,
            False,
            passed,
            bool(r.diverging),
        )
    if kind in ("emmeans", "contrast", "pairs", "cld"):
        specs: Any = pick(rng, list(fit.factors)) if fit.factors else fit.numerics[0]
        if len(fit.factors) > 1 and rng.random() < 0.3:
            specs = list(fit.factors[:2])
        good = {
            "specs": specs,
            "type": pick(rng, ["link", "response"]),
            "conf_level": pick(rng, [0.95, 0.9]),
        }
        others = [f for f in fit.factors if f != specs and not isinstance(specs, list)]
        if others and rng.random() < 0.3:
            good["by"] = others[0]
        if fit.numerics and rng.random() < 0.3:
            good["at"] = {fit.numerics[0]: [float(v) for v in rng.normal(0, 5, 2).round(2)]}
        if rng.random() < 0.2:
            good["bias_adjust"] = True
        pools: dict[str, list[Any]] = {
            "specs": BAD_NAMES,
            "type": ["bogus", 1, None],
            "conf_level": BAD_LEVELS,
            "at": [
                {"nope": [1.0]},
                {fit.numerics[0]: ["a"]} if fit.numerics else {"x": 1},
                [1, 2],
                "age",
            ],
            "by": ["nope", 3],
        }
        if kind == "emmeans":
            args, bad = with_bad(rng, good, pools, p_bad)
            passed = tuple(v for v in args.values() if isinstance(v, list | dict))
            return Case(f"emmeans{args}", lambda: g.emmeans(r, **args).table, bad, False, passed)
        emm_args = good
        # A fifth of the contrasts and pairs: of the means regridded to probabilities.
        regridded = good["type"] == "link" and rng.random() < 0.2

        def emm() -> Any:
            means = g.emmeans(r, **emm_args)
            return g.regrid(means) if regridded else means

        if kind == "cld":
            largs, bad = with_bad(
                rng,
                {
                    "alpha": pick(rng, [0.05, 0.1]),
                    "adjust": pick(rng, [None, "sidak", "holm", "none"]),
                    "reversed": bool(rng.random() < 0.3),
                },
                {"alpha": BAD_LEVELS, "adjust": ["bogus", 1], "letters": ["aa", "", 3]},
                p_bad,
            )
            return Case(
                f"cld{emm_args}{' regrid' if regridded else ''}{largs}",
                lambda: g.cld(emm(), **largs),
                bad,
            )
        if kind == "pairs":
            pargs, bad = with_bad(
                rng,
                {
                    "adjust": pick(
                        rng, ["tukey", "holm", "none", "sidak", "scheffe", "hochberg", "BY"]
                    ),
                    "reverse": bool(rng.random() < 0.5),
                    **(
                        {"simple": "each", "combine": bool(rng.random() < 0.5)}
                        if rng.random() < 0.2
                        else {}
                    ),
                    **(scale_offset(rng) if rng.random() < 0.2 else {}),
                },
                {
                    "adjust": ["bogus", 1],
                    "type": ["bogus"],
                    "conf_level": EMM_LEVELS,
                    "simple": ["nope", 3],
                    **SCALE_OFFSET_BAD,
                },
                p_bad,
            )
            return Case(
                f"pairs{emm_args}{' regrid' if regridded else ''}{pargs}",
                lambda: g.pairs(emm(), **pargs),
                bad,
            )
        # No factor of these fits has 7 levels: the wrong number of weights.
        weights = {"a": list(rng.normal(size=7).round(2))}
        method = pick(
            rng,
            ["pairwise", "revpairwise", "trt.vs.ctrl", "consec", "eff", "del.eff", "poly", "dict"],
        )
        interacting = isinstance(specs, list) and method != "dict" and rng.random() < 0.5
        variables = list(specs) if isinstance(specs, list) else [specs]
        simple_choices: list[Any] = ["each", variables[0], [variables[:1], variables]]
        cargs, bad = with_bad(
            rng,
            {
                "method": method if method != "dict" else "pairwise",
                "adjust": pick(
                    rng,
                    [None, "holm", "bonferroni", "dunnettx", "mvt", "fdr", "scheffe", "hommel"],
                ),
                **({"ref": 0} if method == "trt.vs.ctrl" and rng.random() < 0.5 else {}),
                # Interaction contrasts of two factors' means (one method each or one for both).
                **(
                    {"interaction": pick(rng, [True, "consec", ["pairwise", "eff"], ["poly"]])}
                    if interacting
                    else {}
                ),
                # Simple effects: a variable, "each" or a list of sets, one family or parts.
                **(
                    {
                        "simple": pick(rng, simple_choices),
                        "combine": bool(rng.random() < 0.5),
                    }
                    if not interacting and rng.random() < 0.35
                    else {}
                ),
                **(scale_offset(rng) if not interacting and rng.random() < 0.2 else {}),
            },
            {
                **SCALE_OFFSET_BAD,
                "simple": ["nope", 3, [["nope"]]],
                "combine": ["yes", 2],
                "method": ["bogus", weights, {"a": ["x"]}, 4],
                "adjust": ["bogus"],
                **(
                    {"interaction": ["bogus", 3, ["pairwise"] * 3]}
                    if isinstance(specs, list)
                    else {}
                ),
                "conf_level": EMM_LEVELS,
                # ref names trt.vs.ctrl's control only (emmeans ignores it otherwise).
                **({"ref": [99, "nope", -1]} if method == "trt.vs.ctrl" else {}),
            },
            p_bad,
        )
        passed = tuple(v for v in cargs.values() if isinstance(v, dict))
        return Case(
            f"contrast{emm_args}{' regrid' if regridded else ''}{cargs}",
            lambda: g.contrast(emm(), **cargs),
            bad,
            False,
            passed,
        )
    if kind == "emtrends":
        if not fit.numerics:
            kind = "r2"
        else:
            specs = pick(rng, list(fit.factors)) if fit.factors else fit.numerics[0]
            good = {"specs": specs, "var": fit.numerics[0], "conf_level": 0.95}
            args, bad = with_bad(
                rng,
                good,
                {
                    "var": ["nope", 3, *fit.factors[:1]],
                    "conf_level": BAD_LEVELS,
                    "delta": [0.0, "a", float("nan")],
                },
                p_bad,
            )
            return Case(f"emtrends{args}", lambda: g.emtrends(r, **args).table, bad)
    if kind == "r2":
        args, bad = with_bad(
            rng,
            {"approximation": pick(rng, ["theoretical", "delta"])},
            {"approximation": ["bogus", 1, None], "tolerance": [-1.0, "a", float("nan")]},
            p_bad,
        )
        return Case(f"r2{args}", lambda: g.r2_nakagawa(r, **args), bad)
    if kind == "icc":
        args, bad = with_bad(rng, {}, {"tolerance": [-1.0, "a", float("nan"), None]}, p_bad)
        return Case(f"icc{args}", lambda: g.icc(r, **args), bad)
    if kind == "simres":
        good = {
            "n_sim": int(rng.integers(5, 40)),
            "seed": seed_value(rng),
            "re": pick(rng, ["posterior", "conditional", "unconditional"]),
        }
        if rng.random() < 0.3:
            good["by"] = fit.groups[0]
        args, bad = with_bad(
            rng,
            good,
            {"n_sim": BAD_COUNTS, "seed": BAD_SEEDS, "re": ["bogus", 1], "by": ["nope", 4]},
            p_bad,
        )

        # Distinct times and places for the autocorrelation tests, drawn now (repeatable).
        times = rng.permutation(200_000).astype(float)

        def simres() -> Any:
            s = g.simulate_residuals(r, **args)
            tests: tuple[Any, ...] = ()
            if 4 <= s.n_units <= len(times):
                time = times[: s.n_units]
                tests = (
                    s.test_temporal_autocorrelation(time).p_value,
                    s.test_spatial_autocorrelation(time, time[::-1]).p_value,
                )
            return (s.residuals, s.simulated_successes, tests)

        return Case(f"simulate_residuals{args}", simres, bad, True)
    if kind == "binned":
        args, bad = with_bad(
            rng,
            {"n_bins": pick(rng, [None, 3, 10])},
            # n_bins=None is the default (performance's rule): not a bad value here.
            {"n_bins": [v for v in BAD_COUNTS if v is not None] + [1]},
            p_bad,
        )
        return Case(f"binned_residuals{args}", lambda: g.binned_residuals(r, **args), bad)
    if kind == "resid":
        args, bad = with_bad(
            rng,
            {"type": pick(rng, ["deviance", "pearson", "response", "working"])},
            {"type": ["bogus", None, 1]},
            p_bad,
        )
        return Case(f"resid{args}", lambda: r.resid(**args), bad)
    if kind == "simulate":
        args, bad = with_bad(
            rng,
            {
                "n": int(rng.integers(1, 4)),
                "seed": seed_value(rng),
                "use_u": bool(rng.random() < 0.5),
            },
            {"n": BAD_COUNTS, "seed": BAD_SEEDS, "use_u": ["yes", 2]},
            p_bad,
        )
        return Case(f"simulate{args}", lambda: r.simulate(**args), bad, True)
    if kind == "refit":
        sim = r.simulate(1, seed=int(rng.integers(100)))
        response = np.asarray(sim)[:, 0]  # one simulation: (nobs, 1)
        variant = pick(rng, ["array", "list", "short", "text", "nan", "negative"])
        bad = None
        if variant == "list":
            new: Any = response.tolist()
        elif variant == "array":
            new = response
        else:
            bad = "new_response"
            new = response.copy().astype(object if variant == "text" else float)
            if variant == "short":
                new = response[:-1]
            elif variant == "text":
                new[0] = "x"
            elif variant == "nan":
                new[0] = np.nan
            else:
                new[0] = -1.0
        return Case(f"refit({variant})", lambda: r.refit(new).params, bad, False, (new,))
    if kind in ("predict", "marginal_predict"):
        n = int(rng.integers(1, min(20, len(fit.frame))))
        rows = fit.frame.sample(n=n, random_state=int(rng.integers(1 << 30))).copy()
        bad = None
        if rng.random() < p_bad:
            variant = pick(rng, ["drop", "text", *(["new_level_factor"] if fit.factors else [])])
            bad = "newdata"
            if variant == "drop" or not fit.numerics:
                column = fit.factors[0] if fit.factors else fit.numerics[0]
                rows = rows.drop(columns=[column])
            elif variant == "text":
                rows[fit.numerics[0]] = rows[fit.numerics[0]].astype(object)
                rows.iloc[0, rows.columns.get_loc(fit.numerics[0])] = "abc"
            else:
                column = fit.factors[0]
                rows[column] = rows[column].astype(object)
                rows.iloc[0, rows.columns.get_loc(column)] = "never-seen"
        if kind == "marginal_predict":
            return Case("marginal_predict", lambda: r.marginal_predict(rows), bad, False, (rows,))
        pargs, pbad = with_bad(
            rng,
            {
                "type": pick(rng, ["response", "link"]),
                "re": pick(rng, ["include", "exclude"]),
                "se_fit": bool(rng.random() < 0.3),
            },
            {"type": ["bogus"], "re": ["bogus", ["nope"]]},
            0.0 if bad else p_bad,
        )
        return Case(
            f"predict{pargs}", lambda: r.predict(rows, **pargs), bad or pbad, False, (rows,)
        )
    if kind == "marginal_coefs":
        return Case("marginal_coefs", lambda: r.marginal_coefs(bool(rng.random() < 0.5)))
    if kind == "summary":
        return Case("summary", lambda: str(r.summary()))
    if kind == "ranef":
        condvar = bool(rng.random() < 0.5)
        return Case(f"ranef({condvar})", lambda: (r.ranef(condvar), r.coef(), r.varcorr))
    if kind == "fixef_table":
        # conf_level=None is the fit's own level: not a bad value here.
        levels = [v for v in BAD_LEVELS if v is not None]
        args, bad = with_bad(rng, {"conf_level": 0.95}, {"conf_level": levels}, p_bad)
        return Case(f"fixed_effects_table{args}", lambda: r.fixed_effects_table(**args), bad)
    if kind == "anova":
        others = [f for f in fits_by_name.values() if f.frame is fit.frame and f is not fit]
        other = pick(rng, others) if others else fit
        return Case(f"anova({fit.name}, {other.name})", lambda: g.anova(r, other.result))
    if kind == "pb":
        others = [f for f in fits_by_name.values() if f.frame is fit.frame and f is not fit]
        other = pick(rng, others) if others else fit
        args, bad = with_bad(
            rng,
            {"nsim": int(rng.integers(2, 5)), "seed": seed_value(rng)},
            {"nsim": BAD_COUNTS, "seed": BAD_SEEDS, "n_jobs": [0, -1, "2"]},
            p_bad,
        )
        return Case(
            f"pb_test({fit.name}, {other.name}){args}",
            lambda: g.pb_test(r, other.result, **args).table,
            bad,
            True,
        )
    if kind == "drop1":
        return Case("drop1", lambda: g.drop1(r))
    if kind == "update":
        terms = droppable_terms(r.design) if r.design is not None else []
        formulas = [". ~ .", ". ~ . + 1"] + [f". ~ . - {t}" for t in terms[:2]]
        args, bad = with_bad(
            rng,
            {"formula": pick(rng, formulas)},
            {"formula": ["x", ". ~ - .", ". ~ (.", 3], "n_agq": [0, -1, "five"]},
            p_bad,
        )
        return Case(f"update{args}", lambda: g.update(r, **args).loglik, bad)
    if kind == "wald":
        names = list(r.fixed_names)
        one, two = pick(rng, names), pick(rng, names)
        hypotheses = [
            f"`{one}` = 0",
            [f"`{one}` = 0"],
            f"`{one}` - 2 * `{two}` = 0.5" if one != two else f"3 * `{one}` = 1",
        ]
        if rng.random() < 0.5:
            args, bad = with_bad(
                rng,
                {"hypothesis": pick(rng, hypotheses)},
                {"hypothesis": ["zz = 0", "", f"`{one}` == 0", np.eye(len(names) + 1), 3]},
                p_bad,
            )
            return Case(f"wald_test{args}", lambda: r.wald_test(**args).table, bad)
        args, bad = with_bad(
            rng, {"type": pick(rng, ["II", "III", 2, 3])}, {"type": ["I", 4, None]}, p_bad
        )
        return Case(f"wald_test_terms{args}", lambda: r.wald_test_terms(**args), bad)
    if kind == "joint":
        good = {"by": pick(rng, [None, *fit.factors[:1]])}
        args, bad = with_bad(rng, good, {"by": ["nope", 3]}, p_bad)
        return Case(f"joint_tests{args}", lambda: g.joint_tests(r, **args), bad)
    if kind == "vif":
        return Case("vif", lambda: g.vif(r))
    if kind == "tidy":
        function = pick(rng, ["tidy", "glance", "augment"])
        if function != "tidy":
            return Case(function, lambda: getattr(g, function)(r))
        good = {
            "effects": pick(rng, ["fixed", ["fixed", "ran_pars"], ["ran_vals", "ran_coefs"]]),
            "scales": pick(rng, ["sdcor", "vcov"]),
            "conf_int": pick(rng, [False, True]),
            "conf_method": "wald",
            "exponentiate": pick(rng, [False, True]),
        }
        args, bad = with_bad(
            rng,
            good,
            {
                "effects": ["random", [], 3],
                "scales": ["sd", None],
                "conf_int": ["yes", 1],
                "conf_method": ["exact", 3],
                "exponentiate": [1, "no"],
            },
            p_bad,
        )
        if bad == "conf_method":
            args["conf_int"] = True
        return Case(f"tidy{args}", lambda: g.tidy(r, **args), bad)
    if kind == "slopes":
        function = pick(
            rng,
            [
                "slopes",
                "avg_slopes",
                "comparisons",
                "avg_comparisons",
                "avg_predictions",
                "predictions",
            ],
        )
        variables: Any = pick(rng, [None, *fit.numerics[:1], *fit.factors[:1]])
        if function.endswith("predictions") and fit.numerics and rng.random() < 0.5:
            variables = {fit.numerics[0]: [-1.0, 0.0, 1.0]}
        if function.endswith("comparisons") and rng.random() < 0.5:
            changes: dict[str, Any] = {
                v: pick(rng, [2.0, "minmax", (-1.0, 1.0), "sd", "2sd", "iqr"])
                for v in fit.numerics[:1]
            }
            changes.update({v: pick(rng, ["pairwise", "sequential"]) for v in fit.factors[:1]})
            variables = changes or None
        good = {
            "variables": variables,
            "type": pick(rng, ["response", "link"]),
            "re": pick(rng, ["include", "exclude"]),
            "conf_level": pick(rng, [None, 0.9]),
        }
        bad_pool: dict[str, list[Any]] = {
            "variables": ["nope", 3, ["a", "a"], *fit.groups[:1]],
            "type": ["odds", None],
            "re": ["nope", 3],
            "conf_level": EMM_LEVELS,
            "newdata": [fit.frame.iloc[:0], 3, "average"],
        }
        if rng.random() < 0.3 and fit.numerics:  # rows to predict at: a grid
            grid_type = pick(rng, ["typical", "counterfactual"])
            try:
                good["newdata"] = g.datagrid(
                    r, grid_type=grid_type, **{fit.numerics[0]: [-1.0, 1.0]}
                )
            except ValueError:
                pass  # a fit without its rows: no grid
        elif rng.random() < 0.15:
            good["newdata"] = pick(rng, ["mean", "median", "tukey", "grid", "marginalmeans"])
        good["hypothesis"] = pick(
            rng, [None, None, 0.1, "b1 = 0", "exp(b1) = 1", "reference", "revpairwise"]
        )
        bad_pool["hypothesis"] = ["nope", "b1 = b2 = b3", "b1 = foo(b1)", [1.0] * 99, np.inf]
        if rng.random() < 0.5:
            good["equivalence"] = pick(rng, [None, 0.05, (-0.1, 0.1)])
        else:
            good["p_adjust"] = pick(rng, [None, "holm", "hommel", "BY"])
        bad_pool["equivalence"] = ["wide", [1, 2, 3], [0.0, np.nan]]
        bad_pool["p_adjust"] = ["tukey", 3]
        good["transform"] = pick(rng, [None, None, "exp"])
        bad_pool["transform"] = ["log", 3]
        good["df"] = pick(rng, [np.inf, np.inf, 20.0])
        bad_pool["df"] = [0, "30", -1.0]
        if function.startswith("avg") or function == "predictions":
            good["by"] = pick(rng, [None, *fit.factors[:1]])
            bad_pool["by"] = ["nope", 3]
            if "newdata" not in good:  # one weight per row of the fit's data
                good["wts"] = pick(rng, [None, np.arange(r.nobs) % 3 + 1.0])
            if "newdata" not in good:  # a grid's rows are not the fit's: wts' length differs
                bad_pool["wts"] = ["nope", [1.0, 2.0], -np.ones(r.nobs), np.zeros(r.nobs)]
        if function.endswith("slopes"):
            good["slope"] = pick(rng, ["dydx", "eyex", "eydx", "dyex"])
            bad_pool["eps"] = [0.0, -1.0, "1"]
            bad_pool["slope"] = ["elastic", None]
        if function.endswith("comparisons"):
            functions = ["difference", "ratio", "lnratio", "lnor"]
            if function.startswith("avg"):
                functions += ["differenceavg", "ratioavg", "lnratioavg", "lnoravg"]
            good["comparison"] = pick(rng, functions)
            bad_pool["comparison"] = ["odds", 3]
            # cross needs two variables (one is refused, which would hide a bad argument)
            several = isinstance(variables, (dict, list)) and len(variables) >= 2
            good["cross"] = pick(rng, [False, False, True]) if several else False
            bad_pool["cross"] = ["yes", None]
        args, bad = with_bad(rng, good, bad_pool, p_bad)
        call = getattr(g, function)
        return Case(f"{function}{args}", lambda: call(r, **args), bad)
    if kind == "influence":
        groups = [b.group for b in r.model.blocks]
        args, bad = with_bad(
            rng,
            {"groups": pick(rng, groups) if groups else None},
            {"groups": ["nope", 3], "n_jobs": [0, -1, "2"]},
            p_bad,
        )

        def deletions() -> Any:
            infl = r.influence(**args)
            return (infl.dfbeta(), infl.dfbetas(), infl.cooks_distance(), infl.var_cov_deleted)

        return Case(f"influence{args}", deletions, bad)
    if kind == "bootstrap":
        args, bad = with_bad(
            rng,
            {"n_boot": int(rng.integers(2, 5)), "seed": seed_value(rng)},
            {"n_boot": BAD_COUNTS, "seed": BAD_SEEDS, "n_jobs": [0, -2, 1.5, "2"]},
            p_bad,
        )

        def boot() -> Any:
            out = g.bootstrap(r, **args)
            interval = out.confint()
            # Replicates of a separated coefficient are -+inf by design: an interval may be
            # infinite, but it lies within its replicates' range (a column of -inf once gave
            # (inf, inf)).
            values = out.replicates.to_numpy(dtype=float)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a column of NaN only
                low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
            rows = interval.loc[list(out.replicates.columns)]
            for column in (rows.iloc[:, 0].to_numpy(), rows.iloc[:, 1].to_numpy()):
                outside = ~np.isnan(column) & ((column < low) | (column > high))
                if outside.any():
                    raise AssertionError(
                        f"a bootstrap interval outside its replicates' range: {column} not in "
                        f"[{low}, {high}]"
                    )
            return (out.replicates, out.estimates, interval)

        return Case(f"bootstrap{args}", boot, bad, True, (), True)
    if kind == "power":
        test = pick(rng, list(r.fixed_names)[1:] or list(r.fixed_names))
        good = {
            "test": test,
            "nsim": int(rng.integers(2, 5)),
            "seed": seed_value(rng),
            "method": pick(rng, ["wald", "lrt"]),
        }
        if rng.random() < 0.3:
            good["effect"] = {test: float(rng.normal())}
        args, bad = with_bad(
            rng,
            good,
            {
                # test=None tests every fixed effect but the intercept: not bad here.
                "test": [v for v in BAD_NAMES if v is not None],
                "nsim": BAD_COUNTS,
                "alpha": BAD_LEVELS,
                "method": ["bogus", 1],
                "effect": [{"nope": 1.0}, {test: "a"}, [1]],
            },
            p_bad,
        )
        passed = tuple(v for v in args.values() if isinstance(v, dict | list))

        def power() -> Any:
            out = g.power_sim(r, **args)
            return (out.power, out.ci_lower, out.ci_upper, out.nsim, out.n_failed)

        return Case(f"power_sim{args}", power, bad, True, passed)
    if kind == "fit":
        return fit_case(rng, fit, p_bad)
    if kind == "plot":
        return plot_case(rng, fit, p_bad)
    # extend
    args, bad = with_bad(
        rng,
        {"along": fit.groups[0], "n": int(rng.integers(5, 90))},
        {"along": BAD_NAMES, "n": [0, -1, 2.5, "10", None]},
        p_bad,
    )
    return Case(f"extend{args}", lambda: g.extend(r, **args), bad)


def plot_case(rng: np.random.Generator, fit: Fit, p_bad: float) -> Case:
    """One of the figures (extra `plot`), closed after it is drawn; what is compared is the
    figure's axes' titles and the numbers of lines and collections drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = fit.result
    which = pick(rng, ["check", "ranef", "calibration", "profile"])
    if which == "check":
        good: dict[str, Any] = {"n_sim": int(rng.integers(5, 30)), "seed": seed_value(rng)}
        pools: dict[str, list[Any]] = {"n_sim": BAD_COUNTS, "seed": BAD_SEEDS, "dpi": [0, -5, "x"]}

        def draw(**kwargs: Any) -> Any:
            return g.check(r, **kwargs)

    elif which == "ranef":
        good = {"conf_level": 0.9, "group": pick(rng, list(fit.groups))}
        pools = {"conf_level": [v for v in BAD_LEVELS if v is not None], "group": ["nope", 3]}

        def draw(**kwargs: Any) -> Any:
            return r.plot_ranef(**kwargs)

    elif which == "calibration":
        good = {"group": pick(rng, [None, *fit.groups])}
        pools = {"group": ["nope", 3]}

        def draw(**kwargs: Any) -> Any:
            return r.plot_calibration(**kwargs)

    else:
        good = {"which": pick(rng, list(r.fixed_names))}
        pools = {"which": ["nope", 3], "conf_level": [v for v in BAD_LEVELS if v is not None]}

        def draw(**kwargs: Any) -> Any:
            return r.plot_profile(**kwargs)

    args, bad = with_bad(rng, good, pools, p_bad)

    def call() -> Any:
        figure = draw(**args)
        try:
            return [
                (ax.get_title(), len(ax.lines), len(ax.collections)) for ax in figure.get_axes()
            ]
        finally:
            plt.close("all")

    return Case(f"plot_{which}{args}", call, bad, which == "check")


def fit_case(rng: np.random.Generator, fit: Fit, p_bad: float) -> Case:
    """fit() again with the fit's own arguments, or one of them (or another) bad."""
    n = len(fit.frame)
    frame = fit.frame
    good = dict(fit.kwargs)
    method = good.get("method", "laplace")
    pools: dict[str, list[Any]] = {
        "method": ["bogus", 3, None, "Laplace "],
        "conf_level": BAD_LEVELS,
        "blas_threads": [0, -1, 1.5, "2", True],
        "weights": ["nope", np.ones(n - 1), -np.ones(n), np.full(n, np.nan), ["a"] * n],
        "offset": ["nope", np.zeros(n + 1), np.full(n, np.inf), ["a"] * n],
        "family": ["poisson", 3, "binomial(link = 'nope')"],
        "link": ["identity", 2, "logit2"],
        "n_agq": [0, -1, 2.5, "5", True],
        "priors": ["nonsense", {"fixef": "t(df = -1)"}, {"nope": "normal"}, 3],
        "control": ["fast", 3, g.PirlsControl(), {"nope": 1}, {"max_iter": "x"}],
        "start": [{"theta": [-1.0] * 40}, {"nope": 1}, "abc", {"fixef": [0.0] * 99}],
    }
    if method == "mcmc":
        pools["seed"] = BAD_SEEDS
        pools["draws"] = [0, -5, 2.5, "100"]
    if "weights" in good or "family" in good:
        # A beta-binomial or proportion fit keeps its own: no other family or weights.
        pools.pop("family", None)
        pools.pop("weights", None)
    if "n_agq" in good:
        pools["n_agq"] = [0, -1, 2.5, "5", True, 101]
    else:
        pools.pop("n_agq")
    args, bad = with_bad(rng, good, pools, p_bad)
    passed = tuple(v for v in args.values() if isinstance(v, np.ndarray | list | dict))

    def refit() -> Any:
        out = g.fit(fit.formula, frame, **args)
        return (out.params, out.loglik)

    return Case(
        f"fit{ {k: v for k, v in args.items() if k != 'control'} }",
        refit,
        bad,
        method == "mcmc",
        passed,
    )


# ---------------------------------------------------------------- checks


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, frames and arrays value by value."""
    if isinstance(a, pd.DataFrame | pd.Series):
        # equals compares the axes too; a Series' name apart.
        return (
            isinstance(b, type(a))
            and a.equals(b)
            and getattr(a, "name", None) == getattr(b, "name", None)
        )
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.shape == b.shape
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    try:
        return bool(a == b)
    except Exception:
        return repr(a) == repr(b)


def comparable(value: Any) -> Any:
    """What of a returned value is compared between two calls."""
    for attribute in ("table", "frame", "power"):
        inner = getattr(value, attribute, None)
        if isinstance(inner, pd.DataFrame):
            return inner
    if hasattr(value, "__dataclass_fields__"):
        return repr(value)
    return value


def infinite(value: Any) -> bool:
    value = comparable(value)
    if isinstance(value, pd.Series):
        value = value.to_frame()
    if isinstance(value, pd.DataFrame):
        # The beta-binomial's phi is infinite at its limit (no overdispersion: a boundary
        # estimate, as a variance at zero), and so is a percentile bound of its replicates.
        value = value.drop(columns=["phi"], index=["phi"], errors="ignore")
        numbers = value.select_dtypes("number")
        return bool(np.isinf(numbers.to_numpy(dtype=float)).any()) if numbers.size else False
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return bool(np.isinf(value).any())
    if isinstance(value, tuple | list):
        return any(infinite(v) for v in value)
    if isinstance(value, dict):
        return any(infinite(v) for v in value.values())
    if isinstance(value, float):
        return math.isinf(value)
    return False


def canary(fit: Fit) -> Any:
    r = fit.result
    out: list[Any] = [r.params.copy(), str(r.summary()), r.resid().copy()]
    try:
        out.append(g.r2_nakagawa(r))
    except ValueError as e:
        out.append(str(e))
    try:
        specs = fit.factors[0] if fit.factors else fit.numerics[0]
        out.append(g.emmeans(r, specs).table)
    except ValueError as e:
        out.append(str(e))
    return [comparable(v) if not isinstance(v, str) else v for v in out]


NAMED_AS = {"priors": "prior"}
"""How a refusal names an argument where not by the argument's name (a prior by its kind:
"t prior: df must be ...")."""

NOT_FOR_THIS_FIT = re.compile(
    r"available for|not available|computed for method|only for|method='?[a-z_]+'? fits?|"
    r"rank-deficient|refuses|for the binomial|not family|refits by maximum likelihood|"
    r"no finite (maximum-likelihood )?estimate|need finite estimates"
)
"""Refusals of the call for the fit it is made on (a method or family it does not apply to),
which come before any argument is looked at: they need not name the bad argument."""


def run(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    all_fits = fits()
    originals = {}
    started = time.perf_counter()
    for fit in all_fits:
        originals[fit.name] = fit.frame.copy(deep=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit.result = g.fit(fit.formula, fit.frame, **fit.kwargs)
    by_name = {f.name: f for f in all_fits}
    print(f"{len(all_fits)} fits in {time.perf_counter() - started:.1f} s", flush=True)
    canaries = {f.name: canary(f) for f in all_fits}
    counts: Counter[str] = Counter()
    failures: list[str] = []

    def fail(label: str, why: str) -> None:
        failures.append(f"{label}: {why}")
        print(f"FAIL {label}: {why}", flush=True)

    for i in range(args.calls):
        fit = pick(rng, all_fits)
        try:
            case = make_case(rng, fit, by_name, args.kinds)
        except Exception:
            fail(f"[{i}] {fit.name} (making the case)", traceback.format_exc(limit=4))
            continue
        label = f"[{i}] {fit.name} {case.label}"
        kept = [copy.deepcopy(p) for p in case.passed]
        started = time.perf_counter()
        outcome = "ok"
        value: Any = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                value = case.call()
            except ValueError as error:
                outcome = "refused"
                message = str(error)
                if case.bad is None and args.show_refused:
                    print(f"refused {label}: {message}", flush=True)
                if (
                    case.bad is not None
                    and NAMED_AS.get(case.bad, case.bad) not in message
                    and not NOT_FOR_THIS_FIT.search(message)
                ):
                    fail(label, f"ValueError does not name {case.bad!r}: {message}")
            except Exception as error:  # noqa: BLE001 - the fuzz's point
                outcome = "error"
                fail(
                    label,
                    f"{type(error).__name__}: {error}\n"
                    + "".join(traceback.format_exception(error, limit=-4)),
                )
        elapsed = time.perf_counter() - started
        if elapsed > args.slow:
            print(f"slow {label}: {elapsed:.1f} s", flush=True)
        counts[f"{'bad' if case.bad else 'good'} {outcome}"] += 1
        if case.bad is not None and outcome == "ok":
            fail(label, f"bad {case.bad!r} accepted")
        if outcome == "ok" and not case.infinite_ok and infinite(value):
            fail(label, "an infinite number in the output")
        for before, now in zip(kept, case.passed, strict=True):
            if not same(before, now):
                fail(label, "an argument the caller passed was changed")
        if not fit.frame.equals(originals[fit.name]):
            fail(label, "the fit's data frame was changed")
            fit.frame = originals[fit.name].copy(deep=True)
        if outcome == "ok" and case.seeded:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                again = case.call()
            if not same(comparable(value), comparable(again)):
                fail(label, "the seeded call gave another answer when repeated")
        if (i + 1) % args.canary_every == 0:
            for f in all_fits:
                if not same(canary(f), canaries[f.name]):
                    fail(f"[{i}] canary {f.name}", "a later call returns something else")
                    canaries[f.name] = canary(f)
    print(dict(sorted(counts.items())))
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--show-refused", action="store_true", help="print the refusals of good calls"
    )
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=KINDS, help="call only these")
    parser.add_argument("--canary-every", type=int, default=25)
    parser.add_argument("--slow", type=float, default=20.0, help="report calls slower (s)")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
