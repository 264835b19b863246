"""The left-right check of a given label map against its image (pipeline/morphometry/label_fit.py).

The images are rendered from label maps by render_mr, whose tissue signal is one level per label: the same
assumption the check makes, so these tests are favourable to it. The harsher rendering (five times the noise, a
strong bias field) shows the margin; no real MRI with its segmentation is at hand to validate it further.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.io import load_image
from pipeline.morphometry.label_fit import header_side, label_fit, laterality_warnings, left_right_axis
from pipeline.synthetic import render_mr
from tests.fixtures.dicom import write_series
from tests.fixtures.knees import phantom

SMALL = (0.8, 0.8, 1.0)


@pytest.mark.parametrize("harsh", [False, True], ids=["rendered", "noisy-biased"])
def test_a_label_map_fits_its_own_knee_and_not_the_other(harsh):
    right, left = (phantom(side=side, spacing=SMALL).labels for side in ("right", "left"))
    image = render_mr(right, noise=0.2, bias=0.6) if harsh else render_mr(right)
    own, other = label_fit(image, right), label_fit(image, left)
    assert own is not None and other is not None
    assert own.mirror_score < -0.4 and not own.mirrored_fits_better
    assert other.mirror_score > 0.4 and other.mirrored_fits_better
    assert other.mirror_score == pytest.approx(-own.mirror_score)  # the score is antisymmetric by construction


def test_an_unrelated_label_map_gives_no_warning():
    right = phantom(side="right", spacing=SMALL).labels
    shifted = right.with_array(np.roll(right.array, 12, axis=1))  # the right knee, but not where the image has it
    assert laterality_warnings(render_mr(right), shifted, "right", labels_given=True) == []


def test_the_warning_names_both_sides_of_the_disagreement():
    right, left = (phantom(side=side, spacing=SMALL).labels for side in ("right", "left"))
    (warning,) = laterality_warnings(render_mr(right), left, "left", labels_given=True)
    assert "mirrored left-right" in warning and "left knee" in warning
    assert laterality_warnings(render_mr(right), left, "left", labels_given=False) == []  # segmented: no check


def test_left_right_axis_follows_the_grid_orientation():
    sagittal = phantom(side="right", spacing=SMALL).labels  # index axis k runs to patient right: numpy axis 0
    assert left_right_axis(sagittal) == 0
    axial = phantom(side="right", spacing=SMALL, orientation="axial").labels
    assert left_right_axis(axial) == 2


def test_the_dicom_laterality_tag_is_compared_with_the_label_map(tmp_path):
    import pydicom

    right = phantom(side="right", spacing=SMALL).labels
    image = render_mr(right)
    files = write_series(image.with_array(image.array.astype(np.uint16)), tmp_path / "series")
    for path in files:
        ds = pydicom.dcmread(path)
        ds.ImageLaterality = "L"
        ds.save_as(path)
    loaded = load_image(tmp_path / "series")
    assert header_side(loaded) == "left"
    warnings = laterality_warnings(loaded, right, "right", labels_given=False)
    assert len(warnings) == 1 and "marks this image as the left knee" in warnings[0]
