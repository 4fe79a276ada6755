"""`--var NAME=VALUE` as docs/playbooks.md ("Variables and settings") describes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.cli import main

ECHO = """
name: echo-vars
vars: {channel: "#playbook", limit: 1, nested: {a: 1, b: 2}}
steps:
  - id: echo
    action: core.transform
    with: {data: "${{ vars }}"}
"""


@pytest.mark.parametrize("flag, name, value", [
    ("note=a=b", "note", "a=b"), ("limit=5", "limit", 5), ("on=true", "on", True),
    ('ids=["a","b"]', "ids", ["a", "b"]), ("channel=#soc", "channel", "#soc"),
    ('zip="02134"', "zip", "02134"), ("country=NO", "country", "NO"), ("empty=", "empty", ""),
])
def test_a_var_is_json_when_it_is_json_and_text_otherwise(tmp_path: Path, capsys: Any,
                                                           flag: str, name: str,
                                                           value: Any) -> None:
    (tmp_path / "pb.yaml").write_text(ECHO)
    (tmp_path / "e.json").write_text("{}")
    assert main(["run", str(tmp_path / "pb.yaml"), "--event", str(tmp_path / "e.json"),
                 "--var", flag, "--json", "--journal", str(tmp_path / "j.sqlite")]) == 0
    output = json.loads(capsys.readouterr().out)["steps"]["echo"]["output"]
    assert output["result"][name] == value


def test_layers_merge_shallowly_with_the_command_line_last(tmp_path: Path,
                                                          capsys: Any) -> None:
    (tmp_path / "pb.yaml").write_text(ECHO)
    (tmp_path / "e.json").write_text("{}")
    (tmp_path / "c.yaml").write_text("settings:\n  vars: {channel: '#soc', limit: 2}\n")
    assert main(["run", str(tmp_path / "pb.yaml"), "--event", str(tmp_path / "e.json"),
                 "--config", str(tmp_path / "c.yaml"), "--var", 'nested={"a": 9}',
                 "--var", "limit=3", "--json", "--journal", str(tmp_path / "j.sqlite")]) == 0
    result = json.loads(capsys.readouterr().out)["steps"]["echo"]["output"]["result"]
    assert result == {"channel": "#soc", "limit": 3, "nested": {"a": 9}}


def test_a_var_without_a_name_is_an_input_error(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "pb.yaml").write_text(ECHO)
    (tmp_path / "e.json").write_text("{}")
    assert main(["run", str(tmp_path / "pb.yaml"), "--event", str(tmp_path / "e.json"),
                 "--var", "=x", "--journal", str(tmp_path / "j.sqlite")]) == 2
    assert "--var takes NAME=VALUE, got '=x'" in capsys.readouterr().err
