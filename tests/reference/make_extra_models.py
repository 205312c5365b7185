"""Reference fits of extra model shapes (correlated slopes on the smaller crossed factor,
uncorrelated ||, nested /, a slope on a 3-level factor) by glmer and glmmTMB, through
make_reference.R. Needs R with lme4 and glmmTMB; run from the repository root:

    python tests/reference/make_extra_models.py ../shared/data > tests/reference/extra_models.json
"""

import json
import subprocess
import sys

CASES = [
    (
        "verbagg",
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 + Gender | item)",
        ["id", "item", "Gender", "btype", "situ"],
    ),
    (
        "contraception",
        "use ~ age + urban + livch + (1 + urban || district)",
        ["district", "urban", "livch"],
    ),
    ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd/period)", ["herd", "period"]),
    ("verbagg", "r2 ~ Anger + btype + (1 + btype | id)", ["id", "btype"]),
]


def main(data_dir: str) -> None:
    out = []
    for dataset, formula, factors in CASES:
        record = {"dataset": dataset, "formula": formula, "fits": {}}
        for engine in ("glmer", "glmmTMB"):
            done = subprocess.run(
                [
                    "Rscript",
                    "tests/reference/make_reference.R",
                    f"{data_dir}/{dataset}.csv",
                    formula,
                    "1",
                    engine,
                    "1",
                    *factors,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            record["fits"][engine] = json.loads(done.stdout)
        out.append(record)
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
