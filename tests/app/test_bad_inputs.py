"""Damaged and hostile files through the app: truncated, memory bombs, empty and damaged files, label maps on
another grid or of the other knee; each named without server paths (app/handlers.py, app/messages.py)."""

from __future__ import annotations

import gzip
import os
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import psutil
import pytest

from pipeline.io import write_volume
from tests.fixtures.app import STATUS, page_client, run_job
from tests.fixtures.dicom import write_series
from tests.fixtures.knees import phantom


# --- damaged and hostile files ---------------------------------------------------------------------------------
def _truncated(path: Path, target: Path, fraction: float = 0.9) -> Path:
    data = path.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def _dicom_zip(files, target: Path, damage) -> tuple[Path, list[str]]:
    """A zip of the image as a DICOM series with its middle slice damaged; and the names of that slice and its
    neighbours."""
    image = files["image"]
    slices = write_series(image.with_array(image.array.astype(np.uint16)), target.with_suffix(""))
    middle = len(slices) // 2
    damage(slices[middle])
    with zipfile.ZipFile(target, "w") as archive:
        for path in slices:
            archive.write(path, path.name)
    return target, [p.name for p in slices[middle - 1 : middle + 2]]


@pytest.mark.parametrize("kind", ["nii.gz", "nrrd", "dicom"])
def test_a_truncated_file_is_refused_naming_it(app, files, tmp_path, kind):
    client = page_client(app[0])
    if kind == "dicom":
        cut, (_, named, _) = _dicom_zip(files, tmp_path / "series.zip", damage=lambda p: _truncated(p, p, 0.6))
    else:
        source = files["image_nii" if kind == "nii.gz" else "image_nrrd"]
        cut = _truncated(source, tmp_path / f"cut.{kind}")
        named = cut.name
    with pytest.raises(Exception, match="truncated") as info:
        run_job(client, cut, files["left"])
    assert named in str(info.value)
    assert "/tmp" not in str(info.value) and "sitk::" not in str(info.value)


def _header_bomb(path: Path, side: int = 512) -> Path:
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape((side, side, side))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    zeros = bytes(side * side * 16)
    with gzip.open(path, "wb", compresslevel=6) as out:
        out.write(header.binaryblock + b"\0" * 4)
        for _ in range(side // 16):
            out.write(zeros)
    return path


def test_a_memory_bomb_is_refused_from_its_header_quickly(app, files, tmp_path):
    bomb = _header_bomb(tmp_path / "bomb.nii.gz")
    assert bomb.stat().st_size < 1_000_000  # 128 MiB of voxels in a few hundred kB
    client = page_client(app[0])
    process, peak = psutil.Process(), [0]
    baseline = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    with pytest.raises(Exception, match=r"134 M voxels") as info:
        run_job(client, bomb, files["left"])
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    assert "bomb.nii.gz" in str(info.value) and "at most 120 M" in str(info.value)
    assert elapsed < 2.0, f"refused after {elapsed:.2f} s"
    assert peak[0] - baseline < 200e6, f"memory grew by {(peak[0] - baseline) / 1e6:.0f} MB"


def test_empty_and_damaged_files_are_named_without_server_paths(app, files, tmp_path):
    client = page_client(app[0])
    jobs_before = sorted(app[1].store.root.iterdir())
    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    with pytest.raises(Exception, match=r"empty\.nii\.gz: not a readable NIfTI file \(empty file\)") as info:
        run_job(client, empty, files["left"])
    assert "sitk::" not in str(info.value) and str(tmp_path) not in str(info.value)

    def scramble_header(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[132:332] = os.urandom(200)
        path.write_bytes(bytes(data))

    damaged, (before, bad, after) = _dicom_zip(files, tmp_path / "damaged.zip", damage=scramble_header)
    with pytest.raises(Exception, match="DICOM") as info:
        run_job(client, damaged, files["left"])
    message = str(info.value)
    assert bad in message or (before in message and after in message)  # the slice, or the gap it leaves
    assert "/tmp" not in message and "ITK" not in message and "itk::" not in message
    assert sorted(app[1].store.root.iterdir()) == jobs_before  # failed jobs leave no folder behind


def test_an_image_and_label_map_on_different_grids_are_explained(app, files):
    other_grid = phantom(side="left", spacing=(0.8, 0.8, 1.2)).labels
    labels = write_volume(other_grid, files["folder"] / "other_grid_labels.nrrd")
    with pytest.raises(Exception, match="does not lie on the image's voxel grid") as info:
        run_job(page_client(app[0]), files["image_nii"], labels)
    assert "Image grid" in str(info.value) and "label grid" in str(info.value)


def test_a_label_map_of_the_other_knee_is_warned(app, files):
    """Left-knee image, right-knee label map on the same grid (the synthetic knees are mirror images)."""
    out = run_job(page_client(app[0]), files["image_nii"], files["right"])
    assert "right knee" in out[STATUS]
    assert "looks mirrored left-right against the image" in out[11]  # the QC warnings
