"""Meta-tests: promises the code base keeps about itself."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from crownguard.engine import hookspecs
from crownguard.engine.plugins import PluginHost
from crownguard.engine.spec import load_playbook

ROOT = Path(__file__).resolve().parents[1]


def test_every_hook_is_documented_and_tested() -> None:
    hooks = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("crownguard_")]
    assert len(hooks) == 12
    docs = (ROOT / "docs" / "writing-plugins.md").read_text()
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py")
                    if p.name != "test_meta.py")
    for hook in hooks:
        assert getattr(hookspecs, hook).__doc__, hook
        assert f"`{hook}(" in docs, f"{hook} is not documented"
        assert hook in tests, f"{hook} has no test"



def shipped_playbooks() -> list[Path]:
    found = sorted((ROOT / "playbooks").rglob("*.yaml")) + sorted(
        (ROOT / "plugins").rglob("playbooks/*.yaml"))
    return [p for p in found if not p.name.endswith(".scenario.yaml")]


@pytest.mark.parametrize("path", shipped_playbooks(), ids=lambda p: p.name)
def test_every_shipped_playbook_validates(path: Path) -> None:
    load_playbook(path, PluginHost.from_entry_points().actions)


def test_every_action_has_a_description_and_object_schemas() -> None:
    for name, action in PluginHost.from_entry_points().actions.items():
        assert action.summary, f"{name} has no description"
        assert action.input_schema.get("type") == "object", name
        if action.side_effect and action.plugin != "core":
            assert "changed" in action.output_schema.get("properties", {}), \
                f"{name} changes things but has no 'changed' output"


def test_every_package_is_listed_for_the_wheel() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for top, prefix in (("engine", "crownguard.engine"), ("plugins", "crownguard.plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((prefix, *rel)))
    assert found - listed == set(), "add these to [tool.setuptools] packages"


def test_every_first_party_plugin_has_an_entry_point() -> None:
    import tomllib

    points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
        "crownguard"]
    plugins = {p.name for p in (ROOT / "plugins").iterdir()
               if (p / "__init__.py").exists() and not p.name.startswith("_")}
    assert plugins == set(points), "every plugin under plugins/ needs an entry point"
