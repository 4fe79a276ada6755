"""ModelMovementEvent: the schema, Incydr file events and alerts, webhooks via JMESPath."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from crownguard.engine.errors import EventError, SpecError
from crownguard.engine.triage import events as triage_events
from crownguard.engine.triage.detection import Detection, Method, ModelFormat, detect
from crownguard.engine.triage.detection.formats import ModelMatch
from crownguard.engine.triage.events import (
    Actor,
    Destination,
    DestinationKind,
    Device,
    FileInfo,
    ModelMovementEvent,
    NormaliseOptions,
    Source,
    SourceKind,
    event_from_dict,
    event_schema,
    mapping_from_dict,
    validate_event_dict,
)
from crownguard.plugins.incydr.source import EVENT_SOURCE

# Incydr's payloads are read by the incydr plugin's event source, as a host registers it.
SOURCES = (EVENT_SOURCE,)


def normalise(raw: Any, mapping: Any = None, **kwargs: Any) -> ModelMovementEvent:
    return triage_events.normalise(raw, mapping, sources=SOURCES, **kwargs)


def normalise_many(raw: Any, mapping: Any = None, **kwargs: Any) -> list[ModelMovementEvent]:
    return triage_events.normalise_many(raw, mapping, sources=SOURCES, **kwargs)


def recognise(raw: Any) -> str:
    return triage_events.recognise(raw, SOURCES)

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def incydr_event(**extra: Any) -> dict[str, Any]:
    """An Incydr v2 file event with the SDK's field names (FileEventV2)."""
    base: dict[str, Any] = {
        "@timestamp": "2026-11-20T21:42:07.125Z",
        "event": {"id": "0_147e9445-2f30-4a91-8b2a-9455332e880a_9734_9864_163",
                  "action": "removable-media-created", "observer": "Endpoint",
                  "ingested": "2026-11-20T21:43:00.000Z", "shareType": [], "vector": None},
        "user": {"email": "Dana.Kim@acme.example", "id": "1138", "deviceUid": "24681"},
        "file": {"name": "fraud-v7.safetensors", "directory": "/Users/dana/models/",
                 "originalName": None, "category": "Uncategorized",
                 "mimeTypeByBytes": "application/octet-stream",
                 "mimeTypeByExtension": "application/octet-stream",
                 "sizeInBytes": 734003200, "hash": {"sha256": SHA.upper(), "md5":
                                                    "a162591e78eb2c816a28907d3ac020f9"}},
        "source": {"category": "Device", "name": "Dana's MacBook",
                   "domain": "dana-mbp.acme.example", "ip": "203.0.113.7",
                   "operatingSystem": "Mac OS X", "domains": []},
        "destination": {"category": "Device", "name": None,
                        "removableMedia": {"vendor": "SanDisk", "mediaName": "Cruzer Blade",
                                           "busType": "USB 3.0 Bus",
                                           "serialNumber": "4C531001550407108465"}},
        "risk": {"score": 12, "severity": "HIGH", "trusted": False,
                 "indicators": [{"name": "Removable media", "weight": 5},
                                {"name": "Departing", "weight": 5}],
                 "untrustedValues": {"accountNames": [], "domains": [], "gitRepositoryUris": [],
                                     "slackWorkspaces": [], "urlPaths": []}},
    }
    return merge(base, extra)


def test_an_incydr_removable_media_event_maps_every_section() -> None:
    event = normalise(incydr_event())
    assert event.origin == "incydr.file_event"
    assert event.id.startswith("0_147e9445")
    assert event.time == datetime(2026, 11, 20, 21, 42, 7, 125000, tzinfo=UTC)
    assert event.actor.email == "dana.kim@acme.example" and event.actor.id == "1138"
    assert event.actor.departing and event.actor.watchlists == ("DEPARTING_EMPLOYEE",)
    assert event.file.path == "/Users/dana/models/fraud-v7.safetensors"
    assert event.file.size == 734003200 and event.file.sha256 == SHA
    assert event.destination.kind == DestinationKind.REMOVABLE_MEDIA
    assert event.destination.name == "SanDisk Cruzer Blade"
    assert event.destination.trusted is False
    assert event.device.hostname == "dana-mbp.acme.example"
    assert event.device.incydr_id == "24681" and event.device.os == "Mac OS X"
    assert event.source.kind == SourceKind.ENDPOINT
    assert event.raw["event"]["action"] == "removable-media-created"


WEB = {"destination": {"removableMedia": None}}


@pytest.mark.parametrize(("extra", "kind"), [
    ({"event": {"action": "application-read"},
      "destination": {"removableMedia": None, "category": "Uncategorized", "name": "ChatGPT",
                      "domains": ["chatgpt.com"],
                      "tabs": [{"url": "https://chatgpt.com/c/123", "title": "ChatGPT"}]}},
     DestinationKind.GENAI_TOOL),
    ({"event": {"action": "application-read"},
      "destination": {"removableMedia": None, "category": "Email", "name": "Gmail",
                      "domains": ["mail.google.com", "gmail.com"]}},
     DestinationKind.PERSONAL_EMAIL),
    ({"event": {"action": "application-read"},
      "destination": {"removableMedia": None, "category": "Cloud Storage", "name": "Dropbox",
                      "domains": ["www.dropbox.com"]}},
     DestinationKind.PERSONAL_CLOUD),
    ({"event": {"action": "application-read"},
      "destination": {"removableMedia": None, "category": "Uncategorized", "name": "Unknown",
                      "domains": ["upload.example.org"]}},
     DestinationKind.WEB_UPLOAD),
    ({"event": {"action": "sync-app-created"},
      "destination": {"removableMedia": None, "category": "Cloud Storage", "name": "Dropbox",
                      "accountType": "PERSONAL", "accountName": "dana.k@gmail.com"}},
     DestinationKind.PERSONAL_CLOUD),
    ({"event": {"action": "sync-app-created"},
      "destination": {"removableMedia": None, "category": "Cloud Storage", "name": "OneDrive",
                      "accountType": "BUSINESS", "accountName": "dana.kim@acme.example"}},
     DestinationKind.SYNC_APP),
    ({"event": {"action": "file-emailed"},
      "destination": {"removableMedia": None, "email": {"recipients": ["dana.k@gmail.com"],
                                                          "subject": "stuff"}}},
     DestinationKind.PERSONAL_EMAIL),
    ({"event": {"action": "file-emailed"},
      "destination": {"removableMedia": None, "email": {"recipients": ["cfo@partner.example"]}}},
     DestinationKind.EMAIL),
    ({"event": {"action": "file-created", "vector": "GIT_PUSH"},
      "destination": {"removableMedia": None},
      "git": {"repositoryUri": "git@github.com:dana/side-project.git", "repositoryUser": "dk"}},
     DestinationKind.GIT_PUSH),
    ({"event": {"action": "file-printed"},
      "destination": {"removableMedia": None, "printerName": "OfficeJet"}},
     DestinationKind.PRINTER),
    ({"event": {"action": "file-shared", "observer": "GoogleDrive"},
      "destination": {"removableMedia": None}}, DestinationKind.CLOUD_SHARE),
    ({"event": {"action": "file-downloaded"}, "destination": {"removableMedia": None}},
     DestinationKind.ENDPOINT),
    ({"event": {"action": "file-deleted"}, "destination": {"removableMedia": None}},
     DestinationKind.UNKNOWN),
])
def test_incydr_destinations_map_to_crownguard_kinds(extra: dict[str, Any],
                                                     kind: DestinationKind) -> None:
    event = normalise(incydr_event(**extra))
    assert event.destination.kind == kind


def test_a_download_from_a_known_registry_host_has_the_registry_as_source() -> None:
    raw = incydr_event(event={"action": "file-downloaded"},
                       destination={"removableMedia": None},
                       source={"category": "Uncategorized", "domains": ["mlflow.acme.example"],
                               "tabs": [{"url": "https://mlflow.acme.example/#/models/fraud"}]})
    options = NormaliseOptions(registry_domains={"mlflow.acme.example": "mlflow"})
    event = normalise(raw, options=options)
    assert event.source.kind == SourceKind.REGISTRY and event.source.registry == "mlflow"
    assert event.source.url == "https://mlflow.acme.example/#/models/fraud"
    assert normalise(raw).source.kind == SourceKind.WEB


def test_policy_trusted_domains_make_a_destination_trusted() -> None:
    raw = incydr_event(event={"action": "application-read"},
                       destination={"removableMedia": None, "domains": ["upload.acme.example"]},
                       risk={"trusted": None})
    trusting = NormaliseOptions(trusted_domains=frozenset({"acme.example"}))
    assert normalise(raw, options=trusting).destination.trusted is True
    assert normalise(raw).destination.trusted is None


def browser_upload(domain: str, category: str | None = None) -> dict[str, Any]:
    return incydr_event(event={"action": "file-uploaded"}, risk={"trusted": False},
                        destination={"removableMedia": None, "domains": [domain],
                                     "category": category, "name": None})


@pytest.mark.parametrize(("domain", "category", "kind"), [
    ("mail.google.com", "Webmail", DestinationKind.PERSONAL_EMAIL),
    ("mail.google.com", None, DestinationKind.PERSONAL_EMAIL),
    ("outlook.office.com", "Webmail", DestinationKind.EMAIL),  # a company's Microsoft 365
    ("acme.sharepoint.com", "Cloud Storage", DestinationKind.CLOUD_SHARE),
    ("acme.app.box.com", "Cloud Storage", DestinationKind.CLOUD_SHARE),
    ("www.dropbox.com", "Cloud Storage", DestinationKind.PERSONAL_CLOUD),
    ("files.example.net", "Webmail", DestinationKind.PERSONAL_EMAIL),
])
def test_browser_uploads_tell_a_company_tenant_from_a_personal_account(
        domain: str, category: str | None, kind: DestinationKind) -> None:
    assert normalise(browser_upload(domain, category)).destination.kind == kind


def test_normalising_never_changes_the_raw_event() -> None:
    raw = incydr_event(source={"domains": ["mlflow.acme.example"]},
                       file={"acquiredFrom": [{"sourceDomains": ["s3.acme.example"]}]})
    before = copy.deepcopy(raw)
    event = normalise(raw)
    assert raw == before and event.raw is raw
    assert event.source.domain == "mlflow.acme.example"


def test_a_browser_upload_names_the_site_not_the_browser() -> None:
    raw = incydr_event(event={"action": "application-read"}, risk={"trusted": False},
                       destination={"removableMedia": None, "domains": ["claude.ai"],
                                    "name": "Chrome"})
    destination = normalise(raw).destination
    assert destination.kind == DestinationKind.GENAI_TOOL
    assert destination.name == "claude.ai (Chrome)" and destination.domain == "claude.ai"


@pytest.mark.parametrize("host", ["modelscope.cn", "www.kaggle.com", "huggingface.co"])
def test_model_hubs_count_with_the_generative_ai_tools(host: str) -> None:
    assert normalise(browser_upload(host)).destination.kind == DestinationKind.GENAI_TOOL


def test_the_policy_adds_personal_cloud_and_mail_hosts() -> None:
    own = NormaliseOptions(personal_cloud_domains=frozenset({"files.example.net"}),
                           personal_email_domains=frozenset({"mail.example.org"}))
    assert normalise(browser_upload("files.example.net"), options=own).destination.kind == \
        DestinationKind.PERSONAL_CLOUD
    assert normalise(browser_upload("mail.example.org"), options=own).destination.kind == \
        DestinationKind.PERSONAL_EMAIL
    assert normalise(browser_upload("files.example.net")).destination.kind == \
        DestinationKind.WEB_UPLOAD


@pytest.mark.parametrize(("shares", "kind"), [
    (["SharedViaLink"], DestinationKind.WEB_UPLOAD), (["IsPublic"], DestinationKind.WEB_UPLOAD),
    (["SharedToDomain"], DestinationKind.CLOUD_SHARE), ([], DestinationKind.CLOUD_SHARE)])
def test_a_file_shared_with_anyone_who_has_the_link_is_on_the_web(
        shares: list[str], kind: DestinationKind) -> None:
    raw = incydr_event(event={"action": "file-shared", "shareType": shares},
                       risk={"trusted": False},
                       destination={"removableMedia": None, "name": "Google Drive"})
    destination = normalise(raw).destination
    assert destination.kind == kind
    assert ("public link" in (destination.name or "")) is (kind == DestinationKind.WEB_UPLOAD)


def test_airdrop_hands_the_file_to_a_device_nearby() -> None:
    raw = incydr_event(event={"action": "application-read"}, risk={"trusted": False},
                       destination={"removableMedia": None, "name": "AirDrop"})
    assert normalise(raw).destination.kind == DestinationKind.REMOVABLE_MEDIA


def test_an_alert_to_a_trusted_sync_service_is_trusted() -> None:
    alert = {"id": "a-1", "actor": "dana@acme.example", "createdAt": "2026-11-20T10:00:00Z",
             "observations": [{"observedAt": "2026-11-20T09:59:00Z",
                               "data": {"exposureTypes": ["CloudStorage"],
                                        "syncToServices": ["Dropbox"],
                                        "files": [{"name": "m.safetensors"}]}}]}
    trusting = NormaliseOptions(trusted_domains=frozenset({"dropbox.com"}))
    [trusted] = normalise_many(alert, options=trusting)
    [untrusted] = normalise_many(alert)
    assert trusted.destination.trusted is True and trusted.destination.domain == "dropbox.com"
    assert untrusted.destination.trusted is False


def test_corporate_domains_make_a_browser_upload_internal_and_trusted() -> None:
    corporate = NormaliseOptions(corporate_domains=frozenset({"acme.example"}))
    destination = normalise(browser_upload("files.acme.example", "Cloud Storage"),
                            options=corporate).destination
    assert destination.kind == DestinationKind.CLOUD_SHARE and destination.trusted is True


def test_trusted_domains_trust_sync_apps_mail_and_git_too() -> None:
    trusting = NormaliseOptions(trusted_domains=frozenset({"dropbox.com", "partner.example",
                                                           "github.com/acme"}))
    sync = incydr_event(event={"action": "sync-app-created"}, risk={"trusted": False},
                        destination={"removableMedia": None, "name": "Dropbox",
                                     "accountType": "PERSONAL"})
    destination = normalise(sync, options=trusting).destination
    assert (destination.kind, destination.domain, destination.trusted) == (
        DestinationKind.PERSONAL_CLOUD, "dropbox.com", True)
    assert normalise(sync).destination.trusted is False
    mail = incydr_event(event={"action": "file-emailed"}, risk={"trusted": False},
                        destination={"removableMedia": None,
                                     "email": {"recipients": ["x@partner.example"]}})
    assert normalise(mail, options=trusting).destination.trusted is True
    for uri, trusted in [("https://github.com/acme/models.git", True),
                         ("git@github.com:acme/models.git", True),
                         ("ssh://git@github.com/acme/models.git", True),
                         ("https://github.com/acme-personal/models.git", False),
                         ("https://github.com/dana/acme.git", False),
                         ("https://gitlab.com/acme/models.git", False)]:
        push = incydr_event(event={"action": "git-push"}, risk={"trusted": None},
                            destination={"removableMedia": None},
                            git={"repositoryUri": uri})
        assert (normalise(push, options=trusting).destination.trusted is True) is trusted, uri


def test_a_normalised_event_to_a_trusted_domain_is_trusted() -> None:
    data = {"id": "e1", "time": "2026-11-20T10:00:00Z", "actor": {"email": "a@acme.example"},
            "file": {"name": "m.onnx"},
            "destination": {"kind": "web_upload", "domain": "upload.partner.example",
                            "trusted": False}}
    trusting = NormaliseOptions(trusted_domains=frozenset({"partner.example"}))
    assert normalise(data, options=trusting).destination.trusted is True
    assert normalise(data).destination.trusted is False
    data["destination"] = {"kind": "web_upload", "url": "https://upload.partner.example/x",
                           "trusted": False}  # only a URL: its host counts
    assert normalise(data, options=trusting).destination.trusted is True


def test_a_removable_device_named_after_its_vendor_is_not_named_twice() -> None:
    raw = incydr_event(destination={"removableMedia": {"vendor": "SanDisk",
                                                       "mediaName": "SanDisk Ultra Fit USB Device"}})
    assert normalise(raw).destination.name == "SanDisk Ultra Fit USB Device"
    assert normalise(incydr_event()).destination.name == "SanDisk Cruzer Blade"


def test_user_behaviour_indicators_become_watchlists() -> None:
    raw = incydr_event(risk={"indicators": [{"name": "Flight risk", "weight": 3},
                                            {"name": "Off hours", "weight": 1},
                                            {"name": "Contract", "weight": 2}]})
    actor = normalise(raw).actor
    assert actor.watchlists == ("FLIGHT_RISK", "CONTRACT_EMPLOYEE") and not actor.departing


@pytest.mark.parametrize(("extra", "field"), [
    ({"user": {"email": None}}, "user.email"),
    ({"file": {"name": ""}}, "file.name"),
    ({"file": {"sizeInBytes": "lots"}}, "file.sizeInBytes"),
    ({"file": {"sizeInBytes": -3}}, "file.sizeInBytes"),
    ({"file": {"hash": {"sha256": "abc"}}}, "file.hash.sha256"),
    ({"file": {"hash": {"sha256": "g" * 64}}}, "file.hash.sha256"),
    ({"file": {"hash": {"sha256": "a" * 63 + "\n"}}}, "file.hash.sha256"),
    ({"file": {"hash": {"md5": "z" * 32}}}, "file.hash.md5"),
    ({"file": "fraud.safetensors"}, "file"),
    ({"@timestamp": "yesterday"}, "@timestamp"),
    ({"@timestamp": "2026-11-20T21:42:07"}, "@timestamp"),
    ({"event": {"id": None}}, "event.id"),
    ({"risk": {"indicators": "Departing"}}, "risk.indicators"),
    ({"risk": {"trusted": "yes"}}, "risk.trusted"),
    ({"risk": {"indicators": [{"name": 7, "weight": "x"}]}}, "risk.indicators.0.name"),
    ({"risk": {"indicators": [{"name": "Departing"}, 5]}}, "risk.indicators.1.name"),
    ({"user": {"email": 12345}}, "user.email"),
    ({"user": {"email": "not-an-email"}}, "user.email"),
    ({"file": {"sizeInBytes": 10**40}}, "file.sizeInBytes"),
    ({"file": {"sizeInBytes": "1" * 30}}, "file.sizeInBytes"),
    ({"file": {"sizeInBytes": "9" * 5000}}, "file.sizeInBytes"),
    ({"destination": {"removableMedia": {"vendor": ["SanDisk"]}}},
     "destination.removableMedia.vendor"),
])
def test_a_malformed_incydr_event_is_rejected_with_the_field_named(extra: dict[str, Any],
                                                                   field: str) -> None:
    with pytest.raises(EventError) as caught:
        normalise(incydr_event(**extra))
    assert caught.value.fields == [field]
    assert field in str(caught.value)
    assert isinstance(caught.value, SpecError)


def test_epoch_millisecond_timestamps_are_accepted() -> None:
    event = normalise(incydr_event(**{"@timestamp": 1795729327125}))
    assert event.time.year == 2026


def incydr_alert(files: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An Incydr AlertDetails, observation data as the JSON string the API returns."""
    data = {"type$": "OBSERVED_ENDPOINT_ACTIVITY", "id": "obs-1", "sources": ["Endpoint"],
            "exposureTypes": ["CloudStorage"], "syncToServices": ["Dropbox"],
            "firstActivityAt": "2026-11-20T21:40:00.0000000Z",
            "lastActivityAt": "2026-11-20T21:45:00.0000000Z", "fileCount": 2,
            "totalFileSize": 1468006400,
            "files": files if files is not None else [
                {"type$": "OBSERVED_FILE", "eventId": "ev-a", "path": "/Users/dana/Dropbox/",
                 "name": "fraud-v7.safetensors", "category": "Uncategorized",
                 "size": 734003200},
                {"type$": "OBSERVED_FILE", "eventId": "ev-b", "path": "/Users/dana/Dropbox/",
                 "name": "tokenizer.json", "category": "SourceCode", "size": 2048}]}
    return {"type$": "ALERT_DETAILS", "tenantId": "acme", "type": "FED_ENDPOINT_EXFILTRATION",
            "id": "alert-42", "name": "Departing employee exfiltration",
            "actor": "Dana.Kim@acme.example", "actorId": "actor-9", "severity": "HIGH",
            "riskSeverity": "HIGH", "ruleId": "rule-1", "state": "OPEN",
            "createdAt": "2026-11-20T21:50:25.3644410Z",
            "watchlists": [{"id": "w1", "name": None, "type": "DEPARTING_EMPLOYEE",
                            "isSignificant": True}],
            "observations": [{"type$": "OBSERVATION", "id": "obs-1",
                              "observedAt": "2026-11-20T21:40:00.0000000Z",
                              "type": "FedEndpointExfiltration", "data": json.dumps(data)}]}


def test_an_incydr_alert_gives_one_event_per_observed_file() -> None:
    events = normalise_many(incydr_alert())
    assert [e.file.name for e in events] == ["fraud-v7.safetensors", "tokenizer.json"]
    first = events[0]
    assert first.origin == "incydr.alert" and first.id == "alert-42:ev-a"
    assert first.actor.departing and first.actor.email == "dana.kim@acme.example"
    assert first.destination.kind == DestinationKind.PERSONAL_CLOUD
    assert first.destination.name == "Dropbox"
    assert first.file.path == "/Users/dana/Dropbox/fraud-v7.safetensors"
    with pytest.raises(EventError, match="normalise_many"):
        normalise(incydr_alert())


def test_an_alert_without_files_is_rejected_with_the_field_named() -> None:
    with pytest.raises(EventError) as caught:
        normalise_many(incydr_alert(files=[]))
    assert caught.value.fields == ["observations.0.data.files"]
    broken = incydr_alert()
    broken["observations"][0]["data"] = "{not json"
    with pytest.raises(EventError) as caught:
        normalise_many(broken)
    assert caught.value.fields == ["observations.0.data"]


def test_shapes_are_recognised() -> None:
    event = normalise(incydr_event())
    assert recognise(incydr_event()) == "incydr.file_event"
    assert recognise(incydr_alert()) == "incydr.alert"
    assert recognise(event.to_dict()) == "crownguard"
    assert recognise({"fileEvents": [incydr_event()], "nextPgToken": None}) == \
        "incydr.file_events_response"
    assert recognise({"alerts": [incydr_alert()]}) == "incydr.alerts_response"
    assert recognise([incydr_event()]) == "list"
    assert recognise({"hello": "world"}) == "unknown"
    assert len(normalise_many({"fileEvents": [incydr_event(), incydr_event()]})) == 2
    assert len(normalise_many([incydr_event(), incydr_alert()])) == 3
    with pytest.raises(EventError, match="unrecognised payload"):
        normalise({"hello": "world"})


def test_a_normalised_event_round_trips_through_its_schema() -> None:
    event = normalise(incydr_event())
    data = json.loads(json.dumps(event.to_dict()))
    validate_event_dict(data)
    again = event_from_dict(data)
    assert again == event
    assert normalise(data) == event


def test_every_field_written_is_declared_in_the_schema() -> None:
    data = normalise(incydr_event()).to_dict()
    schema = event_schema()
    assert set(data) <= set(schema["properties"])
    for section in ("actor", "file", "source", "destination", "device"):
        assert set(data[section]) == set(schema["$defs"][section]["properties"]), section


def minimal() -> dict[str, Any]:
    return {"id": "e1", "time": "2026-11-20T10:00:00+01:00",
            "actor": {"email": "a@acme.example", "departure_date": "2026-12-15",
                      "timezone": "Europe/Paris"},
            "file": {"name": "m.onnx"}, "destination": {"kind": "genai_tool"}}


def test_the_departing_watchlist_makes_a_departing_person_and_zones_are_checked() -> None:
    data = minimal()
    data["actor"] = {"email": "a@acme.example", "departing": False,
                     "watchlists": ["DEPARTING_EMPLOYEE"]}
    assert event_from_dict(data).actor.departing is True
    data["actor"] = {"email": "a@acme.example", "timezone": "Mars/Olympus"}
    with pytest.raises(EventError) as caught:
        event_from_dict(data)
    assert caught.value.fields == ["actor.timezone"] and "IANA" in str(caught.value)


@pytest.mark.parametrize("name", ["Departing", "Departing employee", "departing  Employee",
                                  "DEPARTING"])
def test_departing_indicators_are_recognised_by_any_usual_name(name: str) -> None:
    actor = normalise(incydr_event(risk={"indicators": [{"name": name, "weight": 5}]})).actor
    assert actor.departing and actor.watchlists == ("DEPARTING_EMPLOYEE",)


def test_a_minimal_normalised_event_gets_defaults() -> None:
    event = event_from_dict(minimal())
    assert event.time == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    # a departure date makes a departing person: the shipped triggers read `departing`
    assert event.actor.departure_date == date(2026, 12, 15) and event.actor.departing
    assert event.source.kind == SourceKind.UNKNOWN and event.device.falcon_id is None
    assert event.to_dict()["device"]["falcon_id"] is None


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["actor"].pop("email"), "actor.email"),
    (lambda d: d["file"].update(size="big"), "file.size"),
    (lambda d: d["file"].update(sha256="XYZ"), "file.sha256"),
    (lambda d: d["destination"].update(kind="moon"), "destination.kind"),
    (lambda d: d["actor"].update(departure_date="soon"), "actor.departure_date"),
    (lambda d: d.update(colour="red"), "(event)"),
    (lambda d: d["device"] if "device" in d else d.update(device={"serial": 1}), "device"),
    (lambda d: d.pop("destination"), "destination"),
    (lambda d: d.update(time="not a time"), "time"),
])
def test_a_malformed_normalised_event_names_the_field(change: Any, field: str) -> None:
    data = minimal()
    change(data)
    with pytest.raises(EventError) as caught:
        event_from_dict(data)
    assert field in caught.value.fields[0] or field in str(caught.value)


def test_with_detection_fills_the_file_verdict() -> None:
    event = normalise(incydr_event())
    annotated = event.with_detection(detect(event))
    assert annotated.file.is_model is True and annotated.file.detected_format == "safetensors"
    assert event.file.is_model is None
    validate_event_dict(annotated.to_dict())


def _every_field_set(cls: Any, **given: Any) -> Any:
    """An instance of a slotted event dataclass with a distinct value in every field."""
    values = {f.name: given.get(f.name, f"{cls.__name__}.{f.name}")
              for f in dataclasses.fields(cls)}
    return cls(**values)


def test_with_detection_keeps_every_other_field() -> None:
    # with_detection spells its copies out for speed: a field added later must not be lost.
    file = _every_field_set(FileInfo)
    source = _every_field_set(Source)
    event = ModelMovementEvent("id-1", datetime(2026, 11, 2, tzinfo=UTC),
                               _every_field_set(Actor), file, _every_field_set(Destination),
                               source, _every_field_set(Device), "action", "origin", {"r": 1})
    match = ModelMatch("mlflow", "fraud-model", "7", "model/x.safetensors", "restricted")
    detection = Detection.verdict(1.0, ModelFormat.SAFETENSORS, Method.FINGERPRINT, [],
                                  match=match)
    annotated = event.with_detection(detection)
    assert annotated.file == dataclasses.replace(file, detected_format="safetensors",
                                                 is_model=True)
    assert annotated.source == source  # the origin named a model already: kept
    for f in dataclasses.fields(ModelMovementEvent):
        if f.name not in ("file",):
            assert getattr(annotated, f.name) == getattr(event, f.name), f.name
    unnamed = dataclasses.replace(event, source=dataclasses.replace(source, model=None,
                                                                    registry=None))
    filled = unnamed.with_detection(detection).source
    assert filled == dataclasses.replace(source, registry="mlflow", model="fraud-model",
                                         version="7")


def test_to_dict_with_only_gives_the_same_parts() -> None:
    event = normalise(incydr_event()).with_detection(detect(normalise(incydr_event())))
    full = event.to_dict()
    for key in full:
        assert event.to_dict(only=[key]) == {key: full[key]}
    assert event.to_dict(only=["file", "nonsense"]) == {"file": full["file"]}


# --- webhooks --------------------------------------------------------------------------------

MAPPING = {
    "when": "vendor == 'acme-dlp'",
    "fields": {
        "id": "alert.uuid",
        "time": "alert.created",
        "action": "alert.kind",
        "actor.email": "user.mail",
        "actor.department": "user.dept",
        "actor.departing": "user.leaving",
        "file.name": "file.filename",
        "file.size": "to_number(file.bytes)",
        "file.sha256": "file.sha256",
        "destination.domain": "target.host",
        "destination.trusted": "`false`",
        "device.hostname": "host.name",
        "device.falcon_id": "host.crowdstrike_aid",
    },
}


def acme_payload(**extra: Any) -> dict[str, Any]:
    return merge({"vendor": "acme-dlp",
                  "alert": {"uuid": "a-1", "created": 1795729327125, "kind": "upload"},
                  "user": {"mail": "Lee@Acme.example", "dept": "Research", "leaving": False},
                  "file": {"filename": "adapter_model.safetensors", "bytes": "52428800",
                           "sha256": SHA.upper()},
                  "target": {"host": "claude.ai"},
                  "host": {"name": "lee-ws", "crowdstrike_aid": "aid-77"}}, extra)


def test_a_webhook_payload_maps_through_jmespath() -> None:
    mapping = mapping_from_dict("acme-dlp", MAPPING)
    event = normalise(acme_payload(), mapping)
    assert event.origin == "webhook:acme-dlp" and event.id == "a-1"
    assert event.actor.email == "lee@acme.example" and event.actor.department == "Research"
    assert event.file.size == 52428800 and event.file.sha256 == SHA
    assert event.destination.kind == DestinationKind.GENAI_TOOL
    assert event.destination.trusted is False and event.device.falcon_id == "aid-77"
    assert event.time.year == 2026
    assert event.raw["vendor"] == "acme-dlp"


def test_webhook_mappings_are_chosen_by_their_when() -> None:
    mapping = mapping_from_dict("acme-dlp", MAPPING)
    other = mapping_from_dict("other", {"when": "vendor == 'other'", "fields": {"id": "x"}})
    events = normalise_many(acme_payload(), mappings=[other, mapping])
    assert events[0].origin == "webhook:acme-dlp"
    with pytest.raises(EventError):
        normalise_many({"vendor": "nobody"}, mappings=[mapping])


def test_a_webhook_payload_missing_a_required_field_is_rejected_with_it_named() -> None:
    mapping = mapping_from_dict("acme-dlp", MAPPING)
    payload = acme_payload()
    del payload["user"]["mail"]
    with pytest.raises(EventError) as caught:
        normalise(payload, mapping)
    assert caught.value.fields == ["actor.email"]
    assert "webhook:acme-dlp" in str(caught.value)


def test_bad_mappings_are_rejected_when_loaded() -> None:
    with pytest.raises(SpecError) as caught:
        mapping_from_dict("bad", {"when": "a ==", "fields": {"actor.mood": "x", "id": "foo[",
                                                             "file.name": 3}})
    messages = str(caught.value)
    assert "'actor.mood' is not a field" in messages
    assert "id: syntax error" in messages
    assert "file.name must be a JMESPath string" in messages
    assert "when: syntax error" in messages
    with pytest.raises(SpecError, match="needs a 'fields' object"):
        mapping_from_dict("empty", {})


def test_the_schema_enums_match_the_code() -> None:
    from crownguard.engine.triage.detection import ModelFormat
    from crownguard.engine.triage.policy import policy_schema
    from crownguard.engine.triage.risk import default_policy_data

    defs = event_schema()["$defs"]
    assert set(defs["destination"]["properties"]["kind"]["enum"]) == {str(k) for k in
                                                                       DestinationKind}
    assert set(defs["source"]["properties"]["kind"]["enum"]) == {str(k) for k in SourceKind}
    assert set(defs["file"]["properties"]["detected_format"]["enum"]) == \
        {str(f) for f in ModelFormat} | {None}
    destinations = policy_schema()["properties"]["destinations"]["properties"]["weights"]
    assert set(destinations["propertyNames"]["enum"]) == {str(k) for k in DestinationKind}
    assert set(default_policy_data()["destinations"]["weights"]) == {str(k) for k in
                                                                      DestinationKind}


@pytest.mark.parametrize(("url", "host"), [
    ("https://[2001:db8::1]:8443/models/x", "2001:db8::1"),
    ("https://user:p@ss@Models.Example.com/x", "models.example.com"),
    ("ssh://git@gitlab.com/acme/repo.git", "gitlab.com"),
    ("git@github.com:acme/repo.git", "github.com"),
    ("https://huggingface.co:443/acme", "huggingface.co"),
    ("https://[2001:db8::1/x", None),
    ("", None),
])
def test_url_host_reads_ipv6_literals_and_passwords_with_an_at_sign(url: str,
                                                                    host: str | None) -> None:
    from crownguard.engine.triage import url_host

    assert url_host(url) == host


@pytest.mark.parametrize(("url", "under"), [
    ("https://user:p@ss@github.com/acme/models", True),
    ("https://GitHub.com:443/acme/models", True),
    ("git@github.com:acme/models.git", True),
    ("git@github.com:other/models.git", False),
    ("https://github.com/acmex/models", False),
])
def test_a_trusted_host_path_entry_reads_urls_as_url_host_does(url: str, under: bool) -> None:
    from crownguard.engine.triage.events.classify import _under

    assert _under(url, "github.com/acme") is under
