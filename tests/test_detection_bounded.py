"""Detection reads a bounded number of bytes: a 10 GB file costs what a 10 KB one does."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest
from test_detection_files import (
    csv_bytes,
    safetensors_file,
    torch_state_dict_pickle,
    torch_zip_file,
)

from crownguard.engine.triage.detection import HEAD_BYTES, READ_BUDGET, ModelFormat, detect_content

TEN_GB = 10 * 1024**3


class CountingReader(io.RawIOBase):
    """A file object that counts every byte handed out."""

    def __init__(self, handle: io.BufferedReader):
        self.handle = handle
        self.count = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.count += len(data)
        return data


def _read_count(path: Path) -> tuple[int, object]:
    with path.open("rb") as handle:
        reader = CountingReader(handle)
        detection = detect_content(reader)  # type: ignore[arg-type]
    return reader.count, detection


def _sparse(path: Path, size: int) -> Path:
    with path.open("r+b") as handle:
        handle.truncate(size)
    return path


def test_a_10gb_safetensors_file_costs_the_same_reads_as_a_small_one(tmp_path: Path) -> None:
    small = safetensors_file(tmp_path / "small.safetensors")
    big = _sparse(safetensors_file(tmp_path / "big.safetensors"), TEN_GB)
    small_reads, small_detection = _read_count(small)
    big_reads, big_detection = _read_count(big)
    assert big_detection.format == small_detection.format == ModelFormat.SAFETENSORS  # type: ignore[attr-defined]
    assert big_reads <= HEAD_BYTES + 70_000
    assert big_reads < 200_000 and small_reads <= big_reads


def zip64_checkpoint(path: Path, payload_size: int) -> Path:
    """A torch.save-style zip whose storage entry is `payload_size` bytes (sparse on disk),
    with zip64 local, central and end records as PKZIP APPNOTE 4.5 describes them."""
    entries: list[tuple[str, bytes | None]] = [("archive/data.pkl", torch_state_dict_pickle()),
                                                ("archive/version", b"3\n"),
                                                ("archive/data/0", None)]
    offsets: dict[str, int] = {}
    sizes: dict[str, int] = {}
    with path.open("wb") as f:
        for name, data in entries:
            raw = name.encode()
            size = len(data) if data is not None else payload_size
            offsets[name], sizes[name] = f.tell(), size
            extra = struct.pack("<HHQQ", 1, 16, size, size)
            f.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45, 0, 0, 0, 0x21, 0,
                                0xFFFFFFFF, 0xFFFFFFFF, len(raw), len(extra)) + raw + extra)
            if data is not None:
                f.write(data)
            else:
                f.seek(size, io.SEEK_CUR)
        cd_start = f.tell()
        for name, _ in entries:
            raw = name.encode()
            extra = struct.pack("<HHQQQ", 1, 24, sizes[name], sizes[name], offsets[name])
            f.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0, 0, 0, 0x21, 0,
                                0xFFFFFFFF, 0xFFFFFFFF, len(raw), len(extra), 0, 0, 0, 0,
                                0xFFFFFFFF) + raw + extra)
        cd_end = f.tell()
        f.write(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, len(entries),
                            len(entries), cd_end - cd_start, cd_start))
        f.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, cd_end, 1))
        f.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                            0xFFFFFFFF, 0))
    return path


def test_the_crafted_zip64_checkpoint_is_a_valid_zip(tmp_path: Path) -> None:
    path = zip64_checkpoint(tmp_path / "big.pt", TEN_GB)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["archive/data.pkl", "archive/version", "archive/data/0"]
        assert archive.getinfo("archive/data/0").file_size == TEN_GB


def test_a_10gb_zip64_pytorch_checkpoint_is_read_from_both_ends_only(tmp_path: Path) -> None:
    path = zip64_checkpoint(tmp_path / "big.pt", TEN_GB)
    reads, detection = _read_count(path)
    assert detection.is_model and detection.format == ModelFormat.PYTORCH  # type: ignore[attr-defined]
    assert "version records" in detection.evidence[0]  # type: ignore[attr-defined]
    assert "only the first entries" not in detection.evidence[0]  # type: ignore[attr-defined]
    assert reads <= READ_BUDGET


def test_a_prefix_without_the_end_still_finds_the_local_headers(tmp_path: Path) -> None:
    data = torch_zip_file(tmp_path / "m.pt", payload=200_000).read_bytes()
    prefix = data[:4096]
    detection = detect_content(prefix, size=len(data))
    assert detection.is_model and detection.format == ModelFormat.PYTORCH
    assert "only the first entries" in detection.evidence[0]


def test_a_stream_that_cannot_seek_is_judged_from_its_head(tmp_path: Path) -> None:
    class Stream(io.RawIOBase):
        def __init__(self, data: bytes):
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def read(self, size: int = -1) -> bytes:
            return self.inner.read(size)

    path = safetensors_file(tmp_path / "m.safetensors")
    assert detect_content(Stream(path.read_bytes())).format == ModelFormat.SAFETENSORS  # type: ignore[arg-type]
    assert not detect_content(Stream(csv_bytes())).is_model  # type: ignore[arg-type]


def test_a_huge_central_directory_is_read_only_up_to_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("checkpoint/model.safetensors", b"\x00" * 16)
        for i in range(12_000):
            archive.writestr(f"logs/run-{i:05d}/" + "x" * 60 + ".txt", b"")
    reads, detection = _read_count(path)
    assert reads <= READ_BUDGET
    assert detection.is_model and detection.format == ModelFormat.SAFETENSORS  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 16])
def test_tiny_and_truncated_files_never_break_detection(size: int, tmp_path: Path) -> None:
    data = safetensors_file(tmp_path / "m.safetensors").read_bytes()[:size]
    detection = detect_content(data)
    assert not detection.is_model
