"""Helpers of the service tests: `start_service` runs `crownguard serve` as a real process on
a free loopback port; `Served` signs events and calls its API with the test tokens."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.payloads import normalise_payload
from crownguard.engine.triage import default_policy_data, policy_from_mapping

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "plugins" / "incydr" / "samples" / "model-to-removable-media.json"

TOKENS = {"alice@corp.example": ("approver", "alice-token-0123456789abcdef"),
          "bob@corp.example": ("approver", "bob-token-0123456789abcdef00"),
          "ops-bot": ("responder", "ops-token-0123456789abcdef00"),
          "siem-reader": ("viewer", "reader-token-0123456789abcdef")}
SECRETS = {"siem": "siem-secret-0123456789abcdef", "burst": "burst-secret-0123456789abcd"}
MAX_BODY = 16384
SHORT_WAIT = "short-wait.safetensors"  # the file name that routes to the playbook with a 1 s wait
SLOW = "slow.safetensors"  # routes to a playbook that suspends at once (made slow by a fault)

PLAYBOOKS = {
    "contain-after-approval.yaml": f"""
name: contain-after-approval
description: Ask the SOC, then suspend the account.
trigger:
  if: "event.file.is_model && !contains(['{SHORT_WAIT}', '{SLOW}'], event.file.name)"
steps:
  - id: ask
    action: core.wait_for_approval
    with: {{prompt: "suspend?", approvers: ["alice@corp.example"], timeout_seconds: 600}}
  - id: suspend
    action: okta.suspend_user
    needs: [ask]
    with: {{user: "${{{{ event.actor.email }}}}"}}
""",
    "short-wait.yaml": f"""
name: short-wait
trigger:
  if: "event.file.name == '{SHORT_WAIT}'"
steps:
  - id: ask
    action: core.wait_for_approval
    with: {{prompt: "quick?", timeout_seconds: 1}}
""",
    "suspend-now.yaml": f"""
name: suspend-now
trigger:
  if: "event.file.name == '{SLOW}'"
steps:
  - id: suspend
    action: okta.suspend_user
    with: {{user: "${{{{ event.actor.email }}}}"}}
""",
}


def _base_event() -> dict[str, Any]:
    host = PluginHost.from_entry_points()
    policy = policy_from_mapping(default_policy_data())
    event = normalise_payload(json.loads(SAMPLE.read_text()), policy,
                              host.event_sources.values())[0]
    return json.loads(json.dumps(event.to_dict(), default=str))


BASE_EVENT = _base_event()


def new_event(name: str | None = None) -> dict[str, Any]:
    """A normalised event about a file no other test's event is about (no dedupe between them)."""
    event = copy.deepcopy(BASE_EVENT)
    tag = uuid.uuid4().hex[:12]
    event["id"] = f"test-{tag}"
    event["file"].update(name=name or f"model-{tag}.safetensors", path=f"E:/models/{tag}",
                         sha256=hashlib.sha256(tag.encode()).hexdigest())
    return event


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                            hashlib.sha256).hexdigest()


class Served:
    def __init__(self, process: subprocess.Popen[str], base: str, journal: Path,
                 log: list[str]):
        self.process, self.base, self.journal, self.log = process, base, journal, log
        self.http = requests.Session()
        self.http.trust_env = False  # never a proxy: the service is on loopback

    def post_event(self, body: Any, *, source: str = "siem", secret: str | None = None,
                   timestamp: int | None = None, headers: dict[str, str] | None = None
                   ) -> requests.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sent = {"X-Crownguard-Timestamp": ts, "Content-Type": "application/json",
                "X-Crownguard-Signature": sign(secret or SECRETS.get(source, "x"), ts, raw)}
        sent.update(headers or {})
        return self.http.post(f"{self.base}/v1/events/{source}", data=raw,
                              headers={k: v for k, v in sent.items() if v is not None},
                              timeout=30)

    def call(self, method: str, path: str, *, who: str | None = "siem-reader",
             json_body: Any = None, token: str | None = None) -> requests.Response:
        headers = {}
        if who is not None or token is not None:
            headers["Authorization"] = f"Bearer {token or TOKENS[str(who)][1]}"
        return self.http.request(method, f"{self.base}{path}", json=json_body,
                                 headers=headers, timeout=60)

    def intake(self) -> list[tuple[str, str]]:
        """(event id, status) of every stored intake item, read from the journal's file."""
        with sqlite3.connect(self.journal) as db:
            return db.execute("SELECT event_id, status FROM service_intake ORDER BY id"
                              ).fetchall()

    def runs_of(self, event_id: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The runs started for an event (waits for the intake worker)."""
        deadline = time.monotonic() + timeout
        while True:
            with sqlite3.connect(self.journal) as db:
                row = db.execute("SELECT status, runs, error FROM service_intake WHERE "
                                 "event_id = ?", (event_id,)).fetchone()
            if row is not None and row[0] in ("done", "failed"):
                assert row[0] == "done", row[2]
                return [self.call("GET", f"/v1/runs/{run_id}").json()
                        for run_id in json.loads(row[1])]
            if time.monotonic() > deadline:
                raise AssertionError(f"event {event_id} not processed: {row}\n"
                                     + "".join(self.log))
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def start_service(files: dict[str, Any], journal: Path | None,
                  env: dict[str, str] | None = None, timeout: float = 60.0) -> Served:
    """`journal` None: no --journal argument (the environment's CROWNGUARD_JOURNAL, as a
    PostgreSQL DSN with its password is given: never in the process's arguments)."""
    environ = {**os.environ, **files["env"], "CROWNGUARD_TIMER_SECONDS": "0.2",
               "CROWNGUARD_GRACE_SECONDS": "10", **(env or {})}
    environ.pop("CROWNGUARD_LISTEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "crownguard.engine.cli", "serve", "--config",
         str(files["config"]), "--policy", str(files["policy"]),
         *([] if journal is None else ["--journal", str(journal)]), "--listen", "127.0.0.1:0"],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    ready = threading.Event()
    found: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if "listening on http://" in line and not found:
                found.append(line.split("listening on ")[1].split()[0])
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or not found:
        process.kill()
        raise AssertionError("crownguard serve did not start:\n" + "".join(log))
    return Served(process, found[0], journal or Path(), log)


def write_service_files(folder: Path, fleet: Any) -> dict[str, Any]:
    """The connections file (secrets by reference), policy and playbooks in `folder`, and the
    environment the service needs (a MockFleet's okta connection)."""
    for name, text in PLAYBOOKS.items():
        (folder / name).write_text(text)
    (folder / "policy.yaml").write_text(json.dumps({"routing": {
        "playbooks": list(PLAYBOOKS), "shipped_playbooks": False}}))
    env: dict[str, str] = {}
    okta = fleet.connections()["okta"]
    env["CG_TEST_OKTA_TOKEN"] = okta["token"]
    tokens = []
    for n, (name, (role, token)) in enumerate(TOKENS.items()):
        env[f"CG_TEST_TOKEN_{n}"] = token
        tokens.append({"name": name, "token": f"${{env:CG_TEST_TOKEN_{n}}}", "role": role})
    env["CG_TEST_SIEM_SECRET"] = SECRETS["siem"]
    (folder / "burst.key").write_text(SECRETS["burst"] + "\n")
    config = {"connections": {"okta": {**okta, "token": "${env:CG_TEST_OKTA_TOKEN}"}},
              "service": {"tokens": tokens, "max_body_bytes": MAX_BODY, "sources": {
                  "siem": {"secret": "${env:CG_TEST_SIEM_SECRET}"},
                  "burst": {"secret": "${file:burst.key}", "max_requests_per_minute": 2}}}}
    (folder / "connections.yaml").write_text(json.dumps(config))
    return {"folder": folder, "config": folder / "connections.yaml",
            "policy": folder / "policy.yaml", "env": env}
