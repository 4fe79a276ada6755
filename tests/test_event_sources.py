"""Event sources: plugins teach triage to read a tool's raw payloads
(`crownguard_register_event_sources`), the incydr plugin the same way as a third party."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine import EventSource, PluginError, hookimpl
from crownguard.engine.errors import EventError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.triage import (
    Actor,
    Destination,
    DestinationKind,
    FileInfo,
    ModelMovementEvent,
    build_triage,
    normalise,
    normalise_many,
    parse_time,
    policy_from_mapping,
    recognise,
)

SAMPLES = Path(__file__).resolve().parents[1] / "plugins" / "incydr" / "samples"


def acme_recognise(raw: Any) -> str | None:
    return "acme.alert" if isinstance(raw, dict) and "acmeAlertId" in raw else None


def acme_events(raw: Any, options: Any) -> list[ModelMovementEvent]:
    return [ModelMovementEvent(str(raw["acmeAlertId"]), parse_time(raw["at"], "at", "acme"),
                               Actor(raw["who"]), FileInfo(raw["file"]),
                               Destination(DestinationKind.REMOVABLE_MEDIA, "USB", False),
                               origin="acme.alert", raw=raw)]


ACME = EventSource("acme", acme_recognise, acme_events, description="an Acme alert")
ALERT = {"acmeAlertId": 7, "at": "2026-11-20T21:42:07Z", "who": "dana@acme.example",
         "file": "fraud-v7.safetensors"}


class AcmePlugin:
    @hookimpl
    def crownguard_register_event_sources(self, register: Any) -> None:
        register(ACME)


def test_a_third_party_source_is_registered_and_triaged() -> None:
    host = PluginHost()
    host.add("crownguard.plugins.core", "core")
    host.add(AcmePlugin(), "acme")
    assert list(host.event_sources) == ["acme"]
    assert host.event_sources["acme"].plugin == "acme"
    sources = host.event_sources.values()
    assert recognise(ALERT, sources) == "acme.alert"
    assert normalise(ALERT, sources=sources).origin == "acme.alert"
    assert [e.id for e in normalise_many([ALERT, ALERT], sources=sources)] == ["7", "7"]
    triage = build_triage(policy_from_mapping({"routing": {"shipped_playbooks": False}}), host)
    [verdict] = triage.triage(ALERT)
    assert verdict.detection.is_model and verdict.event.actor.email == "dana@acme.example"
    with pytest.raises(EventError, match="not a crownguard event, an Acme alert, and no "
                                         "webhook mapping's `when` matches it"):
        triage.triage({"hello": "world"})


def test_without_sources_only_normalised_events_and_mappings_are_read() -> None:
    raw = json.loads(next(SAMPLES.glob("*.json")).read_text())
    with pytest.raises(EventError, match="not a crownguard event, and no webhook mapping"):
        normalise(raw)


def test_the_incydr_plugin_registers_its_source_through_the_hook() -> None:
    host = PluginHost.from_entry_points()
    source = host.event_sources["incydr"]
    assert source.plugin == "incydr"
    for path in sorted(SAMPLES.glob("*.json")):
        raw = json.loads(path.read_text())
        assert (recognise(raw, [source]) or "").startswith("incydr."), path.name
        assert normalise_many(raw, sources=[source]), path.name
    answer = {"fileEvents": [json.loads(p.read_text()) for p in sorted(SAMPLES.glob("*.json"))
                             if "@timestamp" in json.loads(p.read_text())]}
    parts = source.split(answer) if source.split else None
    assert parts and parts[0][0] == "fileEvents item 1"


def test_bad_and_duplicate_sources_are_refused_naming_the_plugins() -> None:
    class Twice:
        @hookimpl
        def crownguard_register_event_sources(self, register: Any) -> None:
            register(ACME)

    host = PluginHost()
    host.add(AcmePlugin(), "acme")
    host.add(Twice(), "twice")
    with pytest.raises(PluginError, match="event source 'acme' is registered by both 'acme' "
                                          "and 'twice'"):
        _ = host.event_sources

    class NotASource:
        @hookimpl
        def crownguard_register_event_sources(self, register: Any) -> None:
            register(acme_recognise)

    host = PluginHost()
    host.add(NotASource(), "bad")
    with pytest.raises(PluginError, match="not an EventSource"):
        _ = host.event_sources

    class BadName:
        @hookimpl
        def crownguard_register_event_sources(self, register: Any) -> None:
            register(EventSource("Acme Alerts", acme_recognise, acme_events))

    host = PluginHost()
    host.add(BadName(), "badname")
    with pytest.raises(PluginError, match="event source name 'Acme Alerts' must match"):
        _ = host.event_sources
