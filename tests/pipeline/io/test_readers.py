"""Image and label-map loading: every input kind, and a specific error for every bad one."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.errors import GeometryMismatchError, InvalidInputError, LabelSchemeError, MultipleSeriesError
from pipeline.io import load_image, load_label_map, write_volume
from pipeline.volume import Volume
from tests.fixtures.dicom import write_enhanced_multiframe, write_series


@pytest.fixture(scope="module")
def small_image() -> Volume:
    rng = np.random.default_rng(1)
    direction = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # sagittal, "PIR"
    return Volume(rng.integers(0, 1000, (12, 20, 16)).astype(np.int16), (0.4, 0.5, 0.7), (10.0, -20.0, 30.0), direction)


def _same_geometry(a: Volume, b: Volume) -> bool:
    return not a.same_grid(b)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_volume_files_keep_geometry(tmp_path, small_image, suffix):
    path = write_volume(small_image, tmp_path / f"knee{suffix}")
    loaded = load_image(path)
    assert _same_geometry(loaded, small_image)
    assert loaded.orientation == "PIR"
    np.testing.assert_array_equal(loaded.array, small_image.array)
    assert loaded.meta["file_name"] == f"knee{suffix}" and len(loaded.meta["sha256"]) == 64


def test_dicom_folder_without_extensions(tmp_path, small_image):
    write_series(small_image, tmp_path / "series", extension="")
    loaded = load_image(tmp_path / "series")
    assert _same_geometry(loaded, small_image)
    np.testing.assert_array_equal(loaded.array, small_image.array)
    assert loaded.meta["series"]["description"] == "SAG 3D DESS"


def test_zip_of_one_series(tmp_path, small_image):
    files = write_series(small_image, tmp_path / "s")
    archive = tmp_path / "case.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in files[::-1]:  # order in the archive must not matter
            z.write(f, f"DICOM/{f.name}")
    loaded = load_image(archive)
    np.testing.assert_array_equal(loaded.array, small_image.array)
    assert _same_geometry(loaded, small_image)


def test_two_echo_series_is_combined_by_root_sum_of_squares(tmp_path, small_image):
    uid = "1.2.826.0.1.3680043.8.498.77"
    write_series(small_image, tmp_path / "q", echo_number=1, series_uid=uid, echo_time_ms=5.0)
    second = small_image.with_array((small_image.array // 2).astype(np.int16))
    write_series(second, tmp_path / "q", echo_number=2, series_uid=uid, echo_time_ms=30.0)
    loaded = load_image(tmp_path / "q")
    expected = np.sqrt(small_image.array.astype(float) ** 2 + second.array.astype(float) ** 2)
    np.testing.assert_allclose(loaded.array, expected, rtol=1e-5)
    assert loaded.meta["n_echoes"] == 2 and loaded.meta["dicom"]["echo_times_ms"] == [5.0, 30.0]


def test_zip_with_two_series_lists_them(tmp_path, small_image):
    a = write_series(small_image, tmp_path / "a", description="SAG 3D DESS", series_number=3)
    b = write_series(small_image, tmp_path / "b", description="COR PD FS", series_number=5)
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in a + b:
            z.write(f, f"{f.parent.name}/{f.name}")
    with pytest.raises(MultipleSeriesError) as info:
        load_image(archive)
    message = str(info.value)
    assert "2 DICOM series" in message and "SAG 3D DESS" in message and "COR PD FS" in message
    assert "12 images" in message
    assert {s["description"] for s in info.value.series} == {"SAG 3D DESS", "COR PD FS"}


def test_single_multiframe_dicom(tmp_path, small_image):
    path = write_enhanced_multiframe(small_image, tmp_path / "multi.dcm")
    loaded = load_image(path)
    assert loaded.size == small_image.size
    np.testing.assert_allclose(loaded.spacing, small_image.spacing, atol=1e-4)
    np.testing.assert_allclose(loaded.origin, small_image.origin, atol=1e-4)
    np.testing.assert_array_equal(loaded.array, small_image.array)


def test_single_slice_dicom_is_refused(tmp_path, small_image):
    files = write_series(small_image, tmp_path / "s")
    with pytest.raises(InvalidInputError, match="single 2-D DICOM slice"):
        load_image(files[0])


def test_too_few_slices(tmp_path, small_image):
    thin = Volume(small_image.array[:3], small_image.spacing, small_image.origin, small_image.direction)
    write_series(thin, tmp_path / "few")
    with pytest.raises(InvalidInputError, match="only 3 image"):
        load_image(tmp_path / "few")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("knee.txt", b"hello", "unsupported file type"),
        ("knee.nii.gz", b"\x1f\x8b not really gzip", "not a readable NIfTI"),
        ("knee.nrrd", b"NRRD0004\ntype: short\n", "not a readable NRRD"),
        ("case.zip", b"PK\x03\x04 broken", "not a valid zip"),
    ],
)
def test_bad_files_say_why(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=message):
        load_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        load_image(tmp_path / "nope.nii.gz")


def test_2d_image_is_refused(tmp_path):
    path = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.Image(64, 64, sitk.sitkInt16), str(path))
    with pytest.raises(InvalidInputError, match="2-D image"):
        load_image(path)


def test_4d_image_with_several_volumes_is_refused(tmp_path):
    path = tmp_path / "dyn.nii.gz"
    sitk.WriteImage(sitk.Image([16, 16, 16, 3], sitk.sitkInt16), str(path))
    with pytest.raises(InvalidInputError, match="4-D image with 3 volumes"):
        load_image(path)


def test_zip_with_path_traversal_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../../etc/evil.dcm", b"x" * 200)
    with pytest.raises(InvalidInputError, match="unsafe path"):
        load_image(archive)
    assert not (tmp_path.parent.parent / "etc" / "evil.dcm").exists()


def test_zip_without_images(tmp_path):
    archive = tmp_path / "notes.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "nothing here")
    with pytest.raises(InvalidInputError, match="no DICOM series or NIfTI"):
        load_image(archive)


def test_label_map_scheme_and_ignored_labels(tmp_path, small_image):
    data = np.zeros(small_image.array.shape, np.uint8)
    data[2:5] = 5  # femur in the custom scheme below
    data[6:8] = 12  # a fibula, not named
    path = write_volume(small_image.with_array(data), tmp_path / "seg.nrrd")
    scheme = tmp_path / "scheme.json"
    scheme.write_text('{"femur": 5, "tibia": 6}')
    loaded = load_label_map(path, scheme)
    assert set(np.unique(loaded.volume.array)) == {0, 1}  # femur -> canonical 1, fibula dropped
    assert loaded.ignored_values == {12: int((data == 12).sum())}


def test_intensity_image_given_as_labels(tmp_path, small_image):
    path = write_volume(small_image.with_array(small_image.array.astype(np.float32) + 0.37), tmp_path / "mri.nrrd")
    with pytest.raises(InvalidInputError, match="non-integer values"):
        load_label_map(path, "native")


def test_unknown_scheme():
    from pipeline.labels import resolve_scheme

    with pytest.raises(LabelSchemeError, match="Unknown label scheme 'nativ'"):
        resolve_scheme("nativ")
    with pytest.raises(LabelSchemeError, match="unknown structures"):
        resolve_scheme({"femurr": 1})
    with pytest.raises(LabelSchemeError, match="both femur and tibia"):
        resolve_scheme({"femur": 1, "tibia": 1})


def test_image_and_labels_on_different_grids(tmp_path, right_knee):
    from pipeline.engine import analyze_labels

    labels = right_knee.labels
    shifted = Volume(
        labels.array.astype(np.float32), labels.spacing, np.add(labels.origin, (1.5, 0, 0)), labels.direction
    )
    with pytest.raises(GeometryMismatchError, match="origin"):
        analyze_labels(labels, image=shifted)


# --- header checks: truncation and memory bombs, before any voxel is decoded -------------------------------------
@pytest.mark.parametrize(
    ("name", "compress"),
    [
        ("knee.nii.gz", True),
        ("knee.nii", False),
        ("knee.nrrd", False),
        ("knee.nrrd", True),
        ("knee.mha", False),
        ("knee.mha", True),
    ],
    ids=["nii.gz", "nii", "nrrd-raw", "nrrd-gzip", "mha-raw", "mha-zlib"],
)
def test_truncated_file_is_refused_with_byte_counts(tmp_path, name, compress):
    rng = np.random.default_rng(3)  # noise compresses poorly, so cutting 10 % of the file cuts the image data
    volume = Volume(rng.integers(0, 1000, (40, 50, 60)).astype(np.int16), (0.5, 0.5, 1.0), (0, 0, 0), np.eye(3))
    path = write_volume(volume, tmp_path / name, compress=compress)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.9)])
    with pytest.raises(InvalidInputError, match=rf"{name}: file is truncated: .* of 240,000 expected"):
        load_image(path)


def test_complete_compressed_files_pass_the_header_checks(tmp_path, small_image):
    for name in ("a.nii.gz", "a.nrrd", "a.mha"):
        loaded = load_image(write_volume(small_image, tmp_path / name, compress=True))
        np.testing.assert_array_equal(loaded.array, small_image.array)


def test_header_declaring_a_huge_image_is_refused_from_the_header(tmp_path):
    import gzip
    import time

    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape((1024, 1024, 1024))
    path = tmp_path / "bomb.nii.gz"
    with gzip.open(path, "wb") as handle:  # a few hundred bytes that declare 2 GiB of voxels
        handle.write(header.binaryblock + b"\0" * 4 + b"\0" * 1000)
    start = time.perf_counter()
    with pytest.raises(InvalidInputError, match=r"declares .*1024 voxels along one axis|M voxels"):
        load_image(path)
    assert time.perf_counter() - start < 1.0


def test_dicom_series_with_a_truncated_slice_names_the_file(tmp_path, small_image):
    files = write_series(small_image, tmp_path / "series")
    files[5].write_bytes(files[5].read_bytes()[:-100])
    with pytest.raises(InvalidInputError, match=rf"{files[5].name} is truncated"):
        load_image(tmp_path / "series")


def test_itk_warnings_go_to_the_log_not_the_terminal(tmp_path, small_image, capfd, caplog):
    """One slice 0.2 mm off its place (of 0.7 mm steps) makes ITK warn "Non uniform sampling or missing slices
    detected"; the series is still read (a missing slice is refused: see the next test)."""
    import logging

    import pydicom

    files = write_series(small_image, tmp_path / "jitter")
    ds = pydicom.dcmread(files[6])
    normal = np.cross(np.array(ds.ImageOrientationPatient[:3], float), np.array(ds.ImageOrientationPatient[3:], float))
    ds.ImagePositionPatient = [f"{v:.6f}" for v in np.array(ds.ImagePositionPatient, float) + 0.2 * normal]
    ds.save_as(files[6])
    with caplog.at_level(logging.WARNING, logger="pipeline.native"):
        load_image(tmp_path / "jitter")
    assert "non uniform sampling" not in capfd.readouterr().err.lower()
    assert any("non uniform sampling" in r.getMessage().lower() for r in caplog.records)


def test_dicom_series_with_a_missing_slice_is_refused_naming_its_neighbours(tmp_path, small_image):
    files = write_series(small_image, tmp_path / "gap")
    files[6].unlink()
    with pytest.raises(InvalidInputError, match=rf"gap: slices {files[5].name} and {files[7].name} are 1.40 mm apart"):
        load_image(tmp_path / "gap")


def test_dicom_series_with_a_damaged_header_names_the_file(tmp_path, small_image):
    files = write_series(small_image, tmp_path / "damaged")
    data = bytearray(files[4].read_bytes())
    data[132:140] = b"\xff" * 8  # the first element of the file meta group: pydicom cannot parse the header
    files[4].write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match=rf"damaged and cannot be read \({files[4].name}\)"):
        load_image(tmp_path / "damaged")
