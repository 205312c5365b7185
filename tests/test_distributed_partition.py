"""A Dask partition's rows (distributed/partition.py) are built as the in-memory fit builds them,
from the fit's DesignInfo; the runner protocol in one process (distributed/runner.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from glmm_binomial.distributed.partition import ROW_COLUMN, local_codes, partition_rows
from glmm_binomial.distributed.runner import local_runner
from glmm_binomial.distributed.start import runaway_rows
from glmm_binomial.model.data import ModelData
from glmm_binomial.model.design import build_model
from glmm_binomial.model.separation import largest_row_variance, runaway_blocks


def frame(seed: int = 2, n: int = 240) -> pd.DataFrame:
    """A factor response with weights, a factor, an object column of numbers, an offset column
    and an offset term, a random slope and a second grouping factor nested in the first."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 12, n)
    out = pd.DataFrame(
        {
            "y": np.where(rng.random(n) < 0.4, "yes", "no"),
            "x": rng.normal(size=n),
            "xo": [f"{v:.3f}" for v in rng.normal(size=n)],
            "f": rng.choice(["b", "a", "c"], size=n),
            "w": rng.integers(1, 4, n).astype(float),
            "o": 0.1 * rng.normal(size=n),
            "e": rng.uniform(1.0, 2.0, n),
            "g": np.array([f"G{v:02d}" for v in range(12)])[g],
            "h": rng.integers(0, 3, n),
        }
    )
    # Text that reads as numbers, in an object column (as read.csv would read it: numbers).
    out["xo"] = out["xo"].astype(object)
    return out


FORMULA = "y ~ x + xo + f + offset(log(e)) + (1 + x | g) + (1 | g:h)"


def test_partition_rows_are_the_in_memory_rows() -> None:
    data = frame()
    model, info = build_model(FORMULA, data, weights="w", offset="o")
    # What the in-memory build records of how it read the columns.
    kinds = {reading.name: reading.kind for reading in info.columns}
    assert kinds["xo"] == "number" and kinds["f"] == "factor"
    assert info.response_levels == ("no", "yes")
    assert info.weights_column == "w"
    rows, keys = partition_rows(data.assign(**{ROW_COLUMN: np.arange(len(data))}), info)
    assert rows.fixed_names == model.fixed_names
    np.testing.assert_array_equal(rows.x, model.x)
    np.testing.assert_array_equal(rows.successes, model.successes)
    np.testing.assert_array_equal(rows.trials, model.trials)
    np.testing.assert_array_equal(rows.offset, model.offset)
    for block, where, expected in zip(rows.blocks, keys, model.blocks, strict=True):
        assert block.terms == expected.terms
        np.testing.assert_array_equal(block.z, expected.z)
        np.testing.assert_array_equal(where[block.codes], expected.codes)


def test_a_part_of_the_rows_is_coded_in_the_levels_of_all() -> None:
    # The rows of a few groups, shuffled (a partition after the shuffle): put back in their
    # original order, every block coded by the part's own levels, keys into all levels.
    data = frame(3)
    model, info = build_model(FORMULA, data, weights="w", offset="o")
    chosen = np.flatnonzero(data["g"].isin(["G01", "G05", "G06", "G11"]).to_numpy())
    part = data.assign(**{ROW_COLUMN: np.arange(len(data))}).iloc[chosen[::-1]]
    rows, keys = partition_rows(part, info)
    np.testing.assert_array_equal(rows.x, model.x[chosen])
    for block, where, expected in zip(rows.blocks, keys, model.blocks, strict=True):
        assert block.n_levels == len(np.unique(expected.codes[chosen]))
        np.testing.assert_array_equal(where[block.codes], expected.codes[chosen])
        assert np.all(np.diff(where) > 0)  # the part's levels in the order of all levels


def test_local_codes() -> None:
    present, local = local_codes(np.array([7, 2, 7, 4, 2]), 9)
    np.testing.assert_array_equal(present, [2, 4, 7])
    np.testing.assert_array_equal(local, [2, 0, 2, 1, 0])


def test_local_runner_hands_each_partition_its_items() -> None:
    class Part:
        def __init__(self, scale: float) -> None:
            self.scale = scale

        def times(self, item: float, shift: float = 0.0) -> float:
            return self.scale * item + shift

    run = local_runner([Part(1.0), Part(10.0)])
    assert run("times", [2.0, 3.0], shift=1.0) == [3.0, 31.0]


def test_a_partition_copied_to_another_worker_gives_the_same_bits() -> None:
    # Dask pickles a partition to copy it; its compact columns (broadcast trials and offset)
    # must come back compact, or a dot product with them rounds differently.
    import pickle

    from glmm_binomial.distributed.nested import ModePartition
    from glmm_binomial.distributed.vb import VariationalPartition
    from glmm_binomial.methods.laplace import Laplace
    from glmm_binomial.methods.variational import MeanFieldVB

    data = frame(4)
    _, info = build_model("y ~ x + (1 + x | g)", data)
    rows, keys = partition_rows(data.assign(**{ROW_COLUMN: np.arange(len(data))}), info)
    theta, beta = np.array([0.7, 0.1, 0.3]), np.array([-0.4, 0.2])
    original = ModePartition(rows, keys, Laplace())
    assert original.data.trials.strides == (0,)
    first = original.next_version()
    first.deviance_and_gradient(theta, beta)
    first.settle()
    copied = pickle.loads(pickle.dumps(first))
    assert copied.data.trials.strides == (0,)
    assert copied.data.blocks[0].z is copied.data.x  # Z = X stored once
    step = theta * 1.01, beta + 0.01
    a = first.next_version().deviance_and_gradient(*step)
    b = copied.next_version().deviance_and_gradient(*step)
    assert a[0][0] == b[0][0] and a[1:] == b[1:]
    assert np.array_equal(a[0][1], b[0][1]) and np.array_equal(a[0][2], b[0][2])
    _, info = build_model("y ~ x + (1 | g)", data)
    rows, keys = partition_rows(data.assign(**{ROW_COLUMN: np.arange(len(data))}), info)
    vb = VariationalPartition(rows, keys, MeanFieldVB())
    again = pickle.loads(pickle.dumps(vb))
    assert again.data.trials.strides == (0,)
    assert again.glm_value(beta) == vb.glm_value(beta)


class RowsRead:
    """Partitions.read of row_variances over two halves of a model's rows, counting calls."""

    def __init__(self, model: ModelData) -> None:
        n = model.n_obs
        self.halves = [model.take(np.arange(0, n // 2)), model.take(np.arange(n // 2, n))]
        self.calls = 0

    def read(self, method: str, lambdas: list[np.ndarray]) -> list[list[float]]:
        assert method == "row_variances"
        self.calls += 1
        return [
            [largest_row_variance(b.z, lam) for b, lam in zip(half.blocks, lambdas, strict=True)]
            for half in self.halves
        ]


def test_runaway_rows_is_the_in_memory_screen_read_only_past_its_bound() -> None:
    """distributed.start.runaway_rows: the in-memory runaway_blocks screen (a row's
    random-effect SD beyond the limit) over the partitions, the rows read only where the bound
    sum_j SD_j max |z_j| passes the limit."""
    data = frame().assign(x=lambda d: 10.0 * d["x"] + 100.0)
    model, _ = build_model("y ~ x + (1 + x | g)", data, weights="w")
    x = model.blocks[0].z[:, 1]
    spread = np.max(np.abs(model.blocks[0].z), axis=0)
    start = SimpleNamespace(z_spread=[spread])
    rng = np.random.default_rng(5)
    limit = 20.0
    for scale in (1e-3, 0.05, 0.2, 1.0):
        for _ in range(20):
            lower = np.tril(rng.normal(size=(2, 2))) * np.array([1.0, scale])[:, None]
            theta = np.array([lower[0, 0], lower[1, 0], lower[1, 1]])
            rows = RowsRead(model)
            found = runaway_rows(rows, model, start, theta, limit)  # type: ignore[arg-type]
            assert found == runaway_blocks(model, theta, limit)
            bound = float(np.sqrt(np.sum(lower * lower, axis=1)) @ spread)
            assert rows.calls == (1 if bound > limit else 0)
    # Intercept and slope perfectly correlated, cancelling on these rows: each column's SD
    # times its largest |z| passes the limit (the screen per column gathered the rows), no
    # row's SD does.
    slope = 30.0 / float(x.max() - x.min())
    intercept = -slope * float(x.max() + x.min()) / 2.0
    theta = np.array([intercept, slope, 0.0])
    assert min(abs(intercept) * spread[0], slope * spread[1]) > limit
    rows = RowsRead(model)
    assert not runaway_rows(rows, model, start, theta, limit)  # type: ignore[arg-type]
    assert rows.calls == 1 and not runaway_blocks(model, theta, limit)
    theta[1] *= 1.5
    assert runaway_rows(RowsRead(model), model, start, theta, limit)  # type: ignore[arg-type]
