"""Pictures render to PNG (Agg backend); skipped without matplotlib (the `plot` extra)."""

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import glmm_binomial as g  # noqa: E402

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


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
    assert fig.axes[0].get_title() == "herd: (Intercept)"
    assert len(fig.axes[0].lines) >= 1
    render(fig, tmp_path / "ranef.png")
    with pytest.raises(ValueError, match="group must be"):
        cbpp_fit.plot_ranef(group="farm")


def test_caterpillar_plot_of_a_slope():
    result = g.fit("use ~ age + urban + (1 + urban | district)", g.datasets.load("contraception"))
    fig = result.plot_ranef(conf_level=0.9)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == [
        "district: (Intercept)",
        "district: urbanY",
    ]
    plt.close(fig)


def test_profile_plot(cbpp_fit, tmp_path):
    prof = cbpp_fit.profile(which=["sd_(Intercept)|herd"])
    from glmm_binomial.results.plots import profile_plot

    fig = profile_plot(prof)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["sd_(Intercept)|herd"]
    render(fig, tmp_path / "profile.png")


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
