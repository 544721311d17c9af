"""The import graph of ember's packages has no cycle.

Every `import` of an ember module counts, at the top of a file or inside a
function: a function-local import that closes a cycle is still a cycle, only
one hidden until the call. The test builds the graph of every module (nodes are
modules, edges are imports) from the source and fails naming the cycle.
"""

from __future__ import annotations

import ast
import pathlib

import networkx as nx

ROOT = pathlib.Path(__file__).resolve().parent.parent
# NOTE: the folders that install as ember's subpackages (pyproject.toml's package-dir)
PACKAGES = {"public": "ember", "tracer": "ember.tracer", "ir": "ember.ir",
            "ir/passes": "ember.ir.passes", "codegen": "ember.codegen",
            "runtime": "ember.runtime", "nn": "ember.nn", "optim": "ember.optim",
            "benchmarks": "ember.benchmarks"}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            out[name] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The ember modules an import statement names (a `from . import x` names x)."""
    if node.level:
        parts = module.split(".")
        base = parts if is_package else parts[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{a.name}" for a in node.names]


def import_graph() -> nx.DiGraph:
    """Modules of ember and the imports between them (top-level and function-local)."""
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        is_package = path.stem == "__init__"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                targets = _resolve(name, is_package, node)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target in modules and target != name:
                    graph.add_edge(name, target, line=node.lineno)
    return graph


def _package_of(module: str, graph: nx.DiGraph) -> str:
    return module if module in PACKAGES.values() and _is_package(module) else \
        module.rpartition(".")[0]


def _is_package(module: str) -> bool:
    return _modules()[module].stem == "__init__"


def _describe(graph: nx.DiGraph, cycle: list) -> str:
    return " -> ".join(f"{a} (line {graph.edges[a, b]['line']})" for a, b in cycle) + \
        f" -> {cycle[0][0]}"


def test_modules_import_one_way():
    graph = import_graph()
    # NOTE: a package's __init__ re-exports its modules; a module importing a sibling
    # through the package (`from . import x`) is an edge to x, not to the package
    inner = graph.subgraph([m for m in graph if not _is_package(m)])
    try:
        cycle = nx.find_cycle(inner)
    except nx.NetworkXNoCycle:
        return
    raise AssertionError("import cycle: " + _describe(inner, cycle))


def test_packages_import_one_way():
    """Between packages too: ir below runtime below tracer, codegen beside them."""
    graph = import_graph()
    packages = nx.DiGraph()
    for a, b, data in graph.edges(data=True):
        pa, pb = _package_of(a, graph), _package_of(b, graph)
        if pa != pb and not pb.startswith(pa + ".") and not _is_package(a):
            packages.add_edge(pa, pb, line=f"{a}:{data['line']}")
    try:
        cycle = nx.find_cycle(packages)
    except nx.NetworkXNoCycle:
        return
    raise AssertionError("package import cycle: " + " -> ".join(
        f"{a} ({packages.edges[a, b]['line']})" for a, b in cycle))


def test_the_graph_sees_local_imports():
    """The test would catch a cycle closed inside a function (it parses every import)."""
    graph = import_graph()
    assert graph.has_edge("ember.tracer.creation", "ember.tracer.tensor")
    assert len(graph) > 40
