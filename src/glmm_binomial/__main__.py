"""``python -m glmm_binomial``: the ``glmm-binomial`` command."""

from glmm_binomial.frontends.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
