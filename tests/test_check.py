"""The check() panel: rendered to PNG, every panel titled and labelled, the same figure for
the same seed, every method, the command's --check, and the refusals."""

from __future__ import annotations

import importlib.util

import pytest
from _dask_support import rows_on_cluster

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from conftest import CBPP  # noqa: E402

import glmm_binomial as g  # noqa: E402
from glmm_binomial.frontends.cli import main  # noqa: E402

SLOPE_FORMULA = "use ~ age + urban + livch + (1 + urban | district)"


@pytest.fixture(scope="module")
def slope_fit() -> g.GLMMResult:
    return g.fit(SLOPE_FORMULA, g.datasets.load("contraception"))


def _visible(fig) -> list:
    return [ax for ax in fig.axes if ax.get_visible()]


def test_panel_is_saved_and_every_panel_is_labelled(slope_fit: g.GLMMResult, tmp_path) -> None:
    path = tmp_path / "check.png"
    fig = g.check(slope_fit, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 50_000
    axes = _visible(fig)
    titles = [ax.get_title() for ax in axes]
    # QQ, residual vs predicted, dispersion, binned, and one QQ per random-effect term.
    assert len(axes) == 6
    assert titles[0].startswith("Simulated residuals: QQ")
    assert titles[1] == "Simulated residuals vs predicted"
    assert titles[2].startswith("Dispersion")
    assert titles[3].startswith("Binned residuals: 44 bins")
    assert titles[4:] == [
        "Random effects: district, (Intercept)",
        "Random effects: district, urbanY",
    ]
    for ax in axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
    assert SLOPE_FORMULA in fig._suptitle.get_text()
    plt.close(fig)


def test_same_seed_same_png(tmp_path) -> None:
    result = g.fit(CBPP, g.datasets.load("cbpp"))
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    plt.close(g.check(result, first))
    plt.close(g.check(result, second))
    assert first.read_bytes() == second.read_bytes()
    plt.close(g.check(result, second, seed=124))
    assert first.read_bytes() != second.read_bytes()


def test_vb_says_posterior_means(tmp_path) -> None:
    result = g.fit(CBPP, g.datasets.load("cbpp"), method="vb")
    fig = g.check(result, tmp_path / "vb.png", n_sim=50)
    text = fig._suptitle.get_text()
    assert "method vb" in text and "posterior means" in text
    assert "posterior mean" in _visible(fig)[4].get_ylabel()
    plt.close(fig)


def test_check_without_formula_and_without_path() -> None:
    from _simulate import simulated_model

    result = g.fit_model(simulated_model(2, n=300, levels=(12, 5), slopes=(False, False), trials=2))
    fig = g.check(result, n_sim=40)
    assert len(_visible(fig)) == 6  # two crossed factors: two random-effect panels
    plt.close(fig)


def test_dask_result_is_refused(slope_fit: g.GLMMResult) -> None:
    with pytest.raises(ValueError, match="check needs the rows of the fit.*in memory"):
        g.check(rows_on_cluster(slope_fit))


def test_command_writes_the_panel(tmp_path, capsys) -> None:
    path = tmp_path / "check.png"
    status = main(["fit", "cbpp", CBPP, "--check", str(path), "--json"])
    assert status == 0, capsys.readouterr().err
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert '"formula"' in capsys.readouterr().out


def test_command_names_the_plot_extra_without_matplotlib(tmp_path, capsys, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    status = main(["fit", "cbpp", CBPP, "--check", str(tmp_path / "c.png")])
    assert status == 1
    err = capsys.readouterr().err
    assert "glmm-binomial[plot]" in err and "--check" in err
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("dpi", ["x", 0, -5, float("nan")])
def test_a_bad_resolution_is_refused_before_anything_is_drawn(slope_fit, dpi) -> None:
    # Found by bench/fuzz_workflow.py: dpi was used only when saving, so a bad one passed
    # without a path and failed deep in matplotlib with one.
    with pytest.raises(ValueError, match="dpi must be a positive number"):
        g.check(slope_fit, n_sim=5, dpi=dpi)
