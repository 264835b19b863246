"""The results zip (report.outputs.ZipAppender): every member byte for byte, stored or deflated by its suffix, with
the file's time and permissions, whether a member is compressed whole or streamed (above WHOLE_MEMBER_BYTES)."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from pipeline.report import outputs


@pytest.mark.parametrize("whole_member_bytes", [outputs.WHOLE_MEMBER_BYTES, 1000])
def test_members_are_the_files_stored_or_deflated_by_suffix(tmp_path, monkeypatch, whole_member_bytes):
    monkeypatch.setattr(outputs, "WHOLE_MEMBER_BYTES", whole_member_bytes)
    folder = tmp_path / "case"
    (folder / "meshes").mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {
        "meshes/femur.vtk": rng.normal(size=5000).astype(np.float32).tobytes() * 2,  # compressible
        "labels.nii.gz": rng.integers(0, 255, 4000, dtype=np.uint8).tobytes(),
        "report.pdf": b"%PDF-1.4 " + bytes(3000),
        "results.json": b'{"a": 1}',
        "empty.csv": b"",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    os.chmod(folder / "results.json", 0o640)
    archive = outputs.ZipAppender(folder, folder / "case_results.zip")
    archive.add(folder / name for name in files)
    target = archive.close()
    with zipfile.ZipFile(target) as written:
        assert written.testzip() is None
        assert sorted(written.namelist()) == sorted(files)
        for name, data in files.items():
            info = written.getinfo(name)
            assert written.read(name) == data
            stored = name.endswith((".gz", ".pdf"))
            assert info.compress_type == (zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED), name
            modified = zipfile.ZipInfo.from_file(folder / name).date_time
            assert info.date_time == (*modified[:5], modified[5] // 2 * 2)  # a zip keeps even seconds
        assert written.getinfo("results.json").external_attr >> 16 & 0o777 == 0o640
        assert written.getinfo("meshes/femur.vtk").compress_size < len(files["meshes/femur.vtk"]) / 1.5
