"""The ``glmm-binomial`` command: kept importable here as ``glmm_binomial.cli``.

The command lives in :mod:`glmm_binomial.frontends.cli`; this name is the same module object.
"""

import sys
from typing import TYPE_CHECKING

from glmm_binomial.frontends import cli as _core

sys.modules[__name__] = _core

if TYPE_CHECKING:  # the names type checkers see (the module is the core's)
    from glmm_binomial.frontends.cli import main  # noqa: F401
