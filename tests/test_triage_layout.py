"""Promises the triage wing keeps about its place in the code base: the core never imports
it, it has no import cycle (imports under TYPE_CHECKING count), no module of it is over ~500
lines, and no vendor's event mapper lives in it."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"
WING = "crownguard.engine.triage"
# The core's other wings: they may import triage, as triage may import the core.
WINGS = (WING, "crownguard.engine.cli", "crownguard.engine.service")


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in ENGINE.rglob("*.py"):
        parts = list(path.relative_to(ENGINE).with_suffix("").parts)
        package = parts[-1] == "__init__"
        found[".".join(["crownguard.engine", *(parts[:-1] if package else parts)])] = \
            (path, package)
    return found


def _graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    for name, (path, package) in modules.items():
        graph.add_node(name)
        base = name if package else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                parts = base.split(".")
                module = ".".join([*parts[:len(parts) - node.level + 1], node.module or ""]) \
                    if node.level else node.module or ""
                module = module.rstrip(".")
                targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph.add_edges_from((name, t) for t in targets if t in modules and t != name)
    return graph


def test_the_core_never_imports_the_triage_wing() -> None:
    graph = _graph()
    offences = [f"{a} -> {b}" for a, b in graph.edges
                if not a.startswith(WINGS) and b.startswith(WING)]
    assert offences == []


def test_the_triage_wing_has_no_import_cycle() -> None:
    graph = _graph()
    wing = graph.subgraph(n for n in graph if n.startswith(WING))
    assert list(nx.simple_cycles(wing)) == []


def test_no_triage_module_is_over_500_lines() -> None:
    long = [f"{p.relative_to(ROOT)}: {n}" for p in (ENGINE / "triage").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500]
    assert long == []


def test_no_vendor_event_mapper_lives_in_the_triage_wing() -> None:
    # Incydr's mapper is the incydr plugin's (crownguard_register_event_sources).
    assert not (ENGINE / "triage" / "events" / "incydr.py").exists()
    mentions = [str(p.relative_to(ROOT)) for p in (ENGINE / "triage").rglob("*.py")
                if "@timestamp" in p.read_text()]
    assert mentions == []
