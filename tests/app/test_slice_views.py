"""The slice viewer (app/slice_images.py, app/slice_view.py): orientation letters checked against where bright
patient-space blocks land on screen, the T2 overlay only inside cartilage, and the slice positions: the DICOM image
number a view names holds exactly the pixels the view shows (read back with pydicom)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest

from app import slice_images, slice_view
from pipeline import labels as L
from pipeline.report.slices import EDGE_LETTERS, slice_locations, take_slice, to_lps_array
from pipeline.volume import Volume
from tests.fixtures.knees import phantom


def picture(view: str) -> np.ndarray:
    from PIL import Image

    data = re.search(r'src="data:image/png;base64,([^"]+)"', view).group(1)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")).astype(float)


def block_volume(direction: np.ndarray) -> Volume:
    """A 40^3 cube (1 mm voxels, stored in the axis order ``direction`` gives) that is bright on the patient's right
    (x < 0), anterior (y < 0) and superior (z > 0) thirds, one channel each: 1 = right, 2 = anterior, 4 = superior."""
    n = 40
    centre = (n - 1) / 2
    origin = -direction @ np.full(3, centre)  # the cube's centre at the LPS origin
    volume = Volume(np.zeros((n, n, n), np.float32), (1.0, 1.0, 1.0), tuple(origin), direction)
    points = volume.voxel_points(np.ones((n, n, n), bool)).reshape(n, n, n, 3)
    value = (points[..., 0] < -7) * 1.0 + (points[..., 1] < -7) * 2.0 + (points[..., 2] > 7) * 4.0
    return volume.with_array(value.astype(np.float32))


@pytest.mark.parametrize(
    "direction",
    [np.eye(3), np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])],  # LPS and a sagittal PIR storage
    ids=["LPS", "PIR"],
)
def test_orientation_letters_name_the_edges_where_the_patient_directions_land(direction):
    volume = block_volume(direction)
    stack = slice_images.build_stack(volume, None)
    raw, _ = to_lps_array(volume)  # unwindowed, to read the channels back exactly
    expected_edge = {"R": 1, "A": 2, "S": 4}
    for plane in ("axial", "coronal", "sagittal"):
        index = stack.n_slices(plane) // 2
        view = slice_view.view_html(stack, plane, index)
        top, bottom, left, right = EDGE_LETTERS[plane]
        for edge, letter in zip(("top", "bottom", "left", "right"), (top, bottom, left, right), strict=True):
            assert f'data-edge="{edge}">{letter}</span>' in view
        values = take_slice(raw, plane, index).astype(int)
        edges = {"top": values[0], "bottom": values[-1], "left": values[:, 0], "right": values[:, -1]}
        for edge, letter in zip(("top", "bottom", "left", "right"), (top, bottom, left, right), strict=True):
            bit = expected_edge.get(letter)
            if bit is not None:  # the edge named R / A / S is where that bright block lies, its opposite is not
                assert np.all(edges[edge] & bit), (plane, edge, letter)
                opposite = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}[edge]
                assert not np.any(edges[opposite] & bit), (plane, opposite)


def test_views_say_where_they_are_and_the_knee_side():
    knee = phantom(side="left", spacing=(0.8, 0.8, 1.0)).labels
    stack = slice_images.build_stack(None, knee, side="left")
    view = slice_view.view_html(stack, "coronal", 10)
    assert "Left knee" in view and "slice 11 of" in view and re.search(r"[AP] \d+\.\d mm", view)
    assert slice_view.view_html(None, "axial", 0).count("No image yet") == 1


def test_t2_overlay_only_inside_the_cartilage_on_its_own_scale():
    knee = phantom(side="right", spacing=(0.8, 0.8, 1.0)).labels
    t2 = knee.with_array(np.full(knee.array.shape, 40.0, np.float32))  # a "T2 map" valid everywhere, as a fit gives
    image = knee.with_array((knee.array > 0).astype(np.float32) * 100 + 50)
    stack = slice_images.build_stack(image, knee, t2)
    plane = "coronal"
    index = stack.n_slices(plane) // 2
    plain = picture(slice_view.view_html(stack, plane, index, opacity=0.0, overlay="t2"))
    shown = picture(slice_view.view_html(stack, plane, index, opacity=1.0, overlay="t2"))
    painted = np.abs(shown - plain).sum(axis=2) > 30
    cartilage = np.isin(take_slice(stack.labels, plane, index), [L.CANONICAL[c] for c in L.CARTILAGES])
    from PIL import Image
    from scipy import ndimage

    on_screen = np.asarray(Image.fromarray(cartilage.astype(np.uint8) * 255).resize(painted.shape[::-1])) > 0
    assert painted.sum() > 0.8 * ndimage.binary_erosion(on_screen, iterations=2).sum()  # the cartilage is painted
    assert not (painted & ~ndimage.binary_dilation(on_screen, iterations=2)).any()  # nothing else is
    legend = slice_images.t2_legend_html()
    assert "T2 inside the cartilage (ms)" in legend and ">20<" in legend and ">80<" in legend


def test_the_image_number_a_view_names_holds_the_pixels_it_shows():
    import pydicom

    from tests.fixtures.clinical import mese_case

    case = mese_case()
    echo1 = case.result.image.source.echoes[0].volume
    locations = slice_locations(case.result.image)
    numbers = locations.instance_numbers["sagittal"]
    assert numbers and None not in numbers  # the series is sagittal: every sagittal slice is a file
    assert locations.instance_numbers["axial"] == [] and locations.instance_numbers["coronal"] == []
    files = {}
    for path in sorted(case.example.series_dir.iterdir()):
        header = pydicom.dcmread(path, stop_before_pixels=True)
        files[int(header.InstanceNumber)] = path
    lps, _ = to_lps_array(echo1)
    for index in (0, len(numbers) // 2, len(numbers) - 1):
        shown = take_slice(lps, "sagittal", index)
        stored = pydicom.dcmread(files[numbers[index]]).pixel_array
        assert np.array_equal(np.sort(shown.ravel()), np.sort(stored.ravel().astype(shown.dtype)))
        assert f"image {numbers[index]}" in locations.describe("sagittal", index)


def test_window_level_and_width_change_the_grey_scale():
    knee = phantom(side="right", spacing=(0.8, 0.8, 1.0)).labels
    image = knee.with_array(knee.array.astype(np.float32) * 10 + 20)
    stack = slice_images.build_stack(image, None)
    automatic = picture(slice_view.view_html(stack, "coronal", 40))
    narrow = picture(slice_view.view_html(stack, "coronal", 40, level_width=(0.5, 0.25)))
    brighter = picture(slice_view.view_html(stack, "coronal", 40, level_width=(0.3, 1.0)))
    assert narrow.std() > automatic.std()  # a narrower window: more contrast
    assert brighter.mean() > automatic.mean()  # a lower level: brighter
