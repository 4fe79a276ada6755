"""Protocol-buffer model files (ONNX, Core ML, TensorFlow SavedModel) told apart by structure.

None of these formats has a magic number, but each is one known top-level message. Walking
the wire format of the first bytes (tags, wire types, lengths; never a full decode) and
checking the field numbers against each message's schema separates them from each other and
from random binary data.
"""

from __future__ import annotations

from dataclasses import dataclass

from .formats import ModelFormat

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
MAX_FIELDS = 256


@dataclass(frozen=True)
class WireField:
    number: int
    wire_type: int
    value: int        # the varint value, or the declared length of a length-delimited field
    start: int        # where the payload starts
    truncated: bool   # the payload runs past the bytes at hand


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    result = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        result |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return result, pos
        shift += 7
    return None


def walk(data: bytes, *, size: int | None = None, max_fields: int = MAX_FIELDS,
         ) -> list[WireField] | None:
    """Top-level fields of a message prefix; None when the bytes break the wire format."""
    fields: list[WireField] = []
    pos = 0
    total = size  # unknown when the file is a stream of unknown length
    while pos < len(data) and len(fields) < max_fields:
        tag = _varint(data, pos)
        if tag is None:
            break
        key, pos = tag
        number, wire_type = key >> 3, key & 7
        if number == 0 or wire_type not in (_VARINT, _FIXED64, _LEN, _FIXED32):
            return None
        if wire_type == _VARINT:
            value = _varint(data, pos)
            if value is None:
                break
            fields.append(WireField(number, wire_type, value[0], pos, False))
            pos = value[1]
        elif wire_type == _LEN:
            length = _varint(data, pos)
            if length is None:
                break
            start = length[1]
            if total is not None and start + length[0] > total:
                return None  # longer than the whole file: not a protobuf
            truncated = start + length[0] > len(data)
            fields.append(WireField(number, wire_type, length[0], start, truncated))
            if truncated:
                break
            pos = start + length[0]
        else:
            width = 8 if wire_type == _FIXED64 else 4
            fields.append(WireField(number, wire_type, 0, pos, pos + width > len(data)))
            pos += width
    return fields


def _text(data: bytes, field: WireField, limit: int = 80) -> str:
    raw = data[field.start:field.start + min(field.value, limit)]
    return raw.decode("utf-8", "replace")


# ONNX ModelProto and GraphProto field numbers (onnx/onnx.proto3).
_ONNX_MODEL = {1: _VARINT, 2: _LEN, 3: _LEN, 4: _LEN, 5: _VARINT, 6: _LEN, 7: _LEN, 8: _LEN,
               14: _LEN, 20: _LEN, 25: _LEN, 26: _LEN}
_ONNX_GRAPH = {1, 2, 5, 10, 11, 12, 13, 14, 15, 16}
# Core ML Model (coremltools/mlmodel/format/Model.proto): the `Type` oneof numbers.
_COREML_TYPES = {200, 201, 202, 300, 301, 302, 303, 304, 400, 401, 402, 403, 404, 500, 501,
                 502, 555, 556, 560, 600, 601, 602, 603, 604, 606, 607, 609, 610, 900, 2000,
                 2001, 2002, 2003, 2004, 2005, 2006, 3000}
# Strings a SavedModel's MetaGraphDef carries early: its tag set and TensorFlow op names.
_SAVEDMODEL_MARKERS = (b"serve", b"tensorflow", b"VarHandleOp", b"SaveV2", b"RestoreV2",
                       b"StatefulPartitionedCall", b"saver_filename", b"serving_default")


@dataclass(frozen=True)
class ProtobufVerdict:
    format: ModelFormat
    confidence: float
    evidence: str


def classify_protobuf(head: bytes, size: int | None) -> ProtobufVerdict | None:
    """ONNX, Core ML or SavedModel when the head's structure fits one of them."""
    if len(head) < 4 or head[0] != 0x08:
        return None  # all three start with field 1 as a varint
    fields = walk(head, size=size)
    if not fields or len(fields) < 2 or fields[0].number != 1 or fields[0].wire_type != _VARINT:
        return None
    numbers = [f.number for f in fields]
    first = fields[0].value
    if any(n in _COREML_TYPES for n in numbers) and fields[1].number == 2 and 1 <= first <= 20:
        if all(n in (1, 2, 10) or n in _COREML_TYPES for n in numbers):
            return ProtobufVerdict(ModelFormat.COREML, 0.95,
                                   f"Core ML model, specification version {first}")
    if set(numbers) <= {1, 2} and first == 1 and fields[1].wire_type == _LEN:
        markers = [m.decode() for m in _SAVEDMODEL_MARKERS if m in head]
        if markers:
            return ProtobufVerdict(ModelFormat.TF_SAVEDMODEL, 0.93,
                                   f"TensorFlow SavedModel protobuf ({', '.join(markers[:3])})")
    if all(_ONNX_MODEL.get(f.number) == f.wire_type for f in fields) and 1 <= first <= 15:
        by_number = {f.number: f for f in fields}
        if 7 not in by_number and 8 not in by_number:
            return None
        producer = _text(head, by_number[2]) if 2 in by_number else "unknown producer"
        graph = by_number.get(7)
        confidence = 0.9
        if graph is not None:
            inner = walk(head[graph.start:graph.start + min(graph.value, 4096)], size=graph.value,
                         max_fields=4)
            if inner and inner[0].number in _ONNX_GRAPH:
                confidence = 0.97
        return ProtobufVerdict(ModelFormat.ONNX, confidence,
                               f"ONNX model, IR version {first}, produced by {producer}")
    return None
