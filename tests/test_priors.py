"""Priors as blme spells them (model/priors.py): their reading, their deviance against blme's
own at stored estimates (tests/reference/priors_structured.json, prior_deviance_recomputed),
and each prior's exact gradient against finite differences."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glmm_binomial.model.priors import (
    NO_PRIORS,
    Gamma,
    InverseGamma,
    InverseWishart,
    Lkj,
    Normal,
    StudentT,
    Wishart,
    parse_prior,
    parse_priors,
)

REFERENCE = json.loads((Path(__file__).parent / "reference" / "priors_structured.json").read_text())


def test_spellings_read_as_blmes() -> None:
    assert parse_prior("normal(sd = 3)") == Normal(sd=3.0)
    assert parse_prior("t(df = 7, scale = 2.5)") == StudentT(7.0, 0.0, 2.5)
    assert parse_prior("t(7, scale = 2.5^2)") == StudentT(7.0, 0.0, 6.25)
    assert parse_prior("normal(sd = c(10, 2.5))") == Normal(sd=(10.0, 2.5))
    cauchy = parse_prior("cauchy")
    assert isinstance(cauchy, StudentT) and cauchy.df == 1.0 and cauchy.scale == (100.0, 6.25)
    assert parse_prior("wishart") == Wishart()
    assert parse_prior("invwishart(df = 3)") == InverseWishart(df=3.0)
    assert parse_prior("gamma(shape = 2.5, rate = 0)") == Gamma(2.5, 0.0)
    assert parse_prior('gamma(2, 1, posterior.scale = "var")') == Gamma(2.0, 1.0, "var")
    assert parse_prior("invgamma") == InverseGamma()
    assert parse_prior("lkj(2)") == Lkj(2.0)
    assert parse_prior("none") is None and parse_prior("flat") is None
    assert parse_priors(None) is NO_PRIORS and parse_priors("none").empty


def test_the_priors_of_a_fit() -> None:
    priors = parse_priors({"fixef": "normal(sd = 3)", "cov": "wishart"})
    assert priors.fixef == Normal(sd=3.0) and priors.cov == (Wishart(),)
    text = parse_priors("fixef = t(df = 7, scale = 6.25); cov = wishart")
    assert text.fixef == StudentT(7.0, 0.0, 6.25) and text.cov == (Wishart(),)
    blme = parse_priors("blme")
    assert blme.fixef is None and blme.cov == (Wishart(),)
    both = parse_priors({"cov": ["gamma", "lkj(2)"]})
    assert both.cov == (Gamma(), Lkj(2.0))
    grouped = parse_priors({"cov": {"herd": "wishart"}})
    assert grouped.for_group("herd") == (Wishart(),) and grouped.for_group("other") == ()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"fixef": "beta(2, 2)"}, "unknown prior 'beta'"),
        ({"fixef": "normal(mean = 1)"}, "no argument mean"),
        ({"fixef": "t(df = -1)"}, "df must be a positive number"),
        ({"fixef": "normal(sd = x)"}, "is not a number"),
        ("fixef = normal(sd = 3; cov = wishart", "write it as name"),
        ({"fixef": "wishart"}, "is a covariance prior"),
        ({"cov": "normal(sd = 1)"}, "is a fixed-effect prior"),
        ({"fix": "normal"}, "unknown key"),
        ("normal(sd = 3)", "write them as"),
        (3, "priors must be a dict"),
    ],
)
def test_bad_priors_are_named(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_priors(spec)


def test_sizes_follow_blmes_rule() -> None:
    bound = Normal(sd=(3.0, 2.0)).bind(4)
    value, _ = bound.deviance_and_gradient(np.zeros(4))
    assert value == pytest.approx(4 * math.log(2 * math.pi) + math.log(9.0 * 4.0**3))
    with pytest.raises(ValueError, match="3 values for 4 fixed effects"):
        Normal(sd=(1.0, 2.0, 3.0)).bind(4)
    with pytest.raises(ValueError, match="df must exceed"):
        Wishart(df=0.5).bind(2)


FITS = {
    "cbpp_default": REFERENCE["bglmer"]["cbpp_default"],
    "contraception_normal3": REFERENCE["bglmer"]["contraception_normal3"],
    **{
        name: REFERENCE["separation"]["fits"][name]
        for name in (
            "bglmer_t7_scale2.5",
            "bglmer_t7_scale2.5sq",
            "bglmer_indicator_t7_scale2.5",
            "bglmer_indicator_t7_scale2.5sq",
        )
    },
}
SPELLINGS = {
    "cbpp_default": None,
    "contraception_normal3": "normal(sd = c(3, 3))",
    "bglmer_t7_scale2.5": "t(df = 7, scale = 2.5)",
    "bglmer_t7_scale2.5sq": "t(df = 7, scale = 2.5^2)",
    "bglmer_indicator_t7_scale2.5": "t(df = 7, scale = 2.5)",
    "bglmer_indicator_t7_scale2.5sq": "t(df = 7, scale = 2.5^2)",
}


@pytest.mark.parametrize("name", sorted(FITS))
def test_deviance_is_blmes_at_its_estimates(name: str) -> None:
    """The same spelling is the same prior: blme's prior deviance at bglmer's estimates."""
    fit = FITS[name]
    recomputed = fit["prior_deviance_recomputed"]
    beta = np.array(list(fit["fixef"].values()))
    if SPELLINGS[name] is not None:
        prior = parse_prior(SPELLINGS[name])
        assert prior is not None and not isinstance(prior, Wishart)
        value, _ = prior.bind(len(beta)).deviance_and_gradient(beta)  # type: ignore[union-attr]
        assert value == pytest.approx(recomputed["fixef"], abs=1e-9)
    ((group, sds),) = fit["sd"].items()
    sd = np.array(list(sds.values()))
    corr = np.eye(len(sd))
    if fit["cor"]:
        corr = np.array([list(row.values()) for row in fit["cor"][group].values()])
    sigma = np.outer(sd, sd) * corr
    value, _ = Wishart().bind(len(sd)).deviance_and_gradient(sigma)
    assert value == pytest.approx(recomputed[f"cov_{group}"], abs=1e-9)
    assert recomputed["total"] == pytest.approx(fit["prior_deviance"], abs=1e-9)


FIXEF_PRIORS = [
    "normal(sd = c(3, 2))",
    "normal(cov = [[4, 1, 0], [1, 2, 0], [0, 0, 9]])",
    "t(df = 7, scale = 2.5)",
    "t(df = 3, mean = c(0.5, 0), scale = c(4, 1))",
    "cauchy",
]
COVARIANCE_PRIORS = [
    "wishart",
    "wishart(df = 5, scale = c(2, 1, 0.5))",
    "invwishart",
    "gamma(shape = 2.5, rate = 0.5)",
    'gamma(3, 1, posterior.scale = "var")',
    "invgamma",
    "lkj(2.5)",
]


@pytest.mark.parametrize("spec", FIXEF_PRIORS)
def test_fixef_prior_gradient(spec: str) -> None:
    bound = parse_prior(spec).bind(3)  # type: ignore[union-attr]
    beta = np.array([0.7, -1.3, 2.1])
    _, grad = bound.deviance_and_gradient(beta)
    step = 1e-6
    numeric = [
        (
            bound.deviance_and_gradient(beta + step * e)[0]
            - bound.deviance_and_gradient(beta - step * e)[0]
        )
        / (2 * step)
        for e in np.eye(3)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    curvature = bound.curvature(beta)
    assert np.min(np.linalg.eigvalsh(curvature)) >= -1e-12


@pytest.mark.parametrize("spec", COVARIANCE_PRIORS)
def test_covariance_prior_gradient(spec: str) -> None:
    """G = d/dSigma (symmetric): the change along a symmetric direction D is <G, D>."""
    bound = parse_prior(spec).bind(3)  # type: ignore[union-attr]
    lower = np.array([[1.2, 0, 0], [0.4, 0.8, 0], [-0.3, 0.5, 0.6]])
    sigma = lower @ lower.T
    _, grad = bound.deviance_and_gradient(sigma)
    rng = np.random.default_rng(2)
    for _ in range(3):
        direction = rng.normal(size=(3, 3))
        direction = direction + direction.T
        step = 1e-6
        numeric = (
            bound.deviance_and_gradient(sigma + step * direction)[0]
            - bound.deviance_and_gradient(sigma - step * direction)[0]
        ) / (2 * step)
        assert float(np.sum(grad * direction)) == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_wishart_keeps_covariances_off_the_boundary() -> None:
    """blme's default has no density at a singular covariance (deviance +inf there)."""
    value, _ = Wishart().bind(2).deviance_and_gradient(np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert value == math.inf
    value, _ = Gamma().bind(1).deviance_and_gradient(np.zeros((1, 1)))
    assert value == math.inf


@given(st.text(max_size=60))
def test_any_text_is_read_or_refused_with_a_value_error(text: str) -> None:
    """What a spreadsheet cell or a command line may hold: priors, or a ValueError."""
    try:
        priors = parse_priors(text)
    except ValueError:
        return
    assert priors.empty or priors.fixef is not None or priors.cov or priors.by_group
