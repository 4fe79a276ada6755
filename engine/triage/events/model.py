"""ModelMovementEvent: one file movement, normalised, whatever tool reported it.

The published JSON Schema (triage/schemas/event-v1.json) is the contract for events read from files
and webhooks; the typed objects here are what detection, scoring and playbooks use.
`to_dict()` always writes every field (unknown values as null), so playbook expressions such
as `event.actor.departing` never meet a missing key.

The classes are slotted but not frozen: triage builds several per event at tens of thousands
of events per second, and a frozen dataclass costs about three times as much to construct.
Treat them as values all the same: derive changed copies (as `with_detection` does), never
assign to a field of an event someone else holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import jsonschema_rs

from ...errors import EventError, Problem

if TYPE_CHECKING:
    from ..detection.formats import Detection

SCHEMA_ID = "crownguard/model-movement-event/v1"


class DestinationKind(StrEnum):
    """Where the file went."""

    REMOVABLE_MEDIA = "removable_media"
    PERSONAL_CLOUD = "personal_cloud"
    PERSONAL_EMAIL = "personal_email"
    GENAI_TOOL = "genai_tool"
    WEB_UPLOAD = "web_upload"
    GIT_PUSH = "git_push"
    SYNC_APP = "sync_app"
    CLOUD_SHARE = "cloud_share"
    EMAIL = "email"
    PRINTER = "printer"
    ENDPOINT = "endpoint"
    UNKNOWN = "unknown"


class SourceKind(StrEnum):
    """Where the file came from."""

    REGISTRY = "registry"
    SHARE = "share"
    ENDPOINT = "endpoint"
    CLOUD = "cloud"
    WEB = "web"
    EMAIL = "email"
    REMOVABLE_MEDIA = "removable_media"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class Actor:
    email: str
    id: str | None = None
    name: str | None = None
    department: str | None = None
    manager: str | None = None
    title: str | None = None
    timezone: str | None = None
    departing: bool = False
    departure_date: date | None = None
    watchlists: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"email": self.email, "id": self.id, "name": self.name,
                "department": self.department, "manager": self.manager, "title": self.title,
                "timezone": self.timezone, "departing": self.departing,
                "departure_date": None if self.departure_date is None
                else self.departure_date.isoformat(),
                "watchlists": list(self.watchlists)}


@dataclass(slots=True)
class FileInfo:
    name: str
    path: str | None = None
    directory: str | None = None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    mime_type: str | None = None
    mime_type_by_bytes: str | None = None
    category: str | None = None
    category_by_bytes: str | None = None
    original_name: str | None = None
    url: str | None = None
    detected_format: str | None = None
    is_model: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "directory": self.directory,
                "size": self.size, "sha256": self.sha256, "md5": self.md5,
                "mime_type": self.mime_type, "mime_type_by_bytes": self.mime_type_by_bytes,
                "category": self.category, "category_by_bytes": self.category_by_bytes,
                "original_name": self.original_name, "url": self.url,
                "detected_format": self.detected_format, "is_model": self.is_model}


@dataclass(slots=True)
class Source:
    kind: SourceKind = SourceKind.UNKNOWN
    name: str | None = None
    registry: str | None = None
    model: str | None = None
    version: str | None = None
    domain: str | None = None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "name": self.name, "registry": self.registry,
                "model": self.model, "version": self.version, "domain": self.domain,
                "url": self.url}


@dataclass(slots=True)
class Destination:
    kind: DestinationKind = DestinationKind.UNKNOWN
    name: str | None = None
    trusted: bool | None = None
    domain: str | None = None
    account: str | None = None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "name": self.name, "trusted": self.trusted,
                "domain": self.domain, "account": self.account, "url": self.url}


@dataclass(slots=True)
class Device:
    hostname: str | None = None
    os: str | None = None
    ip: str | None = None
    falcon_id: str | None = None
    defender_id: str | None = None
    sentinelone_id: str | None = None
    incydr_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "os": self.os, "ip": self.ip,
                "falcon_id": self.falcon_id, "defender_id": self.defender_id,
                "sentinelone_id": self.sentinelone_id, "incydr_id": self.incydr_id}


@dataclass(slots=True)
class ModelMovementEvent:
    """A file moving from a source to a destination, by a person, on a device, at a time."""

    id: str
    time: datetime
    actor: Actor
    file: FileInfo
    destination: Destination
    source: Source = field(default_factory=Source)
    device: Device = field(default_factory=Device)
    action: str | None = None
    origin: str = "crownguard"
    raw: Any = None
    incident: str | None = None

    def to_dict(self, *, include_raw: bool = True,
                only: Collection[str] | None = None) -> dict[str, Any]:
        """The event as JSON-able data matching event-v1.json; with `only`, just those
        top-level keys (routing builds what the triggers read, see expressions.reads)."""
        if only is not None:
            return {key: _EVENT_PARTS[key](self) for key in only if key in _EVENT_PARTS}
        data: dict[str, Any] = {
            "schema": SCHEMA_ID, "id": self.id, "time": format_time(self.time),
            "action": self.action, "origin": self.origin, "incident": self.incident,
            "actor": self.actor.to_dict(),
            "file": self.file.to_dict(), "source": self.source.to_dict(),
            "destination": self.destination.to_dict(), "device": self.device.to_dict()}
        if include_raw:
            data["raw"] = self.raw
        return data

    def with_detection(self, detection: Detection) -> ModelMovementEvent:
        """The same event with file.detected_format and file.is_model filled in and, when the
        file is a registered model's and the origin did not name one, source.registry, model
        and version from that match (so playbooks can act on the registry version)."""
        f = self.file
        # Spelled out rather than dataclasses.replace, which costs four times as much on the
        # triage hot path; tests/test_events.py checks that every other field is kept.
        file = FileInfo(f.name, f.path, f.directory, f.size, f.sha256, f.md5, f.mime_type,
                        f.mime_type_by_bytes, f.category, f.category_by_bytes, f.original_name,
                        f.url, None if detection.format is None else str(detection.format),
                        detection.is_model)
        source = self.source
        match = detection.match
        if match is not None and not source.model:
            source = Source(source.kind, source.name, source.registry or match.registry,
                            match.model, match.version, source.domain, source.url)
        return ModelMovementEvent(self.id, self.time, self.actor, file, self.destination,
                                  source, self.device, self.action, self.origin, self.raw,
                                  self.incident)


_EVENT_PARTS: dict[str, Callable[[ModelMovementEvent], Any]] = {
    "schema": lambda e: SCHEMA_ID, "id": lambda e: e.id, "time": lambda e: format_time(e.time),
    "action": lambda e: e.action, "origin": lambda e: e.origin,
    "incident": lambda e: e.incident,
    "actor": lambda e: e.actor.to_dict(), "file": lambda e: e.file.to_dict(),
    "source": lambda e: e.source.to_dict(), "destination": lambda e: e.destination.to_dict(),
    "device": lambda e: e.device.to_dict(), "raw": lambda e: e.raw,
}


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: Any, field_name: str, origin: str) -> datetime:
    """An ISO 8601 string or epoch milliseconds as an aware UTC datetime."""
    try:
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            parsed = datetime.fromtimestamp(value / 1000, UTC)
        else:
            raise TypeError
    except (ValueError, TypeError, OverflowError, OSError):
        raise EventError.at(field_name, f"not a timestamp: {value!r:.80}", origin) from None
    if parsed.tzinfo is UTC:
        return parsed
    if parsed.tzinfo is None:
        raise EventError.at(field_name, f"timestamp without a time zone: {value!r:.80}", origin)
    return parsed.astimezone(UTC)


@lru_cache(maxsize=512)
def zone_named(name: str) -> ZoneInfo | None:
    """The IANA time zone of that name (Europe/Paris), or None when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


@lru_cache(maxsize=1)
def event_schema() -> dict[str, Any]:
    """The shipped JSON Schema of ModelMovementEvent v1."""
    text = resources.files("crownguard.engine.triage").joinpath("schemas/event-v1.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def inline_local_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every `{"$ref": "#/$defs/NAME", ...}` replaced by that definition (its
    sibling keywords kept): the same validation, without a reference lookup per field (2.5x
    faster on event-v1.json, which the service validates on every event it takes in). A
    schema whose definitions refer to themselves (a cycle) is returned as it is."""
    defs = schema.get("$defs") or {}

    class Cycle(Exception):
        pass

    def inline(node: Any, within: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
                if ref[8:] in within:
                    raise Cycle
                rest = {k: inline(v, within) for k, v in node.items() if k != "$ref"}
                return {**inline(defs[ref[8:]], (*within, ref[8:])), **rest}
            return {k: inline(v, within) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v, within) for v in node]
        return node

    try:
        flat = {k: inline(v, ()) for k, v in schema.items() if k != "$defs"}
    except Cycle:
        return schema
    return schema if '"#/$defs/' in json.dumps(flat) else flat


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(inline_local_refs(event_schema()),
                                           format_checker=jsonschema.FormatChecker())


@lru_cache(maxsize=1)
def _fast_validator() -> Any:
    """The same schema compiled by jsonschema-rs (Rust): about 100 times faster than the
    Python validator, which was nine tenths of taking an event in. It is only ever trusted
    to say "valid": it checks formats strictly (date-time, email) where the Python one is
    lenient, so a "no" is asked again of the Python validator, which alone decides and names
    the fields. None if it cannot compile the schema (then the Python one does it all)."""
    try:
        return jsonschema_rs.validator_for(inline_local_refs(event_schema()),
                                           validate_formats=True)
    except Exception:  # pragma: no cover - a schema construct the Rust crate lacks
        return None


def validate_event_dict(data: Any, origin: str = "event") -> None:
    """Raise EventError naming every field of `data` that breaks event-v1.json."""
    fast = _fast_validator()
    if fast is not None and fast.is_valid(data):
        return
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    problems = []
    for error in errors[:20]:
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path.append(missing)
            message = "is required"
        elif error.validator == "additionalProperties":
            message = error.message
        else:
            message = error.message
            if len(message) > 200:
                message = message[:200] + "..."
        name = ".".join(path) or "(event)"
        problems.append(Problem(origin, None, f"{name}: {message}", "/" + "/".join(path)))
    raise EventError(problems)


def event_from_dict(data: Any, *, origin: str = "event") -> ModelMovementEvent:
    """A ModelMovementEvent from a normalised-event mapping, validated against the schema."""
    validate_event_dict(data, origin)
    actor = data["actor"]
    file = data["file"]
    source = data.get("source") or {}
    destination = data["destination"]
    device = data.get("device") or {}
    departure = actor.get("departure_date")
    watchlists = tuple(actor.get("watchlists") or ())
    timezone = actor.get("timezone")
    if timezone is not None and zone_named(timezone) is None:
        raise EventError.at("actor.timezone", f"not an IANA time zone: {timezone!r:.80} (such "
                            "as Europe/Paris or America/New_York)", origin)
    return ModelMovementEvent(
        id=data["id"], time=parse_time(data["time"], "time", origin),
        action=data.get("action"), origin=data.get("origin") or "crownguard",
        actor=Actor(email=actor["email"], id=actor.get("id"), name=actor.get("name"),
                    department=actor.get("department"), manager=actor.get("manager"),
                    title=actor.get("title"), timezone=timezone,
                    # A known departure date or the DEPARTING_EMPLOYEE watchlist is a
                    # departing person, whatever `departing` says: triggers read `departing`.
                    departing=bool(actor.get("departing", False)) or departure is not None
                    or "DEPARTING_EMPLOYEE" in watchlists,
                    departure_date=None if departure is None else date.fromisoformat(departure),
                    watchlists=watchlists),
        file=FileInfo(**{k: file.get(k) for k in FileInfo.__slots__}),
        source=Source(kind=SourceKind(source.get("kind", "unknown")),
                      **{k: source.get(k) for k in Source.__slots__ if k != "kind"}),
        destination=Destination(kind=DestinationKind(destination["kind"]),
                                **{k: destination.get(k) for k in Destination.__slots__
                                   if k != "kind"}),
        device=Device(**{k: device.get(k) for k in Device.__slots__}),
        raw=data.get("raw"), incident=data.get("incident"))
