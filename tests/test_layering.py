"""The package layout keeps its layers: no import cycle but the registry's lazy plugin import, and the layers
contract in pyproject.toml holds (import-linter's own check runs in CI through scripts/lint.sh)."""
import sys

import pytest

grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (pip install -e .[dev])")


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(graph.modules):
        if m not in index:
            visit(m)
    return out


def test_no_import_cycle_but_the_registry_plugin_import():
    graph = grimp.build_graph("ctrkit")
    assert graph.direct_import_exists(importer="ctrkit.registry", imported="ctrkit.models")
    with_registry = _cycles(graph)
    assert with_registry and all("ctrkit.registry" in c for c in with_registry)  # the one allowed cycle
    graph.remove_import(importer="ctrkit.registry", imported="ctrkit.models")
    assert _cycles(graph) == []


def test_a_layer_importing_upward_is_caught():
    """The cycle finder can fail: an import from the features (bottom) to the models (top) makes a cycle."""
    graph = grimp.build_graph("ctrkit")
    graph.remove_import(importer="ctrkit.registry", imported="ctrkit.models")
    graph.add_import(importer="ctrkit.features", imported="ctrkit.models.base")
    assert any("ctrkit.features" in c for c in _cycles(graph))


def test_root_holds_at_most_ten_modules():
    from pathlib import Path

    import ctrkit
    root = Path(ctrkit.__file__).parent
    modules = sorted(p.name for p in root.glob("*.py"))
    assert len(modules) <= 10, modules
    assert max(len(p.read_text().splitlines()) for p in root.rglob("*.py")) <= 600
