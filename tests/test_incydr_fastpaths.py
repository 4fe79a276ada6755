"""The Incydr mapper's class-checked fast paths against the plain reads they skip (differential)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crownguard.engine.errors import EventError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.triage import events as triage_events
from crownguard.engine.triage import normalise, normalise_many
from crownguard.engine.triage.events import SCHEMA_ID, NormaliseOptions
from crownguard.engine.triage.events.classify import _under, domain_matches, url_host
from crownguard.plugins.incydr import events as incydr
from crownguard.plugins.incydr import source as incydr_source

ORIGIN = incydr.FILE_EVENT


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        value = fn(*args)
    except EventError as exc:
        return ("error", str(exc))
    return (type(value), value)


class Text(str):
    pass


class Number(int):
    pass


def _plain_int(parent: Mapping[str, Any], key: str, where: str, origin: str) -> int | None:
    """_int without its exact-int shortcut."""
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value) if len(value) <= 20 else incydr._MAX_INT + 1
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        if value > incydr._MAX_INT:
            raise EventError.at(where, f"implausibly large: {value:.3g} (more than 2**53)",
                                origin)
        return value
    raise EventError.at(where, f"expected a non-negative integer, got {value!r:.40}", origin)


INTS = st.one_of(st.none(), st.integers(-5, 2**54), st.just(2**53), st.just(2**53 + 1),
                 st.booleans(), st.builds(Number, st.integers(-3, 2**54)),
                 st.from_regex(r"\A[0-9]{1,22}\Z"), st.text(max_size=3), st.floats())


@settings(max_examples=400, deadline=None)
@given(INTS)
def test_int_shortcut_reads_as_the_plain_checks(value: Any) -> None:
    parent = {"size": value}
    assert _outcome(incydr._int, parent, "size", "file.size", ORIGIN) == \
        _outcome(_plain_int, parent, "size", "file.size", ORIGIN)


@pytest.mark.parametrize("size", ["²", "١٢", "12³"])
def test_a_size_of_other_digits_is_refused_by_name(size: str) -> None:
    # str.isdigit() says yes to these; int() then raised a bare ValueError
    with pytest.raises(EventError, match="file.size.*non-negative integer"):
        incydr._int({"size": size}, "size", "file.size", ORIGIN)


def _plain_strings(parent: Mapping[str, Any], key: str, where: str, origin: str) -> list[str]:
    value = parent.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise EventError.at(where, "expected a list of strings", origin)


STRINGS = st.one_of(st.none(), st.text(max_size=4), st.builds(Text, st.text(max_size=3)),
                    st.lists(st.one_of(st.text(max_size=4), st.builds(Text, st.just("t")),
                                       st.integers(), st.none()), max_size=4),
                    st.lists(st.text(max_size=4), max_size=4), st.integers(),
                    st.tuples(st.text(max_size=2)), st.dictionaries(st.text(max_size=2),
                                                                    st.integers(), max_size=1))


@settings(max_examples=400, deadline=None)
@given(STRINGS)
def test_strings_shortcut_reads_as_the_generator(value: Any) -> None:
    parent = {"domains": value}
    fast = _outcome(incydr._strings, parent, "domains", "source.domains", ORIGIN)
    assert fast == _outcome(_plain_strings, parent, "domains", "source.domains", ORIGIN)
    if isinstance(value, list) and fast[0] is list:
        assert incydr._strings(parent, "domains", "source.domains", ORIGIN) is value


_HEX = re.compile("[0-9a-f]+")


def _plain_digest(value: str | None, length: int, where: str, origin: str) -> str | None:
    """_digest as it was: a regular expression."""
    if value is None:
        return None
    lowered = value.lower()
    if len(lowered) != length or not _HEX.fullmatch(lowered):
        raise EventError.at(where, f"not a {length * 4}-bit hex digest: {value!r:.80}", origin)
    return lowered


HEXISH = st.text(alphabet="0123456789abcdefABCDEFgxz \n\t-_İ\u0660", min_size=0, max_size=66)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.none(), HEXISH, st.text(max_size=66),
                 st.from_regex(r"\A[0-9a-fA-F]{64}\Z"), st.from_regex(r"\A[0-9a-fA-F]{32}\Z"),
                 st.from_regex(r"\A[0-9a-f]{63}[^0-9a-f]\Z")),
       st.sampled_from([64, 32, 2]))
def test_digest_check_agrees_with_the_regex(value: str | None, length: int) -> None:
    assert _outcome(incydr._digest, value, length, "file.hash.sha256", ORIGIN) == \
        _outcome(_plain_digest, value, length, "file.hash.sha256", ORIGIN)


def _plain_normalised(raw: Mapping[str, Any]) -> bool:
    return raw.get("schema") == SCHEMA_ID or (
        isinstance(raw.get("actor"), Mapping) and isinstance(raw.get("file"), Mapping)
        and "destination" in raw)


SECTION = st.one_of(st.none(), st.just({}), st.just({"a": 1}), st.just(MappingProxyType({})),
                    st.just([]), st.just("x"), st.integers())
PAYLOADS = st.fixed_dictionaries({}, optional={
    "schema": st.sampled_from([SCHEMA_ID, "other", None]), "actor": SECTION, "file": SECTION,
    "destination": SECTION, "@timestamp": st.just("2026-11-02T03:04:05Z"), "event": SECTION,
    "user": SECTION, "observations": st.just([]), "ruleId": st.just("r"),
    "fileEvents": st.one_of(st.just([]), st.just({})), "alerts": st.just([])})


@settings(max_examples=500, deadline=None)
@given(PAYLOADS, st.booleans())
def test_recognising_a_dict_first_agrees_with_the_abc_checks(raw: dict[str, Any],
                                                              proxied: bool) -> None:
    payload: Mapping[str, Any] = MappingProxyType(raw) if proxied else raw
    assert triage_events._normalised(payload) == _plain_normalised(payload)
    assert incydr_source.recognise(payload) == incydr_source.recognise(dict(payload))


def _file_event(removable: Any, hashes: Any, destination: Any, indicators: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "@timestamp": "2026-11-02T03:04:05.125Z",
        "event": {"id": "e1", "action": "removable-media-created", "observer": "Endpoint"},
        "user": {"email": "A@x.example"},
        "file": {"name": "m.safetensors", "directory": "/w/", "sizeInBytes": 12},
        "source": {}, "risk": {"indicators": indicators}}
    if hashes is not None:
        raw["file"]["hash"] = hashes
    if destination is not None:
        raw["destination"] = destination
        if isinstance(destination, dict) and removable is not None:
            destination["removableMedia"] = removable
    return raw


def _proxied(value: Any) -> Any:
    """The same payload with every object a read-only mapping rather than a dict."""
    if isinstance(value, dict):
        return MappingProxyType({k: _proxied(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_proxied(v) for v in value]
    return value


OBJECTS: st.SearchStrategy[Any] = st.one_of(st.none(), st.just({}), st.just([]), st.just("x"), st.just(3))


@settings(max_examples=400, deadline=None)
@given(st.one_of(OBJECTS, st.just({"vendor": "SanDisk", "mediaName": "Cruzer"})),
       st.one_of(OBJECTS, st.just({"sha256": "AB" * 32}), st.just({"md5": "zz"})),
       st.one_of(OBJECTS, st.just({"name": "USB"})),
       st.lists(st.one_of(st.just({"name": "Departing"}), st.just("Flight risk"), st.just(5),
                          st.just({"name": 3})), max_size=2))
def test_sections_read_by_class_as_by_the_mapping_checks(removable: Any, hashes: Any,
                                                          destination: Any,
                                                          indicators: Any) -> None:
    raw = _file_event(*map(copy.deepcopy, (removable, hashes, destination, indicators)))

    def read(payload: Any) -> Any:
        try:
            event = incydr.from_file_event(payload)
        except EventError as exc:
            return str(exc)
        return (event.id, event.time, event.actor, event.file, event.destination, event.source,
                event.device, event.action)

    assert read(raw) == read(_proxied(raw))


def _plain_trusts(options: NormaliseOptions, domain: str | None, url: str | None) -> bool:
    """NormaliseOptions.trusts as it was: each set asked on its own."""
    domain = domain or url_host(url)
    if domain_matches(domain, options.trusted_domains) or \
            domain_matches(domain, options.corporate_domains):
        return True
    if not url:
        return False
    return any(_under(url, entry) for entry in options.trusted_domains if "/" in entry)


HOSTS = st.sampled_from(["acme.example", "mail.acme.example", "ACME.example.", "evil.example",
                         "example", "github.com", "github.com/acme", "", "x.github.com"])


@settings(max_examples=400, deadline=None)
@given(st.frozensets(HOSTS, max_size=3), st.frozensets(HOSTS, max_size=3),
       st.one_of(st.none(), HOSTS),
       st.one_of(st.none(), st.sampled_from(["https://github.com/acme/m", "git@github.com:acme/m",
                                             "https://mail.acme.example/x", "not a url"])))
def test_trusting_walks_the_host_once_as_two_lookups_did(
        trusted: frozenset[str], corporate: frozenset[str], domain: str | None,
        url: str | None) -> None:
    options = NormaliseOptions(trusted_domains=trusted, corporate_domains=corporate)
    assert options.trusts(domain, url) == _plain_trusts(options, domain, url)


@pytest.mark.parametrize("indicators", ["", 0, {}, "Departing", False])
def test_indicators_that_are_no_list_are_still_refused(indicators: Any) -> None:
    raw = _file_event(None, None, {}, [])
    raw["risk"]["indicators"] = indicators
    with pytest.raises(EventError, match="risk.indicators"):
        incydr.from_file_event(raw)


def _one(fn: Any, raw: Any) -> Any:
    try:
        return fn(raw)
    except EventError as exc:
        return str(exc)


NORMALISED = {"schema": SCHEMA_ID, "id": "n1", "time": "2026-11-02T03:04:05Z",
              "actor": {"email": "a@x.example"}, "file": {"name": "m.pt"},
              "destination": {"kind": "web-upload"}}


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "schema": st.sampled_from([SCHEMA_ID, "other"]),
    "actor": st.sampled_from([{"email": "a@x.example"}, "a@x.example", None]),
    "destination": st.just({"kind": "web-upload"}), "file": st.just({"name": "m.pt"}),
    "@timestamp": st.just("2026-11-02T03:04:05Z"), "observations": st.just([]),
    "id": st.just("n1"), "time": st.just("2026-11-02T03:04:05Z")}))
def test_normalise_knows_a_vendor_payload_without_the_full_check(raw: dict[str, Any]) -> None:
    sources = tuple(PluginHost.from_entry_points().event_sources.values())
    for payload in (raw, {**NORMALISED, **raw}):
        assert _one(lambda r: normalise(r, sources=sources), payload) == \
            _one(lambda r: normalise_many(r, sources=sources)[0], payload)
