"""Builders of real model files (and look-alikes) for the detection tests.

Made at test time: by the real libraries where they are light (safetensors, gguf, onnx, numpy,
h5py, joblib), and by hand from the documented formats where the library is too heavy to be a
test dependency (PyTorch's zip and legacy layouts, TFLite FlatBuffers, SavedModel protobufs).
The tests in this file check that the hand-built files are valid by the format's own tooling
(zipfile, pickletools, tarfile), so detection is tested against real structure, not against
what the detector expects.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import pickletools
import sys
import tarfile
import types
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# --- real libraries ---------------------------------------------------------------------------


def safetensors_file(path: Path, tensors: int = 2) -> Path:
    from safetensors.numpy import save_file

    save_file({f"layer{i}.weight": np.ones((4, 4), dtype=np.float32) for i in range(tensors)},
              str(path), metadata={"format": "pt"})
    return path


def gguf_file(path: Path) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-test-llm")
    writer.add_tensor("token_embd.weight", np.ones((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def onnx_file(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    w = numpy_helper.from_array(np.ones((4, 4), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y],
                              [w])
    onnx.save(helper.make_model(graph, producer_name="pytorch"), str(path))
    return path


def npy_file(path: Path, dtype: str = "float32") -> Path:
    np.save(path, np.ones((16, 8), dtype=dtype))
    return path


def npz_file(path: Path, names: tuple[str, ...] = ("dense.kernel", "dense.bias")) -> Path:
    with path.open("wb") as handle:
        np.savez(handle, **{n: np.ones(4, dtype=np.float32) for n in names})
    return path


def keras_h5_file(path: Path) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {}})
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = [b"dense"]
        weights.create_dataset("dense/dense/kernel:0", data=np.ones((4, 4), dtype=np.float32))
    return path


def sensor_hdf5_file(path: Path) -> Path:
    """A look-alike: HDF5 holding measurements, no model in it."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["instrument"] = "spectrometer-7"
        f.create_dataset("readings", data=np.arange(1000, dtype=np.float64))
    return path


def keras_v3_file(path: Path, tmp: Path) -> Path:
    """A .keras file is a zip of metadata.json, config.json and model.weights.h5."""
    weights = keras_h5_file(tmp / "model.weights.h5")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.3.3",
                                                      "date_saved": "2026-01-05@10:00:00"}))
        archive.writestr("config.json", json.dumps({"module": "keras", "class_name":
                                                    "Sequential", "config": {}}))
        archive.write(weights, "model.weights.h5")
    return path


@contextmanager
def fake_classes(*qualified: str) -> Iterator[list[type]]:
    """Classes that pickle as `module.Name`, so pickles reference e.g. sklearn without it.

    Modules that already exist (a real sklearn may be installed) get the attribute only for
    the duration, and their original attribute back afterwards."""
    made: list[type] = []
    added: list[str] = []
    replaced: list[tuple[types.ModuleType, str, object]] = []
    missing = object()
    for name in qualified:
        module_name, _, cls_name = name.rpartition(".")
        parts = module_name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix not in sys.modules:
                sys.modules[prefix] = types.ModuleType(prefix)
                added.append(prefix)
        module = sys.modules[module_name]
        cls = type(cls_name, (), {"__module__": module_name})
        cls.__qualname__ = cls_name
        replaced.append((module, cls_name, getattr(module, cls_name, missing)))
        setattr(module, cls_name, cls)
        made.append(cls)
    try:
        yield made
    finally:
        for module, attribute, original in reversed(replaced):
            if original is missing:
                delattr(module, attribute)
            else:
                setattr(module, attribute, original)
        for prefix in added:
            sys.modules.pop(prefix, None)


def sklearn_pickle(protocol: int = 4) -> bytes:
    with fake_classes("sklearn.linear_model._logistic.LogisticRegression") as (cls,):
        model = cls()
        model.coef_ = np.ones((1, 4))
        model.classes_ = [0, 1]
        return pickle.dumps(model, protocol=protocol)


def dataframe_pickle() -> bytes:
    with fake_classes("pandas.core.frame.DataFrame") as (cls,):
        frame = cls()
        frame.rows = [{"customer": "a", "amount": 3}]
        return pickle.dumps(frame, protocol=5)


def joblib_file(path: Path, compress: int = 0) -> Path:
    import joblib

    with fake_classes("xgboost.sklearn.XGBClassifier") as (cls,):
        model = cls()
        model.booster = np.ones((64, 8), dtype=np.float32)
        joblib.dump(model, path, compress=compress)
    return path


# --- hand-built from documented formats -------------------------------------------------------

TORCH_MAGIC = 0x1950A86A20F9469CFC6C


def torch_state_dict_pickle() -> bytes:
    """The data.pkl of torch.save({'weight': tensor}): torch._utils._rebuild_tensor_v2 by
    reference with a persistent id for the storage, as PyTorch's pickler writes it."""
    p = pickletools_assemble([
        b"\x80\x02", b"}q\x00(", _short_str(b"weight"), b"q\x01",
        b"ctorch._utils\n_rebuild_tensor_v2\nq\x02", b"((",
        _short_str(b"storage"), b"q\x03", b"ctorch\nFloatStorage\nq\x04",
        _short_str(b"0"), b"q\x05", _short_str(b"cpu"), b"q\x06", b"K\x10tq\x07Q",
        b"K\x00K\x04K\x04\x86q\x08K\x04K\x01\x86q\t\x89",
        b"ccollections\nOrderedDict\nq\n)Rq\x0btq\x0cRq\r", b"u."])
    return p


def _short_str(value: bytes) -> bytes:
    return b"X" + len(value).to_bytes(4, "little") + value


def pickletools_assemble(parts: list[bytes]) -> bytes:
    data = b"".join(parts)
    pickletools.dis(data, out=io.StringIO())  # raises if the stream is not valid
    return data


def torch_zip_file(path: Path, prefix: str = "archive", payload: int = 64) -> Path:
    """torch.save's zip layout: prefix/data.pkl, prefix/byteorder, prefix/data/0,
    prefix/version, prefix/.data/serialization_id, stored (uncompressed)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", torch_state_dict_pickle())
        archive.writestr(f"{prefix}/byteorder", "little")
        archive.writestr(f"{prefix}/data/0", b"\x00" * payload)
        archive.writestr(f"{prefix}/version", "3\n")
        archive.writestr(f"{prefix}/.data/serialization_id", "1234567890")
    return path


def torchscript_zip_file(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("model/data.pkl", torch_state_dict_pickle())
        archive.writestr("model/code/__torch__.py", "class Net: ...\n")
        archive.writestr("model/constants.pkl", b"\x80\x02).")
        archive.writestr("model/version", "6\n")
    return path


def torch_legacy_bytes() -> bytes:
    """The pre-1.6 torch.save stream: the magic number, the protocol version and sys_info
    pickled one after another (protocol 2), then the object and the raw storages."""
    head = pickle.dumps(TORCH_MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
    head += pickle.dumps({"protocol_version": 1001, "little_endian": True,
                          "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    return head + torch_state_dict_pickle() + b"\x00" * 256


def tflite_bytes() -> bytes:
    """A minimal FlatBuffer with the TFL3 identifier whose root Model table has version 3."""
    vtable = (6).to_bytes(2, "little") + (8).to_bytes(2, "little") + (4).to_bytes(2, "little")
    vtable += b"\x00\x00"  # padding to 4-byte alignment
    vtable_at = 8
    table_at = vtable_at + len(vtable)
    table = (table_at - vtable_at).to_bytes(4, "little", signed=True) + (3).to_bytes(4, "little")
    return table_at.to_bytes(4, "little") + b"TFL3" + vtable + table + b"\x00" * 64


def pb_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pb_field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return pb_varint(number << 3) + pb_varint(payload)
    return pb_varint(number << 3 | 2) + pb_varint(len(payload)) + payload


def savedmodel_bytes() -> bytes:
    """saved_model.pb: SavedModel{saved_model_schema_version=1, meta_graphs=[MetaGraphDef{
    meta_info_def{tags: serve, tensorflow_version}, graph_def{node: VarHandleOp...}}]}."""
    meta_info = pb_field(4, b"serve") + pb_field(5, b"2.15.0") + pb_field(6, b"v2.15.0-rc1")
    node = pb_field(1, b"dense/kernel") + pb_field(2, b"VarHandleOp")
    graph = pb_field(1, node) + pb_field(1, pb_field(1, b"save/SaveV2") + pb_field(2, b"SaveV2"))
    meta_graph = pb_field(1, meta_info) + pb_field(2, graph)
    return pb_field(1, 1) + pb_field(2, meta_graph)


def coreml_bytes() -> bytes:
    """A Core ML Model{specificationVersion, description, neuralNetwork(500)} by hand."""
    feature = pb_field(1, b"x") + pb_field(3, pb_field(5, pb_field(1, 4)))
    description = pb_field(1, feature) + pb_field(10, pb_field(1, b"y"))
    layer = pb_field(1, b"dense") + pb_field(2, b"x") + pb_field(3, b"y")
    return pb_field(1, 4) + pb_field(2, description) + pb_field(500, pb_field(1, layer))


def tar_gz_of(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def tar_of(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def docx_like(path: Path) -> Path:
    return zip_of(path, {"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>",
                         "docProps/core.xml": b"<cp/>", "word/media/image1.png": b"\x89PNG"})


def random_bytes(size: int = 200_000, seed: int = 7) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def csv_bytes() -> bytes:
    rows = ["customer_id,region,amount,date"] + [f"{i},emea,{i * 3.5},2026-01-0{i % 9 + 1}"
                                                 for i in range(500)]
    return ("\n".join(rows) + "\n").encode()


# --- the builders make valid files --------------------------------------------------------------


def test_torch_zip_is_a_valid_zip_with_torch_layout(tmp_path: Path) -> None:
    path = torch_zip_file(tmp_path / "m.pt")
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert "archive/data.pkl" in archive.namelist()
        pickletools.dis(archive.read("archive/data.pkl"), out=io.StringIO())


def test_torch_legacy_stream_starts_with_the_pickled_magic_number() -> None:
    data = torch_legacy_bytes()
    assert pickle.loads(data[:15]) == TORCH_MAGIC  # the test's own constant, safe to load


def test_savedmodel_and_coreml_builders_are_valid_protobuf() -> None:
    from google.protobuf.internal.decoder import _DecodeVarint  # type: ignore[attr-defined]

    for data in (savedmodel_bytes(), coreml_bytes()):
        value, pos = _DecodeVarint(data, 0)
        assert value == 0x08 and pos == 1


def test_hand_built_coreml_matches_coremltools_schema() -> None:
    import pytest

    model_pb2 = pytest.importorskip("coremltools.proto.Model_pb2")
    spec = model_pb2.Model()
    spec.ParseFromString(coreml_bytes())
    assert spec.specificationVersion == 4
    assert spec.WhichOneof("Type") == "neuralNetwork"
    assert spec.neuralNetwork.layers[0].name == "dense"


def test_compressed_builders_round_trip(tmp_path: Path) -> None:
    path = tar_gz_of(tmp_path / "model.tar.gz", {"model/weights.safetensors": b"x" * 10})
    with tarfile.open(path) as archive:
        assert archive.getnames() == ["model/weights.safetensors"]
    assert gzip.decompress(path.read_bytes())[:5] == b"model"
    assert zlib.decompress(zlib.compress(b"abc")) == b"abc"


def test_fake_classes_leave_real_modules_as_they_were() -> None:
    import json as real

    original = real.JSONDecoder
    with fake_classes("json.JSONDecoder") as (fake,):
        assert real.JSONDecoder is fake
    assert real.JSONDecoder is original
    with fake_classes("no_such_pkg.sub.Thing"):
        assert "no_such_pkg.sub" in sys.modules
    assert "no_such_pkg" not in sys.modules
