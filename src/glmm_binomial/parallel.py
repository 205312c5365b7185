"""Pieces of work split between worker processes: the bootstrap's replicates, the power
simulations and the sampler's chains.

Each worker receives the shared state once (the pool's initializer) and then its pieces; the
outputs come back in the pieces' order, so a caller whose pieces carry their own seeds gets the
same result whatever the number of processes. `work` and the shared state must be picklable
(a module-level function) where the start method is spawn.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

S = TypeVar("S")
P = TypeVar("P")
R = TypeVar("R")


def default_start_method() -> str:
    """fork on Linux (a worker starts at once instead of after seconds of imports, and the
    arrays are shared copy-on-write); spawn elsewhere."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


def contiguous_pieces(items: list[P], n_jobs: int, largest: int) -> list[list[P]]:
    """items in contiguous pieces: one each in this process (n_jobs 1, so that a progress bar
    moves item by item), else about 8 per worker and at most `largest` items, so that the
    progress bar moves and the load evens out."""
    size = 1 if n_jobs == 1 else max(1, min(largest, len(items) // (8 * n_jobs)))
    return [items[i : i + size] for i in range(0, len(items), size)]


def check_start_method(start_method: str | None) -> None:
    """ValueError naming start_method when this platform does not offer it (None: the
    default)."""
    if start_method is not None and start_method not in multiprocessing.get_all_start_methods():
        raise ValueError(f"start_method {start_method!r} is not available on this platform")


def map_pieces(
    work: Callable[[S, P], R],
    shared: S,
    pieces: Iterable[P],
    n_jobs: int,
    start_method: str | None = None,
) -> Iterator[R]:
    """work(shared, piece) for each piece, in order: in this process when n_jobs is 1, else in
    n_jobs worker processes (start_method, default default_start_method())."""
    if n_jobs == 1:
        for piece in pieces:
            yield work(shared, piece)
        return
    context = multiprocessing.get_context(start_method or default_start_method())
    with ProcessPoolExecutor(
        max_workers=n_jobs, mp_context=context, initializer=_install, initargs=(work, shared)
    ) as pool:
        yield from pool.map(_run_piece, pieces)


_INSTALLED: tuple[Callable[[Any, Any], Any], Any] | None = None


def _install(work: Callable[[Any, Any], Any], shared: Any) -> None:
    global _INSTALLED
    _INSTALLED = (work, shared)


def _run_piece(piece: Any) -> Any:
    assert _INSTALLED is not None
    work, shared = _INSTALLED
    return work(shared, piece)
