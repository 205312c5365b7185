"""The import graph of src/glmm_binomial: no cycle, no private name imported across modules, no
import from a lower layer to a higher one, and ``import glmm_binomial.api`` stays light.

The graph is read from the source (ast), so it needs no import of the package: every
``import`` and ``from ... import`` counts, inside functions too (an import moved into a
function to dodge a cycle is still a cycle), except under ``if TYPE_CHECKING:`` (types only).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "glmm_binomial"

#: Layers from the lowest; a module may import its own layer and those below. A top-level
#: module or subpackage of glmm_binomial belongs to the layer that lists its name.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("arguments", "diagnostics", "family", "datasets", "progress", "parallel"),
    ("model",),
    ("numerics",),
    ("methods",),
    ("results",),
    ("power",),  # simulation-based power: built on results/ (simulate, the refit)
    ("distributed",),
    ("api",),
    ("frontends", "cli", "excel", "sheet"),  # cli.py, excel.py, sheet.py: the old paths' shims
)
#: Modules outside the layers: the package's lazy public surface and ``python -m``.
EXEMPT = frozenset({PACKAGE, f"{PACKAGE}.__main__"})

#: Inside results/: the parts of the fit (below the result's facts), the facts (ResultBase)
#: and the user-facing class composed above the post-fit modules (every other module).
RESULTS_BELOW_BASE = frozenset({"prediction", "aliases", "facts"})
RESULTS_BASE = "base"
RESULTS_TOP = "result"


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module of the package
    name: str | None  # name imported from target (None: the module itself)
    line: int


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages by __init__)."""
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is a module of the package."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


@cache
def imports() -> tuple[Import, ...]:
    """Every import of a package module by a package module (ast; TYPE_CHECKING skipped)."""
    known = modules()
    found = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_nodes(tree)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _owner(alias.name, known)
                    if target and target.startswith(PACKAGE):
                        found.append(Import(module, target, None, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                for alias in node.names:
                    full = f"{origin}.{alias.name}"
                    if full in known:  # a submodule: `from glmm_binomial.results import base`
                        found.append(Import(module, full, None, node.lineno))
                        continue
                    target = _owner(origin, known)
                    if target and target.startswith(PACKAGE):
                        found.append(Import(module, target, alias.name, node.lineno))
    return tuple(i for i in found if i.target != i.source)


def graph() -> dict[str, set[str]]:
    """Import edges between modules; a package's __init__ importing its own submodules (its
    re-exports) and imports of the root package (its lazy public names) are left out."""
    edges: dict[str, set[str]] = {m: set() for m in modules()}
    for i in imports():
        if i.target == PACKAGE or i.target.startswith(i.source + "."):
            continue
        edges[i.source].add(i.target)
    return edges


def cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def private_imports() -> list[Import]:
    """Names starting with one underscore imported from another module (not dunders, not
    submodules)."""
    return [
        i
        for i in imports()
        if i.name is not None and i.name.startswith("_") and not i.name.startswith("__")
    ]


def layer(module: str) -> int:
    head = module.split(".")[1]
    for rank, names in enumerate(LAYERS):
        if head in names:
            return rank
    raise AssertionError(f"{module} is in no layer: add {head!r} to LAYERS")


def upward_imports() -> list[Import]:
    """Imports from a lower layer to a higher one."""
    return [
        i
        for i in imports()
        if i.source not in EXEMPT and i.target not in EXEMPT and layer(i.target) > layer(i.source)
    ]


def describe(found: list[Import]) -> str:
    return "\n".join(
        f"{i.source} (line {i.line}) imports {i.name or 'the module'} from {i.target}"
        for i in found
    )


def in_distributed(module: str) -> bool:
    return module.startswith(f"{PACKAGE}.distributed")


# --- the reader itself ------------------------------------------------------------------------


def test_the_reader_sees_imports_in_functions_and_skips_type_checking(tmp_path, monkeypatch):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import low\n")
    (package / "sub" / "low.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from glmm_binomial.sub.high import High\n"
        "def f():\n"
        "    from ..sub import high\n"
        "    from .high import _private\n"
    )
    (package / "sub" / "high.py").write_text("import glmm_binomial.sub.low\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    imports.cache_clear()
    try:
        found = {(i.source, i.target, i.name) for i in imports()}
        assert found == {
            ("glmm_binomial.sub", "glmm_binomial.sub.low", None),
            ("glmm_binomial.sub.low", "glmm_binomial.sub.high", None),
            ("glmm_binomial.sub.low", "glmm_binomial.sub.high", "_private"),
            ("glmm_binomial.sub.high", "glmm_binomial.sub.low", None),
        }
        assert cycles() == [["glmm_binomial.sub.high", "glmm_binomial.sub.low"]]
        assert [i.name for i in private_imports()] == ["_private"]
    finally:
        imports.cache_clear()


def test_every_module_is_in_a_layer():
    for module in modules():
        if module not in EXEMPT and module != PACKAGE:
            layer(module)


# --- cycles -----------------------------------------------------------------------------------


def test_no_import_cycle():
    assert cycles() == []


# --- private names ----------------------------------------------------------------------------


def test_no_private_name_imported_across_modules():
    found = private_imports()
    assert not found, describe(found)


# --- layers -----------------------------------------------------------------------------------


def test_no_import_from_a_lower_layer_to_a_higher_one():
    found = upward_imports()
    assert not found, describe(found)


def test_post_fit_modules_take_the_facts_and_the_result_is_composed_above_them():
    """results/: the fit's parts < base (ResultBase) < post-fit modules < result (GLMMResult)."""

    def rank(module: str) -> int:
        name = module.removeprefix(f"{PACKAGE}.results").lstrip(".")
        if name in RESULTS_BELOW_BASE:
            return 0
        if name == RESULTS_BASE:
            return 1
        if name == RESULTS_TOP:
            return 3
        return 2  # the package's __init__ and every post-fit module

    results = f"{PACKAGE}.results"
    found = [
        i
        for i in imports()
        if i.source.startswith(results + ".")
        and i.target.startswith(results + ".")
        and rank(i.target) >= rank(i.source)
        and not (rank(i.source) == 2 and rank(i.target) == 2)  # post-fit among themselves
        and not (rank(i.source) == 0 and rank(i.target) == 0)
    ]
    assert not found, describe(found)


# --- what `import glmm_binomial.api` loads ----------------------------------------------------

PROBE = r"""
import json, sys
import glmm_binomial.api
print(json.dumps(sorted(sys.modules)))
"""


@cache
def api_modules() -> tuple[str, ...]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return tuple(json.loads(out.stdout.splitlines()[-1]))


def test_importing_the_api_loads_no_dask_and_no_matplotlib():
    # (pandas itself may load pyarrow when installed: not ours to avoid.)
    heavy = [m for m in api_modules() if m.split(".")[0] in ("dask", "distributed", "matplotlib")]
    assert heavy == []


def test_importing_the_api_loads_no_module_of_the_dask_driver():
    assert [m for m in api_modules() if in_distributed(m)] == []


def test_graph_has_the_layers_modules():
    """The reader found the package (a guard against a path that silently reads nothing)."""
    edges = defaultdict(set, graph())
    assert f"{PACKAGE}.results.base" in edges[f"{PACKAGE}.results.result"]
    assert f"{PACKAGE}.results.base" in edges[f"{PACKAGE}.results.profile"]
