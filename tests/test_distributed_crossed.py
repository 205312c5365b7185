"""Factors crossed with the partitioning factor (distributed_crossed.py): the objective summed
over partitions against the in-memory LaplaceObjective, without a cluster."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import pytest
from _dask_support import assert_same_fit as same_fit
from _dask_support import forked_process_client, kill_once, local_client, parquet_parts

import glmm_binomial
from glmm_binomial.distributed.crossed import (
    CrossedObjective,
    CrossedPartition,
    crossed_size,
    local_runner,
)
from glmm_binomial.family import make_family
from glmm_binomial.methods.laplace import (
    LaplaceObjective,
    conditional_effects,
    rows_at_link_bound,
)
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.numerics.factor import Structure
from glmm_binomial.numerics.pirls import PirlsControl, step_bound


def crossed_model(
    seed: int,
    n: int = 1500,
    n_g: int = 60,
    n_item: int = 12,
    nested: bool = False,
    per_g: int = 3,
) -> ModelData:
    """Binary rows: g (random intercept and slope on x), optionally h nested in g (up to per_g
    levels in each), and item crossed with g."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_g, n)
    item = rng.integers(0, n_item, n)
    x = rng.normal(size=n)
    eta = -0.4 + 0.7 * x
    eta += rng.normal(scale=0.9, size=n_g)[g] + rng.normal(scale=0.4, size=n_g)[g] * x
    eta += rng.normal(scale=0.7, size=n_item)[item]
    blocks = [
        RandomBlock(
            "g", ("(Intercept)", "x"), g, tuple(range(n_g)), np.column_stack([np.ones(n), x])
        )
    ]
    if nested:
        h = g * per_g + rng.integers(0, per_g, n) * (g % 3 != 0)
        eta += rng.normal(scale=0.6, size=per_g * n_g)[h]
        _, h = np.unique(h, return_inverse=True)
        blocks.append(
            RandomBlock("g:h", ("(Intercept)",), h, tuple(range(h.max() + 1)), np.ones((n, 1)))
        )
    blocks.append(
        RandomBlock("item", ("(Intercept)",), item, tuple(range(n_item)), np.ones((n, 1)))
    )
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    x_fixed = np.column_stack([np.ones(n), x])
    return ModelData(y, np.ones(n), x_fixed, np.zeros(n), ("(Intercept)", "x"), tuple(blocks))


def split(
    data: ModelData, n_parts: int, crossed: tuple[int, ...], pirls: PirlsControl | None = None
) -> list[CrossedPartition]:
    """Partitions holding whole levels of block 0, every block coded by the partition's own
    levels, as distributed.build_partition makes them."""
    part_of = np.arange(data.blocks[0].n_levels) % n_parts
    out = []
    for p in range(n_parts):
        rows = np.flatnonzero(part_of[data.blocks[0].codes] == p)
        blocks, keys = [], []
        for b in data.blocks:
            where, codes = np.unique(b.codes[rows], return_inverse=True)
            blocks.append(
                RandomBlock(b.group, b.terms, codes.astype(np.intp), tuple(where), b.z[rows])
            )
            keys.append(where.astype(np.intp))
        sub = ModelData(
            data.successes[rows],
            data.trials[rows],
            data.x[rows],
            data.offset[rows],
            data.fixed_names,
            tuple(blocks),
            family=data.family,
        )
        levels = [data.blocks[t].levels for t in crossed]
        out.append(CrossedPartition(sub, keys, crossed, levels, pirls or PirlsControl()))
    return out


def objective(data: ModelData, n_parts: int, crossed: tuple[int, ...]) -> CrossedObjective:
    parts = split(data, n_parts, crossed)
    n_levels = [b.n_levels for b in data.blocks]
    ks = [b.k for b in data.blocks]
    return CrossedObjective(
        local_runner(parts),
        crossed_size(n_levels, ks, crossed),
        PirlsControl(),
        upper=step_bound(data.family),
    )


@pytest.mark.parametrize(
    ("nested", "per_g", "link"),
    [
        (False, 3, "logit"),
        (True, 3, "logit"),
        (True, 2, "logit"),
        (False, 3, "cloglog"),
        (False, 3, "cauchit"),
        (True, 3, "cauchit"),
    ],
)
def test_deviance_gradient_information_match_in_memory(nested: bool, per_g: int, link: str) -> None:
    # per_g=2: h has fewer columns than g (2 per level), so the in-memory layout puts h in the
    # dense rest with item, the partitions' chain h -> g. The cloglog's gradient needs the
    # rows' successes and trials (its weights' slope); the cauchit's likelihood is not
    # log-concave.
    data = crossed_model(1, nested=nested, per_g=per_g)
    data = dataclasses.replace(data, family=make_family("binomial", link))
    crossed = (len(data.blocks) - 1,)
    memory = LaplaceObjective(data)
    split_objective = objective(data, 4, crossed)
    base = np.array([0.9, 0.1, 0.4] + ([0.6] if nested else []) + [0.7])
    points = [(1.0, [-0.4, 0.7]), (0.6, [0.1, 0.2]), (1.4, [-1.0, 1.1])]
    if link == "cauchit":
        # Far from the data some observed weights are negative and H with them is not
        # positive definite: the steps are taken with the clipped weights, as in memory.
        points.append((3.0, [2.0, 3.2]))
    for scale, beta in points:
        theta = base * scale
        beta_v = np.array(beta)
        d0, gt0, gb0 = memory.deviance_and_gradient(theta, beta_v)
        d1, gt1, gb1 = split_objective.deviance_and_gradient(theta, beta_v)
        assert abs(d1 - d0) <= 1e-9 * abs(d0)
        np.testing.assert_allclose(gt1, gt0, rtol=1e-9, atol=1e-9 * np.max(np.abs(gt0)))
        np.testing.assert_allclose(gb1, gb0, rtol=1e-9, atol=1e-9 * np.max(np.abs(gb0)))
        info0 = memory.fixed_information(theta, beta_v)
        info1 = split_objective.fixed_information(theta, beta_v)
        np.testing.assert_allclose(info1, info0, rtol=1e-9)
    # Conditional modes and covariances of every block, over all levels.
    modes0, covs0 = conditional_effects(memory, memory.mode(theta, beta_v), theta)
    n_levels = [b.n_levels for b in data.blocks]
    ks = [b.k for b in data.blocks]
    modes1, covs1 = split_objective.conditional_effects(theta, beta_v, n_levels, ks, crossed)
    for t in range(len(data.blocks)):
        np.testing.assert_allclose(modes1[t], modes0[t], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(covs1[t], covs0[t], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("nested", [False, True])
def test_a_beta_binomial_objective_matches_in_memory(nested: bool) -> None:
    # The partitions take phi from theta (its last entry, log phi) and sum the gradient in it;
    # the likelihood is not log-concave, so far out the steps take the clipped weights.
    data = crossed_model(4, n=900, nested=nested)
    rng = np.random.default_rng(4)
    trials = rng.integers(2, 9, data.n_obs).astype(np.float64)
    # Overdispersed counts that follow the binary rows' structure.
    rate = rng.beta(1.0 + 3.0 * data.successes, 4.0 - 2.0 * data.successes)
    data = dataclasses.replace(
        data,
        successes=rng.binomial(trials.astype(np.int64), rate).astype(np.float64),
        trials=trials,
        log_binomial_constant=float("nan"),
        family=make_family("betabinomial"),
    )
    crossed = (len(data.blocks) - 1,)
    memory = LaplaceObjective(data)
    split_objective = objective(data, 3, crossed)
    base = np.array([0.9, 0.1, 0.4] + ([0.6] if nested else []) + [0.7])
    for scale, log_phi, beta in (
        (1.0, 1.5, [-0.4, 0.7]),
        (0.5, 3.0, [0.1, 0.2]),
        (3.0, 0.0, [2.0, 3.2]),
    ):
        theta = np.append(base * scale, log_phi)
        beta_v = np.array(beta)
        d0, gt0, gb0 = memory.deviance_and_gradient(theta, beta_v)
        d1, gt1, gb1 = split_objective.deviance_and_gradient(theta, beta_v)
        assert np.isfinite(d0)
        assert abs(d1 - d0) <= 1e-9 * abs(d0)
        np.testing.assert_allclose(gt1, gt0, rtol=1e-8, atol=1e-8 * np.max(np.abs(gt0)))
        np.testing.assert_allclose(gb1, gb0, rtol=1e-8, atol=1e-8 * np.max(np.abs(gb0)))
        info0 = memory.fixed_information(theta, beta_v)
        np.testing.assert_allclose(
            split_objective.fixed_information(theta, beta_v), info0, rtol=1e-8
        )


@pytest.mark.parametrize(("seed", "nested"), [(1, False), (1, True), (5, True)])
def test_a_beta_binomial_at_the_log_links_bound_as_in_memory(seed: int, nested: bool) -> None:
    # The beta-binomial steps up to the log link's bound too; where some partition's chain is
    # not positive definite with the observed weights the client steps with the clipped ones,
    # and the partitions' direction and face solves take that H (they took the observed
    # chain's factor: a KeyError where it had none, the wrong H where it had one).
    data = crossed_model(seed, nested=nested, n=600, n_g=30)
    rng = np.random.default_rng(seed)
    trials = rng.integers(2, 7, data.n_obs).astype(np.float64)
    rate = np.where(rng.random(data.n_obs) < 0.3, 0.9, 0.15)
    data = dataclasses.replace(
        data,
        successes=rng.binomial(trials.astype(np.int64), rate).astype(np.float64),
        trials=trials,
        log_binomial_constant=float("nan"),
        family=make_family("betabinomial", "log"),
    )
    crossed = (len(data.blocks) - 1,)
    memory = LaplaceObjective(data)
    split_objective = objective(data, 3, crossed)
    base = np.array([0.9, 0.1, 0.4] + ([0.6] if nested else []) + [0.7])
    for scale, log_phi, beta in ((1.0, 1.0, [-1.5, 0.5]), (1.0, 2.0, [-1.0, 0.2])):
        theta, beta_v = np.append(base * scale, log_phi), np.array(beta)
        d0, gt0, gb0 = memory.deviance_and_gradient(theta, beta_v)
        d1, gt1, gb1 = split_objective.deviance_and_gradient(theta, beta_v)
        assert d1 == d0 or abs(d1 - d0) <= 1e-9 * abs(d0)
        if np.isfinite(d0):
            g0, g1 = np.concatenate([gt0, gb0]), np.concatenate([gt1, gb1])
            np.testing.assert_allclose(g1, g0, rtol=1e-7, atol=1e-7 * np.max(np.abs(g0)))


def rare_log_model(seed: int, nested: bool) -> ModelData:
    """crossed_model's rows (600, 30 levels of g) with four successes in ten kept, for the
    log link: groups with every trial a success pull their eta to the bound."""
    data = crossed_model(seed, nested=nested, n=600, n_g=30)
    rng = np.random.default_rng(seed)
    return dataclasses.replace(
        data,
        successes=data.successes * (rng.random(data.n_obs) < 0.4),
        log_binomial_constant=float("nan"),
        family=make_family("binomial", "log"),
    )


@pytest.mark.parametrize(
    ("seed", "nested"), [(0, False), (0, True), (2, False), (2, True), (3, True), (4, True)]
)
def test_the_log_links_bound_as_in_memory(seed: int, nested: bool) -> None:
    # Rare successes: rows with every trial a success pull their eta to the log link's 0,
    # where the search holds them (face_step over the partitions) and ends unconverged; at
    # beta = (0.3, 0.2) u = 0 has no likelihood and the search starts lowered below it.
    # Seeds 3 and 4: the projection pushes further rows at the bound, which are held too;
    # before, the search's steps past the bound were halved to nothing for all its 100
    # iterations (seed 3 at scale 2 ended with a deviance of 1673.03; on the face, 697.09).
    data = rare_log_model(seed, nested)
    crossed = (len(data.blocks) - 1,)
    memory = LaplaceObjective(data)
    split_objective = objective(data, 3, crossed)
    base = np.array([0.9, 0.1, 0.4] + ([0.6] if nested else []) + [0.7])
    for scale, beta in ((1.0, [-1.5, 0.5]), (2.0, [-0.5, 0.4]), (3.0, [0.3, 0.2])):
        theta, beta_v = base * scale, np.array(beta)
        d0, gt0, gb0 = memory.deviance_and_gradient(theta, beta_v)
        mode = memory.mode(theta, beta_v)
        assert rows_at_link_bound(data.family, mode.eta) > 0 and not mode.converged
        assert mode.iterations < 40
        d1, gt1, gb1 = split_objective.deviance_and_gradient(theta, beta_v)
        assert not split_objective.mode(theta, beta_v).converged
        assert abs(d1 - d0) <= 1e-9 * abs(d0)
        g0, g1 = np.concatenate([gt0, gb0]), np.concatenate([gt1, gb1])
        np.testing.assert_allclose(g1, g0, rtol=1e-7, atol=1e-7 * np.max(np.abs(g0)))
    n_levels, ks = [b.n_levels for b in data.blocks], [b.k for b in data.blocks]
    split_objective.conditional_effects(theta, beta_v, n_levels, ks, crossed)
    assert split_objective.rows_at_link_bound == rows_at_link_bound(data.family, mode.eta)


@pytest.mark.parametrize(("seed", "nested"), [(1, False), (6, True)])
def test_a_row_with_failures_is_kept_off_the_log_links_bound(seed: int, nested: bool) -> None:
    # A Newton step past the bound used to stop rows with failures half BOUND_GAP below it,
    # where their weights (4e16) left H with no positive definite factor in rounding: in
    # memory a NaN log det (seed 6), on the partitions a Schur complement that would not
    # factor (seed 1). They now go BARRIER_FRACTION of their way at most.
    data = rare_log_model(seed, nested)
    theta = np.array([0.9, 0.1, 0.4] + ([0.6] if nested else []) + [0.7])
    beta = np.array([-0.2, 1.5])
    memory = LaplaceObjective(data)
    d0 = memory.deviance(theta, beta)
    assert np.isfinite(d0) and np.isfinite(memory.mode(theta, beta).factor.logdet)
    d1 = objective(data, 3, (len(data.blocks) - 1,)).deviance(theta, beta)
    assert abs(d1 - d0) <= 1e-9 * abs(d0)


def test_same_input_same_output_bit_for_bit() -> None:
    data = crossed_model(2)
    theta, beta = np.array([0.8, 0.2, 0.3, 0.5]), np.array([-0.3, 0.6])
    first = objective(data, 3, (1,)).deviance_and_gradient(theta, beta)
    second = objective(data, 3, (1,)).deviance_and_gradient(theta, beta)
    assert first[0] == second[0]
    assert np.array_equal(first[1], second[1]) and np.array_equal(first[2], second[2])
    # The same partitions rebuilt on (here the same) columns of their rows: the same numbers.
    again = [p.on_rows(p.data) for p in split(data, 3, (1,))]
    third = CrossedObjective(local_runner(again), 12, PirlsControl())
    assert third.deviance_and_gradient(theta, beta)[0] == first[0]


def test_one_partition_and_a_lost_partition() -> None:
    """One partition is the in-memory layout with the crossed factor as the rest; a partition
    rebuilt in the middle of an evaluation (its state lost) restarts the evaluation."""
    data = crossed_model(3)
    theta, beta = np.array([0.8, 0.2, 0.3, 0.5]), np.array([-0.3, 0.6])
    d0 = LaplaceObjective(data).deviance(theta, beta)
    parts = split(data, 2, (1,))
    calls = {"n": 0}

    def run(method, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # after begin and one trial: partition 1 is rebuilt
            fresh = split(data, 2, (1,))[1]
            parts[1] = fresh
        return [getattr(p, method)(**kwargs) for p in parts]

    lossy = CrossedObjective(run, 12, PirlsControl())
    assert abs(lossy.deviance(theta, beta) - d0) <= 1e-9 * abs(d0)
    single = objective(data, 1, (1,))
    assert abs(single.deviance(theta, beta) - d0) <= 1e-9 * abs(d0)


def test_factors_not_in_one_chain_are_refused() -> None:
    data = crossed_model(4)
    # A second factor crossed with g but not declared crossed: it cannot be local.
    other = dataclasses.replace(data.blocks[1], group="other", codes=data.blocks[1].codes[::-1])
    data = dataclasses.replace(data, blocks=(*data.blocks, other))
    with pytest.raises(ValueError, match="not in the chain"):
        Structure(data, crossed=(1,))


# --- on a LocalCluster --------------------------------------------------------------------------
def crossed_frame(seed: int, n: int = 1500, n_g: int = 100, n_item: int = 10) -> pd.DataFrame:
    """Binary rows: g (intercept and slope on x), h within g, item crossed with g."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_g, n)
    h = rng.integers(0, 3, n)
    item = rng.integers(0, n_item, n)
    x = rng.normal(size=n)
    eta = -0.3 + 0.6 * x + rng.normal(scale=0.8, size=n_g)[g]
    eta += rng.normal(scale=0.4, size=n_g)[g] * x + rng.normal(scale=0.5, size=(n_g, 3))[g, h]
    eta += rng.normal(scale=0.7, size=n_item)[item]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "g": np.array([f"G{v:03d}" for v in range(n_g)])[g],
            "h": h,
            "item": np.array([f"I{v:02d}" for v in range(n_item)])[item],
        }
    )


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    yield from local_client()


def assert_same_fit(memory, fitted) -> None:
    same_fit(memory, fitted, se_rtol=1e-6, ranef_atol=1e-6)


@pytest.mark.parametrize(
    ("formula", "n_item", "link"),
    [
        ("y ~ x + (1 + x | g) + (1 | item)", 10, "logit"),
        ("y ~ x + (1 | g) + (1 | item)", 10, "logit"),
        # S^{-1} (90 x 90) large enough to be scattered to the workers.
        ("y ~ x + (1 | g/h) + (1 | item)", 90, "logit"),
        ("y ~ x + (1 | g) + (1 | item)", 10, "probit"),
    ],
)
def test_crossed_equals_in_memory_fit(client, formula: str, n_item: int, link: str) -> None:
    dd = pytest.importorskip("dask.dataframe")
    frame = crossed_frame(1, n_item=n_item)
    memory = glmm_binomial.fit(formula, frame, link=link)
    ddf = dd.from_pandas(frame, npartitions=2)
    fitted = glmm_binomial.fit(formula, ddf, client=client, link=link)
    assert fitted.converged and fitted.nobs == memory.nobs
    assert fitted.ngroups == memory.ngroups
    assert_same_fit(memory, fitted)
    # The workers' working copies are dropped at the end (threads: this process's registry).
    from glmm_binomial.distributed import crossed as distributed_crossed

    assert not distributed_crossed._REGISTRY
    np.testing.assert_allclose(fitted.predict(frame), memory.predict(frame), atol=1e-8)
    assert "item" in fitted.summary()
    if formula == "y ~ x + (1 | g) + (1 | item)" and link == "logit":
        again = glmm_binomial.fit(formula, ddf, client=client)
        assert again.loglik == fitted.loglik
        assert np.array_equal(again.params.to_numpy(), fitted.params.to_numpy())
        assert np.array_equal(again.theta, fitted.theta)


def test_a_log_link_fit_with_a_crossed_factor_equals_in_memory(client) -> None:
    # Rare successes (rates below the log link's bound of 1): it was refused on Dask.
    dd = pytest.importorskip("dask.dataframe")
    frame = crossed_frame(3, n_item=10)
    kept = np.random.default_rng(3).random(len(frame)) < 0.3
    frame = frame.assign(y=((frame["y"] == 1.0) & kept).astype(float))
    formula = "y ~ x + (1 | g) + (1 | item)"
    memory = glmm_binomial.fit(formula, frame, link="log")
    fitted = glmm_binomial.fit(
        formula, dd.from_pandas(frame, npartitions=2), client=client, link="log"
    )
    assert fitted.converged and memory.converged
    assert_same_fit(memory, fitted)


def test_crossed_refusals(client, monkeypatch) -> None:
    dd = pytest.importorskip("dask.dataframe")
    from glmm_binomial.distributed import crossed as distributed_crossed

    ddf = dd.from_pandas(crossed_frame(2, n=400, n_g=20), npartitions=2)
    monkeypatch.setattr(distributed_crossed, "DASK_CROSSED_LIMIT", 5)
    with pytest.raises(ValueError, match=r"DASK_CROSSED_LIMIT = 5.*ddf\.compute\(\)"):
        glmm_binomial.fit("y ~ x + (1 | g) + (1 | item)", ddf, client=client)
    with pytest.raises(ValueError, match="method='agq' needs every grouping factor nested"):
        glmm_binomial.fit("y ~ x + (1 | g) + (1 | item)", ddf, client=client, method="agq", n_agq=3)


def test_partitioning_factor_choice() -> None:
    """The candidate with the most levels among those not nested in a coarser one; every
    grouping factor not nested in it is crossed."""
    from glmm_binomial.distributed.crossed import crossed_plan

    g, h, item = ("g",), ("g", "h"), ("item",)
    learned = {
        "combos:('g',)": range(100),
        "combos:('item',)": range(12),
        "nested:g:('item',)": 40,  # items seen within one g: up to 40 (crossed)
        "nested:item:('g',)": 12,
        "nested:item:('g', 'h')": 5,
    }
    assert crossed_plan(["g", "item"], [g, h, item], learned) == ("g", [item])
    # A larger crossed factor becomes the partitioning one; g and g/h are then crossed.
    learned["combos:('item',)"] = range(500)
    assert crossed_plan(["g", "item"], [g, h, item], learned) == ("item", [g, h])
    # A single-variable factor nested in a coarser one (u in g) is not a partitioning choice.
    learned = {
        "combos:('g',)": range(100),
        "combos:('u',)": range(300),
        "combos:('item',)": range(12),
        "nested:g:('u',)": 1,
        "nested:g:('item',)": 40,
        "nested:u:('g',)": 3,
        "nested:u:('item',)": 80,
        "nested:item:('g',)": 12,
        "nested:item:('u',)": 6,
    }
    assert crossed_plan(["g", "u", "item"], [g, ("u",), item], learned) == ("g", [item])


@pytest.mark.skipif(
    not os.environ.get("GLMM_DASK_FAULT_TESTS"),
    reason="about 10 s with worker processes: set GLMM_DASK_FAULT_TESTS=1 to run it",
)
def test_worker_killed_during_crossed_fit(tmp_path) -> None:
    """A worker process killed in the middle of the mode search: the partitions it held are
    rebuilt from the Parquet files, the client restarts the evaluation and the fit ends at the
    in-memory optimum."""
    import sys

    import cloudpickle

    pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    pytest.importorskip("distributed")

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(sys.modules["_dask_support"])
    frame = crossed_frame(6, n=600, n_g=40, n_item=8)
    files = parquet_parts(frame, tmp_path)
    formula = "y ~ x + (1 | g) + (1 | item)"
    memory = glmm_binomial.fit(formula, frame)
    marker = tmp_path / "killed"
    with forked_process_client() as (_, c):
        c.register_plugin(kill_once(str(marker), after=20, task="call_partition"))
        fitted = glmm_binomial.fit(formula, dd.read_parquet(files))
    assert marker.exists()
    assert fitted.converged
    assert_same_fit(memory, fitted)
