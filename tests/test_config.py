from __future__ import annotations

from pathlib import Path

import pytest

from crownguard.engine.config import ConnectionType, load_config
from crownguard.engine.errors import SpecError
from crownguard.engine.secrets import Secret

TYPES = {
    "okta": ConnectionType("okta", {
        "type": "object", "required": ["base_url", "token"], "additionalProperties": False,
        "properties": {"base_url": {"type": "string", "pattern": "^https?://"},
                       "token": {"type": "string"}}}, secrets=("token",)),
    "http": ConnectionType("http", {"type": "object", "properties": {
        "allowed_hosts": {"type": "array"}}}),
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connections.yaml"
    path.write_text(text)
    return path


def test_env_and_file_references(tmp_path: Path) -> None:
    (tmp_path / "okta.token").write_text("file-token-value\n")
    path = write(tmp_path, """
connections:
  okta: {base_url: "https://acme.okta.com", token: "${file:okta.token}"}
  http: {allowed_hosts: ["${env:HOOK_HOST}"]}
settings: {max_concurrency: 8, vars: {team: soc}}
""")
    config = load_config(path, TYPES, env={"HOOK_HOST": "hooks.example.com"})
    okta = config.connections.get("okta")
    assert isinstance(okta.settings["token"], Secret)
    assert okta.secret("token") == "file-token-value"
    assert repr(okta.settings) == "{'base_url': 'https://acme.okta.com', 'token': Secret(${file:okta.token})}"
    assert config.max_concurrency == 8 and config.vars == {"team": "soc"}
    assert config.redactor.redact("x file-token-value y") == "x *** y"


def test_literal_secret_fields_become_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, "connections:\n  okta: {base_url: 'https://a', token: literal-tok}\n")
    config = load_config(path, TYPES, env={})
    assert isinstance(config.connections.get("okta").settings["token"], Secret)
    assert config.redactor.redact("literal-tok") == "***"


def test_missing_variable_names_connection_and_key_not_value(tmp_path: Path) -> None:
    path = write(tmp_path, """
connections:
  okta:
    base_url: "https://acme.okta.com"
    token: "${env:OKTA_API_TOKEN}"
""")
    with pytest.raises(SpecError) as info:
        load_config(path, TYPES, env={})
    assert [str(p) for p in info.value.problems] == [
        f"{path}:5: connections.okta.token: environment variable OKTA_API_TOKEN is not set"]


def test_missing_file_and_schema_errors_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path, """
connections:
  okta:
    base_url: "ftp://nope"
    token: "${file:/nonexistent/secret}"
    extra: 1
  splunk: {url: x}
""")
    with pytest.raises(SpecError) as info:
        load_config(path, TYPES, env={})
    text = "\n".join(str(p) for p in info.value.problems)
    assert "connections.okta.token: cannot read secret file /nonexistent/secret" in text
    assert "connections.splunk: no installed plugin provides this connection type" in text
    assert ":4: connections.okta: 'base_url': 'ftp://nope' does not match" in text
    assert "connections.okta: unknown key 'extra' (allowed: base_url, token)" in text


def test_schema_messages_never_show_secret_values(tmp_path: Path) -> None:
    path = write(tmp_path, "connections:\n  okta: {base_url: '${env:URL}', token: 5}\n")
    with pytest.raises(SpecError) as info:
        load_config(path, TYPES, env={"URL": "not-a-url-secret"})
    assert "not-a-url-secret" not in str(info.value)


def test_top_level_shape(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="unknown"):
        load_config(write(tmp_path, "connection: {}\n"), TYPES)
    with pytest.raises(SpecError, match="must be a mapping"):
        load_config(write(tmp_path, "- a\n"), TYPES)
    assert load_config(None, TYPES).connections.names() == []


def test_missing_connection_message(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "connections: {}\n"), TYPES)
    with pytest.raises(Exception, match="no connection 'okta' in the connections file"):
        config.connections.get("okta")


def test_reference_typos_are_errors_not_credentials(tmp_path: Path) -> None:
    path = write(tmp_path, """
connections:
  okta: {base_url: "https://a.okta.com", token: "${evn:OKTA}"}
settings:
  vars: {key: "${env:HOME}"}
""")
    with pytest.raises(SpecError) as info:
        load_config(path, TYPES, env={"OKTA": "x"})
    text = str(info.value)
    assert ":3: connections.okta.token: '${evn:OKTA}' is not a secret reference" in text
    assert ":5: settings.vars.key: secret references are resolved only in connections" in text
    for bad in ("${vault:abc}", "${env:}"):
        with pytest.raises(SpecError, match="is not a secret reference"):
            load_config(write(tmp_path, f"connections:\n  okta: {{base_url: 'https://a', "
                                        f"token: '{bad}'}}\n"), TYPES, env={})


def test_a_secret_of_the_wrong_type_is_a_schema_error(tmp_path: Path) -> None:
    path = write(tmp_path, "connections:\n  okta: {base_url: 'https://a', "
                           "token: ['${env:OKTA}']}\n")
    with pytest.raises(SpecError, match="'token'.*is not of type 'string'") as info:
        load_config(path, TYPES, env={"OKTA": "tok-value-1"})
    assert "tok-value-1" not in str(info.value)


def test_connection_schema_extends_the_shared_settings() -> None:
    from crownguard.engine import CONNECTION_SETTINGS, connection_schema
    from crownguard.engine.validation import schema_errors

    schema = connection_schema({"token": {"type": "string"}}, required=("token",))
    assert set(CONNECTION_SETTINGS) <= set(schema["properties"])
    assert schema_errors(schema, {"token": "t", "base_url": "https://x.example",
                                  "timeout_seconds": 3}) == []
    assert [e.validator for e in schema_errors(schema, {"token": "t", "tokn": 1})] == [
        "additionalProperties"]
    assert [e.validator for e in schema_errors(schema, {})] == ["required"]
    assert "base_url" not in connection_schema({}, base_url=False)["properties"]


def test_file_schema_errors_do_not_hide_reference_and_connection_problems(
        tmp_path: Path) -> None:
    path = write(tmp_path, """
connections:
  okta:
    base_url: "https://okta.example"
    token: "${env:OKTA_API_TOKEN}"
  bad: 5
  splunk: {url: x}
settings:
  max_concurrency: many
  colour: blue
""")
    with pytest.raises(SpecError) as info:
        load_config(path, TYPES, env={})
    out = [str(p) for p in info.value.problems]
    assert any(":5: connections.okta.token: environment variable OKTA_API_TOKEN" in p
               for p in out), out
    assert any(":7: connections.splunk: no installed plugin" in p for p in out), out
    assert any(":9:" in p and "many" in p for p in out), out
    assert any("colour" in p for p in out), out
    assert any(":6:" in p for p in out), out
    lines = [p.line or 0 for p in info.value.problems]
    assert lines == sorted(lines)
