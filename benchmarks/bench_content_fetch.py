"""Triage throughput with content checks from the source, beside the metadata path.

    python benchmarks/bench_content_fetch.py [--events 5000] [--concurrency 8] [--json]

The events are bench_triage.py's generated Incydr v2 file events (the same mix). Three passes
over them in one run, each through the real `Triage` and `Router` over the shipped playbooks:

- metadata: no content source (what triage did before);
- content, cache miss: every file whose metadata leaves the model question open is fetched
  from the Incydr mock by SHA-256 (`GET /v1/files/get-file-by-sha256/{sha256}` on
  127.0.0.1, streamed and closed after 64 KiB), `--concurrency` at a time (`Triage.prefetch`),
  into an empty verdict cache (SQLite, in the fingerprint index's file);
- content, cache hit: the same events again, a new ContentFetch over the filled cache (as the
  next command would find it): no request is made.

The mock holds a GGUF, safetensors or Office-zip head for most open files (padded with zeros
to the event's size) and none for the rest (a 404, decided by metadata). Wall time: the
content path is I/O. Triage reads 64 KiB per file; the mock's `bytes_sent` (what it wrote
into its sockets before the client's close reached it: the head plus what the loopback
socket buffers took) shows how little of the files left the server.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import struct
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_triage import build_index, make_events

from crownguard.engine.config import Config, Connections
from crownguard.engine.plugins import PluginHost
from crownguard.engine.triage import (
    InMemoryHistory,
    Router,
    Triage,
    detect,
    load_playbooks,
    normalise,
    policy_from_mapping,
    shipped_playbooks_dir,
)
from crownguard.engine.triage.detection.fetch import (
    ContentCache,
    ContentFetch,
    connected_sources,
    question_open,
)
from crownguard.plugins.incydr.mock import IncydrMock


def gguf_head() -> bytes:
    # magic, version 3, 1 tensor, 1 key/value: general.architecture = "llama"
    key, value = b"general.architecture", b"llama"
    return (b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + struct.pack("<Q", len(key)) + key
            + struct.pack("<I", 8) + struct.pack("<Q", len(value)) + value)


def safetensors_head() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]},
                         "__metadata__": {"format": "pt"}}).encode()
    return struct.pack("<Q", len(header)) + header + bytes(64)


def office_head() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("[Content_Types].xml", "word/document.xml", "docProps/core.xml"):
            archive.writestr(name, b"<x/>")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--registered", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import hashlib

    registered = [hashlib.sha256(f"artifact-{i}".encode()).hexdigest()
                  for i in range(args.registered)]
    raws = make_events(args.events, registered, args.seed)
    policy = policy_from_mapping({"registries": {"mlflow.acme.example": "mlflow"}})
    host = PluginHost.from_entry_points()
    sources = tuple(host.event_sources.values())
    events = [normalise(raw, options=policy.options, sources=sources) for raw in raws]
    playbooks = load_playbooks([shipped_playbooks_dir()], host.actions)
    heads = [gguf_head(), safetensors_head(), office_head()]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, IncydrMock() as mock:
        index = build_index(Path(tmp) / "fingerprints.sqlite", registered)
        open_files: dict[str, int] = {}
        for event in events:
            if question_open(detect(event, index=index)) and event.file.sha256:
                open_files[event.file.sha256] = event.file.size or 0
        held = 0
        for number, (sha, size) in enumerate(sorted(open_files.items())):
            if number % 5 != 4:  # one in five unknown to Incydr: 404, decided by metadata
                mock.add_file(heads[number % 3], size=size, sha256=sha)
                held += size
        config = Config(connections=Connections({"incydr": mock.connection_settings()}))
        connected = connected_sources(host, config)

        def run(label: str, fetch: ContentFetch | None) -> dict[str, Any]:
            triage = Triage(policy, Router(playbooks), index=index, history=InMemoryHistory(),
                            sources=sources, fetch=fetch)
            calls, sent = len(mock.calls), mock.bytes_sent
            wall = time.perf_counter()
            triage.prefetch(events)
            detections = [triage.triage_event(e).detection for e in events]
            wall = time.perf_counter() - wall
            by_content = [d for d in detections if d.method == "content"]
            return {"path": label, "events": len(events), "wall_seconds": round(wall, 3),
                    "events_per_second": round(len(events) / wall),
                    "decided_by_content": len(by_content),
                    "bytes_read_by_triage": sum(d.details["bytes_read"] for d in by_content
                                                if not d.details.get("cached")),
                    "requests": sum(c.path.startswith("/v1/files/")
                                    for c in mock.calls[calls:]),
                    "bytes_written_by_the_mock": mock.bytes_sent - sent}

        results.append(run("metadata (no fetch)", None))
        cache_path = Path(tmp) / "fingerprints.sqlite"
        miss = ContentFetch(connected, ContentCache(cache_path), concurrency=args.concurrency)
        results.append(run(f"content, cache miss (mock, {args.concurrency} at a time)", miss))
        miss.close()
        hit = ContentFetch(connected, ContentCache(cache_path), concurrency=args.concurrency)
        results.append(run("content, cache hit", hit))
        hit.close()
        index.close()
    report = {"python": platform.python_version(), "machine": platform.machine(),
              "events": len(events), "open_questions": len(open_files),
              "files_held_by_the_mock": sum(1 for n in range(len(open_files)) if n % 5 != 4),
              "bytes_of_those_files": held, "results": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"crownguard content-fetch benchmark: {len(events)} Incydr events, "
          f"{len(open_files)} open model questions, Python {report['python']}")
    for row in results:
        print(f"  {row['path']:<42} {row['events_per_second']:>8,} events/s "
              f"({row['wall_seconds']:.2f} s wall; {row['decided_by_content']} by content, "
              f"{row['requests']} requests)")
        if row["requests"]:
            print(f"  {'':<42} triage read {row['bytes_read_by_triage']:,} bytes; the mock "
                  f"wrote {row['bytes_written_by_the_mock']:,} into its sockets")
    print(f"  the files the mock held add up to {held:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
