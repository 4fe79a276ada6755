"""Formats with a magic number or a fixed header: safetensors, GGUF, TFLite, NumPy, HDF5.

Each sniffer looks at the head of a file and returns a verdict (confidence, format, evidence)
or None when the bytes are not that format. They parse only the few header fields that make
the verdict certain and readable (a tensor count, a GGUF architecture, an array's dtype).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .formats import ModelFormat

MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit


@dataclass(frozen=True)
class Sniffed:
    format: ModelFormat
    confidence: float
    evidence: str
    details: dict[str, Any] = field(default_factory=dict)


def sniff_safetensors(head: bytes, size: int | None) -> Sniffed | None:
    if len(head) < 10:
        return None
    header_len = int.from_bytes(head[:8], "little")
    if not 2 <= header_len <= MAX_SAFETENSORS_HEADER or head[8:9] != b"{":
        return None
    if size is not None and header_len + 8 > size:
        return None
    if header_len + 8 <= len(head):
        try:
            header = json.loads(head[8:8 + header_len])
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(header, dict):
            return None
        tensors = {k: v for k, v in header.items() if k != "__metadata__"}
        if not all(isinstance(v, dict) and {"dtype", "shape", "data_offsets"} <= v.keys()
                   for v in tensors.values()):
            return None
        dtypes = sorted({str(v["dtype"]) for v in tensors.values()})
        meta = header.get("__metadata__") or {}
        note = f", metadata format {meta['format']}" if isinstance(meta, dict) and \
            meta.get("format") else ""
        return Sniffed(ModelFormat.SAFETENSORS, 0.99,
                       f"safetensors header: {len(tensors)} tensors ({', '.join(dtypes[:4])})"
                       f"{note}", {"tensors": len(tensors)})
    text = head[8:]
    if text.startswith(b'{"') and b'"dtype"' in text and b'"data_offsets"' in text:
        return Sniffed(ModelFormat.SAFETENSORS, 0.95,
                       f"safetensors header of {header_len} bytes (tensor entries seen)")
    return None


_GGUF_TYPES_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def sniff_gguf(head: bytes, size: int | None) -> Sniffed | None:
    magic = head[:4]
    if magic in (b"lmgg", b"fmgg", b"tjgg"):
        return Sniffed(ModelFormat.GGUF, 0.9,
                       f"legacy GGML/GGJT model ({magic[::-1].decode()} magic)")
    if magic != b"GGUF" or len(head) < 24:
        return None
    version = int.from_bytes(head[4:8], "little")
    if version not in (1, 2, 3):
        return None
    tensors = int.from_bytes(head[8:16], "little")
    kv_count = int.from_bytes(head[16:24], "little")
    meta = _gguf_strings(head, 24, min(kv_count, 16))
    arch = meta.get("general.architecture")
    name = meta.get("general.name")
    parts = [f"GGUF v{version}", f"{tensors} tensors"]
    if arch:
        parts.append(f"architecture {arch}")
    if name:
        parts.append(f"name {name}")
    return Sniffed(ModelFormat.GGUF, 0.99, ", ".join(parts),
                   {k: v for k, v in (("architecture", arch), ("name", name)) if v})


def _gguf_strings(head: bytes, pos: int, count: int) -> dict[str, str]:
    """String-valued metadata among the first key/value pairs (stops at anything complex)."""
    found: dict[str, str] = {}
    for _ in range(count):
        if pos + 8 > len(head):
            break
        key_len = int.from_bytes(head[pos:pos + 8], "little")
        if key_len > 256:
            break
        key = head[pos + 8:pos + 8 + key_len].decode("utf-8", "replace")
        pos += 8 + key_len
        value_type = int.from_bytes(head[pos:pos + 4], "little")
        pos += 4
        if value_type == 8:  # string
            str_len = int.from_bytes(head[pos:pos + 8], "little")
            if str_len > 4096:
                break
            found[key] = head[pos + 8:pos + 8 + str_len].decode("utf-8", "replace")
            pos += 8 + str_len
        elif value_type in _GGUF_TYPES_FIXED:
            pos += _GGUF_TYPES_FIXED[value_type]
        else:
            break  # arrays: stop rather than walk them
    return found


def sniff_tflite(head: bytes, size: int | None) -> Sniffed | None:
    """A FlatBuffer with the TFLite file identifier and a Model table of schema version 3."""
    if len(head) < 16 or head[4:8] != b"TFL3":
        return None
    root = int.from_bytes(head[0:4], "little")
    if root + 4 > len(head):
        return None
    vtable = root - int.from_bytes(head[root:root + 4], "little", signed=True)
    if not 0 <= vtable < len(head) - 4:
        return None
    vtable_size = int.from_bytes(head[vtable:vtable + 2], "little")
    version = None
    if vtable_size >= 6:
        offset = int.from_bytes(head[vtable + 4:vtable + 6], "little")
        if offset and root + offset + 4 <= len(head):
            version = int.from_bytes(head[root + offset:root + offset + 4], "little")
    if version is not None and version != 3:
        return None
    return Sniffed(ModelFormat.TFLITE, 0.99, "TensorFlow Lite FlatBuffer (TFL3, schema v3)")


_NPY_DESCR = re.compile(rb"'descr':\s*'([^']+)'")
_NPY_SHAPE = re.compile(rb"'shape':\s*\(([^)]*)\)")


def sniff_npy(head: bytes, size: int | None) -> Sniffed | None:
    if not head.startswith(b"\x93NUMPY") or len(head) < 10 or head[6] not in (1, 2, 3):
        return None
    descr = _NPY_DESCR.search(head[:4096])
    shape = _NPY_SHAPE.search(head[:4096])
    dtype = descr.group(1).decode() if descr else "?"
    dims = shape.group(1).decode().strip().rstrip(",") if shape else "?"
    numeric = dtype[1:2] in ("f", "c") or dtype.endswith(("f2", "f4", "f8"))
    confidence = 0.6 if numeric else 0.3
    return Sniffed(ModelFormat.NUMPY, confidence,
                   f"NumPy array {dtype} of shape ({dims})"
                   + ("; floating point, may be weights" if numeric else "; not weight-like"))


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_KERAS_MARKERS = (b"keras_version", b"model_config", b"model_weights", b"training_config")
_WEIGHT_MARKERS = (b"layer_names", b"weight_names", b"kernel:0", b"bias:0")


def sniff_hdf5(head: bytes, size: int | None) -> Sniffed | None:
    if not any(head[at:at + 8] == _HDF5_MAGIC for at in (0, 512, 1024, 2048)):
        return None
    keras = [m.decode() for m in _KERAS_MARKERS if m in head]
    weights = [m.decode() for m in _WEIGHT_MARKERS if m in head]
    if keras:
        return Sniffed(ModelFormat.KERAS_H5, 0.95, f"Keras HDF5 model ({', '.join(keras)})")
    if weights:
        return Sniffed(ModelFormat.KERAS_H5, 0.85, f"HDF5 of layer weights ({', '.join(weights)})")
    return Sniffed(ModelFormat.HDF5, 0.3,
                   "HDF5 container without model markers in its first bytes (data or weights)")


SNIFFERS = (sniff_gguf, sniff_tflite, sniff_npy, sniff_hdf5, sniff_safetensors)


# Everyday non-model formats, so a "no" can say what the file is instead.
_KNOWN_OTHER = (
    (b"%PDF-", "PDF document"), (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"), (b"GIF89a", "GIF image"), (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"), (b"ID3", "MP3 audio"), (b"OggS", "Ogg media"),
    (b"RIFF", "RIFF media"), (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"), (b"\xd0\xcf\x11\xe0", "legacy Office document"),
    (b"SQLite format 3\x00", "SQLite database"), (b"PAR1", "Parquet data file"),
    (b"ARROW1", "Arrow data file"),
)


def describe_other(head: bytes) -> str:
    """A short name for content that is not a model."""
    for magic, label in _KNOWN_OTHER:
        if head.startswith(magic):
            return label
    if head[4:12] in (b"ftypisom", b"ftypmp42", b"ftypqt  ", b"ftypheic"):
        return "ISO media (video or image)"
    sample = head[:4096]
    if not sample:
        return "empty"
    text = _as_text(sample)
    if text and sum(c.isprintable() or c in "\r\n\t" for c in text) > 0.97 * len(text):
        if text.lstrip().startswith(("{", "[")):
            return "JSON text"
        first = text.splitlines()[0] if text.splitlines() else ""
        if first.count(",") >= 2 or first.count("\t") >= 2:
            return "delimited text (CSV/TSV)"
        return "text"
    return "unrecognised binary"


def _as_text(sample: bytes) -> str:
    """The sample as UTF-8 text, tolerating a character cut at the end; '' when binary."""
    for cut in range(4):
        try:
            return sample[:len(sample) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return ""
