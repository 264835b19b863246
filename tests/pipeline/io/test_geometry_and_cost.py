"""Geometry checked before analysis, and the cost of a case bounded from its header (issue 25): zero, negative or
NaN spacing, sheared axes, all-NaN images refused with one sentence each; NaN voxels masked with a QC warning; an
image whose case cannot fit in the memory budget refused in milliseconds; a zip that would unpack to more than the
largest image accepted refused unopened."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import time
import zipfile

import nibabel as nib
import numpy as np
import psutil
import pytest

from pipeline.errors import InvalidInputError
from pipeline.io import ImageLimits, load_image, load_label_map, write_volume
from pipeline.io.limits import MEASURE_COST
from pipeline.segmentation.cost import nnunet_cost
from pipeline.volume import Volume
from tests.fixtures import REPO
from tests.fixtures.knees import phantom


def nifti(path, data, zooms, *, compress=True):
    image = nib.Nifti1Image(data, np.eye(4))
    image.header["pixdim"][1:4] = zooms  # as a damaged file stores them (nibabel's setters refuse such values)
    nib.save(image, path)
    return path


@pytest.mark.parametrize(
    "zooms", [(0.0, 0.5, 0.5), (0.5, -0.5, 0.5), (np.nan, 1.0, 1.0)], ids=["zero", "negative", "nan"]
)
def test_a_nifti_with_a_bad_voxel_size_is_refused_not_measured_at_1_mm(tmp_path, zooms):
    data = np.zeros((20, 20, 20), np.uint8)
    for name in ("image.nii.gz", "image.nii"):
        path = nifti(tmp_path / name, data, zooms)
        with pytest.raises(InvalidInputError, match=r"voxel spacing is \(.*\) mm; every voxel size must be a positive"):
            load_image(path)
        with pytest.raises(InvalidInputError, match="voxel spacing"):
            load_label_map(path, "canonical")


def test_an_nrrd_with_a_zero_space_direction_or_sheared_axes_is_refused(tmp_path):
    raw = bytes(20 * 20 * 20)
    header = "NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: 20 20 20\nencoding: raw\n"
    zero = tmp_path / "zero.nrrd"
    zero.write_bytes((header + "space directions: (0,0,0) (0,1,0) (0,0,1)\n\n").encode() + raw)
    with pytest.raises(InvalidInputError, match="voxel spacing"):
        load_image(zero)
    sheared = tmp_path / "sheared.nrrd"
    sheared.write_bytes((header + "space directions: (1,0,0) (0.5,1,0) (0,0,1)\n\n").encode() + raw)
    with pytest.raises(InvalidInputError, match="axes are not perpendicular"):
        load_image(sheared)


def test_images_given_in_memory_are_checked_the_same_way():
    from pipeline.engine import analyze_labels

    labels = phantom(side="left", spacing=(0.8, 0.8, 1.0)).labels
    zero = Volume(labels.array, (0.0, 0.8, 1.0), labels.origin, labels.direction)
    with pytest.raises(InvalidInputError, match="voxel spacing"):
        analyze_labels(zero)
    nan_image = labels.with_array(np.full(labels.array.shape, np.nan, np.float32))
    with pytest.raises(InvalidInputError, match="every voxel is NaN or infinite"):
        analyze_labels(labels, image=nan_image)


def test_nan_voxels_of_an_image_are_masked_with_a_qc_warning(tmp_path):
    from pipeline.engine import analyze_labels
    from pipeline.synthetic import render_mr

    labels = phantom(side="left", spacing=(0.8, 0.8, 1.0)).labels
    image = render_mr(labels)
    data = image.array.astype(np.float32).copy()
    data[:2] = np.nan
    path = write_volume(image.with_array(data), tmp_path / "holes.nrrd")  # NRRD keeps NaN (ITK's NIfTI reads 0)
    result = analyze_labels(labels, image=path, scheme="canonical")
    assert np.isfinite(result.image.array).all()
    (note,) = [w for w in result.warnings if "NaN or infinite" in w]
    assert "holes.nrrd" in note and "set to the image's lowest value" in note


def test_an_all_nan_nifti_read_as_zeros_by_itk_is_refused(tmp_path):
    from pipeline.engine import analyze_labels

    labels = phantom(side="left", spacing=(0.8, 0.8, 1.0)).labels
    empty = write_volume(labels.with_array(np.full(labels.array.shape, np.nan, np.float32)), tmp_path / "nan.nii.gz")
    with pytest.raises(InvalidInputError, match=r"nan\.nii\.gz: every voxel has the same value \(0\)"):
        analyze_labels(labels, image=empty)


def _big_sparse_nifti(path, shape=(1000, 1000, 116), spacing=(0.15, 0.15, 1.0)):
    """A 1000 x 1000 x 116 int16 image of zeros that compresses to under 500 kB (issue 25's probe file)."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header.set_zooms(spacing)
    header["vox_offset"] = 352
    slab = bytes(shape[0] * shape[1] * 2)
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(header.binaryblock + b"\0" * 4)
        for _ in range(shape[2]):
            out.write(slab)
    return path


def test_an_image_whose_case_cannot_fit_is_refused_from_its_header_quickly(tmp_path):
    path = _big_sparse_nifti(tmp_path / "wide.nii.gz")
    assert path.stat().st_size < 1_000_000
    limits = ImageLimits(max_case_bytes=2 * 1024**3).for_work(nnunet_cost(10, (0.7, 0.36, 0.36)))
    process, peak, done = psutil.Process(), [0], threading.Event()
    baseline = process.memory_info().rss

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    try:
        with pytest.raises(
            InvalidInputError, match=r"to segment this image \(1000 x 1000 x 116 voxels\) would need about"
        ):
            load_image(path, limits=limits)
    finally:
        elapsed = time.perf_counter() - start
        done.set()
        sampler.join()
    assert elapsed < 2.0, f"refused after {elapsed:.2f} s"
    assert peak[0] - baseline < 300e6, f"memory grew by {(peak[0] - baseline) / 1e6:.0f} MB"
    # the same image as a label map to measure is within the budget of a larger machine: the cost decides
    assert MEASURE_COST.estimate((1000, 1000, 116), (0.15, 0.15, 1.0)) < 4 * 1024**3


def test_the_cli_refuses_it_before_loading_a_model(tmp_path):
    path = _big_sparse_nifti(tmp_path / "wide.nii.gz")
    env = {**os.environ, "KNEESCOPE_MAX_CASE_GB": "2", "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pipeline", "analyze", str(path), "--model", "demo", "--out", str(tmp_path / "o"), "-q"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "would need about" in run.stderr and "KNEESCOPE_MAX_CASE_GB" in run.stderr
    assert "Traceback" not in run.stderr
    assert time.perf_counter() - start < 30  # interpreter and imports included; no model was loaded


def test_a_zip_that_would_unpack_beyond_the_largest_image_is_refused_unopened(tmp_path, monkeypatch):
    import pipeline.io.limits as limits_module

    monkeypatch.setattr(limits_module, "ARCHIVE_OVERHEAD_BYTES", 1024**2)  # a small budget keeps the zip small
    limits = ImageLimits(max_voxels=100)  # unpack budget: 100 float32 voxels + 1 MB of headers
    assert limits.max_unpacked_bytes == 100 * 4 + 1024**2
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        # 4 MB that compress about 8-fold: under the ratio guard (200), over what this zip may unpack to
        out.writestr("IM0001.dcm", np.random.default_rng(0).integers(0, 2, 4 * 1024**2, dtype=np.uint8).tobytes())
    assert archive.stat().st_size > 4 * 1024**2 / 200
    with pytest.raises(
        InvalidInputError, match=r"would unpack to 4 MB, more than the largest knee series accepted here"
    ):
        load_image(archive, limits=limits)
