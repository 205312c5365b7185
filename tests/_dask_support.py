"""What the Dask tests share: a LocalCluster client and the comparison with an in-memory fit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def local_client() -> Iterator[Any]:
    """A client of a LocalCluster with two single-thread workers in this process (threads keep
    the start-up cheap); use as a module-scoped fixture."""
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@contextlib.contextmanager
def forked_process_client() -> Iterator[tuple[Any, Any]]:
    """A LocalCluster of two single-thread worker *processes* (forked, so that they start in a
    fraction of a second; a worker can then be killed) and its client."""
    import dask
    import distributed

    with (
        dask.config.set({"distributed.worker.multiprocessing-method": "fork"}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield cluster, c


def parquet_parts(frame: Any, directory: Path, parts: int = 3) -> str:
    """frame written as `parts` Parquet files (what Dask rebuilds a lost partition from); the
    glob that reads them."""
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[rows].to_parquet(directory / f"part{i}.parquet")
    return str(directory / "part*.parquet")


def kill_once(marker: str, after: int, task: str) -> Any:
    """A distributed WorkerPlugin that kills its worker process after `after` finished tasks
    whose name ends with `task`, once per cluster (a marker file created atomically makes sure
    only one worker dies, and only once). The caller registers this module with cloudpickle's
    register_pickle_by_value, so that forked workers can unpickle the plugin."""
    import os

    import distributed

    class KillOnce(distributed.WorkerPlugin):
        def __init__(self) -> None:
            self.count = 0

        def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
            if finish != "memory" or not distributed.utils.key_split(key).endswith(task):
                return
            self.count += 1
            if self.count < after:
                return
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
            os._exit(1)

    return KillOnce()


def assert_same_fit(
    memory: Any,
    fitted: Any,
    se_rtol: float = 1e-3,
    ranef_atol: float = 1e-5,
    estimate_atol: float = 1e-6,
) -> None:
    """The Dask fit equals the in-memory one: logLik to 1e-8 relative, estimates to 1e-6
    (estimate_atol)."""
    assert abs(fitted.loglik - memory.loglik) <= 1e-8 * abs(memory.loglik)
    np.testing.assert_allclose(
        fitted.params.to_numpy(), memory.params.to_numpy(), atol=estimate_atol
    )
    np.testing.assert_allclose(fitted.theta, memory.theta, atol=estimate_atol)
    np.testing.assert_allclose(fitted.bse.to_numpy(), memory.bse.to_numpy(), rtol=se_rtol)
    for name, frame in memory.ranef().items():
        other = fitted.ranef()[name]
        assert list(other.index) == list(frame.index)
        np.testing.assert_allclose(other.to_numpy(), frame.to_numpy(), atol=ranef_atol)


def rows_on_cluster(result: Any, result_type: Any = None) -> Any:
    """`result` as a fit to a Dask DataFrame would hold it: the same estimates on a model with
    the structure (names, levels, counts) but none of the rows, which stay on the cluster.
    result_type: the result class (default DaskGLMMResult)."""
    from glmm_binomial.distributed.result import ClusterModelData, DaskGLMMResult

    model = result.model
    rowless = ClusterModelData(
        np.zeros(0),
        np.zeros(0),
        np.zeros((0, model.n_fixed)),
        np.zeros(0),
        model.fixed_names,
        model.blocks,
        log_binomial_constant=model.log_binomial_constant,
        family=model.family,
        rows=model.n_obs,
    )
    return (result_type or DaskGLMMResult)(rowless, result.fit_output)
