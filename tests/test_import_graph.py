"""lakeray's packages import each other without cycles (imports inside functions count too):
one orchestrator (lakeray.lifecycle) calls the stages, and no stage calls back into it."""

from __future__ import annotations

import ast
import collections

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.fast
LIB = ROOT / "lib" / "lakeray"


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "lakeray"


def package_imports() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = collections.defaultdict(set)
    for path in LIB.rglob("*.py"):
        source = _package("lakeray." + ".".join(path.relative_to(LIB).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("lakeray.") and _package(name) != source:
                    edges[source].add(_package(name))
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_checker_finds_a_cycle():
    assert cycle({"monitor": {"lifecycle"}, "lifecycle": {"train"}, "train": {"monitor"}}) == [
        "lifecycle", "train", "monitor", "lifecycle"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_lakeray_packages_have_no_import_cycle():
    edges = package_imports()
    assert edges["lifecycle"] >= {"ingest", "prepare", "tune", "train", "evaluate"}     # it sees real imports
    assert cycle(edges) is None, " -> ".join(cycle(edges))
    assert "lifecycle" not in edges["monitor"] and "evaluate" not in edges["models"]


def test_the_library_names_no_example_pipeline_and_imports_the_examples_only_from_its_cli():
    importers, names = [], []
    for path in LIB.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lakeray_examples"):
                importers.append(path.name)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ("churn", "telco"):
                names.append(f"{path.relative_to(LIB)}:{node.lineno}")
    assert set(importers) == {"cli.py"} and names == []     # the demo, `generate` and --smoke-test's bundled data
