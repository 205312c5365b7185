"""The progress bar of long runs (MCMC sweeps, bootstrap refits, power simulations).

tqdm (extra "progress"), or rich where the caller accepts it; shown on a terminal, or always
when asked (progress=True, then a missing library is an ImportError naming the extra).
"""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(
    total: int, progress: bool | None, label: str, unit: str, rich: bool = False
) -> Any:
    """An object with tqdm's update(n) and close(), or None: progress False, or None off a
    terminal, or no library installed when not asked for. rich: fall back to rich's progress
    when tqdm is missing."""
    if progress is False:
        return None
    if progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=label, unit=unit)
    except ImportError:
        pass
    if rich:
        try:
            from rich.progress import Progress
        except ImportError:
            pass
        else:
            return _RichBar(Progress(transient=True), total, label)
    if progress:
        needs = "tqdm or rich" if rich else "tqdm"
        raise ImportError(
            f"the progress bar needs {needs}: pip install 'glmm-binomial[progress]'"
        ) from None
    return None


class _RichBar:
    """rich's progress with tqdm's update/close."""

    def __init__(self, progress: Any, total: int, label: str) -> None:
        self.progress = progress
        self.progress.start()
        self.task = progress.add_task(label, total=total)

    def update(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def close(self) -> None:
        self.progress.stop()
