import numpy as np
import pytest
from conftest import load_reference

import glmm_binomial as g
from glmm_binomial.profile import profile_confint


def test_cbpp_profile_intervals_match_lme4():
    ref = load_reference("cbpp_inference")
    result = g.fit(ref["formula"], g.datasets.load("cbpp"))
    table = profile_confint(result)
    assert list(table.index) == [row["parameter"] for row in ref["profile"]]
    for row in ref["profile"]:
        # lme4 interpolates its profile with splines from its own (slightly lower) optimum.
        assert table.loc[row["parameter"], "lower"] == pytest.approx(row["lower"], abs=1e-3)
        assert table.loc[row["parameter"], "upper"] == pytest.approx(row["upper"], abs=1e-3)
    # Wider than Wald's on the SD side of skewed profiles, never degenerate.
    assert (table["upper"] > table["lower"]).all()
    wide = profile_confint(result, conf_level=0.99)
    assert (wide["lower"] < table["lower"]).all() and (wide["upper"] > table["upper"]).all()


def test_sd_profile_reaching_zero_gives_lower_end_zero():
    rng = np.random.default_rng(2)
    import pandas as pd

    frame = pd.DataFrame(
        {"y": rng.integers(0, 2, 300), "x": rng.normal(size=300), "g": rng.integers(0, 10, 300)}
    )
    result = g.fit("y ~ x + (1 | g)", frame)
    table = profile_confint(result)
    assert table.loc["sd_(Intercept)|g", "lower"] == 0.0
    assert table.loc["sd_(Intercept)|g", "upper"] > 0.0


def test_profile_rejects_other_methods():
    result = g.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        g.datasets.load("cbpp"),
        method="vb",
    )
    with pytest.raises(ValueError, match="laplace"):
        profile_confint(result)
