"""One pass over an input file (issue 19): a .nii.gz (or gzip NRRD, zlib MetaImage) is decompressed exactly once per
analysis, SimpleITK never decompresses an input itself, and what it reads from the uncompressed twin is what it
reads from the original: same voxels, same geometry, same sha256 of the file."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.io import load_image, load_label_map, single_pass, write_volume
from pipeline.volume import Volume
from tests.fixtures.knees import phantom

SPACING = (0.8, 0.8, 1.0)


@pytest.fixture()
def counted(monkeypatch):
    """Counts of every decompression (ours) and every file SimpleITK or Python's gzip opens."""
    counts = {"decompressions": 0, "sitk_paths": [], "gzip_paths": []}
    real_decompressor, real_read, real_gzip = single_pass.decompressor, sitk.ReadImage, gzip.GzipFile.__init__

    def decompressor(compression):
        counts["decompressions"] += 1
        return real_decompressor(compression)

    def read_image(path, *args, **kwargs):
        counts["sitk_paths"].append(str(path))
        return real_read(path, *args, **kwargs)

    def gzip_init(self, filename=None, *args, **kwargs):
        counts["gzip_paths"].append(str(filename))
        return real_gzip(self, filename, *args, **kwargs)

    monkeypatch.setattr(single_pass, "decompressor", decompressor)
    monkeypatch.setattr(sitk, "ReadImage", read_image)
    monkeypatch.setattr(gzip.GzipFile, "__init__", gzip_init)
    return counts


def test_an_analysis_of_gzipped_nifti_inputs_decompresses_each_once(tmp_path, counted):
    from pipeline.engine import analyze_labels
    from pipeline.synthetic import render_mr

    labels = phantom(side="left", spacing=SPACING).labels
    labels_path = write_volume(labels, tmp_path / "knee_labels.nii.gz")
    image_path = write_volume(render_mr(labels), tmp_path / "knee.nii.gz")
    counted.update(decompressions=0, sitk_paths=[], gzip_paths=[])  # the writes above do not count
    result = analyze_labels(labels_path, scheme="canonical", image=image_path)
    assert counted["decompressions"] == 2  # one pass per input file
    assert not [p for p in counted["sitk_paths"] if p.endswith(".gz")], counted["sitk_paths"]
    assert not [p for p in counted["gzip_paths"] if "knee" in p], counted["gzip_paths"]  # nibabel never reopens them
    assert result.inputs["labels"]["sha256"] == hashlib.sha256(labels_path.read_bytes()).hexdigest()
    assert result.inputs["image"]["sha256"] == hashlib.sha256(image_path.read_bytes()).hexdigest()


def test_the_counting_sees_a_second_decompression(tmp_path, counted):
    """The counter is not blind: reading the same file twice counts two passes."""
    path = write_volume(phantom(side="left", spacing=SPACING).labels, tmp_path / "twice.nii.gz")
    counted["decompressions"] = 0
    load_image(path)
    load_image(path)
    assert counted["decompressions"] == 2


def _random_volume(shape=(12, 14, 16), dtype=np.int16) -> Volume:
    rng = np.random.default_rng(7)
    direction = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # a sagittal, permuted layout
    return Volume(rng.integers(0, 2000, shape).astype(dtype), (0.31, 0.42, 1.7), (-12.5, 30.25, 7.0), direction)


@pytest.mark.parametrize("name", ["v.nii.gz", "v.nrrd", "v.mha", "v.nii", "v.nhdr", "v.mhd"])
def test_one_pass_reads_what_simpleitk_reads_from_the_original(tmp_path, name):
    path = write_volume(_random_volume(), tmp_path / name, compress=True)
    ours = load_image(path)
    direct = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(ours.array, sitk.GetArrayFromImage(direct))
    np.testing.assert_allclose(ours.spacing, direct.GetSpacing(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.origin, direct.GetOrigin(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.direction.ravel(), direct.GetDirection(), rtol=0, atol=1e-9)
    assert ours.meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_4d_nifti_with_one_volume_and_scaled_voxels_read_through_the_twin(tmp_path):
    import nibabel as nib

    data = np.arange(10 * 11 * 12, dtype=np.int16).reshape(10, 11, 12)
    image = nib.Nifti1Image(data[..., None], np.diag([0.5, 0.6, 0.7, 1.0]))
    image.header.set_slope_inter(0.5, 3.0)  # ITK applies scl_slope/scl_inter: the twin keeps them
    nib.save(image, tmp_path / "four.nii.gz")
    volume = load_image(tmp_path / "four.nii.gz")
    np.testing.assert_allclose(volume.array, data.transpose(2, 1, 0) * 0.5 + 3.0)
    np.testing.assert_allclose(volume.spacing, (0.5, 0.6, 0.7))


def test_a_gzip_nrrd_label_map_is_decompressed_once(tmp_path, counted):
    path = write_volume(phantom(side="right", spacing=SPACING).labels, tmp_path / "labels.nrrd")
    counted["decompressions"] = 0
    loaded = load_label_map(path, "canonical")
    assert counted["decompressions"] == 1
    assert counted["sitk_paths"] and all(single_pass.TWIN_PREFIX in p for p in counted["sitk_paths"])
    assert loaded.volume.meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
