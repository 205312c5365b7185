import pytest
from conftest import load_reference

import glmm_binomial as g


def test_likelihood_ratio_test_matches_lme4():
    ref = load_reference("cbpp_inference")
    cbpp = g.datasets.load("cbpp")
    full = g.fit(ref["formula"], cbpp)
    reduced = g.fit(ref["reduced"], cbpp)
    table = g.anova(full, reduced)
    lrt = ref["lrt"]
    assert table["logLik"].iloc[0] == pytest.approx(lrt["logLik_reduced"], abs=1e-3)
    assert table["df"].iloc[1] == lrt["df"]
    # glmer's full-model logLik is 3e-4 below the optimum we reach, so chisq differs by ~6e-4.
    assert table["chisq"].iloc[1] == pytest.approx(lrt["chisq"], abs=2e-3)
    assert table["p"].iloc[1] == pytest.approx(lrt["p"], rel=1e-3)


def test_anova_rejects_bad_input():
    cbpp = g.datasets.load("cbpp")
    full = g.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    with pytest.raises(ValueError, match="at least two"):
        g.anova(full)
    with pytest.raises(ValueError, match="GLMMResult"):
        g.anova(full, "model")
