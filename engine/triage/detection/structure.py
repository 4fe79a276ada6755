"""Structural fingerprints: a model file's tensor names, shapes and dtypes, from its head.

A model re-saved with other metadata, its tensors written in another order, or converted from
safetensors to PyTorch to NumPy, has a new SHA-256 but the same tensors. The head of the file
says which: the safetensors JSON header, GGUF's tensor infos, the `data.pkl` of a PyTorch zip
(read symbolically, never unpickled), an ONNX graph's initializers, a NumPy .npy header or the
headers of an .npz's arrays. Their canonical sorted list, hashed, is the fingerprint; the list
itself is kept so that a partial match can say how many tensors two files share.

    structural_fingerprint(head, name) -> StructuralFingerprint | None
    fingerprint_content(path_or_bytes_or_fileobj, name) -> StructuralFingerprint | None
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .pickles import PickleCall, PickleGlobal, PicklePersistent, symbolic_load
from .protobuf import walk
from .sniffers import MAX_SAFETENSORS_HEADER

HEAD_LIMIT = 8 * 1024 * 1024  # what a refresh reads of each registered file, at most
MAX_TENSORS = 200_000

_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U64": "uint64",
    "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
_TORCH_STORAGES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128"}
_NUMPY_KINDS = {"f": "float", "i": "int", "u": "uint", "c": "complex"}
_GGML_TYPES = {0: "float32", 1: "float16", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1",
               8: "q8_0", 9: "q8_1", 10: "q2_k", 11: "q3_k", 12: "q4_k", 13: "q5_k",
               14: "q6_k", 15: "q8_k", 24: "int8", 25: "int16", 26: "int32", 27: "int64",
               28: "float64", 30: "bfloat16"}
_ONNX_TYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
               7: "int64", 9: "bool", 10: "float16", 11: "float64", 12: "uint32",
               13: "uint64", 16: "bfloat16"}


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]

    def key(self) -> str:
        """What a partial match compares: the name and the shape (a conversion may change
        the dtype, fp32 to fp16)."""
        return f"{self.name}|{','.join(map(str, self.shape))}"


@dataclass(frozen=True)
class StructuralFingerprint:
    """The tensors of one model file, sorted by name; `digest` hashes the canonical list."""

    format: str
    tensors: tuple[TensorInfo, ...]

    @property
    def digest(self) -> str:
        canonical = json.dumps([[t.name, t.dtype, list(t.shape)] for t in self.tensors],
                               separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def keys(self) -> set[str]:
        return {t.key() for t in self.tensors}

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "digest": self.digest, "count": len(self.tensors),
                "tensors": [[t.name, t.dtype, list(t.shape)] for t in self.tensors]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StructuralFingerprint:
        return make(str(data["format"]), (TensorInfo(str(n), str(d), tuple(int(x) for x in s))
                                          for n, d, s in data["tensors"]))


def make(fmt: str, tensors: Iterable[TensorInfo]) -> StructuralFingerprint:
    found: dict[str, TensorInfo] = {}
    for tensor in tensors:
        found.setdefault(tensor.name, tensor)
    return StructuralFingerprint(fmt, tuple(sorted(found.values(), key=lambda t: t.name)))


def structural_fingerprint(head: bytes, name: str | None = None) -> StructuralFingerprint | None:
    """The tensors of a model file from its first bytes (or all of them); None when the
    bytes are no format with a tensor listing, or the listing is not all in `head`.

    `name` is the file's name, only used to tell a lone .npy's array its name (its stem)."""
    head = bytes(head)
    for parse in (_safetensors, _gguf, _npy, _zip, _onnx):
        try:
            found = parse(head, name)
        except (ValueError, KeyError, IndexError, TypeError, struct.error, zipfile.BadZipFile,
                UnicodeDecodeError, RecursionError, OverflowError, EOFError):
            found = None
        if found is not None and found.tensors:
            return found
    return None


def fingerprint_content(source: str | os.PathLike[str] | bytes | bytearray | memoryview
                        | BinaryIO, name: str | None = None,
                        limit: int = HEAD_LIMIT) -> StructuralFingerprint | None:
    """The structural fingerprint of content at hand: a path, a binary file object or bytes.

    Reads at most `limit` bytes from the start; a zip (PyTorch, .npz) on a seekable file is
    read through its central directory instead, each member only as far as its header."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return structural_fingerprint(bytes(source[:limit]), name)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return None
        with path.open("rb") as handle:
            return fingerprint_content(handle, name or path.name, limit)
    start = source.tell() if source.seekable() else 0
    head = source.read(limit)
    if head[:4] == b"PK\x03\x04" and source.seekable():
        source.seek(start)
        try:
            with zipfile.ZipFile(source) as archive:
                found = _zip_archive(archive)
        except (zipfile.BadZipFile, ValueError, KeyError, struct.error, EOFError):
            found = None
        if found is not None and found.tensors:
            return found
    return structural_fingerprint(head, name)


# --- the formats ---------------------------------------------------------------------------------


def _safetensors(head: bytes, name: str | None) -> StructuralFingerprint | None:
    if len(head) < 10 or head[8:9] != b"{":
        return None
    length = int.from_bytes(head[:8], "little")
    if not 2 <= length <= MAX_SAFETENSORS_HEADER or 8 + length > len(head):
        return None
    header = json.loads(head[8:8 + length])
    if not isinstance(header, dict):
        return None
    tensors = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            return None
        dtype = str(entry["dtype"])
        tensors.append(TensorInfo(str(key), _SAFETENSORS_DTYPES.get(dtype, dtype.lower()),
                                  tuple(int(d) for d in entry["shape"])))
    return make("safetensors", tensors)


class _Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise EOFError("past the head")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.take(8))[0])

    def text(self) -> str:
        return self.take(self.u64()).decode("utf-8")


_GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def _gguf_skip(reader: _Reader, value_type: int) -> None:
    if value_type in _GGUF_SIZES:
        reader.take(_GGUF_SIZES[value_type])
    elif value_type == 8:
        reader.take(reader.u64())
    elif value_type == 9:
        inner, count = reader.u32(), reader.u64()
        if inner in _GGUF_SIZES:
            reader.take(_GGUF_SIZES[inner] * count)
        else:
            for _ in range(count):
                _gguf_skip(reader, inner)
    else:
        raise ValueError(f"GGUF value type {value_type}")


def _gguf(head: bytes, name: str | None) -> StructuralFingerprint | None:
    if head[:4] != b"GGUF":
        return None
    reader = _Reader(head, 4)
    if reader.u32() not in (2, 3):
        return None  # version 1 used 32-bit lengths; its files are long gone
    count, kv_count = reader.u64(), reader.u64()
    if count > MAX_TENSORS:
        return None
    for _ in range(kv_count):
        reader.text()
        _gguf_skip(reader, reader.u32())
    tensors = []
    for _ in range(count):
        tensor = reader.text()
        dims = [reader.u64() for _ in range(reader.u32())]
        kind = reader.u32()
        reader.u64()  # the data offset
        # GGUF lists dimensions innermost first; the others (and NumPy) outermost first.
        tensors.append(TensorInfo(tensor, _GGML_TYPES.get(kind, f"ggml_type_{kind}"),
                                  tuple(reversed(dims))))
    return make("gguf", tensors)


_NPY_HEADER = re.compile(r"'descr':\s*'([^']+)'.*'shape':\s*\(([^)]*)\)", re.S)


def _npy_header(data: bytes) -> tuple[str, tuple[int, ...]] | None:
    if not data.startswith(b"\x93NUMPY") or len(data) < 10:
        return None
    major = data[6]
    if major == 1:
        length, start = int.from_bytes(data[8:10], "little"), 10
    elif major in (2, 3):
        length, start = int.from_bytes(data[8:12], "little"), 12
    else:
        return None
    text = data[start:start + length].decode("latin-1")
    found = _NPY_HEADER.search(text)
    if found is None:
        return None
    descr = found.group(1)
    shape = tuple(int(d) for d in found.group(2).replace(" ", "").split(",") if d)
    return _numpy_dtype(descr), shape


def _numpy_dtype(descr: str) -> str:
    code = descr.lstrip("<>|=")
    kind, width = code[:1], code[1:]
    if kind == "b" and width == "1":
        return "bool"
    if kind in _NUMPY_KINDS and width.isdigit():
        return f"{_NUMPY_KINDS[kind]}{int(width) * 8}"
    return descr


def _npy(head: bytes, name: str | None) -> StructuralFingerprint | None:
    header = _npy_header(head)
    if header is None:
        return None
    stem = Path(name).stem if name else "array"
    return make("numpy", [TensorInfo(stem, *header)])


def _zip(head: bytes, name: str | None) -> StructuralFingerprint | None:
    if head[:4] != b"PK\x03\x04":
        return None
    try:
        archive = zipfile.ZipFile(io.BytesIO(head))
    except zipfile.BadZipFile:
        return _torch_from_local_header(head)  # only the head: the first entry is data.pkl
    with archive:
        return _zip_archive(archive)


def _zip_archive(archive: zipfile.ZipFile) -> StructuralFingerprint | None:
    names = archive.namelist()
    pickles = [n for n in names if re.fullmatch(r"(?:[^/]+/)?data\.pkl", n)]
    if pickles:
        with archive.open(pickles[0]) as member:
            return _torch_pickle(member.read(HEAD_LIMIT))
    arrays = [n for n in names if n.endswith(".npy")]
    if not arrays or len(arrays) != len([n for n in names if not n.endswith("/")]):
        return None
    tensors = []
    for member_name in arrays:
        with archive.open(member_name) as member:
            header = _npy_header(member.read(4096))
        if header is None:
            return None
        tensors.append(TensorInfo(member_name[:-4], *header))
    return make("numpy", tensors)


def _torch_from_local_header(head: bytes) -> StructuralFingerprint | None:
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    entry = head[30:30 + name_len].decode("utf-8", "replace")
    if not re.fullmatch(r"(?:[^/]+/)?data\.pkl", entry) or head[8:10] != b"\x00\x00":
        return None  # not a PyTorch zip, or data.pkl compressed
    return _torch_pickle(head[30 + name_len + extra_len:])


def _torch_pickle(data: bytes) -> StructuralFingerprint | None:
    value = symbolic_load(data)
    if value is None:
        return None
    best: list[TensorInfo] = []
    for holder in _dicts(value, 0):
        tensors = [t for t in (_torch_tensor(k, v) for k, v in holder.items()) if t is not None]
        if len(tensors) > len(best):
            best = tensors
    return make("pytorch", best) if best else None


def _dicts(value: object, depth: int) -> Iterable[dict[Any, Any]]:
    """Every dict in a checkpoint (a bare state dict, or one under 'state_dict', 'model')."""
    if depth > 8:
        return
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _dicts(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _dicts(item, depth + 1)


def _torch_tensor(key: object, value: object) -> TensorInfo | None:
    if not isinstance(key, str) or not isinstance(value, PickleCall) or not isinstance(
            value.func, PickleGlobal):
        return None
    func = value.func.name
    if func == "torch._utils._rebuild_parameter" and value.args:
        return _torch_tensor(key, value.args[0])
    if func != "torch._utils._rebuild_tensor_v2" or len(value.args) < 3:
        return None
    storage, size = value.args[0], value.args[2]
    if not isinstance(storage, PicklePersistent) or not isinstance(storage.pid, tuple) \
            or len(storage.pid) < 2 or not isinstance(size, tuple):
        return None
    kind = storage.pid[1]
    if not isinstance(kind, PickleGlobal):
        return None
    short = kind.name.rsplit(".", 1)[-1]
    dtype = _TORCH_STORAGES.get(short, short)
    return TensorInfo(key, dtype, tuple(int(d) for d in size))


def _onnx(head: bytes, name: str | None) -> StructuralFingerprint | None:
    if head[:1] != b"\x08":
        return None
    fields = walk(head, size=None)
    if not fields or fields[0].number != 1:
        return None
    graph = next((f for f in fields if f.number == 7 and f.wire_type == 2), None)
    if graph is None or graph.truncated:
        return None  # the initializers' names and shapes need the whole graph at hand
    body = head[graph.start:graph.start + graph.value]
    inner = walk(body, size=graph.value, max_fields=MAX_TENSORS)
    if inner is None:
        return None
    tensors = []
    for item in inner:
        if item.number == 5 and item.wire_type == 2:
            tensors.append(_onnx_tensor(body[item.start:item.start + item.value]))
    if any(t is None for t in tensors):
        return None
    return make("onnx", [t for t in tensors if t is not None])


def _onnx_tensor(data: bytes) -> TensorInfo | None:
    fields = walk(data, size=len(data), max_fields=100_000)
    if fields is None:
        return None
    dims: list[int] = []
    dtype, tensor = 0, None
    for item in fields:
        if item.number == 1 and item.wire_type == 0:
            dims.append(item.value)
        elif item.number == 1 and item.wire_type == 2:  # packed dims
            dims.extend(_varints(data[item.start:item.start + item.value]))
        elif item.number == 2 and item.wire_type == 0:
            dtype = item.value
        elif item.number == 8 and item.wire_type == 2:
            tensor = data[item.start:item.start + item.value].decode("utf-8")
    if tensor is None:
        return None
    return TensorInfo(tensor, _ONNX_TYPES.get(dtype, f"onnx_type_{dtype}"), tuple(dims))


def _varints(data: bytes) -> list[int]:
    values, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            value = shift = 0
    return values
