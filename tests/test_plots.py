"""Pictures render to PNG (Agg backend); skipped without matplotlib (the `plot` extra)."""

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from conftest import CBPP  # noqa: E402

import glmm_binomial as g  # noqa: E402
from glmm_binomial.results.plots import PROFILE_CURVE_POINTS, PROFILE_EXTRA_POINTS  # noqa: E402


@pytest.fixture(scope="module")
def cbpp_fit():
    return g.fit(CBPP, g.datasets.load("cbpp"))


def render(fig, path):
    fig.savefig(path, format="png")
    plt.close(fig)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 2000


def test_caterpillar_plot(cbpp_fit, tmp_path):
    fig = cbpp_fit.plot_ranef()
    ax = fig.axes[0]
    assert ax.get_title() == "herd: (Intercept)"
    assert len(ax.lines) >= 1
    # Issue 18: the levels are labelled, in the order of their modes (lowest at the bottom).
    modes = cbpp_fit.ranef()["herd"]["(Intercept)"].sort_values(kind="stable")
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(v) for v in modes.index]
    assert ax.get_ylabel() == "herd"
    render(fig, tmp_path / "ranef.png")
    with pytest.raises(ValueError, match="group must be"):
        cbpp_fit.plot_ranef(group="farm")


def test_caterpillar_plot_of_a_slope():
    result = g.fit("use ~ age + urban + (1 + urban | district)", g.datasets.load("contraception"))
    fig = result.plot_ranef(conf_level=0.9)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["district: (Intercept)", "district: urbanY"]
    # Issue 18: one order for both panels, by the intercept's modes (as lme4's dotplot).
    ranef = result.ranef()["district"]
    order = ranef.sort_values("(Intercept)", kind="stable")
    labels = [t.get_text() for t in panels[0].get_yticklabels()]
    assert labels == [str(v) for v in order.index]
    for ax, term in zip(panels, ["(Intercept)", "urbanY"], strict=True):
        x, y = ax.lines[0].get_data()  # the points, bottom to top
        assert list(y) == list(range(len(order)))
        np.testing.assert_allclose(x, order[term].to_numpy())
    plt.close(fig)


def test_profile_plot(cbpp_fit, tmp_path):
    prof = cbpp_fit.profile(which=["sd_(Intercept)|herd"])
    from glmm_binomial.results.plots import profile_plot

    fig = profile_plot(prof)
    ax = fig.axes[0]
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["sd_(Intercept)|herd"]
    # Issue 18: a smooth curve through the points (not straight segments) and axis labels.
    x, y = ax.lines[0].get_data()
    assert len(x) == PROFILE_CURVE_POINTS and np.all(np.diff(y) > 0)  # monotone, as zeta
    trace = prof.parameters["sd_(Intercept)|herd"]
    np.testing.assert_allclose(np.interp(trace.values, x, y), trace.zeta, atol=1e-2)
    assert ax.get_xlabel() == "SD of (Intercept) | herd (log-odds)" and ax.get_ylabel() == "zeta"
    render(fig, tmp_path / "profile.png")


def test_profile_plot_of_a_fit_adds_points_between_the_ends(cbpp_fit, tmp_path):
    fig = cbpp_fit.plot_profile(which=["period2"])
    ax = fig.axes[0]
    x, _ = ax.lines[1].get_data()  # the profile's points
    assert len(x) >= 2 * PROFILE_EXTRA_POINTS + 3
    assert ax.get_xlabel() == "coefficient of period2 (log-odds)"
    render(fig, tmp_path / "profile_fit.png")


def test_calibration_plot(cbpp_fit, tmp_path):
    fig = cbpp_fit.plot_calibration()
    assert fig.axes[0].get_title() == "calibration by herd"
    render(fig, tmp_path / "calibration.png")


def test_level_is_the_deprecated_name_of_conf_level(cbpp_fit):
    with pytest.warns(DeprecationWarning, match="conf_level"):
        fig = cbpp_fit.plot_ranef(level=0.9)
    plt.close(fig)
    with pytest.raises(ValueError, match="conf_level"):
        cbpp_fit.plot_ranef(conf_level=1.5)
