"""Structured variational Bayes (method "vb") on Dask partitions (distributed/structured_vb.py)
against the in-memory fit: first on partitions held in this process (any split of the groups,
versions and copies of partitions), then on a LocalCluster.

Tolerances: the partitions' sums are added in another order than the in-memory sums over all
rows, which moves the last digits of every sum; the optimizer (inner loops stopped at their
tolerances, BFGS on a profiled ELBO that is flat near the optimum) carries that into the
estimates. Here, where it takes the in-memory path (the same evaluations), they agree to 1e-9
relative at most (posterior means, SDs, theta, random effects and their SDs; 1e-15 for one
random intercept), the ELBO to 1e-14 and the Laplace logLik at the posterior means (a fresh
mode search per partition) to 1e-11. Where the rounding changes a decision of the optimizer,
the two stop at points that agree to the optimizer's own accuracy (bench/bench_dask_vb.py:
up to 8e-8 relative on 96,700 rows). The tests ask 1e-6 relative for the estimates and 1e-9
for the ELBO and logLik.
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _dask_support import local_client
from conftest import CBPP, REFERENCE_DIR

import glmm_binomial as g
from glmm_binomial.diagnostics import BoundaryWarning, RankDeficiencyWarning, SeparationWarning
from glmm_binomial.distributed.result import rowless_model
from glmm_binomial.distributed.runner import local_runner
from glmm_binomial.distributed.structured_vb import (
    StructuredPartition,
    fit_partitioned_structured_vb,
)
from glmm_binomial.methods.estimates import FitOutput
from glmm_binomial.methods.structured_vb import VariationalBayes, fit_structured_vb
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.model.design import build_model

ESTIMATE_RTOL = 1e-6  # posterior means and SDs, theta, random effects and their SDs (relative)
ELBO_RTOL = 1e-9
LOGLIK_RTOL = 1e-9

CONTRACEPTION = "use ~ age + urban + livch + (1 | district)"
CONTRACEPTION_SLOPE = "use ~ age + urban + livch + (1 + urban | district)"
REPELLING = "y ~ x + (1 + x | a/b)"  # on vb_repelling_weights.csv


def simulate(seed: int, n_groups: int = 30, per: int = 12) -> pd.DataFrame:
    """Binary rows in n_groups groups g, with a random slope on x and h nested in g."""
    rng = np.random.default_rng(seed)
    g_codes = np.repeat(np.arange(n_groups), per)
    rng.shuffle(g_codes)
    n = g_codes.size
    x = rng.normal(size=n)
    h = rng.integers(0, 3, size=n)
    eta = -0.3 + 0.6 * x + rng.normal(scale=0.8, size=n_groups)[g_codes]
    eta += rng.normal(scale=0.5, size=n_groups)[g_codes] * x
    eta += rng.normal(scale=0.6, size=(n_groups, 3))[g_codes, h]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
    return pd.DataFrame({"y": y, "x": x, "g": [f"G{v:02d}" for v in g_codes], "h": h})


def split(data: ModelData, n_parts: int, outer: int = 0) -> list[StructuredPartition]:
    """Partitions holding whole levels of block `outer` (every other block nested in it), each
    block coded by the partition's own levels, as distributed.build_partition makes them."""
    part_of = np.arange(data.blocks[outer].n_levels) % n_parts
    out = []
    for p in range(n_parts):
        rows = np.flatnonzero(part_of[data.blocks[outer].codes] == p)
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
        )
        out.append(StructuredPartition(sub, tuple(keys), VariationalBayes()))
    return out


def rowless(data: ModelData, parts: list[StructuredPartition]) -> ModelData:
    constant = sum(p.data.log_binomial_constant for p in parts)
    return rowless_model(data.fixed_names, data.blocks, log_binomial_constant=constant, rows=0)


def assert_same_output(fitted: FitOutput, memory: FitOutput) -> None:
    np.testing.assert_allclose(fitted.beta, memory.beta, rtol=ESTIMATE_RTOL)
    np.testing.assert_allclose(fitted.vcov_beta, memory.vcov_beta, rtol=ESTIMATE_RTOL)
    np.testing.assert_allclose(fitted.theta, memory.theta, rtol=ESTIMATE_RTOL)
    assert abs(fitted.elbo - memory.elbo) <= ELBO_RTOL * abs(memory.elbo)
    assert abs(fitted.loglik - memory.loglik) <= LOGLIK_RTOL * abs(memory.loglik)
    for ours, theirs in zip(fitted.ranef, memory.ranef, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=ESTIMATE_RTOL, atol=1e-12)
    for ours, theirs in zip(fitted.ranef_cov, memory.ranef_cov, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=ESTIMATE_RTOL, atol=1e-14)
    assert fitted.converged and memory.converged
    assert fitted.warnings == memory.warnings


# --- partitions in this process -------------------------------------------------------------
@pytest.mark.parametrize(
    ("formula", "n_parts"),
    [
        (CBPP, 1),
        (CBPP, 4),
        ("y ~ x + (1 + x | g)", 3),
        ("y ~ x + (1 | g/h)", 2),
        (REPELLING, 3),
    ],
    ids=["cbpp-1", "cbpp-4", "slope-3", "nested-2", "damped-3"],
)
def test_any_split_of_the_groups_equals_in_memory(formula: str, n_parts: int) -> None:
    """damped-3: the inner loops' weights damped (test_structured_vb.py's
    test_a_repelling_fixed_point_of_the_weights_is_damped), which the partitions follow."""
    if formula == CBPP:
        frame = g.datasets.load("cbpp")
    elif formula == REPELLING:
        frame = pd.read_csv(REFERENCE_DIR / "vb_repelling_weights.csv")
    else:
        frame = simulate(1, n_groups=16, per=10)
    data, _ = build_model(formula, frame)
    outer = next(t for t, b in enumerate(data.blocks) if b.group in ("herd", "g", "a"))
    parts = split(data, n_parts, outer)
    run = local_runner(parts)
    fitted = fit_partitioned_structured_vb(run, run, rowless(data, parts), VariationalBayes())
    memory = fit_structured_vb(data)
    assert_same_output(fitted, memory)
    assert fitted.opt_summary.evaluations == memory.opt_summary.evaluations


def _same(a: Any, b: Any) -> bool:
    """Equal bit for bit (arrays, numbers, and tuples, lists and dataclasses of them)."""
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a):
        return _same(dataclasses.astuple(a), dataclasses.astuple(b))  # type: ignore[arg-type]
    return bool(a == b)


def test_versions_and_copies_of_partitions_give_the_same_bits() -> None:
    """Every call that moves a partition's state goes to a new version (as Partitions.advance
    does); each is replayed on a pickled copy of the previous version (what Dask does with a
    partition copied to another worker, or rebuilt after a lost worker) and gives the same
    answer bit for bit; the fit is the one of partitions changed in place."""
    data, _ = build_model("y ~ x + (1 + x | g)", simulate(2, n_groups=8, per=10))
    versions = split(data, 2)
    replays = {"n": 0}

    def advance(method: str, **shared: Any) -> list[Any]:
        answers = []
        for i, previous in enumerate(versions):
            version = previous.next_version()
            answer = getattr(version, method)(**shared)
            copied = pickle.loads(pickle.dumps(previous)).next_version()
            assert _same(getattr(copied, method)(**shared), answer), method
            replays["n"] += 1
            versions[i] = version
            answers.append(answer)
        return answers

    def read(method: str, **shared: Any) -> list[Any]:
        return [getattr(p, method)(**shared) for p in versions]

    model = rowless(data, versions)
    fitted = fit_partitioned_structured_vb(advance, read, model, VariationalBayes())
    parts = split(data, 2)
    run = local_runner(parts)
    in_place = fit_partitioned_structured_vb(run, run, model, VariationalBayes())
    assert replays["n"] > 100
    assert _same(fitted.beta, in_place.beta) and _same(fitted.theta, in_place.theta)
    assert fitted.elbo == in_place.elbo and _same(fitted.ranef_cov, in_place.ranef_cov)


def test_separation_is_flagged_as_not_checked() -> None:
    # y is 1 exactly when x > 0: in memory the linear programs find it; on the partitions the
    # posterior's screen fires and the warning says that separation is possible and was not
    # checked (the programs need every row).
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    frame = pd.DataFrame({"y": (x > 0).astype(float), "x": x, "g": rng.integers(0, 6, 60)})
    data, _ = build_model("y ~ x + (1 | g)", frame)
    memory = fit_structured_vb(data)
    parts = split(data, 2)
    run = local_runner(parts)
    fitted = fit_partitioned_structured_vb(run, run, rowless(data, parts), VariationalBayes())
    np.testing.assert_allclose(fitted.beta, memory.beta, rtol=ESTIMATE_RTOL)
    # Separation unchecked does not stop the variance check there (it may add its warning).
    assert fitted.warnings[0].category is SeparationWarning
    assert all(w.category is BoundaryWarning for w in fitted.warnings[1:])
    assert [w.category for w in memory.warnings] == [SeparationWarning]
    assert "complete separation" in memory.warnings[0]
    assert "possible separation" in fitted.warnings[0]
    assert "not run on a Dask DataFrame" in fitted.warnings[0]


def test_unchecked_separation_leaves_the_variance_check_to_run() -> None:
    """tests/reference/vb_prior_tail_boundary.csv (bench/metamorphic.py's nested:68): the
    intercept's posterior mean (-3.5) lies in its prior's tail, so separation is checked; in
    memory it is not found and the variance check warns for both terms. On the partitions the
    separation is only said to be possible, and the variance check ran no more (fuzz_dask
    68): it runs now, with the in-memory fit's warnings."""
    frame = pd.read_csv(REFERENCE_DIR / "vb_prior_tail_boundary.csv")
    data, _ = build_model("y ~ x + (1 | a/b)", frame)
    memory = fit_structured_vb(data)
    parts = split(data, 2)
    run = local_runner(parts)
    fitted = fit_partitioned_structured_vb(run, run, rowless(data, parts), VariationalBayes())
    assert [w.category for w in memory.warnings] == [BoundaryWarning, BoundaryWarning]
    assert [w.category for w in fitted.warnings] == [SeparationWarning] + [BoundaryWarning] * 2
    assert "possible separation" in fitted.warnings[0]
    assert list(fitted.warnings[1:]) == list(memory.warnings)


# --- on a LocalCluster --------------------------------------------------------------------------
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

client = pytest.fixture(scope="module")(local_client)


def assert_same_fit(fitted: Any, memory: Any) -> None:
    """The Dask result equals the in-memory one (ESTIMATE_RTOL, ELBO_RTOL, LOGLIK_RTOL)."""
    assert fitted.method == memory.method == "vb" and fitted.converged
    np.testing.assert_allclose(fitted.params, memory.params, rtol=ESTIMATE_RTOL)
    np.testing.assert_allclose(fitted.bse, memory.bse, rtol=ESTIMATE_RTOL)
    np.testing.assert_allclose(fitted.vcov, memory.vcov, rtol=ESTIMATE_RTOL)
    np.testing.assert_allclose(fitted.theta, memory.theta, rtol=ESTIMATE_RTOL)
    pd.testing.assert_frame_equal(fitted.varcorr, memory.varcorr, rtol=ESTIMATE_RTOL)
    assert abs(fitted.elbo - memory.elbo) <= ELBO_RTOL * abs(memory.elbo)
    assert abs(fitted.loglik - memory.loglik) <= LOGLIK_RTOL * abs(memory.loglik)
    for name, frame in memory.ranef(condvar=True).items():
        ours = fitted.ranef(condvar=True)[name]
        assert list(ours.index) == list(frame.index) and list(ours.columns) == list(frame.columns)
        np.testing.assert_allclose(ours.to_numpy(), frame.to_numpy(), rtol=ESTIMATE_RTOL)
    assert fitted.warnings == memory.warnings


@pytest.mark.parametrize(
    ("dataset", "formula", "npartitions"),
    [
        ("cbpp", CBPP, 3),
        ("contraception", CONTRACEPTION, 2),
        ("contraception", CONTRACEPTION_SLOPE, 2),
    ],
    ids=["cbpp", "contraception", "contraception-slope"],
)
def test_equals_in_memory_fit(client, dataset: str, formula: str, npartitions: int) -> None:
    frame = g.datasets.load(dataset)
    memory = g.fit(formula, frame, method="vb")
    fitted = g.fit(formula, dd.from_pandas(frame, npartitions=npartitions), method="vb")
    assert_same_fit(fitted, memory)
    assert fitted.warnings == ()
    assert "ELBO, a lower bound on the log evidence" in fitted.summary()


def test_same_bits_for_any_number_of_workers(client) -> None:
    """An offset and an aliased column (the partitions rebuilt without it): the in-memory
    fit; two runs, and a run on one worker, give the same bits (another arrangement of the
    groups in partitions gives the same fit up to rounding, and nested factors: the tests
    above)."""
    frame = simulate(3, n_groups=20, per=10).assign(x2=lambda f: 2.0 * f["x"], o=0.1)
    formula = "y ~ x + x2 + offset(o) + (1 | g)"
    ddf = dd.from_pandas(frame, npartitions=3)
    with pytest.warns(RankDeficiencyWarning, match="'x2'"):
        memory = g.fit(formula, frame, method="vb")
    with pytest.warns(RankDeficiencyWarning, match="'x2'"):
        first = g.fit(formula, ddf, method="vb")
    assert_same_fit(first, memory)
    with pytest.warns(RankDeficiencyWarning):
        again = g.fit(formula, ddf, method="vb")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as one_worker,
        pytest.warns(RankDeficiencyWarning),
    ):
        alone = g.fit(formula, ddf, method="vb", client=one_worker)
    for other in (again, alone):
        assert other.elbo == first.elbo and other.loglik == first.loglik
        assert np.array_equal(other.params.to_numpy(), first.params.to_numpy())
        assert np.array_equal(other.vcov.to_numpy(), first.vcov.to_numpy())
        assert np.array_equal(other.theta, first.theta)
        for name, covariances in first.ranef_cov().items():
            assert np.array_equal(other.ranef_cov()[name], covariances)


def test_crossed_factors_are_refused(client) -> None:
    rng = np.random.default_rng(4)
    n = 200
    frame = pd.DataFrame(
        {
            "y": rng.integers(0, 2, n).astype(float),
            "x": rng.normal(size=n),
            "g": rng.integers(0, 10, n),
            "item": rng.integers(0, 7, n),
        }
    )
    ddf = dd.from_pandas(frame, npartitions=2)
    with pytest.raises(
        ValueError,
        match=r"method='vb' needs every grouping factor nested in one outermost factor.*"
        r"ddf\.compute\(\)",
    ):
        g.fit("y ~ x + (1 | g) + (1 | item)", ddf, method="vb")
