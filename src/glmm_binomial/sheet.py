"""GLMM_BINOMIAL, the spreadsheet function: kept importable here as ``glmm_binomial.sheet``.

The spreadsheet core lives in :mod:`glmm_binomial.frontends.sheet`; this name is the same
module object (so ``glmm_binomial.sheet.X`` reads and patches the core's ``X``).
"""

import sys
from typing import TYPE_CHECKING

from glmm_binomial.frontends import sheet as _core

sys.modules[__name__] = _core

if TYPE_CHECKING:  # the names type checkers see (the module is the core's)
    from glmm_binomial.frontends.sheet import FIXED_HEADER, GLMM_BINOMIAL, METHODS, glmm_binomial  # noqa: F401
