"""The Dask driver (distributed.py) against the in-memory fit, on LocalClusters started here."""

from __future__ import annotations

import copy
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from _dask_support import (  # noqa: E402
    assert_same_fit,
    forked_process_client,
    kill_once,
    local_client,
    parquet_parts,
)
from _simulate import (  # noqa: E402
    all_successes_group_frame,
    one_level_all_failures,
    one_level_one_outcome,
    pure_groups_frame,
    separated_frame,
)
from conftest import REFERENCE_DIR  # noqa: E402

import glmm_binomial  # noqa: E402
from glmm_binomial.diagnostics import (  # noqa: E402
    BoundaryWarning,
    ConvergenceWarning,
    RankDeficiencyWarning,
    SeparationWarning,
)
from glmm_binomial.distributed.fit import DaskGLMMResult, is_dask_frame  # noqa: E402
from glmm_binomial.numerics.optimize import (  # noqa: E402
    MIRRORED_RESTART,
    SINGULAR_RESTART,
    OptimizerControl,
)


def simulate(seed: int, n_groups: int = 40, per: int = 15, kind: str = "intercept") -> pd.DataFrame:
    """Binary rows in n_groups groups (string labels, rows in random order); kind "slope" adds a
    random slope on x, "nested" a random intercept for h within g."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    rng.shuffle(g)
    n = g.size
    x = rng.normal(size=n)
    f = rng.choice(["a", "b", "c"], size=n)
    h = rng.integers(0, 3, size=n)
    eta = -0.3 + 0.5 * x + 0.3 * (f == "b") + rng.normal(scale=0.8, size=n_groups)[g]
    if kind == "slope":
        eta = eta + rng.normal(scale=0.5, size=n_groups)[g] * x
    if kind == "nested":
        eta = eta + rng.normal(scale=0.6, size=(n_groups, 3))[g, h]
    if kind == "crossed":
        eta = eta + np.array([-0.5, 0.1, 0.6])[h]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    labels = np.array([f"G{v:03d}" for v in range(n_groups)])
    # gi: the same groups labelled by integers (R orders them 2 < 10, not as text); x2 is
    # aliased with x; o an offset.
    return pd.DataFrame(
        {"y": y, "x": x, "f": f, "g": labels[g], "h": h, "gi": g, "x2": 2.0 * x, "o": 0.1 * h}
    )


# The fault test uses worker processes, forked so that they start in a fraction of a second;
# it runs first, before this cluster's threads exist.
client = pytest.fixture(scope="module")(local_client)


def test_worker_killed_during_fit(tmp_path) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(sys.modules["_dask_support"])
    frame = simulate(6, n_groups=30, per=10)
    files = parquet_parts(frame, tmp_path)
    # x2 is aliased with x: the partitions rebuilt without it must survive the kill too.
    formula = "y ~ x + x2 + (1 | g)"
    with pytest.warns(RankDeficiencyWarning):
        memory = glmm_binomial.fit(formula, frame)
    marker = tmp_path / "killed"
    with forked_process_client() as (cluster, c):
        ddf = dd.read_parquet(files)
        with pytest.warns(RankDeficiencyWarning):
            undisturbed = glmm_binomial.fit(formula, ddf, client=c)
        c.register_plugin(kill_once(str(marker), after=4, task="evaluate"))
        # A scheduler address, as for a cluster elsewhere (the fit opens and closes its client).
        with pytest.warns(RankDeficiencyWarning):
            fitted = glmm_binomial.fit(formula, ddf, client=cluster.scheduler_address)
    assert marker.exists()
    assert fitted.converged
    assert_same_fit(memory, fitted)
    # The lost partitions were rebuilt by replaying their versions: the same bits.
    assert fitted.loglik == undisturbed.loglik
    assert np.array_equal(fitted.params.to_numpy(), undisturbed.params.to_numpy())
    assert np.array_equal(fitted.theta, undisturbed.theta)


def test_marginal_means_of_a_rank_deficient_fit_as_in_memory(client) -> None:
    """An empty cell of f x h: the Dask fit drops the aliased column as the in-memory one and
    keeps the full design's null space (from the partitions' R factors), so emmeans gives the
    same estimable means and the same NaN for the one that needs the empty cell."""
    frame = simulate(3, kind="intercept")
    frame["h"] = np.where(np.arange(len(frame)) % 3 == 0, "p", "q")
    frame = frame[~((frame["f"] == sorted(frame["f"].unique())[-1]) & (frame["h"] == "q"))]
    frame = frame.reset_index(drop=True)
    with pytest.warns(RankDeficiencyWarning):
        memory = glmm_binomial.fit("y ~ f * h + (1 | g)", frame)
    with pytest.warns(RankDeficiencyWarning):
        fitted = glmm_binomial.fit("y ~ f * h + (1 | g)", dd.from_pandas(frame, npartitions=3))
    assert fitted.design.dropped_columns == memory.design.dropped_columns
    ours, theirs = (glmm_binomial.emmeans(r, "f", by="h") for r in (fitted, memory))
    np.testing.assert_array_equal(ours.estimable, theirs.estimable)
    assert not ours.estimable.all()
    np.testing.assert_allclose(ours.table["estimate"], theirs.table["estimate"], atol=1e-6)
    # Weights from cell counts need the rows, which stay on the cluster; numbers do not.
    with pytest.raises(ValueError, match="weights='equal' or give the weights as numbers"):
        glmm_binomial.emmeans(fitted, "f", weights="cells")
    given = glmm_binomial.emmeans(fitted, "f", weights=[1.0, 3.0])
    np.testing.assert_allclose(
        given.table["estimate"],
        glmm_binomial.emmeans(memory, "f", weights=[1.0, 3.0]).table["estimate"],
        atol=1e-6,
    )


@pytest.mark.parametrize(
    ("formula", "kind"),
    [
        ("y ~ x + f + (1 | g)", "intercept"),
        # An aliased column (dropped with a RankDeficiencyWarning) and an offset term.
        ("y ~ x + x2 + offset(o) + (1 + x | g)", "slope"),
        ("y ~ x + (1 | gi/h)", "nested"),
        # Nested by the data, not by the formula: every level of gh lies in one level of g.
        ("y ~ x + (1 | g) + (1 | gh)", "nested"),
    ],
)
def test_equals_in_memory_fit(client, formula: str, kind: str) -> None:
    frame = simulate(3, kind=kind)
    frame["gh"] = frame["g"] + "_" + frame["h"].astype(str)
    ddf = dd.from_pandas(frame, npartitions=2)
    if "x2" in formula:
        with pytest.warns(RankDeficiencyWarning, match="'x2'"):
            memory = glmm_binomial.fit(formula, frame)
        with pytest.warns(RankDeficiencyWarning, match="'x2'"):
            fitted = glmm_binomial.fit(formula, ddf)
        assert fitted.warnings == memory.warnings
    else:
        memory = glmm_binomial.fit(formula, frame)
        fitted = glmm_binomial.fit(formula, ddf)
    assert isinstance(fitted, DaskGLMMResult)
    assert fitted.converged and fitted.nobs == memory.nobs
    assert fitted.ngroups == memory.ngroups
    assert_same_fit(memory, fitted)
    np.testing.assert_allclose(fitted.predict(frame), memory.predict(frame), atol=1e-6)
    if kind == "intercept":
        # Same input, same output bit for bit; predict on the Dask frame itself.
        again = glmm_binomial.fit(formula, ddf, client=client)
        assert again.loglik == fitted.loglik
        assert np.array_equal(again.params.to_numpy(), fitted.params.to_numpy())
        lazy = fitted.predict(ddf)
        assert is_dask_frame(lazy)
        np.testing.assert_allclose(lazy.compute().to_numpy(), fitted.predict(frame))
        assert "Number of obs: 600" in fitted.summary()
        with pytest.raises(ValueError, match="newdata"):
            fitted.predict()
        # lme4's re.form and allow.new.levels as in memory; bad ones refused before computing.
        np.testing.assert_allclose(
            fitted.predict(ddf, re_form="NA").compute().to_numpy(),
            memory.predict(frame, re_form="NA").to_numpy(),
            atol=1e-6,
        )
        for arguments in ({"re_form": "~(1 | nope)"}, {"allow_new_levels": None}):
            with pytest.raises(ValueError, match="re_form|allow_new_levels"):
                fitted.predict(ddf, **arguments)
        from glmm_binomial.results.profile import profile_confint

        with pytest.raises(ValueError, match="Dask cluster"):
            profile_confint(fitted)
        with pytest.raises(ValueError, match=r"confint\(method='wald'\)"):
            fitted.confint()  # lme4's default, profile
        # Methods that need the fit's rows refuse; those that do not work as in memory.
        for needs_rows in (fitted.fitted, fitted.simulate, fitted.marginal_coefs):
            with pytest.raises(ValueError, match="rows of the fit"):
                needs_rows()
        wald = memory.confint(method="wald")
        pd.testing.assert_frame_equal(fitted.confint(method="wald"), wald, atol=1e-5)
        rows = frame.head(3)
        np.testing.assert_allclose(
            fitted.marginal_predict(rows), memory.marginal_predict(rows), atol=1e-6
        )
        # Marginal effects and tidy tables: with newdata, or without the rows' statistics.
        with pytest.raises(ValueError, match="pass newdata="):
            glmm_binomial.avg_slopes(fitted)
        np.testing.assert_allclose(
            glmm_binomial.avg_slopes(fitted, newdata=frame)["estimate"],
            glmm_binomial.avg_slopes(memory)["estimate"],
            atol=1e-6,
        )
        np.testing.assert_allclose(
            glmm_binomial.tidy(fitted)["estimate"],
            glmm_binomial.tidy(memory)["estimate"],
            atol=1e-5,
        )
        glance = glmm_binomial.glance(fitted)
        assert np.isnan(glance["deviance"].iloc[0]) and glance["nobs"].iloc[0] == memory.nobs
        with pytest.raises(ValueError, match="does not keep the data"):
            glmm_binomial.augment(fitted)
        # hypotheses of the coefficients; a grid from the rows given (the fit keeps none)
        np.testing.assert_allclose(
            glmm_binomial.hypotheses(fitted, "b2 = 0")["estimate"],
            glmm_binomial.hypotheses(memory, "b2 = 0")["estimate"],
            atol=1e-6,
        )
        with pytest.raises(ValueError, match="does not keep the data"):
            glmm_binomial.datagrid(fitted)
        grid = glmm_binomial.datagrid(fitted, newdata=frame)
        pd.testing.assert_frame_equal(grid, glmm_binomial.datagrid(memory))
        np.testing.assert_allclose(
            glmm_binomial.predictions(fitted, newdata=grid)["estimate"],
            glmm_binomial.predictions(memory, newdata=grid)["estimate"],
            atol=1e-6,
        )


def test_a_single_separated_column_is_reported_as_in_memory(client) -> None:
    """cs_overflow.csv with lme4's (0 + tf | g): occasion t2's rows are separated by the
    groups and its SD runs away; the check on the gathered rows reports it as in memory."""
    frame = pd.read_csv(REFERENCE_DIR / "cs_overflow.csv")
    frame["g"] = frame["g"].astype(str)
    with pytest.warns(SeparationWarning, match="the SD of tft2 in"):
        fitted = glmm_binomial.fit("y ~ x + (0 + tf | g)", dd.from_pandas(frame, npartitions=2))
    assert not fitted.converged


@pytest.mark.parametrize(
    ("csv", "formula", "note"),
    [
        # us:3275 (40 rows): the first end -24.6089, lme4's start's -24.2089, the mirror's
        # from the GLM's fixed effects -23.9984 (nested path).
        ("us_singular_restart.csv", "y ~ x + (0 + tf | g)", MIRRORED_RESTART),
        # crossed_vector:3011 (36 rows): the restart's end is a separation within groups,
        # not converged (the crossed path, whose objective's reset is the client's).
        ("crossed_vector_restart.csv", "y ~ x + (1 + x | g) + (1 + x | h)", SINGULAR_RESTART),
        # fuzz_formula 51:169 (176 rows): the mirrored start, from the GLM's fixed effects.
        (
            "mirror_intercept.csv",
            "as.numeric(s > 1) ~ log(x2, 2) + (1 + x1 | g)",
            MIRRORED_RESTART,
        ),
    ],
)
def test_a_singular_end_is_searched_again_as_in_memory(
    client, csv: str, formula: str, note: str
) -> None:
    """The searches from other starts after a singular end (optimize.better_of_basins: lme4's
    start, a mirrored sign pattern) run on the partitions as in memory, their modes from
    u = 0: the same end, taken over the first."""
    frame = pd.read_csv(REFERENCE_DIR / csv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        memory = glmm_binomial.fit(formula, frame)
        first = glmm_binomial.fit(formula, frame, control=OptimizerControl(singular_restart=False))
        fitted = glmm_binomial.fit(formula, dd.from_pandas(frame, npartitions=2))
    assert memory.opt_summary.message.endswith(note)
    assert fitted.opt_summary.message.endswith(note)
    assert memory.llf > first.llf + 0.1
    assert fitted.llf == pytest.approx(memory.llf, rel=1e-8)
    assert fitted.converged == memory.converged
    assert [w.category for w in fitted.warnings] == [w.category for w in memory.warnings]


def test_an_unconverged_end_near_zero_restarts_as_in_memory(client) -> None:
    """fuzz_dask_log 143 (log_restart_143.csv, the rows in the sweep's shuffled order): both
    first searches stop unconverged at the log link's bound with the slope's Lambda entry
    near zero, 0.8e-4 internally in memory and 1.1e-4 on Dask, on either side of
    boundary_tol. An unconverged end counts as singular below unconverged_restart_tol, so both
    take the mirrored restart; with that tolerance at boundary_tol only memory did, and the
    Dask fit stayed 0.007 lower in logLik."""
    frame = pd.read_csv(REFERENCE_DIR / "log_restart_143.csv")
    formula = "y ~ x + (1 + x | g)"
    narrow = OptimizerControl(unconverged_restart_tol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        memory = glmm_binomial.fit(formula, frame, link="log")
        fitted = glmm_binomial.fit(formula, dd.from_pandas(frame, npartitions=3), link="log")
        before = glmm_binomial.fit(
            formula, dd.from_pandas(frame, npartitions=3), link="log", control=narrow
        )
    assert not memory.converged and not fitted.converged
    assert memory.opt_summary.message.endswith(MIRRORED_RESTART)
    assert fitted.opt_summary.message.endswith(MIRRORED_RESTART)
    assert fitted.opt_summary.tolerances["unconverged_restart_tol"] == 1e-3
    # Two unconverged ends on the bound: the same basin, not the same point.
    assert fitted.llf == pytest.approx(memory.llf, abs=1e-3)
    assert fitted.llf > before.llf + 5e-3
    assert [w.category for w in fitted.warnings] == [w.category for w in memory.warnings]


def test_agq_one_factor(client, monkeypatch) -> None:
    from glmm_binomial.distributed import fit as driver

    # Free memory returned after every evaluation (as for large data): the same fit.
    monkeypatch.setattr(driver, "RETURN_MEMORY_ROWS", 0)
    frame = simulate(4)
    memory = glmm_binomial.fit("y ~ x + (1 | g)", frame, method="agq", n_agq=5)
    fitted = glmm_binomial.fit(
        "y ~ x + (1 | g)", dd.from_pandas(frame, npartitions=2), method="agq", n_agq=5
    )
    assert fitted.n_agq == 5
    assert_same_fit(memory, fitted)


@pytest.mark.parametrize(
    ("formula", "options"),
    [
        ("y ~ x + (1 | gi/h)", {}),
        ("y ~ x + f + (1 | gi/h)", {"link": "probit", "priors": "blme"}),
    ],
)
def test_nested_agq_equals_the_in_memory_fit(client, formula, options) -> None:
    """AGQ on nested factors on a Dask DataFrame (it was refused): a partition holds whole
    levels of the outermost factor, over which the nested integral factorizes, so each
    partition's AGQ objective is the in-memory one on its rows (nested depth 2)."""
    frame = simulate(3, kind="nested")
    memory = glmm_binomial.fit(formula, frame, method="agq", n_agq=5, **options)
    fitted = glmm_binomial.fit(
        formula, dd.from_pandas(frame, npartitions=3), method="agq", n_agq=5, **options
    )
    assert memory.converged and fitted.converged
    assert "nested depth 2" in fitted.loglik_method
    assert fitted.loglik_method == memory.loglik_method
    assert_same_fit(memory, fitted, se_rtol=1e-4)


def test_agq_refusals_on_rows_are_the_in_memory_ones(client) -> None:
    # A vector effect with several grouping factors: the partitions' AGQ objective refuses its
    # rows, which the client raises with the in-memory message (partition.build_partition).
    frame = simulate(3, kind="nested")
    formula = "y ~ x + (1 + x | gi/h)"
    with pytest.raises(ValueError, match="needs a scalar effect at each level") as memory:
        glmm_binomial.fit(formula, frame, method="agq", n_agq=3)
    with pytest.raises(ValueError, match="needs a scalar effect at each level") as fitted:
        glmm_binomial.fit(formula, dd.from_pandas(frame, npartitions=2), method="agq", n_agq=3)
    assert str(fitted.value) == str(memory.value)


def test_agq_rule_and_label_are_the_partitions_objectives(client) -> None:
    # The method object's own settings reach the partitions: with a small max_product_nodes a
    # three-column effect is integrated on a sparse grid, which the label and the recorded
    # tolerances say, as in memory.
    from glmm_binomial.methods.agq import Agq, QuadratureControl

    frame = simulate(12, kind="slope")
    frame["z"] = np.random.default_rng(12).normal(size=len(frame))
    method = Agq(n_agq=3, quadrature_control=QuadratureControl(max_product_nodes=8))
    formula = "y ~ x + (1 + x + z | g)"
    memory = glmm_binomial.fit(formula, frame, method=method)
    fitted = glmm_binomial.fit(formula, dd.from_pandas(frame, npartitions=2), method=method)
    assert "(sparse rule)" in memory.loglik_method
    assert fitted.loglik_method == memory.loglik_method
    assert fitted.opt_summary.tolerances == memory.opt_summary.tolerances
    assert fitted.method_object == method
    assert abs(fitted.loglik - memory.loglik) <= 1e-8 * abs(memory.loglik)
    np.testing.assert_allclose(fitted.params.to_numpy(), memory.params.to_numpy(), atol=1e-5)


def test_another_client_neither_hears_of_a_fit_nor_slows_it(client, monkeypatch) -> None:
    # A fit that cancelled its futures made the scheduler report the cancellation to every
    # connected client; a client connecting at that moment got it in its stream's first batch and
    # failed distributed's `assert len(msg) == 1` (CI, test_worker_killed_during_fit). The fit
    # releases its futures instead: another client hears nothing of it.
    frame = simulate(8).sort_values("x", ignore_index=True)
    frame["item"] = np.arange(len(frame)) % 7
    # The last of three partitions is empty (dropped by the fit).
    ddf = dd.from_pandas(frame, npartitions=3)
    ddf = ddf[ddf["x"] < frame["x"].iloc[2 * len(frame) // 3 - 1]]
    # distributed.wait goes through the latest client: the crossed fit's waits on its own futures
    # through the observer's never saw them end, and every evaluation waited out its 2 s watch.
    waits: list[bool] = []
    wait = distributed.wait

    def watched_wait(*args: object, **kwargs: object) -> object:
        waits.append(distributed.default_client() is client)
        return wait(*args, **kwargs)

    monkeypatch.setattr(distributed, "wait", watched_wait)
    with distributed.Client(client.scheduler.address) as observer:
        heard: list[str] = []
        # What the observer's stream hears (a private table of distributed's Client: where a
        # later version has none, only the waits are checked).
        handlers = getattr(observer, "_stream_handlers", {})
        for op, handler in list(handlers.items()):
            handlers[op] = lambda *a, _op=op, _h=handler, **k: (heard.append(_op), _h(*a, **k))
        for formula in ("y ~ x + (1 | g)", "y ~ x + (1 | g) + (1 | item)"):
            assert glmm_binomial.fit(formula, ddf, client=client).converged
        client.run_on_scheduler(lambda: None)  # the fit's last messages have been handled
        time.sleep(0.1)
    assert "cancelled-keys" not in heard, heard
    assert waits and all(waits)


def test_many_small_partitions_are_merged_by_the_shuffle(client) -> None:
    from glmm_binomial.distributed import fit as distributed_fit

    # One partition per PARTITION_ROWS rows, never fewer than MIN_PARTITIONS nor more than the
    # data's own.
    assert distributed_fit.default_partitions(3, 600) == 3
    assert distributed_fit.default_partitions(200, 600) == distributed_fit.MIN_PARTITIONS
    assert distributed_fit.default_partitions(2_000, 10**8) == 1_000
    assert distributed_fit.default_partitions(50, 10**8) == 50
    frame = simulate(8)
    memory = glmm_binomial.fit("y ~ x + (1 | g)", frame)
    fitted = glmm_binomial.fit("y ~ x + (1 | g)", dd.from_pandas(frame, npartitions=40))
    assert fitted.converged
    assert_same_fit(memory, fitted)


class StepCounter:
    """A partition stand-in for the runner: how many calls moved it; step(True) fails as a mode
    search whose factor is not positive definite."""

    def __init__(self) -> None:
        self.steps = 0
        self.output = None

    def next_version(self) -> StepCounter:
        version = copy.copy(self)
        version.output = None
        return version

    def settle(self) -> None:
        pass

    def step(self, fail: bool = False) -> int:
        if fail:
            raise np.linalg.LinAlgError("Matrix is not positive definite")
        self.steps += 1
        return self.steps


def test_a_call_that_fails_on_one_partition_leaves_every_partition_as_it_was(client) -> None:
    """A LinAlgError on a partition (fuzz_dask cs:12-21: a trial step far out where a partition's
    factor is not positive definite) is raised on the client for the optimizer, which takes it
    as no deviance there, as in memory; before, the failed futures became the partitions' state
    and every later call failed with it (the fit refused with numpy's message)."""
    from glmm_binomial.distributed.runner import Partitions

    parts = Partitions(client, client.scatter([StepCounter(), StepCounter()]), 1, False)
    assert parts.advance("step") == [1, 1]
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        parts.advance("step", [False, True])
    # The first partition's step in the failed call is undone too (the in-memory objective
    # keeps its warm start after a failed evaluation).
    assert parts.advance("step") == [2, 2]
    parts.release()


def test_a_closed_client_or_unreachable_scheduler_is_named() -> None:
    ddf = dd.from_pandas(simulate(8), npartitions=1)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        closed = distributed.Client(cluster)
        closed.close()
        with pytest.raises(ValueError, match="client is closed"):
            glmm_binomial.fit("y ~ x + (1 | g)", ddf, client=closed)
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "0.5s"}),
        pytest.raises(OSError, match=r"client='tcp://127\.0\.0\.1:1': could not connect"),
    ):
        glmm_binomial.fit("y ~ x + (1 | g)", ddf, client="tcp://127.0.0.1:1")


def test_model_that_does_not_decompose(client, monkeypatch) -> None:
    from glmm_binomial.distributed import crossed as distributed_crossed

    frame = simulate(5)
    frame["item"] = np.arange(len(frame)) % 7
    ddf = dd.from_pandas(frame, npartitions=2)
    # A crossed factor with more random effects than the dense part may have.
    monkeypatch.setattr(distributed_crossed, "DASK_CROSSED_LIMIT", 6)
    with pytest.raises(ValueError, match=r"does not decompose.*ddf\.compute\(\)"):
        glmm_binomial.fit("y ~ x + (1 | g) + (1 | item)", ddf)
    with pytest.raises(ValueError, match=r"correlated columns.*\(1 \+ x \|\| g\)"):
        glmm_binomial.fit("y ~ x + (1 + x | g)", ddf, method="vb_meanfield")
    with pytest.raises(ValueError, match=r"method='vb_meanfield' needs every grouping factor"):
        glmm_binomial.fit("y ~ x + (1 | g) + (1 | item)", ddf, method="vb_meanfield")
    # Structured VB (nested factors only): test_distributed_structured_vb.py.
    # The same option checks as the in-memory fit (issue 9 item 4: n_agq <= 100 on any path).
    with pytest.raises(ValueError, match="n_agq must be at most 100"):
        glmm_binomial.fit("y ~ x + (1 | g)", ddf, method="agq", n_agq=150)
    with pytest.raises(ValueError, match="weights must be a column name"):
        glmm_binomial.fit("y ~ x + (1 | g)", ddf, weights=np.ones(len(frame)))
    # main's identifiability check (validation.check_model): one 0/1 row per level.
    with pytest.raises(ValueError, match="number of observations"):
        glmm_binomial.fit("y ~ x + (1 | row)", ddf.assign(row=ddf["x"]))


def test_missing_extra_names_it(monkeypatch) -> None:
    from glmm_binomial.distributed import fit as driver

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"glmm-binomial\[dask\]"):
        driver._import_dask()


def test_separation_warned_as_in_memory(client) -> None:
    # The exact check (separation.separation_found) runs on the rows gathered to the client.
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    frame = pd.DataFrame({"y": (x > 0).astype(float), "x": x, "g": rng.integers(0, 6, 60)})
    # The GLM start diverges too, one round trip per Newton step: 25 steps, not 100, suffice.
    control = glmm_binomial.numerics.optimize.OptimizerControl(glm_max_iter=25)
    with pytest.warns(glmm_binomial.diagnostics.SeparationWarning):
        memory = glmm_binomial.fit("y ~ x + (1 | g)", frame, control=control)
    ddf = dd.from_pandas(frame, npartitions=2)
    with pytest.warns(glmm_binomial.diagnostics.SeparationWarning):
        fitted = glmm_binomial.fit("y ~ x + (1 | g)", ddf, control=control)
    assert not fitted.converged
    assert fitted.warnings == memory.warnings
    no_error = np.isnan(fitted.bse.to_numpy())
    assert no_error.any() and np.array_equal(no_error, np.isnan(memory.bse.to_numpy()))


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_separated_fit_has_the_in_memory_covariance(client) -> None:
    # Level a of f is all failures: the intercept, fb and fc diverge together, and z keeps
    # the covariance of the limit on the complement of that direction (the gathered check
    # finds the direction as the in-memory one does).
    frame = one_level_all_failures(n=300, n_groups=15)
    control = glmm_binomial.numerics.optimize.OptimizerControl(glm_max_iter=25)
    formula = "y ~ f + z + (1 | g)"
    memory = glmm_binomial.fit(formula, frame, control=control)
    fitted = glmm_binomial.fit(formula, dd.from_pandas(frame, npartitions=2), control=control)
    assert fitted.diverging == memory.diverging == ["(Intercept)", "fb", "fc"]
    assert len(fitted.fit_output.separation.directions) == 1
    np.testing.assert_allclose(fitted.bse["z"], memory.bse["z"], rtol=1e-4)
    np.testing.assert_allclose(fitted.params["z"], memory.params["z"], rtol=1e-5)
    # The limit's covariance of the combinations that stay finite (the mixed levels b, c).
    limits = [r.fit_output.vcov_limit for r in (fitted, memory)]
    assert limits[0] is not None and limits[1] is not None
    np.testing.assert_allclose(limits[0].matrix, limits[1].matrix, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("units", [1e-5, 1e6])
def test_badly_scaled_columns_fit_as_in_memory(client, units: float) -> None:
    # The in-memory fit centres and scales columns internally (scaling.py); the Dask fit
    # chooses the same maps from moments combined over the partitions and maps back exactly.
    frame = simulate(8, kind="slope")
    frame["xs"] = 50.0 * units + frame["x"] * units
    formula = "y ~ xs + (1 + xs | g)"
    memory = glmm_binomial.fit(formula, frame)
    fitted = glmm_binomial.fit(formula, dd.from_pandas(frame, npartitions=3))
    assert fitted.converged and memory.converged
    assert abs(fitted.loglik - memory.loglik) <= 1e-8 * abs(memory.loglik)
    np.testing.assert_allclose(fitted.params.to_numpy(), memory.params.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(fitted.bse.to_numpy(), memory.bse.to_numpy(), rtol=1e-4)
    sds = fitted.varcorr["std_dev"].to_numpy()
    np.testing.assert_allclose(sds, memory.varcorr["std_dev"].to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(fitted.predict(frame), memory.predict(frame), atol=1e-6)
    # The same fit in the original units: the same likelihood.
    plain = glmm_binomial.fit("y ~ x + (1 + x | g)", frame)
    assert abs(fitted.loglik - plain.loglik) <= 1e-8 * abs(plain.loglik)


def test_moments_combined_over_partitions_choose_the_in_memory_scaling() -> None:
    from glmm_binomial.methods.scaling import (
        _column_map,
        _moments_map,
        column_moments,
        combine_moments,
    )
    from glmm_binomial.numerics.optimize import OptimizerControl

    rng = np.random.default_rng(3)
    n = 500
    matrix = np.column_stack(
        [np.ones(n), 1e4 + rng.normal(size=n), 1e-6 * rng.normal(size=n), rng.normal(size=n)]
    )
    limits = OptimizerControl()
    expected = _column_map(matrix, limits.fixed_scale_limit, limits.fixed_center_limit)
    pieces = [column_moments(matrix[rows]) for rows in np.array_split(np.arange(n), 7)]
    pieces.insert(2, column_moments(matrix[:0]))  # an empty partition changes nothing
    combined = combine_moments(pieces)
    whole = column_moments(matrix)
    np.testing.assert_allclose(combined.mean, whole.mean, rtol=1e-14)
    np.testing.assert_allclose(combined.m2, whole.m2, rtol=1e-10)
    got = _moments_map(combined, limits.fixed_scale_limit, limits.fixed_center_limit)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert not np.array_equal(expected, np.eye(4))  # the case does scale and centre


def test_object_columns_of_numbers_and_wide_designs(client) -> None:
    # An object column of numbers (dask keeps it as objects when its string conversion is off)
    # is a covariate, as in memory (frame.numbers_as_numeric); a factor of many levels used
    # as a covariate is refused before any partition builds its matrix.
    frame = simulate(9)
    frame["xo"] = pd.array(list(frame["x"]), dtype=object)
    memory = glmm_binomial.fit("y ~ xo + (1 | g)", frame)
    assert list(memory.params.index) == ["(Intercept)", "xo"]
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(frame, npartitions=2)
    assert pd.api.types.is_object_dtype(ddf.dtypes["xo"])
    fitted = glmm_binomial.fit("y ~ xo + (1 | g)", ddf)
    assert list(fitted.params.index) == ["(Intercept)", "xo"]
    assert_same_fit(memory, fitted)
    wide = pd.concat([frame] * 40, ignore_index=True)
    wide["label"] = [f"L{i % 12_000}" for i in range(len(wide))]
    with pytest.raises(ValueError, match="would have about 12,001 columns for 24,000 rows"):
        glmm_binomial.fit("y ~ label + (1 | g)", dd.from_pandas(wide, npartitions=2))


def test_no_complete_rows_is_refused_as_in_memory(client) -> None:
    # The message counts the missing values of each column, as the in-memory fit's.
    frame = simulate(9)
    frame["x"] = np.nan
    frame.loc[:4, "g"] = None
    with pytest.raises(ValueError) as memory:
        glmm_binomial.fit("y ~ x + (1 | g)", frame)
    with pytest.raises(ValueError) as distributed:
        glmm_binomial.fit("y ~ x + (1 | g)", dd.from_pandas(frame, npartitions=3))
    assert f"of {len(frame)} rows, missing values in" in str(memory.value)
    for part in (f"x ({len(frame)})", "g (5)"):
        assert part in str(memory.value) and part in str(distributed.value)


def test_learning_pass_tree_merge_equals_one_merge() -> None:
    from glmm_binomial.distributed.learning import MERGE_FAN_IN, _merge, _summarize

    frame = simulate(10)
    frame["gh"] = frame["g"] + "_" + frame["h"].astype(str)
    pieces = np.array_split(np.arange(len(frame)), 3 * MERGE_FAN_IN + 2)
    args = (["f"], [("g",), ("gh",)], [("g", ("gh",))], [])
    level = [_summarize(frame.iloc[rows], *args) for rows in pieces]
    flat = _merge(level)
    while len(level) > 1:
        level = [_merge(level[i : i + MERGE_FAN_IN]) for i in range(0, len(level), MERGE_FAN_IN)]
    tree = level[0]
    assert tree.keys() == flat.keys()
    assert tree["rows"] == tree["complete"] == len(frame)
    for key in flat:
        if isinstance(flat[key], (pd.Series, pd.DataFrame)):
            assert flat[key].reset_index(drop=True).equals(tree[key].reset_index(drop=True))
    # In order of first appearance, as one pass over the whole frame finds them.
    assert list(tree["unique:f"]) == list(pd.unique(frame["f"]))


@pytest.mark.parametrize(
    ("formula", "kind"),
    [
        ("y ~ x + f + (1 | g)", "intercept"),
        ("y ~ x + (1 + x || g)", "slope"),
        ("y ~ x + (1 | g) + (1 | gh)", "nested"),
    ],
)
def test_vb_equals_in_memory_fit(client, formula: str, kind: str) -> None:
    # The ELBO's sums over rows come from the partitions; the optimizer is the in-memory one.
    frame = simulate(11, kind=kind)
    frame["gh"] = frame["g"] + "_" + frame["h"].astype(str)
    memory = glmm_binomial.fit(formula, frame, method="vb_meanfield", prior_fe_sd=3.0)
    fitted = glmm_binomial.fit(
        formula, dd.from_pandas(frame, npartitions=3), method="vb_meanfield", prior_fe_sd=3.0
    )
    assert fitted.converged and memory.converged
    assert fitted.method == "vb_meanfield"
    np.testing.assert_allclose(fitted.params.to_numpy(), memory.params.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(fitted.bse.to_numpy(), memory.bse.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(fitted.theta, memory.theta, rtol=1e-5)
    assert abs(fitted.loglik - memory.loglik) <= 1e-7 * abs(memory.loglik)
    for name, modes in memory.ranef().items():
        np.testing.assert_allclose(fitted.ranef()[name].to_numpy(), modes.to_numpy(), atol=1e-5)


@pytest.mark.parametrize(
    ("formula", "kind", "link", "method", "estimate_atol"),
    [
        ("y ~ x + f + (1 | g)", "intercept", "probit", "laplace", 1e-6),
        ("y ~ x + (1 + x | g)", "slope", "cloglog", "laplace", 1e-6),
        ("y ~ x + (1 | g/h)", "nested", "probit", "laplace", 1e-6),
        ("y ~ x + f + (1 | g)", "intercept", "cloglog", "agq", 1e-6),
        # The in-memory fit's Newton polish steps on its exact Hessian (gradient 3e-9); on the
        # partitions the same step does not lower the deviance beyond its rounding and the
        # search ends at the quasi-Newton point (gradient 9e-5, Newton decrement below 1e-6):
        # logLik 2e-11 relative apart, estimates 1.3e-5.
        ("y ~ x + f + (1 | g)", "intercept", "cauchit", "laplace", 5e-5),
    ],
)
def test_links_equal_in_memory_fit(
    client, formula: str, kind: str, link: str, method: str, estimate_atol: float
) -> None:
    # The partitions' objectives, the GLM start (the overall rate on the link's scale) and the
    # result carry the model's family; the in-memory numbers to the usual tolerances.
    frame = simulate(5, kind=kind)
    options: dict = {"link": link, "method": method, "n_agq": 9 if method == "agq" else None}
    memory = glmm_binomial.fit(formula, frame, **options)
    fitted = glmm_binomial.fit(formula, dd.from_pandas(frame, npartitions=3), **options)
    assert fitted.converged and memory.converged
    assert fitted.model.family == memory.model.family and fitted.model.family.link == link
    assert_same_fit(memory, fitted, ranef_atol=10 * estimate_atol, estimate_atol=estimate_atol)
    new = frame.iloc[:25]
    np.testing.assert_allclose(
        fitted.predict(new, type="response"),
        memory.predict(new, type="response"),
        atol=10 * estimate_atol,
    )


def beta_binomial_frame(
    seed: int, kind: str = "intercept", phi: float = 4.0, n_groups: int = 40, per: int = 8
) -> pd.DataFrame:
    """Counts of 1 to 11 trials in n_groups groups (rows in random order), overdispersed as a
    beta-binomial with dispersion phi (inf: binomial); x on a scale the fit centres and scales
    internally; kind "slope" adds a random slope on x, "nested" a random intercept for h
    within g, "crossed" an effect of h (three levels crossed with g)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    rng.shuffle(g)
    n = g.size
    x = 10.0 + 3.0 * rng.normal(size=n)
    f = rng.choice(["a", "b", "c"], size=n)
    h = rng.integers(0, 3, size=n)
    eta = -0.3 + 0.2 * (x - 10.0) + 0.3 * (f == "b") + rng.normal(scale=0.8, size=n_groups)[g]
    if kind == "slope":
        eta = eta + rng.normal(scale=0.5, size=n_groups)[g] * (x - 10.0) / 3.0
    if kind == "nested":
        eta = eta + rng.normal(scale=0.6, size=(n_groups, 3))[g, h]
    if kind == "crossed":
        eta = eta + np.array([-0.5, 0.1, 0.6])[h]
    p = 1.0 / (1.0 + np.exp(-eta))
    m = rng.integers(1, 12, size=n)
    probability = rng.beta(p * phi, (1.0 - p) * phi) if np.isfinite(phi) else p
    k = rng.binomial(m, probability)
    labels = np.array([f"G{v:03d}" for v in range(n_groups)])
    return pd.DataFrame({"k": k, "fail": m - k, "x": x, "f": f, "g": labels[g], "h": h})


@pytest.mark.parametrize(
    ("formula", "kind", "options"),
    [
        ("cbind(k, fail) ~ x + f + (1 | g)", "intercept", {}),
        ("cbind(k, fail) ~ x + f + (1 | g)", "intercept", {"method": "agq", "n_agq": 5}),
        ("cbind(k, fail) ~ x + (1 + x | g)", "slope", {"link": "cloglog"}),
        ("cbind(k, fail) ~ x + (1 | g/h)", "nested", {"priors": {"cov": "gamma"}}),
        # h crossed with g: the client's mode search, with phi from theta.
        ("cbind(k, fail) ~ x + (1 | g) + (1 | h)", "crossed", {}),
    ],
)
def test_a_beta_binomial_fit_equals_the_in_memory_one(client, formula, kind, options) -> None:
    """family='betabinomial' on a Dask DataFrame (it was refused): the partitions' objectives
    carry phi from theta, log phi starts from the rows' moments about the GLM summed over the
    partitions (Family.start_moments), as in memory."""
    frame = beta_binomial_frame(3, kind)
    memory = glmm_binomial.fit(formula, frame, family="betabinomial", **options)
    fitted = glmm_binomial.fit(
        formula, dd.from_pandas(frame, npartitions=3), family="betabinomial", **options
    )
    assert fitted.converged and memory.converged
    assert fitted.model.family.name == "betabinomial"
    assert 1.0 < fitted.phi < 20.0
    assert fitted.phi == pytest.approx(memory.phi, rel=1e-6)
    assert_same_fit(memory, fitted, se_rtol=1e-4)
    new = frame.iloc[:25]
    np.testing.assert_allclose(
        fitted.predict(new, type="response"), memory.predict(new, type="response"), atol=1e-8
    )


def test_a_beta_binomial_dispersion_at_its_limit_as_in_memory(client) -> None:
    # Binomial counts: phi runs to its limit, where the fit reports it (a BoundaryWarning), on
    # the partitions as in memory.
    frame = beta_binomial_frame(5, phi=np.inf)
    formula = "cbind(k, fail) ~ x + f + (1 | g)"
    with pytest.warns(BoundaryWarning, match="dispersion is at its limit"):
        memory = glmm_binomial.fit(formula, frame, family="betabinomial")
    with pytest.warns(BoundaryWarning, match="dispersion is at its limit"):
        fitted = glmm_binomial.fit(
            formula, dd.from_pandas(frame, npartitions=3), family="betabinomial"
        )
    assert_same_fit(memory, fitted, se_rtol=1e-4)


def test_a_beta_binomial_fit_refuses_what_it_cannot_fit_on_dask(client) -> None:
    frame = beta_binomial_frame(5)
    # Every row one trial: refused after the first pass, as in memory before the fit.
    bernoulli = frame.assign(y=(frame["k"] > 0).astype(float))
    with pytest.raises(ValueError, match="needs rows with more than one trial"):
        glmm_binomial.fit("y ~ x + (1 | g)", bernoulli, family="betabinomial")
    with pytest.raises(ValueError, match="needs rows with more than one trial"):
        glmm_binomial.fit(
            "y ~ x + (1 | g)", dd.from_pandas(bernoulli, npartitions=2), family="betabinomial"
        )


def test_the_beta_binomial_stays_at_the_log_links_bound_on_dask(client) -> None:
    """The beta-binomial's likelihood is zero past the log link's bound, and its mode searches
    hold rows there, on the partitions as in memory (it was carried on flat past the bound:
    this fit's modes ended at eta up to 0.21, 9,623 PIRLS iterations in memory). Both searches
    end unconverged at the bound, at points that are not estimates: not compared."""
    frame = beta_binomial_frame(1, n_groups=10, per=6)
    for data in (frame, dd.from_pandas(frame, npartitions=3)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = glmm_binomial.fit(
                "cbind(k, fail) ~ x + (1 | g)", data, family="betabinomial", link="log"
            )
        assert not result.converged and np.isfinite(result.loglik)
        messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
        assert any("constraint mu = exp(eta) <= 1 is active" in m for m in messages)
        eta = result.predict(frame, type="link")
        assert -1e-8 < np.max(eta) <= 0.0


def rarer(frame: pd.DataFrame, seed: int, keep: float = 0.5) -> pd.DataFrame:
    """frame with each success kept with probability `keep` (rates well below 1, where the
    log link's fit is interior)."""
    kept = np.random.default_rng(seed).random(len(frame)) < keep
    return frame.assign(y=((frame["y"] == 1.0) & kept).astype(float))


@pytest.mark.parametrize(
    ("formula", "frame", "options"),
    [
        ("y ~ x + f + (1 | g)", lambda: rarer(simulate(5), 1), {}),
        ("y ~ x + f + (1 | g)", lambda: rarer(simulate(5), 1), {"method": "agq", "n_agq": 5}),
        ("y ~ x + (1 | gi/h)", lambda: rarer(simulate(7, kind="nested"), 3, 0.4), {}),
        # Offsets 0 and -3: the least-squares start puts rows past eta = 0, so the GLM starts
        # from the intercept alone inside the bound (optimize.feasible_glm_start).
        ("y ~ x + (1 | g) + offset(o)", lambda: rarer(simulate(5), 1).assign(o=-3.0), {}),
    ],
)
def test_the_log_link_equals_the_in_memory_fit(client, formula, frame, options) -> None:
    """link='log' on a Dask DataFrame (it was refused): the GLM start steps inside eta <= 0
    on the partitions' largest eta and room for a step (optimize.bounded_glm_newton), as in
    memory."""
    data = frame()
    if "offset" in formula:
        data.loc[data.index % 2 == 0, "o"] = 0.0
    memory = glmm_binomial.fit(formula, data, link="log", **options)
    fitted = glmm_binomial.fit(formula, dd.from_pandas(data, npartitions=3), link="log", **options)
    assert memory.converged and fitted.converged
    assert fitted.model.family.link == "log"
    assert_same_fit(memory, fitted, se_rtol=1e-4)
    assert np.max(fitted.predict(data, type="link")) < 0.0


def log_bound_frame() -> pd.DataFrame:
    """Rows in 3 subgroups h of each group g with rates exp(eta) below 1, on which
    `y ~ x + (1 | g/h)` with the log link runs into the bound (a sweep's case, its draws kept)."""
    rng = np.random.default_rng(0)
    n_groups, per = int(rng.integers(8, 40)), int(rng.integers(4, 20))
    g = np.repeat(np.arange(n_groups), per)
    n = g.size
    x = rng.normal(size=n) * rng.choice([1, 5]) + rng.choice([0, 10])
    xs = (x - x.mean()) / x.std()
    f = rng.choice(["a", "b", "c"], size=n)
    h = rng.integers(0, 3, size=n)
    rng.random(n), rng.uniform(0, 2)  # an offset's draws, unused
    eta = rng.uniform(-3.5, -1.0) + 0.3 * xs + 0.2 * (f == "b")
    eta = eta + rng.normal(scale=rng.uniform(0.1, 0.8), size=n_groups)[g]
    eta = np.minimum(eta + rng.normal(scale=0.3, size=(n_groups, 3))[g, h], -0.05)
    rng.integers(1, 6, size=n)  # trials, unused
    y = (rng.random(n) < np.exp(eta)).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": [f"G{v}" for v in g], "h": h})


def test_the_log_links_active_constraint_is_reported_on_dask(client) -> None:
    # test_family_fits' data: a group all successes puts its rows on mu = 1, where no mode is
    # converged (laplace.with_link_bound); the partitions count their rows at the bound.
    # Both searches fail there, at different points (not estimates): not compared.
    frame = all_successes_group_frame()
    for data in (frame, dd.from_pandas(frame, npartitions=3)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = glmm_binomial.fit("y ~ x + (1 | g)", data, link="log")
        assert not result.converged
        messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
        assert any("constraint mu = exp(eta) <= 1 is active" in m for m in messages)

    # A nested fit whose search runs into the bound: the partitions' evaluations there overflow
    # as the in-memory ones do, without numpy's warnings (ModePartition.deviance_and_gradient's
    # error state; they came from the workers, whose error state the client's does not reach).
    nested = log_bound_frame()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        glmm_binomial.fit("y ~ x + (1 | g/h)", dd.from_pandas(nested, npartitions=3), link="log")
    assert not [w for w in caught if w.category is RuntimeWarning]


def test_the_quadrature_cut_by_the_log_links_bound_is_reported_on_dask(client) -> None:
    """The partitions count the rows their AGQ nodes take past the log link's bound
    (AgqObjective.rows_past_bound), and the Dask fit warns as the in-memory one does
    (tests/reference/log_link_agq_nodes.csv: fuzz_dask_log 25, a converged fit)."""
    data = pd.read_csv(REFERENCE_DIR / "log_link_agq_nodes.csv")
    fits = []
    for frame in (data, dd.from_pandas(data, npartitions=3)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(
                glmm_binomial.fit("y ~ x + f + (1 | g)", frame, link="log", method="agq", n_agq=5)
            )
    memory, fitted = fits
    assert memory.converged and fitted.converged
    assert_same_fit(memory, fitted, se_rtol=1e-4)
    cut = [[str(w) for w in r.warnings if "cuts the quadrature" in str(w)] for r in fits]
    assert len(cut[0]) == 1 and cut[0] == cut[1]


def longitudinal(ids: int) -> pd.DataFrame:
    """tests/reference/longitudinal.csv's first `ids` ids of each arm (test_covariance_structures'
    data), timef as labels, with z = 3 time + 7 (a column the fit would centre and scale)."""
    data = pd.read_csv(REFERENCE_DIR / "longitudinal.csv")
    data = data[(data["id"] - 1) % 200 < ids].reset_index(drop=True)
    # Labels, as R's factor(timef) (digits as text would be read as numbers).
    data["timef"] = "t" + data["timef"].astype(str)
    data["id"] = data["id"].astype(str)
    return data.assign(z=3.0 * data["time"] + 7.0)


@pytest.mark.parametrize(
    ("term", "options", "se_rtol"),
    [
        ("ar1(timef + 0 | id)", {}, 1e-4),
        ("cs(timef + 0 | id)", {"priors": {"fixef": "normal(sd = 3)"}}, 1e-4),
        # The Dask fit's Hessian by differences of the exact gradient, in memory the exact one;
        # diag keeps z = 3 time + 7 uncentred (its own columns), which couples the intercept's
        # SD with z's: SEs 1.3e-4 apart.
        ("diag(1 + z | id)", {}, 1e-3),
        ("diag(1 + z | id)", {"method": "agq", "n_agq": 3}, 1e-3),
        ("ar1(timef + 0 | id)", {"family": "betabinomial"}, 1e-4),
    ],
)
def test_structured_covariances_equal_the_in_memory_fit(
    client, term: str, options, se_rtol: float
) -> None:
    """glmmTMB's structured terms on a Dask DataFrame (they were refused): the partitions'
    blocks carry the term's structure, and a structured block keeps its own columns (no
    internal centring or scaling, as in memory: a per-column scale would break ar1's common
    SD), while X is still scaled."""
    frame = longitudinal(30)
    formula = f"cbind(k, n - k) ~ time + trt + {term}"
    memory = glmm_binomial.fit(formula, frame, **options)
    fitted = glmm_binomial.fit(formula, dd.from_pandas(frame, npartitions=3), **options)
    assert memory.converged and fitted.converged
    assert [b.covariance.name for b in fitted.model.blocks] == [term.split("(")[0]]
    assert_same_fit(memory, fitted, se_rtol=se_rtol)
    pd.testing.assert_frame_equal(fitted.varcorr, memory.varcorr, rtol=1e-5)
    new = frame.iloc[:30]
    np.testing.assert_allclose(
        fitted.predict(new, type="response"), memory.predict(new, type="response"), atol=1e-7
    )


@pytest.mark.parametrize(
    "formula",
    [
        "cbind(k, n - k) ~ time + trt + ar1(timef + 0 | id) + (1 | batch)",
        "cbind(k, n - k) ~ time + trt + (1 | id) + diag(1 + z | batch)",
    ],
)
def test_structured_covariances_with_a_crossed_factor_as_in_memory(client, formula) -> None:
    # The client's joint mode search moves the modes by Lambda's change (lambda_change, not
    # linear in theta for ar1 and diag's log SDs), as the in-memory objective.
    frame = longitudinal(30).assign(batch=lambda d: "b" + (d.index % 5).astype(str))
    memory = glmm_binomial.fit(formula, frame)
    fitted = glmm_binomial.fit(formula, dd.from_pandas(frame, npartitions=3))
    assert memory.converged and fitted.converged
    assert abs(fitted.loglik - memory.loglik) <= 1e-8 * abs(memory.loglik)
    np.testing.assert_allclose(fitted.params.to_numpy(), memory.params.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(fitted.bse.to_numpy(), memory.bse.to_numpy(), rtol=1e-3)
    # A log SD at zero (diag's intercept on batch) may stop anywhere on the flat deviance
    # below boundary_tol (log SD -9.2 in memory, -27.6 on Dask): compared as covariances.
    for ours, theirs in zip(
        memory.covariance_matrices(), fitted.covariance_matrices(), strict=True
    ):
        np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-7)


def test_vb_refuses_structured_covariances_on_dask(client) -> None:
    frame = longitudinal(10)
    with pytest.raises(ValueError, match="structured covariance"):
        glmm_binomial.fit(
            "cbind(k, n - k) ~ time + diag(1 + time | id)",
            dd.from_pandas(frame, npartitions=2),
            method="vb",
        )


@pytest.mark.parametrize(("link", "value"), [("cloglog", 1), ("probit", 0)])
def test_separation_with_other_links(client, link: str, value: int) -> None:
    # A level of f all successes (all failures): the fits stall on the diverging path with
    # f's coefficient below the logit's screen (|beta| max |x| > 20; cloglog's mean is 1 - 2e-9
    # at eta = 3), so the Dask fit reads the rows' fixed-effect predictors against the link's
    # values at log-odds -+20 as the in-memory screen does (saturated_rows), and the linear
    # programs name fb (test_separation.py's data).
    frame = one_level_one_outcome(value)
    formula = "y ~ x + f + (1 | g)"
    with pytest.warns(SeparationWarning, match="separation: no finite .* for fb"):
        memory = glmm_binomial.fit(formula, frame, link=link)
    with pytest.warns(SeparationWarning, match="separation: no finite .* for fb"):
        fitted = glmm_binomial.fit(formula, dd.from_pandas(frame, npartitions=3), link=link)
    assert not fitted.converged and not memory.converged
    assert fitted.diverging == memory.diverging == ["fb"]
    assert abs(fitted.loglik - memory.loglik) <= 1e-8 * abs(memory.loglik)


def test_vb_warnings_as_in_memory(client) -> None:
    # The posterior's warnings are the in-memory fit's (variational.with_posterior_warnings):
    # with no variance between the groups the likelihood is highest with the SD at zero, which
    # both say (the Dask fit said nothing); under separation the linear programs need every
    # row, so the Dask fit says that separation is possible and was not checked.
    rng = np.random.default_rng(0)
    x = rng.normal(size=240)
    frame = pd.DataFrame({"x": x, "g": [f"G{v:02d}" for v in rng.integers(0, 20, x.size)]})
    frame["y"] = (rng.random(x.size) < 1.0 / (1.0 + np.exp(-0.5 * x))).astype(np.float64)
    formula = "y ~ x + (1 | g)"
    with pytest.warns(BoundaryWarning):
        memory = glmm_binomial.fit(formula, frame, method="vb_meanfield")
    with pytest.warns(BoundaryWarning):
        fitted = glmm_binomial.fit(
            formula, dd.from_pandas(frame, npartitions=3), method="vb_meanfield"
        )
    assert len(memory.warnings) == 1 and "at zero as at its posterior mean" in memory.warnings[0]
    assert fitted.warnings == memory.warnings
    separated = frame.assign(y=(frame["x"] > 0).astype(np.float64))
    with pytest.warns(SeparationWarning, match="complete separation"):
        glmm_binomial.fit(formula, separated, method="vb_meanfield")
    with pytest.warns(SeparationWarning, match="possible separation.*not run on a Dask"):
        glmm_binomial.fit(formula, dd.from_pandas(separated, npartitions=3), method="vb_meanfield")
    # A posterior mean in the prior's tail (the intercept at -3.5, rare successes) without
    # separation: in memory the linear programs find none and the variance check warns; on Dask
    # separation is said possible, and the variance check runs too (fuzz_dask 68: it did not).
    rare = pd.read_csv(REFERENCE_DIR / "vb_prior_tail_boundary.csv")
    for method in ("vb_meanfield", "vb"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            memory = glmm_binomial.fit("y ~ x + (1 | a/b)", rare, method=method)
            fitted = glmm_binomial.fit(
                "y ~ x + (1 | a/b)", dd.from_pandas(rare, npartitions=3), method=method
            )
        assert [w.category for w in memory.warnings] == [BoundaryWarning, BoundaryWarning]
        assert fitted.warnings[0].category is SeparationWarning
        assert fitted.warnings[1:] == memory.warnings


@pytest.mark.parametrize(
    ("formula", "kind", "priors", "method"),
    [
        # blme's default: a Wishart prior on each covariance (a boundary fit kept off zero).
        ("y ~ x + f + (1 | g)", "intercept", "blme", "laplace"),
        ("y ~ x + (1 + x | g)", "slope", {"cov": "wishart"}, "laplace"),
        ("y ~ x + (1 | gi/h)", "nested", {"fixef": "normal(sd = 3)", "cov": "gamma"}, "laplace"),
        ("y ~ x + f + (1 | g)", "intercept", {"fixef": "t(df = 7, scale = 2.5)"}, "agq"),
    ],
)
def test_a_posterior_mode_equals_the_in_memory_one(client, formula, kind, priors, method):
    """priors= on a Dask DataFrame (they were refused): the deviance plus the prior deviance
    summed over the partitions, the priors bound to the internal columns as in memory."""
    frame = simulate(4, kind=kind)
    options = {"priors": priors, "method": method}
    if method == "agq":
        options["n_agq"] = 5
    memory = glmm_binomial.fit(formula, frame, **options)
    fitted = glmm_binomial.fit(formula, dd.from_pandas(frame, npartitions=3), **options)
    assert fitted.converged and memory.converged
    assert fitted.penalized and fitted.priors == memory.priors
    assert fitted.prior_deviance == pytest.approx(memory.prior_deviance, rel=1e-7)
    assert_same_fit(memory, fitted, se_rtol=1e-4)
    assert fitted.opt_summary.objective == memory.opt_summary.objective
    assert "prior deviance" in fitted.opt_summary.objective


def test_a_prior_that_outweighs_the_likelihood_gives_no_posterior_mode_on_dask(client):
    """As in memory (test_penalty): blme's default Wishart prior makes the penalized deviance
    fall without end on these data; the Dask fit reads the rows' random-effect SDs over the
    partitions and probes further out the same way."""
    data = pd.read_csv(REFERENCE_DIR / "blme_no_posterior_mode.csv")
    formula = "y ~ x + x2 + (1 + x + x2 | g)"
    with pytest.warns(glmm_binomial.ConvergenceWarning, match="no finite posterior mode"):
        fitted = glmm_binomial.fit(formula, dd.from_pandas(data, npartitions=2), priors="blme")
    assert not fitted.converged


@pytest.mark.filterwarnings("ignore::glmm_binomial.GLMMWarning")
def test_priors_keep_separated_and_boundary_fits_finite_as_in_memory(client):
    """The reason for priors: a fixed-effect prior gives the separated coefficient a finite
    mode (the GLM start too, penalized over the partitions), a covariance prior keeps a
    variance that groups separate finite; the same numbers as in memory."""
    control = OptimizerControl(glm_max_iter=25)
    cases = [
        (separated_frame(), "y ~ x + f + (1 | g)", {"fixef": "t(df = 7, scale = 2.5)"}),
        (pure_groups_frame(), "y ~ x + (1 | g)", {"cov": "gamma(shape = 2, rate = 0.5)"}),
    ]
    for frame, formula, priors in cases:
        memory = glmm_binomial.fit(formula, frame, priors=priors, control=control)
        fitted = glmm_binomial.fit(
            formula, dd.from_pandas(frame, npartitions=2), priors=priors, control=control
        )
        assert not memory.diverging and not fitted.diverging
        assert fitted.converged == memory.converged
        assert_same_fit(memory, fitted, estimate_atol=1e-5)


def test_data_without_any_trial_is_refused_as_in_memory(client) -> None:
    cbpp = glmm_binomial.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    none = cbpp.assign(size=0, incidence=0)
    for frame, weights in ((none, None), (cbpp.assign(w=0.0), "w")):
        given = formula if weights is None else "incidence / size ~ period + (1 | herd)"
        with pytest.raises(ValueError, match="no row carries information"):
            glmm_binomial.fit(given, frame, weights=weights)
        with pytest.raises(ValueError, match="no row carries information"):
            glmm_binomial.fit(given, dd.from_pandas(frame, npartitions=2), weights=weights)


def test_final_modes_that_cannot_be_computed_are_a_clear_error(client, monkeypatch) -> None:
    """Where the conditional modes at the search's end cannot be computed (a search run off
    to overflowing SDs: laplace.finish_fit's ValueError in memory), the Dask fit refuses with
    the same message, not numpy's LinAlgError from the partitions."""
    from glmm_binomial.distributed.nested import NestedObjective

    def fail(self, *args, **kwargs):
        raise np.linalg.LinAlgError("Matrix is not positive definite")

    monkeypatch.setattr(NestedObjective, "conditional_effects", fail)
    cbpp = glmm_binomial.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    with pytest.raises(ValueError, match="the fit failed: the search ran off.*may be"):
        glmm_binomial.fit(formula, dd.from_pandas(cbpp, npartitions=2), client=client)
