"""The layout DESIGN.md fixes, kept by tests: a generic core that imports no wing, wings that
import the core, no import cycle (imports under TYPE_CHECKING count too), no engine module of
more than 500 lines, and no vendor plugin imported by the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"
WINGS = ("crownguard.engine.triage", "crownguard.engine.cli", "crownguard.engine.service")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = ["crownguard", *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ENGINE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every engine module `name` imports, at any depth of the file (TYPE_CHECKING included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule when there is one.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                       for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        found.update(t for t in targets if t in known and t != name)
    return found


def _graph() -> nx.DiGraph:
    modules = _modules()
    graph: nx.DiGraph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for target in _imports(name, path, set(modules)):
            graph.add_edge(name, target)
    return graph


def _owner(module: str) -> str:
    for wing in WINGS:
        if module == wing or module.startswith(wing + "."):
            return wing
    return "crownguard.engine"


def _is_package_edge(source: str, target: str) -> bool:
    # A module importing its own package's __init__ (its public face) is not a cycle of types.
    return source.startswith(target + ".")


def test_no_import_cycles() -> None:
    graph = _graph()
    graph.remove_edges_from([(a, b) for a, b in graph.edges if _is_package_edge(a, b)])
    cycles = [" -> ".join(cycle) for cycle in nx.simple_cycles(graph)]
    assert cycles == []


def test_the_core_imports_no_wing_and_wings_import_no_other_wing() -> None:
    offences = []
    for source, target in _graph().edges:
        mine, theirs = _owner(source), _owner(target)
        if theirs != mine and theirs != "crownguard.engine":
            # Only the CLI (the commands triage and respond) and the service (its intake) may
            # drive the triage wing; only the CLI may start the service (`serve`).
            allowed = {("crownguard.engine.cli", "crownguard.engine.triage"),
                       ("crownguard.engine.service", "crownguard.engine.triage"),
                       ("crownguard.engine.cli", "crownguard.engine.service")}
            if (mine, theirs) not in allowed:
                offences.append(f"{source} imports {target}")
    assert offences == []


def test_the_engine_imports_no_vendor_plugin() -> None:
    offences = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offences += [f"{name}: {n}" for n in names if n.startswith("crownguard.plugins")]
    assert offences == []


@pytest.mark.parametrize("path", sorted(ENGINE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_engine_module_is_over_500_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines"


def test_no_vendor_event_mapper_lives_in_the_engine() -> None:
    # Incydr's mapper is the incydr plugin's (crownguard_register_event_sources).
    assert not (ENGINE / "triage" / "events" / "incydr.py").exists()
    # The demo (engine/cli/demo.py) plays a story of Incydr alerts against the shipped plugins:
    # its data is vendor-shaped on purpose, and it names the plugins it needs (NEEDS).
    mentions = [str(p.relative_to(ROOT)) for p in ENGINE.rglob("*.py")
                if "@timestamp" in p.read_text() and p != ENGINE / "cli" / "demo.py"]
    assert mentions == []
