"""The `service` section of the connections file: accepted by every command, resolved and
checked only by the service."""

from __future__ import annotations

from pathlib import Path

import pytest

from crownguard.engine.config import config_from_mapping, load_config
from crownguard.engine.errors import ConfigError, SpecError
from crownguard.engine.service.settings import Role, service_settings

TOKEN = "t" * 32
SECRET = "s" * 32


def _config(service: object, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return config_from_mapping({"connections": {}, "service": service}, {}, env=env or {})


def test_the_section_is_accepted_and_its_references_are_resolved_only_by_the_service(
        tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("connections: {}\nservice:\n  tokens:\n"
                    "    - {name: alice, token: '${env:CG_T_ALICE}', role: approver}\n"
                    "  sources:\n    siem: {secret: '${file:siem.key}'}\n")
    (tmp_path / "siem.key").write_text(SECRET + "\n")
    config = load_config(path, {}, env={})  # a CLI command: the token's variable is not set
    with pytest.raises(SpecError, match=r"c.yaml:4: service.tokens.0.token: environment "
                                        "variable CG_T_ALICE is not set"):
        service_settings(config, env={})
    settings = service_settings(config, env={"CG_T_ALICE": TOKEN})
    assert settings.caller(TOKEN) is not None and settings.caller(TOKEN).name == "alice"
    assert settings.caller(TOKEN).role is Role.APPROVER
    assert settings.caller(TOKEN + "x") is None
    assert settings.sources is not None and settings.sources["siem"].secret.reveal() == SECRET
    assert TOKEN not in config.redactor.redact(f"token {TOKEN}")


def test_unknown_top_level_keys_are_still_refused() -> None:
    with pytest.raises(SpecError, match="servce"):
        config_from_mapping({"connections": {}, "servce": {}}, {}, env={})


@pytest.mark.parametrize(("service", "message"), [
    ({"tokens": [{"name": "a", "token": "short", "role": "viewer"}]},
     r"service.tokens\[0\].token: must be a string of at least 16 characters"),
    ({"tokens": [{"name": "a", "token": TOKEN, "role": "boss"}]}, r"service.tokens\[0\].role"),
    ({"tokens": [{"name": "a", "token": TOKEN, "role": "viewer"},
                 {"name": "a", "token": TOKEN + "2", "role": "viewer"}]},
     r"tokens\[1\].name: 'a' is also the name of tokens\[0\]"),
    ({"tokens": [{"name": "a", "token": TOKEN, "role": "viewer"},
                 {"name": "b", "token": TOKEN, "role": "viewer"}]}, "have the same token"),
    ({"sources": {"siem": {}}}, r"service.sources.siem: .*secret"),
    ({"sources": {"siem": {"secret": SECRET, "rate": 3}}}, "rate"),
    ({"tokenz": []}, "tokenz"),
])
def test_a_bad_section_is_refused_naming_where(service: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        service_settings(_config(service))


def test_a_literal_short_token_is_not_quoted() -> None:
    with pytest.raises(SpecError) as caught:
        service_settings(_config({"tokens": [{"name": "a", "token": "hunter2", "role": "admin"}]}))
    assert "hunter2" not in str(caught.value)


def test_no_section_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no 'service' section"):
        service_settings(config_from_mapping({"connections": {}}, {}, env={}))


def test_a_short_reference_to_a_long_secret_is_accepted_and_a_short_value_refused() -> None:
    service = {"tokens": [{"name": "a", "token": "${env:CG_T}", "role": "viewer"}],
               "sources": {"siem": {"secret": "${env:S}"}}}
    settings = service_settings(_config(service, {"CG_T": TOKEN, "S": SECRET}),
                                env={"CG_T": TOKEN, "S": SECRET})
    assert settings.caller(TOKEN) is not None
    with pytest.raises(SpecError, match=r"service.tokens\[0\].token: must be a string of at "
                                        "least 16 characters"):
        service_settings(_config(service, {"CG_T": "short", "S": SECRET}),
                         env={"CG_T": "short", "S": SECRET})
