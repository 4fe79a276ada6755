"""Structural fingerprints: the same tensors under a new SHA-256 are still the registered model.

Files are made with the real libraries (safetensors, NumPy, ONNX, gguf; PyTorch when it is
installed). PyTorch is too heavy for CI, so its zip files are also written here with the
stdlib's zipfile and a hand-built pickle of exactly torch.save's layout; when torch is
installed, a test loads that hand-built file with torch itself to prove the layout right.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save as safetensors_bytes

from crownguard.engine.triage.detection import Method, detect
from crownguard.engine.triage.detection.fingerprints import FingerprintIndex, ModelVersionRef
from crownguard.engine.triage.detection.structure import (
    fingerprint_content,
    structural_fingerprint,
)
from crownguard.engine.triage.detection.structure_match import STRUCTURE_THRESHOLD
from crownguard.engine.triage.events import FileInfo

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [np.float32, np.float16, np.int64, np.uint8]
_STORAGE = {"float32": "FloatStorage", "float16": "HalfStorage", "int64": "LongStorage",
            "uint8": "ByteStorage", "float64": "DoubleStorage"}

names = st.text("abcdefghij._0123456789", min_size=1, max_size=24)
shapes = st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple)
state_dicts = st.dictionaries(names, st.tuples(shapes, st.sampled_from(DTYPES)),
                              min_size=2, max_size=12).map(
    lambda spec: {k: np.zeros(s, dtype=d) for k, (s, d) in spec.items()})


def _text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _tuple(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def torch_zip(tensors: dict[str, np.ndarray], prefix: str = "archive") -> bytes:
    """A torch.save zip written by hand: data.pkl (protocol 2, torch's own opcodes),
    byteorder, version and one storage record per tensor."""
    pickle = bytearray(b"\x80\x02}(")
    for i, (name, array) in enumerate(tensors.items()):
        strides = tuple(s // array.itemsize for s in array.strides) if array.size else (
            tuple(1 for _ in array.shape))
        pickle += _text(name) + b"ctorch._utils\n_rebuild_tensor_v2\n(("
        pickle += _text("storage") + b"ctorch\n" + _STORAGE[array.dtype.name].encode() + b"\n"
        pickle += _text(str(i)) + _text("cpu") + _int(array.size) + b"tQ"
        pickle += _int(0) + _tuple(array.shape) + _tuple(strides)
        pickle += b"\x89ccollections\nOrderedDict\n)RtR"
    pickle += b"u."
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", bytes(pickle))
        archive.writestr(f"{prefix}/byteorder", "little")
        for i, array in enumerate(tensors.values()):
            archive.writestr(f"{prefix}/data/{i}", np.ascontiguousarray(array).tobytes())
        archive.writestr(f"{prefix}/version", "3\n")
    return out.getvalue()


def npz(tensors: dict[str, np.ndarray], compressed: bool = False) -> bytes:
    out = io.BytesIO()
    if compressed:
        np.savez_compressed(out, **tensors)  # type: ignore[arg-type]
    else:
        np.savez(out, **tensors)  # type: ignore[arg-type]
    return out.getvalue()


def registered(index: FingerprintIndex, content: bytes, *, model: str = "fraud-model",
               version: str = "7", path: str = "model/model.safetensors") -> None:
    index.add_version(ModelVersionRef("mlflow", model, version, "restricted", "1"),
                      {"files": [{"path": path, "sha256": hashlib.sha256(content).hexdigest(),
                                  "head": content}]})


# --- the fingerprint itself -----------------------------------------------------------------------


@FAST
@given(tensors=state_dicts, data=st.data())
def test_resaving_with_other_metadata_and_order_keeps_the_fingerprint(
        tensors: dict[str, np.ndarray], data: st.DataObject) -> None:
    first = safetensors_bytes(tensors, metadata={"format": "pt"})
    order = data.draw(st.permutations(list(tensors)))
    again = safetensors_bytes({k: tensors[k] for k in order},
                              metadata={"format": "np", "saved_by": "someone else"})
    a, b = structural_fingerprint(first), structural_fingerprint(again)
    assert a is not None and b is not None
    assert a.digest == b.digest
    assert {t.name for t in a.tensors} == set(tensors)


@FAST
@given(tensors=state_dicts)
def test_conversions_to_pytorch_and_numpy_keep_the_fingerprint(
        tensors: dict[str, np.ndarray]) -> None:
    reference = structural_fingerprint(safetensors_bytes(tensors))
    assert reference is not None
    for converted in (torch_zip(tensors), npz(tensors), npz(tensors, compressed=True)):
        found = structural_fingerprint(converted)
        assert found is not None and found.digest == reference.digest


@FAST
@given(prefix=st.sampled_from([b"", b"PK\x03\x04", b"GGUF\x03\x00\x00\x00", b"\x08\x07:",
                               b"\x93NUMPY\x01\x00", b"\x40\x00\x00\x00\x00\x00\x00\x00{"]),
       body=st.binary(max_size=2000))
def test_any_bytes_give_a_fingerprint_or_none_and_never_an_exception(prefix: bytes,
                                                                     body: bytes) -> None:
    found = structural_fingerprint(prefix + body)
    assert found is None or found.tensors


@FAST
@given(tensors=state_dicts)
def test_real_torch_save_keeps_the_fingerprint(tensors: dict[str, np.ndarray]) -> None:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    state = {k: torch.from_numpy(v) for k, v in tensors.items()}
    first = next(iter(state))
    state[first] = torch.nn.Parameter(state[first], requires_grad=False)  # a module's weight
    torch.save(state, buffer)
    found = structural_fingerprint(buffer.getvalue()[:65536], "model.pt")
    assert found is not None and found.format == "pytorch"
    assert found.digest == structural_fingerprint(safetensors_bytes(tensors)).digest  # type: ignore[union-attr,unused-ignore]


def test_the_head_of_a_pytorch_zip_is_enough() -> None:
    tensors = {f"layers.{i}.weight": np.zeros((64, 64), np.float32) for i in range(8)}
    whole = torch_zip(tensors)
    found = structural_fingerprint(whole[:4096], "model.pt")   # data.pkl only, no directory
    assert found is not None and found.format == "pytorch"
    assert found.digest == structural_fingerprint(safetensors_bytes(tensors)).digest  # type: ignore[union-attr,unused-ignore]


def test_a_checkpoint_with_the_state_dict_inside_reads_its_tensors() -> None:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    weights = {"fc.weight": torch.zeros(3, 4), "fc.bias": torch.zeros(3)}
    torch.save({"epoch": 3, "state_dict": weights, "optimizer": {"lr": 0.1}}, buffer)
    found = structural_fingerprint(buffer.getvalue())
    assert found is not None
    assert [(t.name, t.shape) for t in found.tensors] == [("fc.bias", (3,)),
                                                          ("fc.weight", (3, 4))]


def test_the_hand_built_pytorch_zip_is_what_torch_writes_and_reads() -> None:
    torch = pytest.importorskip("torch")
    tensors: dict[str, np.ndarray] = {"a.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
               "b.bias": np.ones(4, np.float16), "steps": np.array([7], np.int64)}
    loaded = torch.load(io.BytesIO(torch_zip(tensors)), weights_only=True)
    assert {k: tuple(v.shape) for k, v in loaded.items()} == {k: v.shape
                                                              for k, v in tensors.items()}
    real = io.BytesIO()
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, real)
    assert structural_fingerprint(real.getvalue()).digest == \
        structural_fingerprint(torch_zip(tensors)).digest  # type: ignore[union-attr,unused-ignore]


def test_onnx_initializers_and_gguf_tensor_infos(tmp_path: Path) -> None:
    import gguf
    from onnx import helper, numpy_helper

    tensors = {"embed.weight": np.zeros((8, 4), np.float32), "head.bias": np.zeros(8, np.float32)}
    graph = helper.make_graph([], "g", [], [], initializer=[
        numpy_helper.from_array(v, name=k) for k, v in tensors.items()])
    onnx_fp = structural_fingerprint(helper.make_model(graph).SerializeToString())
    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    gguf_fp = fingerprint_content(path)
    reference = structural_fingerprint(safetensors_bytes(tensors))
    assert onnx_fp is not None and gguf_fp is not None and reference is not None
    assert onnx_fp.digest == gguf_fp.digest == reference.digest
    assert gguf_fp.format == "gguf" and onnx_fp.format == "onnx"


def test_a_lone_npy_is_named_after_its_file() -> None:
    out = io.BytesIO()
    np.save(out, np.zeros((2, 3), np.float64))
    found = structural_fingerprint(out.getvalue(), "weights/embedding.npy")
    assert found is not None
    assert [(t.name, t.dtype, t.shape) for t in found.tensors] == [
        ("embedding", "float64", (2, 3))]


# --- matching in the index ------------------------------------------------------------------------


def model(count: int = 20) -> dict[str, np.ndarray]:
    return {f"encoder.layer.{i}.weight": np.zeros((4, i + 1), np.float32) for i in range(count)}


def test_a_resaved_safetensors_with_changed_metadata_is_the_registered_version() -> None:
    tensors = model()
    with FingerprintIndex() as index:
        registered(index, safetensors_bytes(tensors, metadata={"format": "pt"}))
        copy = safetensors_bytes(dict(reversed(tensors.items())),
                                 metadata={"format": "pt", "note": "mine now"})
        assert index.best_match(hashlib.sha256(copy).hexdigest()) is None
        found = index.match_structure(structural_fingerprint(copy))
        assert found is not None and found.complete and found.same_dtypes
        assert found.describe() == ("re-saved or converted copy of fraud-model v7 (mlflow, "
                                    "restricted): model/model.safetensors, 20 of 20 tensors")
        detection = detect(FileInfo(name="notes.bin", sha256=hashlib.sha256(copy).hexdigest()),
                           content=copy, index=index)
    assert detection.method == Method.STRUCTURAL_FINGERPRINT and detection.is_model
    assert detection.match is not None and detection.match.version == "7"
    assert detection.evidence[0].startswith("tensor structure: re-saved or converted copy")
    assert detection.details["structure"]["share"] == 1.0


def test_a_conversion_to_npz_on_disk_matches(tmp_path: Path) -> None:
    tensors = model()
    half = {k: v.astype(np.float16) for k, v in tensors.items()}
    path = tmp_path / "holiday.npz"
    path.write_bytes(npz(half, compressed=True))
    with FingerprintIndex() as index:
        registered(index, safetensors_bytes(tensors))
        detection = detect(FileInfo(name=path.name), content=path, index=index)
    assert detection.match is not None and detection.match.model == "fraud-model"
    assert "20 of 20 tensors, other dtypes" in detection.evidence[0]


@pytest.mark.parametrize(("kept", "matches"), [(20, True), (18, True), (17, False)])
def test_a_partial_match_reports_the_share_of_tensors(kept: int, matches: bool) -> None:
    tensors = model(20)
    with FingerprintIndex() as index:
        registered(index, safetensors_bytes(tensors))
        changed = dict(list(tensors.items())[:kept])
        changed.update({f"new.{i}": np.zeros(3, np.float32) for i in range(20 - kept)})
        found = index.match_structure(structural_fingerprint(npz(changed)))
    assert (found is not None) is matches
    assert STRUCTURE_THRESHOLD == 0.9
    if found is not None and kept < 20:
        assert found.share == kept / 20
        assert found.describe().startswith(f"{kept * 5}% of its tensors match fraud-model v7")
        assert found.describe().endswith(f"{kept} of 20 by name and shape")


def test_the_best_share_then_the_newest_version_wins() -> None:
    tensors = model(10)
    with FingerprintIndex() as index:
        registered(index, safetensors_bytes(tensors), version="6")
        registered(index, safetensors_bytes(tensors), version="7")
        registered(index, safetensors_bytes(model(11)), model="other")
        found = index.match_structure(structural_fingerprint(torch_zip(tensors)))
        assert found is not None and (found.model, found.version) == ("fraud-model", "7")
        index.remove_version("mlflow", "fraud-model", "7")
        index.remove_version("mlflow", "fraud-model", "6")
        assert index.stats()["structures"] == 1
        assert index.match_structure(structural_fingerprint(torch_zip(tensors))) is not None


def test_a_file_of_one_tensor_is_never_a_structural_match() -> None:
    tensors = {"w": np.zeros((4, 4), np.float32)}
    with FingerprintIndex() as index:
        registered(index, safetensors_bytes(tensors))
        assert index.match_structure(structural_fingerprint(npz(tensors))) is None
