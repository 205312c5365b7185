"""How the client asks every partition of a Dask fit for something: one protocol.

A runner is a callable ``run(method, *per_partition, **shared)``: it calls the partition method
named `method` (partition.py, nested.py, crossed.py, vb.py) on every partition, with the
partition's item of each sequence in `per_partition` (one item per partition, in partition
order) and the keyword arguments `shared`, and returns the answers in partition order. The
client adds answers in that order, so the same input gives the same sums, bit for bit.
Everything the client computes from the partitions (the GLM start, the deviance and its
gradient, the variational bound, the conditional modes, the checks) goes through a runner:

* ``local_runner``: partitions held in this process (tests, and a reference);
* ``Partitions.read``: a call that does not change the partition (a read);
* ``Partitions.advance``: a call that moves the partition's state (its mode search's warm
  start) makes a new *version* of the partition (determinism by versions, below);
* ``Partitions.replace``: every partition replaced by a new one (other columns of its rows);
* ``crossed.PinnedRunner``: the joint mode search of factors crossed with the partitioning one
  (determinism by pinned working copies, crossed.py).

Determinism by versions. A partition whose answers depend on what it kept from the previous
call (a warm start) is never changed in place: every such call maps the current version to the
next one (``evaluate``: the rows shared read-only, the warm start and counters its own) and
its answer is read from the new version. Where Dask runs a task (it may copy a partition to an
idle worker, or keep copies on several; a copy is rebuilt as compactly as the original, see
nested.ModePartition.__reduce__) then cannot change the numbers, and a partition lost
with its worker is rebuilt from the task graph (the source files, the build, every version's
call with its small arguments), to the same bits: a fit with a killed worker gives the
undisturbed fit bit for bit. Between calls a version keeps its rows and its warm start u only.

Why the crossed partitions need the other mechanism: their mode search is a conversation
(begin, trial after trial, the gradient in two halves: several calls per evaluation, each
keeping a point with a factor of the partition's H on the worker), and its calls carry large
arrays (S^{-1}, q_c x q_c, up to 200 MB) that a replayable version chain would have to keep
alive for the whole fit. crossed.PinnedRunner keeps one working copy per partition on the worker
that holds it, pins the calls there and numbers them; a partition that missed a call (rebuilt
after a failure) answers LOST and the client restarts the evaluation. Reruns are bit-identical;
after a failure the fit converges to the same optimum (the restarted search starts elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from glmm_binomial.numerics import blas


class Runner(Protocol):
    """run(method, *per_partition, **shared): `method` of every partition (each given its item
    of each sequence in per_partition), the answers in partition order."""

    def __call__(self, method: str, *per_partition: Sequence[Any], **shared: Any) -> list[Any]:
        """The answers of every partition, in partition order."""


def local_runner(partitions: Sequence[Any]) -> Runner:
    """A Runner over partitions held in this process."""

    def run(method: str, *per_partition: Sequence[Any], **shared: Any) -> list[Any]:
        items = zip(*per_partition, strict=True) if per_partition else ([()] * len(partitions))
        return [
            getattr(p, method)(*item, **shared) for p, item in zip(partitions, items, strict=True)
        ]

    return run


# --- run on the workers -----------------------------------------------------------------------
def read_partition(
    state: Any, *items: Any, method: str, blas_threads: int | None, **shared: Any
) -> Any:
    """A call that does not change the partition: its answer."""
    with blas.blas_threads(blas_threads):
        return getattr(state, method)(*items, **shared)


@dataclass(frozen=True)
class Refused:
    """What a partition's build gives for rows the model cannot be fitted to (a ValueError's
    message): Partitions.drop_empty raises it on the client."""

    message: str


@dataclass(frozen=True)
class FailedCall:
    """The answer of a call that raised numpy's LinAlgError on a partition (a mode search whose
    factor is not positive definite far out on a trial step: in memory, no deviance there)."""

    message: str


def evaluate(state: Any, *items: Any, method: str, blas_threads: int | None, **shared: Any) -> Any:
    """The next version of the partition (Partition.next_version) after a call that moves its
    state, holding the call's answer as its ``output`` (a FailedCall for a LinAlgError, which
    the client raises: the partitions stay usable, and the worker logs no failed task)."""
    state = state.next_version()
    with blas.blas_threads(blas_threads):
        try:
            state.output = getattr(state, method)(*items, **shared)
        except np.linalg.LinAlgError as error:
            state.output = FailedCall(str(error))
    state.settle()
    return state


def output_of(state: Any) -> Any:
    """The answer of the call that made this version."""
    return state.output


def transform(state: Any, *, method: str, **shared: Any) -> Any:
    """The partition that replaces this one (e.g. the same rows on other columns)."""
    return getattr(state, method)(**shared)


def is_empty(state: Any) -> bool | str:
    """Whether a built partition holds no rows, or the message of a Refused build."""
    return state.message if isinstance(state, Refused) else state is None


def return_free_memory() -> int:
    """Ask glibc's allocator to return free pages to the operating system (malloc_trim, which
    also releases free pages between live blocks); 0 where there is no glibc."""
    try:
        import ctypes

        return int(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return 0


# --- the client side --------------------------------------------------------------------------
def release(futures: Sequence[Any]) -> None:
    """Release these futures now (the scheduler forgets what no one else holds). Not
    client.cancel: the scheduler reports a cancellation to every connected client, and a client
    connecting at that moment gets it together with its stream's first message, which
    distributed does not accept (`assert len(msg) == 1` in Client._ensure_connected)."""
    for future in futures:
        future.release()


class Partitions:
    """The persisted partitions of a Dask fit (futures of partition objects, in partition order)
    and the runners over them.

    client: the distributed.Client; states: the futures (None results, empty partitions, are
    dropped by drop_empty); blas_threads: the BLAS threads of the partitions' work;
    return_memory: after every evaluation the workers return free memory to the operating
    system (large fits: glibc keeps the pages freed between the partitions' arrays)."""

    def __init__(
        self, client: Any, states: list[Any], blas_threads: int | None, return_memory: bool
    ) -> None:
        self.client = client
        self.states = states
        self.blas_threads = blas_threads
        self.return_memory = return_memory

    def _gather(self, func: Callable[..., Any], *iterables: Sequence[Any], **kwargs: Any) -> Any:
        futures = self.client.map(func, *iterables, pure=False, **kwargs)
        try:
            return self.client.gather(futures)
        finally:
            del futures

    def drop_empty(self) -> None:
        """Forget the partitions that hold no rows (per-partition items then align with the
        partitions that do); ValueError with the message of a partition whose build refused
        its rows (the first in partition order)."""
        empty = self._gather(is_empty, self.states)
        refused = [e for e in empty if isinstance(e, str)]
        if refused:
            raise ValueError(refused[0])
        dropped = [s for s, e in zip(self.states, empty, strict=True) if e]
        self.states = [s for s, e in zip(self.states, empty, strict=True) if not e]
        release(dropped)

    def read(self, method: str, *per_partition: Sequence[Any], **shared: Any) -> list[Any]:
        """Runner for calls that do not change the partitions."""
        return list(
            self._gather(
                read_partition,
                self.states,
                *per_partition,
                method=method,
                blas_threads=self.blas_threads,
                **shared,
            )
        )

    def advance(self, method: str, *per_partition: Sequence[Any], **shared: Any) -> list[Any]:
        """Runner for calls that move the partitions' state: each from its current version to
        the next (module docstring). The arguments stay in the task graph (a lost partition
        replays its calls): keep them small."""
        previous = self.states
        self.states = self.client.map(
            evaluate,
            previous,
            *per_partition,
            pure=False,
            method=method,
            blas_threads=self.blas_threads,
            **shared,
        )
        answers = list(self._gather(output_of, self.states))
        if self.return_memory:
            # Each evaluation's temporaries leave freed memory between the partitions' arrays.
            self.client.run(return_free_memory)
        failed = [answer for answer in answers if isinstance(answer, FailedCall)]
        if failed:
            # As the in-memory objective, whose warm start a failed mode search leaves as it
            # was: every partition back to its version before the call, then the error (the
            # optimizer takes it as no deviance there).
            release(self.states)
            self.states = previous
            raise np.linalg.LinAlgError(failed[0].message)
        return answers

    def replace(self, method: str, **shared: Any) -> None:
        """Every partition replaced by the one its `method` returns. The old ones are released
        once the new ones are built (a lost worker's new partition is rebuilt through them from
        the task graph)."""
        self.states = self.client.map(transform, self.states, pure=False, method=method, **shared)

    def release(self) -> None:
        """Let the scheduler forget every partition (at the end of a fit)."""
        release(self.states)
        self.states = []
