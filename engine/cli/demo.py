"""`crownguard demo`: a week of model-movement alerts, answered end to end against local mocks.

Every mock vendor server a plugin registers is started in-process on a loopback port, and
the connections come from the mocks' own `connection_settings()`: the demo runs the code a
deployment runs, pointed at imitations of the vendors. The registry's fingerprints are built
through the mlflow plugin's actions, each alert goes through triage (normalise, detect,
score, route) and the playbooks routing chooses run with a live timeline; waits for an
employee's answer are settled by a simulated employee through `Runner.resume`, the path
`crownguard approve` takes. Then just-in-time access (demo_access): a researcher is granted a
sensitive model for 8 hours, her download under the grant is triaged with it, the grant is
taken back on time; a leaver is refused. Exit status: 0 when every episode ended as the story
expects.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, TextIO

from ..config import Config, config_from_mapping
from ..errors import UsageError
from ..kinds import EventType, RunStatus
from ..mocks import RecordedCall
from ..plugins import PluginHost
from ..runner import Runner
from ..scenarios import MockFleet, seed
from ..spec import Playbook
from ..triage import FingerprintIndex, InMemoryDedupe, Verdict, build_triage, policy_from_mapping
from ..triage.scenarios import refresh_from_registry
from .console import printable
from .demo_access import AccessResult, play_access
from .timeline import Timeline
from .triage import describe_verdict

MODEL_BYTES = b"acme-support-llama3-8b-ft v3: fine-tuned weights (demo)"
MODEL_SHA256 = hashlib.sha256(MODEL_BYTES).hexdigest()
REGISTRY_HOST = "mlflow.acme.example"


@dataclass
class Episode:
    """One alert of the story, what the simulated employee answers, and what should happen."""

    title: str
    payload: Any
    expect: dict[str, str] = field(default_factory=dict)  # playbook -> final run status
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    answer_after_deadline: bool = False


@dataclass
class EpisodeResult:
    episode: Episode
    verdicts: list[Verdict]
    runs: list[dict[str, Any]]
    calls: int
    seconds: float

    @property
    def as_expected(self) -> bool:
        got = {run["playbook"]: run["status"] for run in self.runs}
        return got == self.episode.expect


# --- the story ---------------------------------------------------------------------------------


# The story's vendors: its alerts are Incydr's, its responses those of the shipped playbooks.
NEEDS = frozenset({"core", "incydr", "falcon", "okta", "entra", "mlflow", "servicenow", "jira",
                   "slack"})


def _sample(name: str) -> dict[str, Any]:
    text = resources.files("crownguard.plugins.incydr").joinpath(f"samples/{name}.json")
    data: dict[str, Any] = json.loads(text.read_text())
    return data


def _dana_events() -> tuple[dict[str, Any], dict[str, Any]]:
    """Dana's USB copy (the Incydr sample, hashing as the registered model) and the download
    from the registry a quarter of an hour before it."""
    usb = _sample("model-to-removable-media")
    usb["file"]["hash"]["sha256"] = MODEL_SHA256
    download = copy.deepcopy(usb)
    download["@timestamp"] = "2026-11-20T21:31:40.118Z"
    download["event"].update(id=usb["event"]["id"][:-2] + "17", action="file-downloaded")
    download["file"].update(directory="C:/Users/dwhitfield/Downloads/",
                            originalDirectory="C:/Users/dwhitfield/Downloads/")
    download["source"].update(domains=[REGISTRY_HOST], category="Business Tools")
    download["destination"] = {"category": "Device", "name": "ACME-LT-0412", "domains": []}
    download["risk"].update(trusted=True, indicators=[{"name": "Departing", "weight": 3}])
    return download, usb


def _normalised(event_id: str, when: str, email: str, name: str, file: dict[str, Any],
                destination: dict[str, Any], device: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    return {"schema": "crownguard/model-movement-event/v1", "id": event_id, "time": when,
            "origin": "crownguard", "actor": {"email": email, "name": name}, "file": file,
            "destination": destination, "device": device or {}}


def default_episodes() -> list[Episode]:
    download, usb = _dana_events()
    exfil = "departing-employee-model-exfil"
    justify = "model-to-personal-cloud-or-genai"
    return [
        Episode("Dana, leaving, downloads a model from MLflow", download),
        Episode("Dana copies it to a USB drive 15 min later", usb, {exfil: "succeeded"}),
        Episode("The feed delivers the USB event again", copy.deepcopy(usb)),
        Episode("Priya syncs weights to a personal Drive",
                _sample("model-to-personal-cloud"), {justify: "succeeded"},
                answers={"await_answer": {
                    "decision": "approve", "by": "priya.raman@example.com",
                    "comment": "mistake: my Drive syncs that folder; removed and excluded"}}),
        Episode("Marco uploads an adapter to ChatGPT, no answer",
                _sample("model-upload-genai-browser"), {justify: "succeeded"},
                answer_after_deadline=True),
        Episode("Sam exports a CSV report: not a model", _sample("csv-export-not-model")),
        Episode("Bob copies a model to a USB stick",
                _normalised("evt-usb-0001", "2026-11-24T10:15:00Z", "bob.ruiz@example.com",
                            "Bob Ruiz",
                            {"name": "churn-xgb.joblib", "size": 48210334,
                             "path": "/Volumes/KINGSTON/models/churn-xgb.joblib"},
                            {"kind": "removable_media", "name": "Kingston DataTraveler",
                             "trusted": False},
                            {"hostname": "MBP-BRUIZ-07.corp.example.com", "os": "macOS 15.1"}),
                {"model-to-removable-media": "succeeded"}),
        Episode("Alex e-mails a small model to a partner",
                _normalised("evt-mail-0001", "2026-11-24T11:00:00Z", "alex.kim@example.com",
                            "Alex Kim", {"name": "defect-detector.onnx", "size": 5242880},
                            {"kind": "email", "name": "qa@partner.example",
                             "domain": "partner.example"}),
                {"low-risk-model-nudge": "succeeded"}),
    ]


def demo_state() -> dict[str, Any]:
    """The vendors' state, in the scenario files' seeding format (docs/scenarios.md)."""
    return {
        "falcon": {"hosts": [
            {"hostname": "ACME-LT-0412", "folders": [r"C:\ProgramData\Crownguard\Quarantine"],
             "files": [{"path": "E:/backup/models/acme-support-llama3-8b-ft.safetensors",
                        "sha256": MODEL_SHA256}]},
            {"hostname": "MBP-BRUIZ-07", "platform": "Mac",
             "folders": ["/var/crownguard/quarantine"],
             "files": [{"path": "/Volumes/KINGSTON/models/churn-xgb.joblib"}]}]},
        "okta": {"users": [{"login": "dana.whitfield@example.com", "first_name": "Dana",
                            "last_name": "Whitfield", "sessions": 3}]},
        "servicenow": {"users": [{"user_name": "dana.whitfield",
                                  "email": "dana.whitfield@example.com",
                                  "name": "Dana Whitfield"}]},
        "slack": {"users": [{"email": f"{who}@example.com", "name": name} for who, name in (
            ("priya.raman", "Priya Raman"), ("marco.bianchi", "Marco Bianchi"),
            ("bob.ruiz", "Bob Ruiz"), ("alex.kim", "Alex Kim"))]},
        "mlflow": {"versions": [{"name": "acme-support-llama3-8b-ft", "version": 3,
                                 "aliases": ["production"],
                                 "tags": {"sensitivity": "restricted"},
                                 "files": {"model/model.safetensors": MODEL_BYTES.decode(),
                                           "model/MLmodel": "flavors: {transformers: {}}"}}]},
    }


# --- running -----------------------------------------------------------------------------------


class _Tee:
    """The run's event sink: keep every event (for the resume) and show it live."""

    def __init__(self, show: Callable[[dict[str, Any]], None] | None):
        self.events: list[dict[str, Any]] = []
        self.show = show

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if self.show is not None:
            self.show(event)


def _run(host: PluginHost, config: Config, playbook: Playbook, verdict: Verdict,
         episode: Episode, show: Callable[[dict[str, Any]], None] | None,
         say: Callable[[str], None]) -> dict[str, Any]:
    sink = _Tee(show)
    record = Runner(host, config, journal=sink).run(playbook, verdict.event_data,
                                                    risk=verdict.risk_data)
    answerable = episode.answers or episode.answer_after_deadline
    if record["status"] != RunStatus.WAITING or not answerable:
        return record
    now = datetime.now(UTC)
    if episode.answer_after_deadline:
        now += timedelta(days=3)
        say("    ... three days pass without an answer; the run is resumed past its deadline")
    else:
        for step, answer in episode.answers.items():
            say(f"    ... {answer['by']} answers {step}: {answer['decision']}, "
                f"\"{answer.get('comment', '')}\"")
    answers = {step: {"at": now.isoformat(), "comment": None, **answer}
               for step, answer in episode.answers.items()}
    inputs = next(e["inputs"] for e in sink.events if e["type"] == EventType.RUN_STARTED)
    return Runner(host, config, journal=sink).resume(playbook, record["run_id"], inputs,
                                                     list(sink.events), answers, now)


def _call_lines(calls: list[tuple[str, RecordedCall]], redact: Callable[[str], str]) -> list[str]:
    """One line per vendor call, repeated polls folded into one (`x3`)."""
    lines: list[str] = []
    last, count = "", 0
    for name, call in calls:
        query = "&".join(f"{k}={v[0]}" for k, v in call.query.items()
                         if k in ("action_name", "filter", "email", "oauthTokens"))
        text = f"{name:<11} {call.method:<6} {call.path}{'?' + query if query else ''}"
        if text == last:
            count += 1
            continue
        if last:
            lines.append(last + (f"  x{count}" if count > 1 else ""))
        last, count = text, 1
    if last:
        lines.append(last + (f"  x{count}" if count > 1 else ""))
    return [redact(line) for line in lines]


def run_demo(host: PluginHost, episodes: list[Episode] | None = None, *,
             quiet: bool = False, out: TextIO | None = None,
             access: bool | None = None) -> int:
    """Play the story; 0 when every episode ends as expected, 1 otherwise. The access
    episode (demo_access) follows the alerts of the default story, or with `access=True`."""
    out = out or sys.stdout

    def say(text: str = "") -> None:
        print(printable(text, newlines=True), file=out, flush=True)

    missing = sorted(NEEDS - set(host.plugins))
    if missing:
        raise UsageError(f"the demo plays its story against the {', '.join(missing)} "
                         f"plugin{'s' if len(missing) > 1 else ''}, which "
                         f"{'are' if len(missing) > 1 else 'is'} not loaded (check "
                         "CROWNGUARD_PLUGINS and CROWNGUARD_DISABLE_PLUGINS)")
    started = time.perf_counter()
    results: list[EpisodeResult] = []
    jit: AccessResult | None = None
    with MockFleet(host) as fleet:
        seed(fleet, demo_state())
        connections = fleet.connections()
        say(f"started {len(fleet.mocks)} mock vendor servers: "
            + ", ".join(f"{n} ({m.base_url})" for n, m in sorted(fleet.mocks.items())))
        index = FingerprintIndex()
        versions = refresh_from_registry(index, host, connections, "mlflow")
        say(f"fingerprint index: {index.stats()['files']} artifact hashes of {versions} "
            "registered model versions, listed through the mlflow plugin")
        policy = policy_from_mapping({"registries": {REGISTRY_HOST: "mlflow"}})
        triage = build_triage(policy, host, store=InMemoryDedupe(), index=index)
        config = config_from_mapping({"connections": connections}, host.connection_types)
        try:
            for number, episode in enumerate(episodes or default_episodes(), 1):
                results.append(_episode(number, episode, host, config, triage, fleet,
                                        None if quiet else out, say))
            if access if access is not None else episodes is None:
                jit = play_access(len(results) + 1, host, fleet, triage, REGISTRY_HOST,
                                  MODEL_SHA256, say, _call_lines)
        finally:
            config.connections.close()
            triage.close()
    _summary(results, time.perf_counter() - started, say)
    if jit is not None:
        say(jit.summary())
    return 0 if all(r.as_expected for r in results) and (jit is None or jit.as_expected) \
        else 1


def _episode(number: int, episode: Episode, host: PluginHost, config: Config, triage: Any,
             fleet: MockFleet, live: TextIO | None, say: Callable[[str], None]
             ) -> EpisodeResult:
    """Triage one alert, run its playbooks with a live timeline on `live` (None: quiet)."""
    say(f"\n[{number}] {episode.title}")
    began = time.perf_counter()
    marks = {name: len(mock.calls) for name, mock in fleet.mocks.items()}
    verdicts = triage.triage(episode.payload, claim=True)
    runs = []
    for verdict in verdicts:
        for line in describe_verdict(verdict, indent="  "):
            say(line)
        for playbook in verdict.playbooks:
            say(f"  running {playbook.name}")
            show = None if live is None else Timeline(
                live, indent="    ", steps=[step.id for step in playbook.steps])
            record = _run(host, config, playbook, verdict, episode, show, say)
            runs.append(record)
            say(f"    => {record['status']}")
    calls = sorted(((name, call) for name, mock in fleet.mocks.items()
                    for call in list(mock.calls)[marks[name]:]), key=lambda c: c[1].at)
    if calls and live is not None:
        say(f"  vendor calls ({len(calls)}):")
        for line in _call_lines(calls, config.redactor.redact):
            say(f"    {line}")
    return EpisodeResult(episode, verdicts, runs, len(calls), time.perf_counter() - began)


def _summary(results: list[EpisodeResult], seconds: float, say: Callable[[str], None]) -> None:
    rows = [("#", "event", "person", "risk", "playbook", "result", "calls")]
    for number, r in enumerate(results, 1):
        verdict = r.verdicts[0] if r.verdicts else None
        person = verdict.event_data["actor"]["email"] if verdict else "-"
        risk = f"{verdict.risk.score} {verdict.risk.level}" if verdict else "-"
        duplicate = verdict is not None and any(d.matched and not d.chosen
                                                for d in verdict.decisions)
        playbooks = ", ".join(run["playbook"] for run in r.runs) or \
            ("(duplicate)" if duplicate else "-")
        status = ", ".join(run["status"] for run in r.runs) or "-"
        if not r.as_expected:
            status += " (unexpected)"
        rows.append((str(number), r.episode.title, person, risk, playbooks, status,
                     str(r.calls)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    say("\nsummary")
    for index, row in enumerate(rows):
        say("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            say("  " + "  ".join("-" * w for w in widths))
    runs = sum(len(r.runs) for r in results)
    calls = sum(r.calls for r in results)
    say(f"\n{len(results)} events, {runs} playbook runs, {calls} vendor calls, "
        f"{seconds:.1f} s")
