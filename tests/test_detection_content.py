"""Model detection from content: real files by the real libraries, renamed files, look-alikes."""

from __future__ import annotations

import collections
import datetime
import gzip
import io
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from test_detection_files import (
    coreml_bytes,
    csv_bytes,
    dataframe_pickle,
    docx_like,
    gguf_file,
    joblib_file,
    keras_h5_file,
    keras_v3_file,
    npy_file,
    npz_file,
    onnx_file,
    random_bytes,
    safetensors_file,
    savedmodel_bytes,
    sensor_hdf5_file,
    sklearn_pickle,
    tar_gz_of,
    tar_of,
    tflite_bytes,
    torch_legacy_bytes,
    torch_state_dict_pickle,
    torch_zip_file,
    torchscript_zip_file,
    zip_of,
)

from crownguard.engine.triage.detection import ModelFormat, detect_content
from crownguard.engine.triage.detection.pickles import scan_pickle

Maker = Callable[[Path], Path]


def _bytes(data: bytes | Callable[[], bytes], name: str) -> Maker:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data() if callable(data) else data)
        return path
    return make


MODELS: dict[str, tuple[Maker, ModelFormat]] = {
    "safetensors": (lambda t: safetensors_file(t / "model.safetensors"), ModelFormat.SAFETENSORS),
    "gguf": (lambda t: gguf_file(t / "tiny.gguf"), ModelFormat.GGUF),
    "onnx": (lambda t: onnx_file(t / "model.onnx"), ModelFormat.ONNX),
    "pytorch-zip": (lambda t: torch_zip_file(t / "model.pt"), ModelFormat.PYTORCH),
    "pytorch-zip-renamed-prefix": (lambda t: torch_zip_file(t / "ckpt.bin", prefix="ckpt"),
                                   ModelFormat.PYTORCH),
    "torchscript": (lambda t: torchscript_zip_file(t / "scripted.pt"), ModelFormat.PYTORCH),
    "pytorch-legacy": (_bytes(torch_legacy_bytes, "old.pth"), ModelFormat.PYTORCH),
    "pytorch-pickle": (_bytes(torch_state_dict_pickle, "state.pkl"), ModelFormat.PYTORCH),
    "sklearn-pickle": (_bytes(sklearn_pickle, "clf.pkl"), ModelFormat.PICKLE),
    "sklearn-pickle-protocol2": (_bytes(lambda: sklearn_pickle(2), "clf2.pkl"),
                                 ModelFormat.PICKLE),
    "joblib": (lambda t: joblib_file(t / "xgb.joblib"), ModelFormat.JOBLIB),
    "joblib-compressed": (lambda t: joblib_file(t / "xgb.joblib.z", compress=3),
                          ModelFormat.JOBLIB),
    "keras-v3": (lambda t: keras_v3_file(t / "model.keras", t), ModelFormat.KERAS),
    "keras-h5": (lambda t: keras_h5_file(t / "model.h5"), ModelFormat.KERAS_H5),
    "tf-savedmodel-pb": (_bytes(savedmodel_bytes, "saved_model.pb"), ModelFormat.TF_SAVEDMODEL),
    "tf-savedmodel-zip": (lambda t: zip_of(t / "export.zip", {
        "export/saved_model.pb": savedmodel_bytes(),
        "export/variables/variables.index": b"\x00" * 32,
        "export/variables/variables.data-00000-of-00001": b"\x00" * 64}),
        ModelFormat.TF_SAVEDMODEL),
    "tflite": (_bytes(tflite_bytes, "model.tflite"), ModelFormat.TFLITE),
    "coreml": (_bytes(coreml_bytes, "model.mlmodel"), ModelFormat.COREML),
    "coreml-package-zip": (lambda t: zip_of(t / "Model.mlpackage.zip", {
        "Model.mlpackage/Manifest.json": b'{"itemInfoEntries": {}}',
        "Model.mlpackage/Data/com.apple.CoreML/model.mlmodel": coreml_bytes()}),
        ModelFormat.COREML),
    "pytorch-legacy-tar": (lambda t: tar_of(t / "old-checkpoint.tar", {
        "storages": b"\x80\x02K\x01.", "tensors": b"\x80\x02K\x01.",
        "pickle": torch_state_dict_pickle()}), ModelFormat.PYTORCH),
    "npy": (lambda t: npy_file(t / "weights.npy"), ModelFormat.NUMPY),
    "npz": (lambda t: npz_file(t / "weights.npz"), ModelFormat.NUMPY),
    "model-tar-gz": (lambda t: tar_gz_of(t / "model.tar.gz", {
        "model/config.json": b"{}", "model/model-00001-of-00002.safetensors": b"\x00" * 600}),
        ModelFormat.SAFETENSORS),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_real_model_files_are_detected(kind: str, tmp_path: Path) -> None:
    make, expected = MODELS[kind]
    path = make(tmp_path)
    detection = detect_content(path, name=path.name)
    assert detection.is_model, detection.evidence
    assert detection.format == expected, detection.evidence
    assert detection.evidence and all(isinstance(e, str) and e for e in detection.evidence)
    assert not detection.disguised


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_renamed_models_are_still_models_and_flagged_disguised(kind: str, tmp_path: Path) -> None:
    make, expected = MODELS[kind]
    original = make(tmp_path)
    renamed = tmp_path / "holiday.jpg"
    shutil.copyfile(original, renamed)
    detection = detect_content(renamed, name=renamed.name)
    assert detection.is_model and detection.format == expected
    assert detection.disguised
    assert any("holiday.jpg" in e for e in detection.evidence)


@pytest.mark.parametrize("source", ["path", "bytes", "fileobj"])
def test_every_kind_of_source_gives_the_same_verdict(source: str, tmp_path: Path) -> None:
    path = safetensors_file(tmp_path / "m.safetensors")
    given = {"path": path, "bytes": path.read_bytes(), "fileobj": io.BytesIO(path.read_bytes())}
    detection = detect_content(given[source])
    assert detection.is_model and detection.format == ModelFormat.SAFETENSORS


LOOKALIKES: dict[str, Maker] = {
    "office-zip": lambda t: docx_like(t / "report.docx"),
    "zip-of-photos": lambda t: zip_of(t / "holiday.zip", {"img_001.jpg": b"\xff\xd8\xff" * 50,
                                                          "img_002.jpg": b"\xff\xd8\xff" * 50}),
    "random-binary": _bytes(random_bytes, "blob.bin"),
    "csv": _bytes(csv_bytes, "export.csv"),
    "csv-named-like-a-model": _bytes(csv_bytes, "model.safetensors"),
    "gzipped-csv": _bytes(lambda: gzip.compress(csv_bytes()), "export.csv.gz"),
    "json": _bytes(b'{"name": "quarterly", "values": [1, 2, 3]}', "data.json"),
    "pdf": _bytes(b"%PDF-1.7\n" + b"\x00" * 500, "contract.pdf"),
    "jpeg": _bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + random_bytes(5000), "photo.jpg"),
    "dataframe-pickle": _bytes(dataframe_pickle, "frame.pkl"),
    "plain-pickle": _bytes(lambda: __import__("pickle").dumps({"a": [1, 2, 3]}, protocol=4),
                           "settings.pkl"),
    "sensor-hdf5": lambda t: sensor_hdf5_file(t / "readings.h5"),
    "integer-npy": lambda t: npy_file(t / "ids.npy", dtype="int64"),
    "sqlite": _bytes(b"SQLite format 3\x00" + b"\x00" * 4000, "app.db"),
    "empty": _bytes(b"", "empty.bin"),
    "tar-of-documents": lambda t: tar_gz_of(t / "docs.tar.gz", {"a.txt": b"hello",
                                                                "b.pdf": b"%PDF-1.4"}),
    "protobuf-like-bytes": _bytes(b"\x08\x96\x01\x12\x07testing" + b"\xff" * 40, "msg.bin"),
}


@pytest.mark.parametrize("kind", sorted(LOOKALIKES))
def test_lookalikes_are_not_models(kind: str, tmp_path: Path) -> None:
    path = LOOKALIKES[kind](tmp_path)
    detection = detect_content(path, name=path.name)
    assert not detection.is_model, detection.evidence
    assert detection.confidence < 0.5
    assert detection.evidence


def test_a_model_name_on_non_model_content_is_called_out(tmp_path: Path) -> None:
    from crownguard.engine.triage.detection import detect
    from crownguard.engine.triage.events import FileInfo

    path = tmp_path / "model.safetensors"
    path.write_bytes(csv_bytes())
    detection = detect(FileInfo(name=path.name), content=path)
    assert not detection.is_model
    assert any("suggests a model" in e for e in detection.evidence)


def test_safetensors_evidence_counts_tensors(tmp_path: Path) -> None:
    detection = detect_content(safetensors_file(tmp_path / "m.safetensors", tensors=3))
    assert detection.confidence >= 0.99
    assert "3 tensors" in detection.evidence[0]


def test_gguf_evidence_names_the_architecture(tmp_path: Path) -> None:
    detection = detect_content(gguf_file(tmp_path / "m.gguf"))
    assert "architecture llama" in detection.evidence[0]


def test_onnx_and_coreml_are_told_apart_though_both_start_with_field_one() -> None:
    assert detect_content(coreml_bytes()).format == ModelFormat.COREML
    assert detect_content(savedmodel_bytes()).format == ModelFormat.TF_SAVEDMODEL


def test_real_sklearn_pickle_when_available() -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    import pickle

    model = sklearn.LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    detection = detect_content(pickle.dumps(model))
    assert detection.is_model and detection.format == ModelFormat.PICKLE
    assert "sklearn" in detection.evidence[0]


def test_a_hostile_pickle_is_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = (b"\x80\x04cos\nsystem\n(X" + len(f"touch {marker}").to_bytes(4, "little")
               + f"touch {marker}".encode() + b"tR.")
    detection = detect_content(payload)
    assert not marker.exists()
    assert detection.format == ModelFormat.PICKLE
    assert "os.system" in detection.evidence[0]


def test_model_directories_are_judged_by_their_entries(tmp_path: Path) -> None:
    saved = tmp_path / "export" / "1"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(savedmodel_bytes())
    (saved / "variables" / "variables.index").write_bytes(b"\x00")
    assert detect_content(saved).format == ModelFormat.TF_SAVEDMODEL
    package = tmp_path / "Model.mlpackage" / "Data" / "com.apple.CoreML"
    package.mkdir(parents=True)
    (package / "model.mlmodel").write_bytes(coreml_bytes())
    assert detect_content(tmp_path / "Model.mlpackage").format == ModelFormat.COREML
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    safetensors_file(snapshot / "model.safetensors")
    (snapshot / "config.json").write_text("{}")
    assert detect_content(snapshot).format == ModelFormat.SAFETENSORS
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"\xff\xd8\xff")
    assert not detect_content(photos).is_model


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_pickle_globals_are_named_right_when_the_module_name_is_memoised(protocol: int) -> None:
    # The second class of a module pushes the module name again with BINGET (protocol 4+).
    data = pickle.dumps([collections.Counter, collections.OrderedDict,
                         datetime.date(2026, 1, 1), datetime.timedelta(1)], protocol=protocol)
    scan = scan_pickle(data)
    assert scan is not None
    assert {"collections.Counter", "collections.OrderedDict", "datetime.date",
            "datetime.timedelta"} <= set(scan.globals)
    assert not {"Counter.OrderedDict", "date.timedelta"} & set(scan.globals)
