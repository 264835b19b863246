"""The PDF report as a reader finds their way in it: orientation letters on the slices, slice positions a viewer can
find (the DICOM image number, checked against the file that holds those pixels), the colour legend, the one decimals
rule (pipeline/report/numbers.py), and a quiet log while it is written (no fontTools INFO lines)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from pipeline import labels as L
from pipeline.report.numbers import formatted, rounded
from tests.fixtures.clinical import CASE_ID, mese_case


@pytest.fixture(scope="module")
def pages() -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(mese_case().files[f"{CASE_ID}_report.pdf"]).pages]


def test_slices_carry_orientation_letters_positions_and_the_image_number(pages):
    import pydicom

    text = pages[0]
    lines = [line.strip() for line in text.splitlines()]
    for letters in (["A", "P", "R L"], ["S", "I", "R L"], ["S", "I", "A P"]):  # top, bottom, left+right per plane
        assert any(lines[n : n + 3] == letters for n in range(len(lines))), letters
    assert re.search(r"Axial · [SI] \d+\.\d mm", text) and re.search(r"Coronal · [AP] \d+\.\d mm", text)
    number = int(re.search(r"Sagittal · [LR] \d+\.\d mm · image (\d+)", text).group(1))
    # The named file is a slice through the medial tibial cartilage, the slice the report shows.
    case = mese_case()
    path = next(p for p in case.example.series_dir.iterdir() if int(pydicom.dcmread(p).InstanceNumber) == number)
    header = pydicom.dcmread(path)
    echo1 = case.result.image.source.echoes[0]
    k = next(i for i, h in enumerate(echo1.headers) if int(h.InstanceNumber) == number)
    labels = case.result.labels.array[k]  # the label map shares the series' grid: k is the file's slice
    assert (labels == L.CANONICAL[L.MEDIAL_TIBIAL_CARTILAGE]).any()
    assert header.pixel_array.shape == labels.shape


def test_colour_legend_and_decimals(pages):
    text = " ".join(" ".join(pages).split())
    for name in L.STRUCTURES:
        assert L.structure_display_name(name) in text
    results = mese_case().results_json
    volume = results["cartilage"]["femoral"]["volume_mm3"]
    t2 = results["t2"]["regions"]["femoral"]["mean"]
    assert f" {volume:.0f} {t2:.1f} " in text and f"{volume:.2f}" not in text
    assert "R (lateral)" in text and "L (medial)" in text  # the 3-D snapshot of a right knee seen from the front


def test_writing_a_report_logs_nothing_from_fonttools(tmp_path, caplog):
    from pipeline.report.pdf import write_case_report

    case = mese_case()
    logging.getLogger("fontTools").setLevel(logging.NOTSET)  # as a fresh process has it
    caplog.set_level(logging.INFO)
    write_case_report(case.result, case.results_json, tmp_path / "report.pdf")
    assert (tmp_path / "report.pdf").stat().st_size > 10_000
    assert not [r for r in caplog.records if r.name.startswith("fontTools")]


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (2.0449, "mm", "2.04"),
        (-0.0004, "mm", "0.00"),
        (9898.2, "mm³", "9898"),
        (32.456, "ms", "32.5"),
        (-16.66, "%", "-16.7"),
        (None, "mm", "—"),
    ],
)
def test_one_decimals_rule(value, unit, text):
    assert formatted(value, unit) == text


def test_changes_are_signed_and_zero_is_never_negative():
    assert formatted(0.5, "mm", signed=True) == "+0.50" and formatted(-0.5, "mm", signed=True) == "-0.50"
    assert formatted(-0.001, "mm", signed=True) == "0.00"
    assert np.signbit(rounded(-0.001, "mm")) == np.False_


def test_slices_placed_from_the_morphometrys_boxes_are_those_a_pass_over_the_grid_finds():
    from pipeline.report.pdf import _lps_boxes, _slice_centres
    from pipeline.report.slices import to_lps_array

    result = mese_case().result
    labels, _ = to_lps_array(result.labels)
    boxes = _lps_boxes(result)
    assert boxes is not None and L.PATELLAR_CARTILAGE in boxes  # the boxes are used, not the fallback
    assert _slice_centres(labels, boxes) == _slice_centres(labels)
