"""`crownguard demo --serve`: the demo's story, played through a real `crownguard serve`.

The mock vendors start as for `crownguard demo`; then a `crownguard serve` process starts on a
free loopback port against them (a temporary connections file, policy, fingerprint index and
journal), each alert is posted to its HTTP intake, signed, and the runs it started are shown
as they finish. Answers are given through the API, as the answering employee's token. A run
that the story leaves without an answer until its deadline stays waiting (the served demo
does not wait three days). Then the service is stopped (SIGTERM) and everything removed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import requests

from ..plugins import PluginHost
from ..scenarios import MockFleet, seed
from ..triage import FingerprintIndex
from ..triage.scenarios import refresh_from_registry
from .console import printable
from .demo import NEEDS, REGISTRY_HOST, Episode, default_episodes, demo_state

VIEWER = "demo-viewer"


def _files(folder: Path, connections: dict[str, Any], answerers: list[str]) -> dict[str, Any]:
    """The connections file (service secrets by reference), policy and the environment."""
    env = {"CG_DEMO_SECRET": secrets.token_urlsafe(24)}
    tokens = []
    for n, name in enumerate([VIEWER, *answerers]):
        env[f"CG_DEMO_TOKEN_{n}"] = secrets.token_urlsafe(24)
        tokens.append({"name": name, "token": f"${{env:CG_DEMO_TOKEN_{n}}}",
                       "role": "viewer" if name == VIEWER else "approver"})
    config = {"connections": connections, "service": {
        "tokens": tokens, "sources": {"demo": {"secret": "${env:CG_DEMO_SECRET}"}}}}
    path = folder / "connections.yaml"
    path.touch(mode=0o600)
    path.write_text(json.dumps(config))
    (folder / "policy.yaml").write_text(json.dumps({
        "registries": {REGISTRY_HOST: "mlflow"},
        "routing": {"fingerprints": str(folder / "fingerprints.sqlite")}}))
    return {"config": path, "policy": folder / "policy.yaml", "env": env,
            "tokens": {t["name"]: env[f"CG_DEMO_TOKEN_{n}"] for n, t in enumerate(tokens)}}


class _Service:
    def __init__(self, folder: Path, files: dict[str, Any]):
        self.journal = folder / "journal.sqlite"
        self.log = folder / "serve.log"
        self.tokens: dict[str, str] = files["tokens"]
        self.secret: str = files["env"]["CG_DEMO_SECRET"]
        environ = {**os.environ, **files["env"], "CROWNGUARD_TIMER_SECONDS": "0.5"}
        environ.pop("CROWNGUARD_LISTEN", None)
        with self.log.open("w") as out:
            self.process = subprocess.Popen(  # noqa: S603 (our own CLI, fixed arguments)
                [sys.executable, "-m", "crownguard.engine.cli", "serve", "--config",
                 str(files["config"]), "--policy", str(files["policy"]), "--journal",
                 str(self.journal), "--listen", "127.0.0.1:0"],
                env=environ, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        self.http = requests.Session()
        self.http.trust_env = False  # loopback: never through a proxy
        deadline = time.monotonic() + 60
        while "listening on http://" not in (text := self.log.read_text()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("crownguard serve did not start:\n" + text)
            time.sleep(0.1)
        self.base = text.split("listening on ")[1].split()[0]

    def post(self, payload: Any) -> list[tuple[str, bool]]:
        body = json.dumps(payload).encode()
        ts = str(int(time.time()))
        sig = hmac.new(self.secret.encode(), f"{ts}.".encode() + body,
                       hashlib.sha256).hexdigest()
        answer = self.http.post(f"{self.base}/v1/events/demo", data=body, timeout=30, headers={
            "Content-Type": "application/json", "X-Crownguard-Timestamp": ts,
            "X-Crownguard-Signature": f"v1={sig}"})
        if answer.status_code != 202:
            raise RuntimeError(f"the intake refused the event: {answer.text}")
        return [(str(a["event_id"]), bool(a["duplicate"])) for a in answer.json()["accepted"]]

    def call(self, method: str, path: str, who: str = VIEWER, body: Any = None) -> Any:
        answer = self.http.request(method, f"{self.base}{path}", json=body, timeout=60,
                                   headers={"Authorization": f"Bearer {self.tokens[who]}"})
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.text}")
        return answer.json()

    def runs_of(self, event_id: str, timeout: float = 60) -> list[str]:
        """The runs the intake worker started for an event, once it is done with it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with sqlite3.connect(self.journal) as db:
                row = db.execute("SELECT status, runs, error FROM service_intake WHERE "
                                 "event_id = ?", (event_id,)).fetchone()
            if row is not None and row[0] == "failed":
                raise RuntimeError(f"event {event_id} failed: {row[2]}")
            if row is not None and row[0] == "done":
                return [str(r) for r in json.loads(row[1])]
            time.sleep(0.05)
        raise RuntimeError(f"event {event_id} was not processed within {timeout:.0f} s")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return -9


def _episode(number: int, episode: Episode, service: _Service, say: Any) -> list[dict[str, Any]]:
    say(f"\n[{number}] {episode.title}")
    finished = []
    for event_id, duplicate in service.post(episode.payload):
        shown = event_id if len(event_id) <= 24 else f"...{event_id[-20:]}"
        if duplicate:
            say(f"  event {shown} accepted again: a duplicate delivery, not stored or run twice")
            continue
        run_ids = service.runs_of(event_id)
        say(f"  event {shown} accepted; {len(run_ids) or 'no'} run(s) started")
        for run_id in run_ids:
            run = service.call("GET", f"/v1/runs/{run_id}")
            say(f"  {run['playbook']} ({run_id[:12]}) => {run['status']}")
            for wait in run["waiting"]:
                answer = episode.answers.get(wait["step"])
                if answer is None:
                    say(f"    waiting at {wait['step']} until {wait['expires_at']} (the served "
                        "demo does not wait for the deadline)")
                    continue
                say(f"    ... {answer['by']} answers {wait['step']} over the API: "
                    f"{answer['decision']}, \"{answer.get('comment', '')}\"")
                result = service.call(
                    "POST", f"/v1/runs/{run_id}/steps/{wait['step']}/answer", answer["by"],
                    {"decision": answer["decision"], "comment": answer.get("comment")})
                run = {**run, **result["run"]}
                say(f"  {run['playbook']} ({run_id[:12]}) => {run['status']}")
            finished.append(run)
    return finished


def run_served_demo(host: PluginHost, episodes: list[Episode] | None = None, *,
                    out: TextIO | None = None) -> int:
    """Play the story through the service; 0 when every episode ends as expected (a run left
    waiting for its deadline counts as expected while waiting)."""
    stream = out or sys.stdout

    def say(text: str = "") -> None:
        print(printable(text, newlines=True), file=stream, flush=True)

    missing = sorted(NEEDS - set(host.plugins))
    if missing:
        from ..errors import UsageError
        raise UsageError(f"the demo needs the {', '.join(missing)} plugin(s), not loaded")
    episodes = episodes or default_episodes()
    answerers = sorted({a["by"] for e in episodes for a in e.answers.values()})
    ok = True
    with MockFleet(host) as fleet, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed(fleet, demo_state())
        connections = fleet.connections()
        with FingerprintIndex(folder / "fingerprints.sqlite") as index:
            versions = refresh_from_registry(index, host, connections, "mlflow")
        say(f"started {len(fleet.mocks)} mock vendor servers; fingerprint index of {versions} "
            "registered model versions")
        service = _Service(folder, _files(folder, connections, answerers))
        say(f"crownguard serve listening on {service.base}; the alerts go to its intake, "
            "signed")
        try:
            for number, episode in enumerate(episodes, 1):
                runs = _episode(number, episode, service, say)
                got = {r["playbook"]: r["status"] for r in runs}
                expect = {name: ("waiting" if episode.answer_after_deadline else status)
                          for name, status in episode.expect.items()}
                if got != expect:
                    ok = False
                    say(f"  (unexpected: {got}, the story expects {expect})")
        finally:
            code = service.stop()
        say(f"\ncrownguard serve stopped (exit {code})")
        if code != 0:
            say(service.log.read_text())
            ok = False
    return 0 if ok else 1
