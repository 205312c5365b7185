"""Cap the threads of the BLAS libraries loaded in this process during a fit.

Our BLAS calls are small (n x p products with p of a few, dense blocks of a few hundred), and
on a machine with few cores OpenBLAS's threads cost more than they save: one thread made fits
1.3 to 2.3 times faster on an idle 2-core machine and up to 13 times faster on a busy one
(bench/README.md). threadpoolctl is used when installed; otherwise, on Linux, the OpenBLAS
copies that numpy and scipy load are found in /proc/self/maps and called through ctypes. Either
way the libraries are looked up once per process (the first capped block), not at every fit.
Anything else is left alone: a failure here only costs speed.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


@functools.lru_cache(maxsize=1)
def _openblas_libraries() -> tuple[tuple[Any, Any], ...]:
    """(setter, getter) pairs of every OpenBLAS mapped into this process (Linux only)."""
    found: list[tuple[Any, Any]] = []
    seen: set[str] = set()
    try:
        # Imported here: some Python builds (browsers, sandboxes) have no ctypes.
        import ctypes
    except ImportError:
        return ()
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = [line.split()[-1] for line in maps if "openblas" in line.lower()]
    except OSError:
        return ()
    for path in paths:
        if path in seen or ".so" not in path:
            continue
        seen.add(path)
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            getter = name.replace("set_num_threads", "get_num_threads")
            if hasattr(lib, name) and hasattr(lib, getter):
                setter_fn, getter_fn = getattr(lib, name), getattr(lib, getter)
                setter_fn.argtypes = [ctypes.c_int]
                getter_fn.restype = ctypes.c_int
                found.append((setter_fn, getter_fn))
                break
    return tuple(found)


_LOCK = threading.Lock()
_ACTIVE: dict[str, Any] = {"count": 0, "stack": None}


@contextlib.contextmanager
def blas_threads(limit: int | None) -> Iterator[None]:
    """Within the block, BLAS uses at most `limit` threads (None: leave BLAS alone).

    The setting is global to the process: blocks running at the same time in several threads
    (Dask workers sharing a process) share the first one's cap, and the last to leave restores
    the previous setting, so that no block sees its cap lifted under it (the thread count
    changes how OpenBLAS splits sums, hence their rounding)."""
    if limit is None:
        yield
        return
    with _LOCK:
        if _ACTIVE["count"] == 0:
            stack = contextlib.ExitStack()
            stack.enter_context(_capped(limit))
            _ACTIVE["stack"] = stack
        _ACTIVE["count"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE["count"] -= 1
            if _ACTIVE["count"] == 0:
                _ACTIVE["stack"].close()
                _ACTIVE["stack"] = None


@functools.lru_cache(maxsize=1)
def _controller() -> Any:
    """threadpoolctl's ThreadpoolController, made once per process (it reads the loaded
    libraries from /proc/self/maps, milliseconds each time); None without threadpoolctl, then
    the OpenBLAS copies are found once (_openblas_libraries)."""
    try:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-not-found]
    except ImportError:
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def _capped(limit: int) -> Iterator[None]:
    controller = _controller()
    if controller is not None:
        with controller.limit(limits=limit, user_api="blas"):
            yield
        return
    libraries = _openblas_libraries()
    previous = []
    for setter, getter in libraries:
        try:
            previous.append(int(getter()))
            setter(limit)
        except (OSError, ValueError):
            previous.append(-1)
    try:
        yield
    finally:
        for (setter, _), old in zip(libraries, previous, strict=True):
            if old > 0:
                setter(old)
