"""GLMM_BINOMIAL for Excel through xlwings: ``from glmm_binomial.excel import GLMM_BINOMIAL``.

The adapter lives in :mod:`glmm_binomial.frontends.excel`; this name is the same module object.
"""

import sys
from typing import TYPE_CHECKING

from glmm_binomial.frontends import excel as _core

sys.modules[__name__] = _core

if TYPE_CHECKING:  # the names type checkers see (the module is the core's)
    from glmm_binomial.frontends.excel import GLMM_BINOMIAL  # noqa: F401
