"""The triage hot path's faster algorithms against the plain ones they replaced (differential)."""

from __future__ import annotations

import dataclasses
import gc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crownguard.engine.errors import EventError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.triage import (
    Actor,
    Destination,
    DestinationKind,
    FileInfo,
    InMemoryHistory,
    ModelMovementEvent,
    Router,
    SourceKind,
    Triage,
    detect,
    normalise,
    normalise_many,
    policy_from_mapping,
    score,
)
from crownguard.engine.triage.detection import metadata
from crownguard.engine.triage.risk import scoring
from crownguard.plugins.incydr import events as incydr


def _old_texts(parent: Any, keys: tuple[str, ...], section: str, origin: str) -> list[Any]:
    """_texts as it was: a comprehension with a class check per field."""
    get = parent.get
    return [(v if (v := get(key)).__class__ is str
             else None if v is None else incydr._as_text(v, f"{section}.{key}", origin)) or None
            for key in keys]


class Text(str):
    pass


VALUES = st.one_of(st.none(), st.text(max_size=5), st.sampled_from(["", "x"]),
                   st.integers(-3, 3), st.booleans(), st.floats(allow_nan=False),
                   st.builds(Text, st.text(max_size=3)), st.lists(st.integers(), max_size=1))
KEYS = ("a", "b", "c", "d")


def _outcome(fn: Any, section: dict[str, Any]) -> Any:
    try:
        values = fn(section, KEYS, "file", "incydr.file_event")
    except EventError as exc:
        return ("error", str(exc))
    return [(type(v), v) for v in values]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4))
def test_texts_reads_a_section_as_the_comprehension_did(section: dict[str, Any]) -> None:
    assert _outcome(incydr._texts, section) == _outcome(_old_texts, section)


def _raw(action: str, name: str, email: Any, size: Any, timestamp: Any, dest: dict[str, Any],
         indicators: list[Any], directory: Any) -> dict[str, Any]:
    return {"@timestamp": timestamp, "event": {"id": "e1", "action": action},
            "user": {"email": email}, "file": {"name": name, "sizeInBytes": size,
                                               "directory": directory},
            "source": {}, "destination": dest, "risk": {"indicators": indicators}}


RAWS = st.builds(
    _raw, st.sampled_from(["application-read", "removable-media-created", "file-emailed",
                           "sync-app-created", "file-downloaded"]),
    st.sampled_from(["a.safetensors", "b.pt", "notes.txt", ""]),
    st.sampled_from(["a@x.example", "nobody", "", 3]),
    st.one_of(st.integers(0, 2**40), st.just("12"), st.just(-1)),
    st.sampled_from(["2026-11-02T03:04:05.125Z", "2026-11-02", 1793491200000, None]),
    st.sampled_from([{}, {"name": "ChatGPT", "domains": ["chatgpt.com"]},
                     {"removableMedia": {"vendor": "SanDisk"}}, {"domains": "bad"}]),
    st.lists(st.sampled_from([{"name": "Departing"}, "Flight risk", 5]), max_size=2),
    st.sampled_from([None, "/Users/a/checkpoints/", 4]))


def _normalised(fn: Any, raw: Any, sources: tuple[Any, ...]) -> Any:
    try:
        return fn(raw)
    except EventError as exc:
        return str(exc)


@settings(max_examples=300, deadline=None)
@given(RAWS)
def test_normalise_fast_path_reads_events_as_normalise_many(raw: dict[str, Any]) -> None:
    sources = tuple(PluginHost.from_entry_points().event_sources.values())
    fast = _normalised(lambda r: normalise(r, sources=sources), raw, sources)
    plain = _normalised(lambda r: normalise_many(r, sources=sources)[0], raw, sources)
    assert fast == plain


def test_normalise_names_the_sources_of_an_unrecognised_dict() -> None:
    sources = tuple(PluginHost.from_entry_points().event_sources.values())
    with pytest.raises(EventError, match="an Incydr file event or alert"):
        normalise({"what": 1}, sources=iter(sources))


EVENTS = st.builds(
    lambda name, minutes, kind, trusted, dest, departing, lists: ModelMovementEvent(
        "e1", datetime(2026, 11, 2, tzinfo=UTC) + timedelta(minutes=minutes),
        Actor("a@x.example", departing=departing, watchlists=lists),
        FileInfo(name, size=2**30), Destination(kind, dest, trusted, dest)),
    st.sampled_from(["a.safetensors", "b.pt", "c.joblib", "m.bin", "notes.txt", "x.gguf"]),
    st.integers(0, 7 * 24 * 60), st.sampled_from(list(DestinationKind)),
    st.sampled_from([None, True, False]), st.sampled_from([None, "gmail.com", "Dropbox"]),
    st.booleans(), st.sampled_from([(), ("FLIGHT_RISK",), ("DEPARTING_EMPLOYEE",)]))
WEIGHTS = st.sampled_from([20, 20.0, 17.5, 0])


@settings(max_examples=300, deadline=None)
@given(EVENTS, WEIGHTS, st.sampled_from([1, 1.0, 0.85, 0.3]))
def test_cached_reason_texts_score_as_computed_ones(event: ModelMovementEvent, weight: Any,
                                                    confidence: Any) -> None:
    policy = policy_from_mapping({"weights": {"model_file": weight, "off_hours": weight}})
    detection = detect(event)
    detection.confidence = confidence  # an int confidence prints and packs apart from a float
    cached = [score(event, detection, policy).to_dict() for _ in range(2)]
    plain = scoring._cached
    try:
        scoring._cached = lambda cache, key, make: make()
        computed = score(event, detection, policy).to_dict()
    finally:
        scoring._cached = plain
    assert cached == [computed, computed]
    assert [type(r["weight"]) for r in cached[0]["reasons"]] == \
        [type(r["weight"]) for r in computed["reasons"]]
    assert type(cached[0]["evidence"]["confidence"]) is type(computed["evidence"]["confidence"])


def test_recent_scores_are_nothing_the_garbage_collector_tracks() -> None:
    host = PluginHost.from_entry_points()
    policy = policy_from_mapping({})
    triage = Triage(policy, Router([]), history=InMemoryHistory(),
                    sources=host.event_sources.values())
    raw = _raw("application-read", "a.safetensors", "a@x.example", 2**30,
               "2026-11-02T03:04:05.125Z", {"name": "ChatGPT", "domains": ["chatgpt.com"]},
               [{"name": "Departing"}], None)
    first = triage.triage(raw)[0]
    again = triage.triage(raw)[0]
    assert again.risk == first.risk  # the score kept from the first delivery
    assert [gc.is_tracked(k) or gc.is_tracked(v) for k, v in triage._scored.items()] == [False]


NAMES = st.sampled_from([
    "model.safetensors", "model.safetensors.bak", "pytorch_model.bin", "data.bin", "export.zip",
    "weights.npz", "churn_xgb.pkl", "docker-image.tar", "holiday.jpg", "report.pdf",
    "config.json", "notes", "model.onnx_data", "variables.data-00000-of-00001", "x.params",
    "tokenizer.json", "llama-3-8b.Q4_K_M.gguf", "ggml-model-q4_0.bin", "model-car.zip",
    "1.0 GB.bin", "classifier.joblib", "MLmodel", "sheet.xlsx"])
# Sizes on both sides of each threshold of the metadata detector, several in each band.
SIZES = [None, 0, 1, 4095, 4096, 10_000, 2**20 - 1, 2**20, 3 * 2**20, 50 * 2**20 - 1,
         50 * 2**20, 60 * 2**20, 2**30, 5 * 2**30 + 7]
FILES = st.builds(
    lambda name, directory, size, mime, original, category, by_bytes: FileInfo(
        name, size=size, directory=directory, mime_type_by_bytes=mime, original_name=original,
        category=category, category_by_bytes=by_bytes),
    NAMES, st.sampled_from([None, "/Users/a/work/", "/data/checkpoints/", "/mlruns/1/",
                            "/srv/firmware/", "/x/models--org--m/blobs/", "C:\\ckpt\\"]),
    st.sampled_from(SIZES),
    st.sampled_from([None, "application/octet-stream", "application/zip", "text/plain",
                     "image/jpeg", "application/x-hdf5", "application/pdf"]),
    st.sampled_from([None, "model.safetensors", "a.txt"]),
    st.sampled_from([None, "Image", "Document"]), st.sampled_from([None, "Archive", "Image"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(FILES, st.sampled_from(list(SourceKind))), min_size=1, max_size=6),
       st.permutations(SIZES))
def test_remembered_metadata_verdicts_are_the_weighed_ones(
        files: list[tuple[FileInfo, SourceKind]], sizes: list[int | None]) -> None:
    metadata._VERDICTS.clear()  # which size of a band comes first is the example's
    # Each file at every size, twice: the cache is kept across sizes and examples, so a
    # verdict remembered for one size meets the other sizes of its band.
    for file, kind in files * 2:
        for size in sizes:
            sized = dataclasses.replace(file, size=size)
            assert metadata.detect_metadata(sized, kind) == metadata.weigh_metadata(sized, kind)


def test_a_remembered_metadata_verdict_is_a_copy() -> None:
    file = FileInfo("resnet50.pth", size=2**30)
    first = metadata.detect_metadata(file)
    first.confidence, first.evidence = 0.0, ()
    first.details["x"] = 1
    assert metadata.detect_metadata(file) == metadata.weigh_metadata(file)
