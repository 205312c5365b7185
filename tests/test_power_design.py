"""Designs resized for power (glmm_binomial.power.design) and power curves (power.curve)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glmm_binomial as g
from glmm_binomial.power.design import resize_levels, resize_within


@pytest.fixture(scope="module")
def nested_model():
    """Communities (8) with mothers nested in them (3 each, labels repeated across
    communities) and items crossed with both."""
    rng = np.random.default_rng(1)
    rows = 8 * 3 * 4
    data = pd.DataFrame(
        {
            "community": np.repeat(np.arange(8), 12),
            "mother": np.tile(np.repeat(np.arange(3), 4), 8),
            "item": np.tile(np.arange(4), 24),
            "x": rng.standard_normal(rows),
        }
    )
    return g.make_model(
        "y ~ x + (1 | community/mother) + (1 | item)",
        data,
        fixef=[0.0, 0.5],
        theta=[0.5, 0.8, 0.3],
    )


def blocks(model):
    return {b.group: b for b in model.model.blocks}


def test_extend_along_a_factor_copies_levels_and_renews_the_nested_ones(nested_model):
    grown = g.extend(nested_model, along="community", n=20)
    b = blocks(grown)
    assert grown.ngroups == {"mother:community": 60, "community": 20, "item": 4}
    assert grown.n_obs == 20 * 12
    # Mothers stay nested in communities, items stay crossed.
    pairs = set(zip(b["mother:community"].codes, b["community"].codes, strict=True))
    assert len(pairs) == 60
    assert set(b["item"].codes) == {0, 1, 2, 3}
    # New level 8 copies level 0: the same rows of x.
    x = grown.model.x[:, 1]
    np.testing.assert_array_equal(
        x[b["community"].codes == 8], x[: nested_model.n_obs][b["community"].codes[:96] == 0]
    )
    assert "#" in str(b["community"].levels[-1])
    np.testing.assert_array_equal(grown.beta, nested_model.beta)
    np.testing.assert_array_equal(grown.theta, nested_model.theta)


def test_fewer_levels_keep_the_first_ones(nested_model):
    small = resize_levels(nested_model.model, "community", 3)
    b = {blk.group: blk for blk in small.blocks}
    assert b["community"].n_levels == 3 and b["mother:community"].n_levels == 9
    assert small.n_obs == 36
    assert b["community"].levels == blocks(nested_model)["community"].levels[:3]


def test_extend_within_gives_every_level_n_rows(nested_model):
    within = g.extend(nested_model, within="community", n=20)
    counts = np.bincount(blocks(within)["community"].codes)
    assert np.all(counts == 20)
    fewer = resize_within(nested_model.model, "community", 2)
    assert fewer.n_obs == 16


def test_extend_errors_name_the_argument(nested_model):
    with pytest.raises(ValueError, match="along 'district'"):
        g.extend(nested_model, along="district", n=3)
    with pytest.raises(ValueError, match="within 'x'"):
        g.extend(nested_model, within="x", n=3)
    with pytest.raises(ValueError, match="n must be"):
        g.extend(nested_model, along="community", n=0)
    with pytest.raises(ValueError, match="one of along"):
        g.extend(nested_model, n=3)


def test_power_curve_increases_with_the_number_of_groups():
    # simr's documented behaviour: more groups, more power (here a group-level effect).
    rng = np.random.default_rng(2)
    data = pd.DataFrame({"g": np.repeat(np.arange(40), 10)})
    data["z"] = np.repeat(rng.standard_normal(40), 10)
    model = g.make_model("y ~ z + (1 | g)", data, fixef=[0.0, 0.4], varcorr={"g": 0.5})
    curve = g.power_curve(model, test="z", along="g", breaks=[8, 40, 80], nsim=40, seed=1)
    table = curve.table
    assert list(table.columns[:3]) == ["levels of g", "n_obs", "power"]
    assert table["n_obs"].tolist() == [80, 400, 800]
    power = table["power"].to_numpy()
    assert power[0] < power[1] < power[2]
    assert len(curve.results) == 3 and curve.results[2].ngroups == {"g": 80}
    # Each point is reproducible and independent of n_jobs.
    again = g.power_curve(model, test="z", along="g", breaks=[8], nsim=10, seed=1, n_jobs=2)
    first = g.power_curve(model, test="z", along="g", breaks=[8], nsim=10, seed=1)
    np.testing.assert_array_equal(again.results[0].p_values, first.results[0].p_values)


def test_power_curve_within_and_its_errors():
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"g": np.repeat(np.arange(10), 6), "x": rng.standard_normal(60)})
    model = g.make_model("y ~ x + (1 | g)", data, fixef=[0.0, 0.5], varcorr={"g": 0.5})
    curve = g.power_curve(model, test="x", within="g", breaks=[3, 6], nsim=4, seed=1)
    assert curve.table["rows per g"].tolist() == [3, 6]
    assert curve.table["n_obs"].tolist() == [30, 60]
    assert curve.summary() == (
        "Power for x (wald test, alpha 0.05, 4 simulations each; effect x = 0.5):\n"
        + curve.table.to_string()
    )
    with pytest.raises(ValueError, match="breaks"):
        g.power_curve(model, breaks=[], nsim=2)
    with pytest.raises(ValueError, match="each of breaks"):
        g.power_curve(model, breaks=[0, 3], nsim=2)
    with pytest.raises(ValueError, match="not both"):
        g.power_curve(model, along="g", within="g", nsim=2)
    default = g.power_curve(model, nsim=1, seed=1)
    assert default.table["levels of g"].tolist() == [3, 4, 5, 6, 7, 8, 9, 10]


def test_power_curve_plot(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(4)
    data = pd.DataFrame({"g": np.repeat(np.arange(10), 6), "x": rng.standard_normal(60)})
    model = g.make_model("y ~ x + (1 | g)", data, fixef=[0.0, 0.5], varcorr={"g": 0.5})
    curve = g.power_curve(model, test="x", breaks=[5, 10], nsim=3, seed=1)
    figure = curve.plot()
    figure.savefig(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_the_table_lists_the_rows_of_the_design(nested_model):
    grown = g.extend(nested_model, along="community", n=10)
    table = grown.table()
    assert len(table) == grown.n_obs == 120
    assert list(table.columns) == [
        *dict.fromkeys(b.group for b in grown.model.blocks),
        "(Intercept)",
        "x",
        "trials",
        "offset",
    ]
    assert table["community"].nunique() == 10
    assert table["mother:community"].nunique() == 30
