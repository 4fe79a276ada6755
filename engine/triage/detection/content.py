"""Model detection from a file's bytes (bounded: see window.py)."""

from __future__ import annotations

import os
from pathlib import Path

from .archives import classify_listing
from .formats import Detection, Method, ModelFormat, name_disguises
from .pickles import TORCH_LEGACY_MAGIC, classify_pickle, scan_pickle
from .protobuf import classify_protobuf
from .sniffers import SNIFFERS, describe_other
from .window import (
    MAX_ENTRIES,
    ArchiveListing,
    ContentSource,
    Window,
    inflate_head,
    open_window,
    tar_listing,
    zip_listing,
)

MAX_DIRECTORY_DEPTH = 4


def detect_content(source: ContentSource, *, name: str | None = None,
                   size: int | None = None) -> Detection:
    """Is this file a model, judging by its first bytes (and a zip's central directory)?

    `source` is a path, a binary file object or bytes (the start of the file; pass `size`
    when they are only a prefix). `name` is the file's name as seen in the event: a model
    hiding behind an everyday extension is flagged `disguised`. A directory (a SavedModel, a
    Core ML .mlpackage, a Hugging Face snapshot) is judged by its entry names. Raises OSError
    when a path cannot be read.
    """
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        listing = _directory_listing(Path(source))
        verdict = classify_listing(listing)
        return Detection.verdict(verdict.confidence, verdict.format, Method.CONTENT,
                                 [verdict.evidence], details={"entries": len(listing.names)})
    with open_window(source, size) as window:
        detection = _judge(window)
        details = {**detection.details, "bytes_read": window.bytes_read}
    disguised = detection.is_model and name_disguises(name)
    evidence = list(detection.evidence)
    if disguised:
        evidence.append(f"the name '{name}' claims another file type")
    return Detection.verdict(detection.confidence, detection.format, Method.CONTENT, evidence,
                             disguised=disguised, details=details)


def _judge(window: Window) -> Detection:
    head = window.head
    for sniff in SNIFFERS:
        found = sniff(head, window.size)
        if found is not None:
            return _verdict(found.confidence, found.format, found.evidence, found.details)
    if head.startswith(TORCH_LEGACY_MAGIC):
        return _verdict(0.99, ModelFormat.PYTORCH, "legacy torch.save pickle (magic number)")
    listing = zip_listing(window)
    if listing is not None:
        verdict = classify_listing(listing)
        note = "" if listing.complete else " (only the first entries were read)"
        return _verdict(verdict.confidence, verdict.format, verdict.evidence + note,
                        {"entries": len(listing.names)})
    listing = tar_listing(head)
    if listing is not None:
        verdict = classify_listing(listing)
        return _verdict(verdict.confidence, verdict.format, verdict.evidence)
    scan = scan_pickle(head)
    if scan is not None:
        confidence, fmt, why = classify_pickle(scan)
        return _verdict(confidence, fmt, why, {"pickle_protocol": scan.protocol})
    proto = classify_protobuf(head, window.size)
    if proto is not None:
        return _verdict(proto.confidence, proto.format, proto.evidence)
    inflated = inflate_head(head)
    if inflated is not None:
        return _judge_inflated(*inflated)
    return _verdict(0.0, None, f"content is {describe_other(head)}, not a model format")


def _judge_inflated(kind: str, data: bytes) -> Detection:
    """A gzip/zlib/bzip2/xz stream: joblib's compressed pickles, model.tar.gz bundles."""
    listing = tar_listing(data)
    if listing is not None:
        verdict = classify_listing(listing)
        return _verdict(verdict.confidence, verdict.format, f"{kind}-compressed {verdict.evidence}")
    scan = scan_pickle(data)
    if scan is not None:
        confidence, fmt, why = classify_pickle(scan)
        return _verdict(confidence, fmt, f"{kind}-compressed {why}")
    return _verdict(0.05, None, f"{kind}-compressed {describe_other(data)}, not a model format")


def _verdict(confidence: float, fmt: ModelFormat | None, evidence: str,
             details: dict[str, object] | None = None) -> Detection:
    return Detection.verdict(confidence, fmt, Method.CONTENT, [evidence], details=details)


def _directory_listing(root: Path) -> ArchiveListing:
    """Relative entry names under `root`, breadth-first, bounded in depth and count."""
    names: list[str] = []
    sizes: list[int | None] = []
    level = [root]
    for _depth in range(MAX_DIRECTORY_DEPTH):
        following: list[Path] = []
        for folder in level:
            with os.scandir(folder) as entries:
                for entry in sorted(entries, key=lambda e: e.name):
                    relative = Path(entry.path).relative_to(root).as_posix()
                    if entry.is_dir(follow_symlinks=False):
                        following.append(Path(entry.path))
                        relative += "/"
                    names.append(relative)
                    sizes.append(None)
                    if len(names) >= MAX_ENTRIES:
                        return ArchiveListing("directory", tuple(names), tuple(sizes), False)
        level = following
    return ArchiveListing("directory", tuple(names), tuple(sizes), complete=not level)
