"""Binomial generalized linear mixed models with lme4 formula syntax."""

from glmm_binomial import datasets

__version__ = "0.1.0"

__all__ = ["__version__", "datasets"]
