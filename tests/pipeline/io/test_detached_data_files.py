"""A header may only name voxel data beside itself: never /etc/passwd, ../x, a LIST or pattern reaching out, or a
link leading elsewhere (issue 25). The same rule for a file, a zip, the CLI and batch; a legitimate detached file in
the same folder or zip still loads."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import InvalidInputError
from pipeline.io import load_image, load_label_map

SECRET = "/etc/passwd"


def meta_header(path: Path, data_file: str, *, size=(10, 10, 10), extra: str = "") -> Path:
    path.write_text(
        "ObjectType = Image\nNDims = 3\n"
        f"DimSize = {' '.join(map(str, size))}\nElementType = MET_UCHAR\nElementSpacing = 1 1 1\n"
        f"ElementDataFile = {data_file}\n{extra}"
    )
    return path


def nrrd_header(path: Path, data_file: str, *, size=(10, 10, 10), extra: str = "") -> Path:
    path.write_text(
        "NRRD0004\ntype: uint8\ndimension: 3\n"
        f"sizes: {' '.join(map(str, size))}\nspacings: 1 1 1\nencoding: raw\ndata file: {data_file}\n{extra}"
    )
    return path


@pytest.fixture()
def outside(tmp_path) -> Path:
    """A file outside the upload folder whose bytes must never come back as voxels."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(range(256)) * 8)
    return secret


ESCAPES = {
    "absolute": lambda folder, secret: str(secret),
    "etc-passwd": lambda folder, secret: SECRET,
    "parent": lambda folder, secret: os.path.relpath(secret, folder),
    "parent-inside-name": lambda folder, secret: "sub/../../" + secret.name,
    "windows-drive": lambda folder, secret: "C:\\Windows\\win.ini",
}


@pytest.mark.parametrize("writer,field", [(meta_header, "ElementDataFile"), (nrrd_header, "data file:")])
@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_a_header_naming_a_file_outside_its_folder_is_refused(tmp_path, outside, writer, field, escape):
    folder = tmp_path / "upload"
    folder.mkdir()
    suffix = ".mha" if writer is meta_header else ".nhdr"
    header = writer(folder / f"knee{suffix}", ESCAPES[escape](folder, outside))
    with pytest.raises(InvalidInputError, match=f"header field '{field}'") as info:
        load_image(header)
    assert "knee" in str(info.value)
    with pytest.raises(InvalidInputError, match="header field"):
        load_label_map(header if suffix == ".mha" else header.rename(header.with_suffix(".nrrd")), "canonical")


@pytest.mark.parametrize("writer", [meta_header, nrrd_header])
def test_a_list_or_pattern_reaching_outside_is_refused(tmp_path, outside, writer):
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "slice1.raw").write_bytes(bytes(100))
    suffix = ".mha" if writer is meta_header else ".nhdr"
    listed = writer(folder / f"listed{suffix}", "LIST 2", extra=f"slice1.raw\n{outside}\n")
    with pytest.raises(InvalidInputError, match="outside the header's folder"):
        load_image(listed)
    pattern = writer(folder / f"pattern{suffix}", "../slice%d.raw 1 10 1 2")
    with pytest.raises(InvalidInputError, match="outside the header's folder"):
        load_image(pattern)


def test_a_link_beside_the_header_leading_outside_is_refused(tmp_path, outside):
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "data.raw").symlink_to(outside)
    with pytest.raises(InvalidInputError, match="leads outside"):
        load_image(meta_header(folder / "knee.mhd", "data.raw"))


@pytest.mark.parametrize("writer,suffix", [(meta_header, ".mhd"), (nrrd_header, ".nhdr")])
def test_a_zip_with_a_header_reaching_out_is_refused_and_one_with_its_data_beside_it_loads(tmp_path, writer, suffix):
    voxels = np.arange(1000, dtype=np.uint8).reshape(10, 10, 10)
    header_text = writer(tmp_path / f"h{suffix}", SECRET).read_text()
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr(f"knee{suffix}", header_text)
    with pytest.raises(InvalidInputError, match="header field"):
        load_image(bad)
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr(f"series/knee{suffix}", writer(tmp_path / f"g{suffix}", "knee.raw").read_text())
        archive.writestr("series/knee.raw", voxels.tobytes())
    volume = load_image(good)
    assert volume.size == (10, 10, 10)
    np.testing.assert_array_equal(np.asarray(volume.array), voxels)  # (k, j, i) order, as written


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_cli_and_batch_refuse_a_header_reaching_out(tmp_path):
    header = meta_header(tmp_path / "knee.mha", SECRET)
    analyze = _cli("analyze", "--labels", str(header), "--out", str(tmp_path / "out"), "-q", cwd=tmp_path)
    assert analyze.returncode == 2, analyze.stderr
    assert "header field 'ElementDataFile'" in analyze.stderr and "root:" not in analyze.stderr
    (tmp_path / "manifest.csv").write_text("case_id,labels\nk1,knee.mha\n")
    batch = _cli("batch", "manifest.csv", "--out", str(tmp_path / "cohort"), "-q", cwd=tmp_path)
    assert batch.returncode == 3, batch.stdout + batch.stderr
    assert "header field 'ElementDataFile'" in batch.stdout and "root:" not in batch.stdout
