"""The status area (app/status.py) and the Numbers tab (app/result_tables.py) from results dicts: plain stage words,
the clock's estimate, the result banner with the segmentation-quality verdict (``qc.segmentation``, built here the
way the verdict's author specified it), greyed numbers when it failed, and the error banner."""

from __future__ import annotations

import copy
import html

import pytest

from app import result_tables, status
from tests.fixtures.app import table_rows


@pytest.fixture(scope="module")
def results(right_result) -> dict:
    return right_result.to_dict()


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ("Reading the inputs", "Reading the image"),
        ("Segmenting: 3d_fullres: preprocessing", "Segmenting the knee: preparing the image"),
        ("Segmenting: 3d_fullres: tile 2/4", "Segmenting the knee (part 2 of 4)"),
        ("Segmenting: 3d_cascade_fullres: resampling to the image grid", "Segmenting the knee: putting the labels"),
        ("Building surfaces", "Building the bone surfaces"),
        ("Measuring cartilage thickness", "Measuring cartilage thickness"),
        ("T2 mapping", "Computing the T2 map"),
        ("Shape model: shape model: registering to the mean shape", "Fitting the shape model"),
        ("Analysis complete", "Writing the report and result files"),
    ],
)
def test_progress_messages_in_plain_words(message, words):
    plain = status.plain_stage(message)
    assert plain.startswith(words)
    assert "3d_" not in plain and "tile" not in plain


def test_one_progress_bar_with_elapsed_time_and_an_estimate():
    clock = status.JobClock(started=status.time.monotonic() - 10)  # 10 s ago
    text = status.running("Measuring cartilage thickness", 0.25, clock)
    assert text.count("<progress") == 1 and 'value="25"' in text
    assert "10 s elapsed" in text and "about 30 s left" in text  # 10 s for a quarter: 30 s for the rest
    early = status.running("Reading the image", 0.01, status.JobClock())
    assert "left" not in early  # no estimate before there is anything to extrapolate from


def test_result_banner_without_a_quality_verdict(results):
    """A results.json written before segmentation QC existed (a compare of old folders) has no verdict."""
    results["qc"].pop("segmentation")
    banner = status.done(results, "label map supplied (not segmented)", 6)
    assert "<strong>Done</strong>: " in banner and "right knee" in banner and "ks-done" in banner
    assert f"{len(results['qc']['warnings'])} QC warning" in banner
    assert "data-verdict" not in banner and "kept for 6 hours" in banner


@pytest.mark.parametrize(
    ("verdict", "css", "heading"),
    [
        ("ok", "ks-done", "Segmentation quality: ok."),
        ("review", "ks-review", "Review the segmentation:"),
        ("failed", "ks-failed", "The segmentation failed its quality check"),
    ],
)
def test_result_banner_shows_the_segmentation_verdict_and_its_reasons(results, verdict, css, heading):
    graded = copy.deepcopy(results)
    reasons = ["medial meniscus in 8 pieces", "patella volume 2261 mm³ is implausible"]
    graded["qc"]["segmentation"] = {"score": 0.41, "verdict": verdict, "reasons": reasons}
    banner = status.done(graded, "segmented by the knee nnU-Net", 24)
    assert css in banner and f'data-verdict="{verdict}"' in banner
    assert heading in html.unescape(banner)
    assert all(reason in html.unescape(banner) for reason in reasons)


def test_a_failed_segmentation_greys_and_marks_the_numbers(results):
    graded = copy.deepcopy(results)
    graded["qc"]["segmentation"] = {"score": 0.1, "verdict": "failed", "reasons": ["no femoral cartilage"]}
    failed = result_tables.numbers_html(graded)
    assert 'class="ks-numbers ks-unreliable"' in failed
    assert "these numbers are not reliable (no femoral cartilage)" in failed
    graded["qc"]["segmentation"]["verdict"] = "review"
    assert "ks-unreliable" not in result_tables.numbers_html(graded)
    graded["qc"]["segmentation"] = {"verdict": "maybe"}  # not a verdict of the schema: ignored, not shown
    assert status.quality(graded) == (None, [])


def test_numbers_have_units_one_decimals_rule_and_definitions(results):
    page = result_tables.numbers_html(results)
    rows = {row[0]: row for row in table_rows(page)}
    femoral = results["cartilage"]["femoral"]
    assert rows["femoral"][1] == f"{femoral['thickness_mm']['mean']:.2f}"  # thickness: 2 decimals
    assert rows["femoral"][5] == f"{femoral['volume_mm3']:.0f}"  # volume: none
    assert "mm³" in page and "<span class='ks-unit'>mm</span>" in page
    assert "95th percentile" in page and "Deep layer" in page and "trochlea" in page
    assert "T2 not computed:" in page and "Shape model not run:" in page  # with their reasons


def test_error_banner_keeps_the_reason_escaped():
    banner = status.error("notes.nii.gz: not a readable NIfTI file <script>")
    assert "ks-error" in banner and 'role="alert"' in banner
    assert "&lt;script&gt;" in banner and "<script>" not in banner
