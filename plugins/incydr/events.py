"""Code42 Incydr file events (v2 search) and alerts, mapped to ModelMovementEvent.

Field names are Incydr's own (code42/incydr_python `FileEventV2`, `AlertDetails`): a file
event is `{"@timestamp", "event", "user", "file", "source", "destination", "risk", "git",
...}`; an alert carries `actor`, `watchlists` and `observations[].data.files`. User-behaviour
risk indicators ("Departing", "Flight risk", ...) become watchlist types on the actor, so a
departing employee is known even before an HR lookup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from crownguard.engine.triage import (
    DEFAULT_OPTIONS,
    SYNC_APP_DOMAINS,
    Actor,
    Category,
    Destination,
    DestinationKind,
    Device,
    EventError,
    FileInfo,
    ModelMovementEvent,
    NormaliseOptions,
    Source,
    classify_source,
    classify_web_destination,
    domain_matches,
    parse_time,
    url_host,
)

# Incydr's category names, in crownguard's words (engine.triage.Category).
CATEGORIES = {"Email": Category.MAIL, "Webmail": Category.MAIL, "Web Mail": Category.MAIL,
              "Cloud Storage": Category.CLOUD_STORAGE, "Business Tools": Category.BUSINESS_APP,
              "Source Code Repository": Category.CODE_REPOSITORY}


def category_of(name: str | None) -> Category | None:
    return CATEGORIES.get(name) if name else None


FILE_EVENT = "incydr.file_event"
ALERT = "incydr.alert"

# Incydr user-behaviour risk indicators -> watchlist types (the v2 watchlist vocabulary).
INDICATOR_WATCHLISTS = {
    "Departing": "DEPARTING_EMPLOYEE",
    "Flight risk": "FLIGHT_RISK",
    "High impact": "HIGH_IMPACT_EMPLOYEE",
    "Elevated access": "ELEVATED_ACCESS_PRIVILEGES",
    "Performance concerns": "PERFORMANCE_CONCERNS",
    "Poor security practices": "POOR_SECURITY_PRACTICES",
    "Suspicious system activity": "SUSPICIOUS_SYSTEM_ACTIVITY",
    "Contract": "CONTRACT_EMPLOYEE",
    "High risk": "HIGH_RISK_EMPLOYEE",
}
_HEX_DIGITS = "0123456789abcdef"


# --- typed reads that name the field on failure ----------------------------------------------


_EMPTY: Mapping[str, Any] = {}


def _obj(parent: Mapping[str, Any], key: str, where: str, origin: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return _EMPTY
    if value.__class__ is dict:  # the common case, without an ABC check
        return value
    if not isinstance(value, Mapping):
        raise EventError.at(where, f"expected an object, got {type(value).__name__}", origin)
    return value


def _str(parent: Mapping[str, Any], key: str, where: str, origin: str) -> str | None:
    value = parent.get(key)
    if value is None or value.__class__ is str:
        return value or None
    return _as_text(value, where, origin)


def _as_text(value: Any, where: str, origin: str) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise EventError.at(where, f"expected a string, got {type(value).__name__}", origin)


def _texts(parent: Mapping[str, Any], keys: tuple[str, ...], section: str,
           origin: str) -> list[str | None]:
    """Several optional string fields at once (one call per object, not per field: this is
    the hot path of triage)."""
    values = list(map(parent.get, keys))
    if not _TEXT_TYPES.issuperset(map(type, values)):  # a number, or a broken field
        values = [None if v is None else _as_text(v, f"{section}.{key}", origin)
                  for key, v in zip(keys, values, strict=True)]
    if "" in values:  # an empty string says no more than a missing field
        values = [v or None for v in values]
    return values


_TEXT_TYPES = frozenset({str, type(None)})


def _int(parent: Mapping[str, Any], key: str, where: str, origin: str) -> int | None:
    value = parent.get(key)
    if value is None:
        return None
    if value.__class__ is int and 0 <= value <= _MAX_INT:  # the common case, checked once
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():  # not "²": int() fails
        value = int(value) if len(value) <= 20 else _MAX_INT + 1
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        if value > _MAX_INT:
            raise EventError.at(where, f"implausibly large: {value:.3g} (more than 2**53)",
                                origin)
        return value
    raise EventError.at(where, f"expected a non-negative integer, got {value!r:.40}", origin)


_MAX_INT = 2**53  # JSON's exact integers; no file is larger
_STR_TYPE = frozenset({str})


def _strings(parent: Mapping[str, Any], key: str, where: str, origin: str) -> list[str]:
    value = parent.get(key)
    if value is None:
        return []
    if value.__class__ is list and _STR_TYPE.issuperset(map(type, value)):
        return value  # plain strings (or none): the common case, without a generator
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise EventError.at(where, "expected a list of strings", origin)


def _list(parent: Mapping[str, Any], key: str, where: str, origin: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if value.__class__ is list:
        return value
    raise EventError.at(where, f"expected a list, got {type(value).__name__}", origin)


def _digest(value: str | None, length: int, where: str, origin: str) -> str | None:
    if value is None:
        return None
    lowered = value.lower()
    # strip() leaves nothing of a string of hex digits only (a regex fullmatch, cheaper)
    if len(lowered) != length or lowered.strip(_HEX_DIGITS):
        raise EventError.at(where, f"not a {length * 4}-bit hex digest: {value!r:.80}", origin)
    return lowered


# --- file events -----------------------------------------------------------------------------


_FILE_TEXT = ("name", "directory", "mimeType", "mimeTypeByExtension", "mimeTypeByBytes",
              "category", "categoryByExtension", "categoryByBytes", "originalName", "url")
_SOURCE_TEXT = ("name", "category", "domain", "operatingSystem", "ip")
_USER_TEXT = ("email", "id", "deviceUid")
_EVENT_TEXT = ("id", "action", "observer")


def from_file_event(raw: Mapping[str, Any],
                    options: NormaliseOptions = DEFAULT_OPTIONS) -> ModelMovementEvent:
    """One Incydr v2 file event as a ModelMovementEvent."""
    o = FILE_EVENT
    if raw.__class__ is not dict and not isinstance(raw, Mapping):
        raise EventError.at("(event)", "an Incydr file event is a JSON object", o)
    get = raw.get
    # The sections are dicts in all but broken events: checked by class first (_obj names the
    # field when one is not an object).
    if (event := get("event")).__class__ is not dict:
        event = _obj(raw, "event", "event", o)
    if (user := get("user")).__class__ is not dict:
        user = _obj(raw, "user", "user", o)
    if (file := get("file")).__class__ is not dict:
        file = _obj(raw, "file", "file", o)
    if (source := get("source")).__class__ is not dict:
        source = _obj(raw, "source", "source", o)
    if (risk := get("risk")).__class__ is not dict:
        risk = _obj(raw, "risk", "risk", o)
    if (dest := get("destination")).__class__ is not dict:
        dest = _obj(raw, "destination", "destination", o)
    event_id, action, observer = _texts(event, _EVENT_TEXT, "event", o)
    if not event_id:
        raise EventError.at("event.id", "is required", o)
    if (timestamp := get("@timestamp")) is None:
        raise EventError.at("@timestamp", "is required", o)
    time = parse_time(timestamp, "@timestamp", o)
    email, user_id, device_uid = _texts(user, _USER_TEXT, "user", o)
    if not email:
        raise EventError.at("user.email", "is required: the event names no person", o)
    if "@" not in email:
        raise EventError.at("user.email", f"not an e-mail address: {email!r:.80}", o)
    (name, directory, mime, mime_by_ext, mime_by_bytes, category, category_by_ext,
     category_by_bytes, original_name, url) = _texts(file, _FILE_TEXT, "file", o)
    if not name:
        raise EventError.at("file.name", "is required", o)
    if (hashes := file.get("hash")).__class__ is not dict:
        hashes = _obj(file, "hash", "file.hash", o)
    sha256, md5 = _texts(hashes, ("sha256", "md5"), "file.hash", o)
    source_name, source_category, host, os_name, ip = _texts(source, _SOURCE_TEXT, "source", o)

    indicators = risk.get("indicators")
    # No indicators (most events): no call; anything else is read, and refused, by the helper.
    watchlists = [] if indicators is None or (indicators.__class__ is list and not indicators) \
        else _indicator_watchlists(risk, o)
    source_domains = _strings(source, "domains", "source.domains", o)
    for acquired in () if "acquiredFrom" not in file else \
            _list(file, "acquiredFrom", "file.acquiredFrom", o):
        if isinstance(acquired, Mapping):  # a new list: the event's own lists stay as they are
            source_domains = [*source_domains, *_strings(
                acquired, "sourceDomains", "file.acquiredFrom.sourceDomains", o)]
    source_kind, registry = classify_source(source_domains, directory,
                                            category_of(source_category),
                                            bool(observer) and observer != "Endpoint", options)
    # Positional arguments throughout: keywords cost a slotted class's __init__ a third more.
    return ModelMovementEvent(
        event_id, time,
        Actor(email.lower(), user_id, None, None, None, None, None,
              "DEPARTING_EMPLOYEE" in watchlists, None, tuple(watchlists)),
        FileInfo(name, _join(directory, name), directory,
                 _int(file, "sizeInBytes", "file.sizeInBytes", o),
                 _digest(sha256, 64, "file.hash.sha256", o),
                 None if md5 is None else _digest(md5, 32, "file.hash.md5", o),
                 mime or mime_by_ext, mime_by_bytes, category or category_by_ext,
                 category_by_bytes, original_name, url),
        _file_event_destination(raw, event, dest, risk, action, options),
        Source(source_kind, source_name, registry, None, None,
               source_domains[0] if source_domains else None,
               _first_tab_url(source, "source.tabs", o) if "tabs" in source else None),
        Device(host if observer in (None, "Endpoint") else None, os_name, ip, None, None, None,
               device_uid),
        action, o, raw)


def _join(directory: str | None, name: str) -> str:
    if not directory:
        return name
    return directory + name if directory.endswith(("/", "\\")) else f"{directory}/{name}"


def _indicator_watchlists(risk: Mapping[str, Any], origin: str) -> list[str]:
    indicators = risk.get("indicators")
    if indicators is None:
        return []
    if not isinstance(indicators, list):
        raise EventError.at("risk.indicators", "expected a list", origin)
    found: list[str] = []
    for index, indicator in enumerate(indicators):
        name = indicator.get("name") if indicator.__class__ is dict or isinstance(
            indicator, Mapping) else indicator
        if not isinstance(name, str):
            raise EventError.at(f"risk.indicators.{index}.name",
                                f"expected an indicator name, got {name!r:.40}", origin)
        watchlist = INDICATOR_WATCHLISTS.get(name) or _indicator_watchlist(name)
        if watchlist and watchlist not in found:
            found.append(watchlist)
    return found


_INDICATORS_LOWER = {name.lower(): watchlist for name, watchlist in INDICATOR_WATCHLISTS.items()}


@lru_cache(maxsize=256)
def _indicator_watchlist(name: str) -> str | None:
    """The watchlist of an indicator named a little differently ("departing employee",
    "Flight Risk"): case and a trailing "employee" do not matter."""
    lowered = " ".join(name.lower().split())
    return _INDICATORS_LOWER.get(lowered) or _INDICATORS_LOWER.get(
        lowered.removesuffix(" employee"))


def _first_tab_url(obj: Mapping[str, Any], where: str, origin: str) -> str | None:
    tabs = obj.get("tabs")
    if not tabs:
        return None
    if not isinstance(tabs, list):
        raise EventError.at(where, "expected a list", origin)
    for tab in tabs:
        if isinstance(tab, Mapping) and isinstance(tab.get("url"), str):
            return str(tab["url"])
    return None


def _file_event_destination(raw: Mapping[str, Any], event: Mapping[str, Any],
                            dest: Mapping[str, Any], risk: Mapping[str, Any], action: str | None,
                            options: NormaliseOptions) -> Destination:
    o = FILE_EVENT
    trusted = risk.get("trusted")
    if not (trusted is None or trusted is True or trusted is False):
        raise EventError.at("risk.trusted", f"expected true, false or null, got {trusted!r:.40}",
                            o)
    name, account = _texts(dest, ("name", "accountName"), "destination", o)
    action = action or ""
    if (removable := dest.get("removableMedia")) is None:  # most events: no call
        removable = _EMPTY
    elif removable.__class__ is not dict:
        removable = _obj(dest, "removableMedia", "destination.removableMedia", o)
    if action.startswith("removable-media") or (removable and any(removable.values())):
        vendor, media, label = _texts(removable, ("vendor", "mediaName", "name"),
                                      "destination.removableMedia", o)
        device = media or label or ""
        # Windows names the device after its vendor already: "SanDisk Ultra Fit USB Device"
        shown = device if vendor and device.lower().startswith(vendor.lower()) else \
            f"{vendor or ''} {device}".strip()
        return Destination(DestinationKind.REMOVABLE_MEDIA, shown or name, trusted, None,
                           account)
    if event.get("vector") == "GIT_PUSH" or action.startswith("git"):
        git = _obj(raw, "git", "git", o)
        uri = _str(git, "repositoryUri", "git.repositoryUri", o)
        domain = url_host(uri)
        trusted = True if options.trusts(domain, uri) else trusted
        return Destination(DestinationKind.GIT_PUSH, uri or name, trusted, domain, account, uri)
    if action == "file-emailed":
        email = _obj(dest, "email", "destination.email", o)
        recipients = _strings(email, "recipients", "destination.email.recipients", o)
        rdomains = [r.rsplit("@", 1)[-1].lower() for r in recipients if "@" in r]
        if any(domain_matches(d, options.personal_email_domains) for d in rdomains):
            kind = DestinationKind.PERSONAL_EMAIL
        else:
            kind = DestinationKind.EMAIL
            if rdomains and all(options.trusts(d) for d in rdomains):
                trusted = True
        return Destination(kind, ", ".join(recipients[:3]) or name, trusted,
                           rdomains[0] if rdomains else None, account)
    if action == "file-printed":
        printer = _str(dest, "printerName", "destination.printerName", o)
        return Destination(DestinationKind.PRINTER, printer or name, trusted)
    if action in ("file-downloaded", "file-created", "file-modified") and "domains" not in dest \
            and "tabs" not in dest:
        return Destination(DestinationKind.ENDPOINT, name, True if trusted is None else trusted)
    domains = _strings(dest, "domains", "destination.domains", o)
    url = _first_tab_url(dest, "destination.tabs", o) if "tabs" in dest else None
    if action.startswith("sync-app"):
        kind = (DestinationKind.PERSONAL_CLOUD if dest.get("accountType") == "PERSONAL"
                else DestinationKind.SYNC_APP)
        domain = domains[0] if domains else SYNC_APP_DOMAINS.get((name or "").lower())
        return Destination(kind, name, True if options.trusts(domain, url) else trusted,
                           domain, account, url)
    if action == "file-shared":
        domain = domains[0] if domains else None
        trusted = True if options.trusts(domain, url) else trusted
        shares = event.get("shareType")
        if isinstance(shares, list) and _PUBLIC_SHARES.intersection(
                s for s in shares if isinstance(s, str)):
            # Anyone with the link can fetch it: the file is on the open web, not in a share.
            shown = f"public link ({name})" if name else "public link"
            return Destination(DestinationKind.WEB_UPLOAD, shown, trusted, domain, account, url)
        return Destination(DestinationKind.CLOUD_SHARE, name, trusted, domain, account, url)
    if (name or "").lower() in NEARBY_SHARING:
        # AirDrop and its kind hand the file to a device nearby: a removable drive in effect
        return Destination(DestinationKind.REMOVABLE_MEDIA, name, trusted, None, account)
    if action in ("application-read", "file-uploaded") or domains or url:
        all_domains = domains or ([h] if (h := url_host(url)) else [])
        kind, domain = classify_web_destination(
            all_domains, name, category_of(_str(dest, "category", "destination.category", o)),
            options)
        if options.trusts(domain, url):
            trusted = True
        if domain and (name or "").lower() in BROWSERS:
            name = f"{domain} ({name})"  # the site, not the browser, is where the file went
        return Destination(kind, name, trusted, domain, account, url)
    if action in ("file-downloaded", "file-created", "file-modified"):
        return Destination(DestinationKind.ENDPOINT, name, True if trusted is None else trusted)
    return Destination(DestinationKind.UNKNOWN, name, trusted, domains[0] if domains else None,
                       account, url)


# --- alerts ----------------------------------------------------------------------------------

# Incydr event.shareType values that make a file reachable by anyone with the link.
_PUBLIC_SHARES = frozenset({"IsPublic", "SharedViaLink", "PublicLinkShare", "AnyoneWithLink"})
NEARBY_SHARING = frozenset({"airdrop", "nearby share", "quick share", "bluetooth"})
BROWSERS = frozenset({"chrome", "google chrome", "firefox", "mozilla firefox", "safari", "edge",
                      "microsoft edge", "brave", "opera", "arc", "chromium", "vivaldi",
                      "internet explorer"})

_EXPOSURE_KINDS = {
    "RemovableMedia": DestinationKind.REMOVABLE_MEDIA,
    "CloudStorage": DestinationKind.PERSONAL_CLOUD,
    "IsPublic": DestinationKind.CLOUD_SHARE,
    "SharedViaLink": DestinationKind.CLOUD_SHARE,
    "SharedToDomain": DestinationKind.CLOUD_SHARE,
    "OutsideTrustedDomains": DestinationKind.CLOUD_SHARE,
}


def from_alert(raw: Mapping[str, Any],
               options: NormaliseOptions = DEFAULT_OPTIONS) -> list[ModelMovementEvent]:
    """One event per file observed in an Incydr alert (AlertDetails)."""
    o = ALERT
    if not isinstance(raw, Mapping):
        raise EventError.at("(event)", "an Incydr alert is a JSON object", o)
    alert_id = _str(raw, "id", "id", o)
    if not alert_id:
        raise EventError.at("id", "is required", o)
    email = _str(raw, "actor", "actor", o)
    if not email:
        raise EventError.at("actor", "is required: the alert names no person", o)
    if "@" not in email:
        raise EventError.at("actor", f"not an e-mail address: {email!r:.80}", o)
    watchlists: list[str] = []
    for item in _list(raw, "watchlists", "watchlists", o):
        kind = item.get("type") if isinstance(item, Mapping) else None
        if isinstance(kind, str) and kind not in watchlists:
            watchlists.append(kind if kind != "CUSTOM" else str(item.get("name") or kind))
    actor = Actor(email=email.lower(), id=_str(raw, "actorId", "actorId", o),
                  departing="DEPARTING_EMPLOYEE" in watchlists, watchlists=tuple(watchlists))
    observations = raw.get("observations")
    if not isinstance(observations, list) or not observations:
        raise EventError.at("observations", "is required: the alert lists no activity", o)
    events: list[ModelMovementEvent] = []
    for index, observation in enumerate(observations):
        where = f"observations.{index}"
        if not isinstance(observation, Mapping):
            raise EventError.at(where, "expected an object", o)
        data = _observation_data(observation, where)
        time = parse_time(observation.get("observedAt") or raw.get("createdAt"),
                          f"{where}.observedAt", o)
        destination = _alert_destination(data, where, options)
        for file_index, item in enumerate(_list(data, "files", f"{where}.data.files", o)):
            events.append(_alert_file_event(alert_id, actor, time, destination, item,
                                            f"{where}.data.files.{file_index}", raw))
    if not events:
        raise EventError.at("observations.0.data.files",
                            "the alert lists no files; query its file events instead", o)
    return events


def _observation_data(observation: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    data = observation.get("data")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            raise EventError.at(f"{where}.data", "is not valid JSON", ALERT) from None
    if not isinstance(data, Mapping):
        raise EventError.at(f"{where}.data", "expected an object", ALERT)
    return data


def _alert_destination(data: Mapping[str, Any], where: str,
                       options: NormaliseOptions) -> Destination:
    o = ALERT
    exposures = [e for e in _list(data, "exposureTypes", f"{where}.data.exposureTypes", o)
                 if isinstance(e, str)]
    services = [s for s in _list(data, "syncToServices", f"{where}.data.syncToServices", o)
                if isinstance(s, str)]
    for exposure in exposures:
        if exposure in _EXPOSURE_KINDS:
            name = services[0] if services else None
            domain = SYNC_APP_DOMAINS.get((name or "").lower())
            return Destination(_EXPOSURE_KINDS[exposure], name, options.trusts(domain), domain)
    if "ApplicationRead" in exposures:
        details = [d for d in _list(data, "appReadDetails", f"{where}.data.appReadDetails", o)
                   if isinstance(d, Mapping)]
        name = str(details[0].get("destinationName") or "") if details else ""
        category = details[0].get("destinationCategory") if details else None
        kind, _ = classify_web_destination([], name or None,
                                           category_of(category if isinstance(category, str)
                                                       else None), options)
        return Destination(kind, name or None, False)
    return Destination(DestinationKind.UNKNOWN, None, None)


def _alert_file_event(alert_id: str, actor: Actor, time: datetime, destination: Destination,
                      item: Any, where: str, raw: Mapping[str, Any]) -> ModelMovementEvent:
    if not isinstance(item, Mapping):
        raise EventError.at(where, "expected an object", ALERT)
    name = _str(item, "name", f"{where}.name", ALERT)
    if not name:
        raise EventError.at(f"{where}.name", "is required", ALERT)
    directory = _str(item, "path", f"{where}.path", ALERT)
    event_id = _str(item, "eventId", f"{where}.eventId", ALERT) or where.rsplit(".", 1)[-1]
    return ModelMovementEvent(
        id=f"{alert_id}:{event_id}", time=time, action="alert", origin=ALERT, actor=actor,
        incident=alert_id,
        file=FileInfo(name=name, directory=directory, path=_join(directory, name),
                      size=_int(item, "size", f"{where}.size", ALERT),
                      category=_str(item, "category", f"{where}.category", ALERT)),
        destination=destination, raw=raw)
