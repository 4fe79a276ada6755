"""Events and files never seen before: detection and normalisation fail cleanly or not at all."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_events import incydr_event

from crownguard.engine.errors import EventError
from crownguard.engine.triage.detection import READ_BUDGET, detect, detect_content
from crownguard.engine.triage.events import normalise
from crownguard.engine.triage.risk import load_policy, score
from crownguard.plugins.incydr.source import EVENT_SOURCE

POLICY = load_policy()
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers(-10, 10**12) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                           max_leaves=12)
PREFIXES = [b"", b"PK\x03\x04", b"\x80\x04\x95", b"GGUF\x03\x00\x00\x00", b"\x89HDF\r\n\x1a\n",
            b"\x93NUMPY\x01\x00", b"\x08\x07\x12", b"\x1f\x8b\x08", b"\x00\x00\x00\x00TFL3",
            b"\x40\x00\x00\x00\x00\x00\x00\x00{"]


@FAST
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=3000))
def test_any_bytes_give_a_verdict_and_never_an_exception(prefix: bytes, body: bytes) -> None:
    detection = detect_content(prefix + body)
    assert 0.0 <= detection.confidence <= 1.0
    assert detection.evidence
    assert detection.details["bytes_read"] <= READ_BUDGET


SECTIONS = ["event", "user", "file", "source", "destination", "risk", "git", "@timestamp"]


@FAST
@given(section=st.sampled_from(SECTIONS), value=json_values,
       key=st.sampled_from(["name", "id", "email", "action", "sizeInBytes", "hash", "domains",
                            "removableMedia", "indicators", "trusted", "tabs", "accountType"]))
def test_odd_incydr_events_are_normalised_or_rejected_cleanly(section: str, value: Any,
                                                              key: str) -> None:
    raw = incydr_event()
    if section == "@timestamp":
        raw[section] = value
    elif isinstance(raw.get(section), dict):
        raw[section][key] = value
    else:
        raw[section] = {key: value}
    try:
        event = normalise(raw, sources=[EVENT_SOURCE])
    except EventError as exc:
        assert exc.fields and all(exc.fields)
        return
    risk = score(event, detect(event), POLICY)
    assert 0 <= risk.score <= 100
