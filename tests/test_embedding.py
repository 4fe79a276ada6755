"""The embedding API (crownguard.engine.embedding) does what its docstring shows, and plugins
stay off it."""

from __future__ import annotations

import ast
from pathlib import Path

import crownguard.engine as engine
from crownguard.engine import embedding
from crownguard.engine.embedding import PluginHost, Runner, load_config, load_playbook, open_journal

ROOT = Path(__file__).resolve().parents[1]


def test_the_documented_embedding_runs_a_playbook(tmp_path: Path) -> None:
    (tmp_path / "connections.yaml").write_text("connections: {}\n")
    (tmp_path / "my-playbook.yaml").write_text(
        "name: hello\nsteps:\n  - id: a\n    action: core.noop\n"
        "  - id: b\n    action: core.noop\n    needs: [a]\n")
    host = PluginHost.from_entry_points()
    config = load_config(tmp_path / "connections.yaml", host.connection_types)
    playbook = load_playbook(tmp_path / "my-playbook.yaml", host.actions)
    journal = open_journal(tmp_path / "runs.db")
    try:
        record = Runner(host, config, journal=journal).run(playbook, event={"id": "e1"})
        assert record["status"] == "succeeded"
        assert journal.get_run(record["run_id"]) is not None
    finally:
        journal.close()


def test_embedding_names_are_not_part_of_the_plugin_api() -> None:
    assert set(embedding.__all__).isdisjoint(engine.__all__)
    for name in embedding.__all__:
        assert hasattr(embedding, name), name


def test_no_plugin_imports_the_embedding_api() -> None:
    offences = []
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n.startswith("crownguard.engine.embedding") for n in names):
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offences == []
