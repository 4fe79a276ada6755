"""The hooks the service's Slack receiver and Incydr poller come through: what the shipped
plugins register, and what a plugin that registers them wrongly is told."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from servicetest import Served, start_service

from crownguard.engine import hookimpl
from crownguard.engine.errors import PluginError
from crownguard.engine.plugins import PluginHost


def test_the_slack_plugin_receives_and_the_incydr_plugin_polls() -> None:
    host = PluginHost.from_entry_points()
    assert host.interaction_receivers["slack"].plugin == "slack"
    poller = host.pollers["incydr"]
    assert (poller.plugin, poller.connection) == ("incydr", "incydr")


def _host_with(**hooks: Any) -> PluginHost:
    host = PluginHost()
    host.add(SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()}), "odd")
    return host


@pytest.mark.parametrize(("register", "message"), [
    (lambda r: r("Bad Name", verify=len, resolve=len), "must match"),
    (lambda r: r("chat", verify="not callable", resolve=len), "needs callable verify"),
    (lambda r: (r("chat", verify=len, resolve=len), r("chat", verify=len, resolve=len)),
     "registered by both 'odd' and 'odd'"),
])
def test_a_wrong_receiver_is_named(register: Any, message: str) -> None:
    how = register

    def crownguard_register_interaction_receivers(register: Any) -> None:
        how(register)

    host = _host_with(crownguard_register_interaction_receivers=(
        crownguard_register_interaction_receivers))
    with pytest.raises(PluginError, match=message):
        host.interaction_receivers


@pytest.mark.parametrize(("register", "message"), [
    (lambda r: r("feed", poll=len), "needs a connection name and a callable poll"),
    (lambda r: r("feed", connection="feed", poll=None), "needs a connection name"),
    (lambda r: r("-x", connection="feed", poll=len), "must match"),
])
def test_a_wrong_poller_is_named(register: Any, message: str) -> None:
    how = register

    def crownguard_register_pollers(register: Any) -> None:
        how(register)

    host = _host_with(crownguard_register_pollers=crownguard_register_pollers)
    with pytest.raises(PluginError, match=message):
        host.pollers


def test_without_a_slack_connection_interactions_are_503(served: Served) -> None:
    answered = served.http.post(f"{served.base}/v1/slack/interactions", data=b"payload=%7B%7D",
                                timeout=10)
    assert answered.status_code == 503
    assert answered.json()["error"]["code"] == "not_configured"


def test_a_poller_without_its_connection_stops_the_start(service_files: dict[str, Any],
                                                         tmp_path: Path) -> None:
    config = json.loads(Path(service_files["config"]).read_text())
    config["service"]["incydr_poll"] = {"interval_seconds": 30}
    path = Path(service_files["folder"]) / "polling.yaml"  # beside burst.key
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [sys.executable, "-m", "crownguard.engine.cli", "serve", "--config", str(path),
         "--policy", str(service_files["policy"]), "--journal", str(tmp_path / "j.sqlite"),
         "--listen", "127.0.0.1:0"],
        env={**os.environ, **service_files["env"]}, capture_output=True,
        text=True, timeout=60)
    assert done.returncode != 0
    assert "service.incydr_poll: the connections file has no 'incydr' connection to poll" \
        in done.stderr
    assert "Traceback" not in done.stderr


def test_a_slack_connection_without_a_signing_secret_is_503_and_says_so(
        service_files: dict[str, Any], service_fleet: Any, tmp_path: Path) -> None:
    config = json.loads(Path(service_files["config"]).read_text())
    slack = dict(service_fleet.connections()["slack"])
    slack.pop("signing_secret", None)
    env = {**service_files["env"], "CG_TEST_SLACK_TOKEN": str(slack["token"])}
    config["connections"]["slack"] = {**slack, "token": "${env:CG_TEST_SLACK_TOKEN}"}
    path = Path(service_files["folder"]) / "no-signing-secret.yaml"
    path.write_text(json.dumps(config))
    served = start_service({**service_files, "config": path, "env": env},
                           tmp_path / "j.sqlite")
    try:
        answered = served.http.post(f"{served.base}/v1/slack/interactions",
                                    data=b"payload=%7B%7D", timeout=10)
        assert answered.status_code == 503
        assert answered.json()["error"] == {
            "code": "not_configured", "where": "slack",
            "message": "connection 'slack' has no signing_secret to verify requests with"}
    finally:
        assert served.stop() == 0
    assert "Traceback" not in "".join(served.log)
