"""The segmentation verdict in results.csv (the same values as results.json, through the one column spec) and in the
PDF case report (a badge, the reasons, and the numbers greyed when it failed)."""

from __future__ import annotations

import dataclasses

from pipeline import labels as L
from pipeline.quality import judge
from pipeline.quality.plausibility import Finding
from pipeline.report import table
from tests.fixtures.quality import example_analysis

QC_COLUMNS = ("qc_segmentation_", "_expected_dice")


def test_csv_cells_of_a_segmentation_are_its_json_values():
    _, result = example_analysis()
    data = result.to_dict()
    row = table.row_of(data)
    checked = 0
    for name, path, column in table.expanded_columns():
        if not (name.startswith(QC_COLUMNS[0]) or name.endswith(QC_COLUMNS[1]) or name == "n_qc_segmentation_reasons"):
            continue
        value = data
        for key in path.split("."):
            value = value[key]  # every QC column's path exists in a segmentation's results.json
        if column.kind == "count":
            assert row[name] == len(value)
        elif column.kind == "join":
            assert row[name] == table.WARNING_SEPARATOR.join(value)
        else:
            assert row[name] == value and value is not None, name
        checked += 1
    assert checked == 5 + len(L.STRUCTURES)
    assert row["qc_segmentation_verdict"] == "ok" and 0.8 < row["femoral_cartilage_expected_dice"] <= 1.0


def _pdf_text(result, path) -> str:
    from pypdf import PdfReader

    from pipeline.report.pdf import write_case_report

    write_case_report(result, result.to_dict(), path)
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def test_report_shows_the_verdict_and_marks_a_failed_segmentation(right_result, tmp_path):
    ok_text = _pdf_text(right_result, tmp_path / "ok.pdf")
    assert "Segmentation QC: OK (score 1.00)" in ok_text and "plausibility only" in ok_text
    knee = [Finding(None, "knee", "failed", "not a knee: femur is fragmented, not a solid bone")]
    failed = judge(knee, confidence=None, assessed=L.STRUCTURES, labels_given=True)
    text = _pdf_text(dataclasses.replace(right_result, segmentation_qc=failed), tmp_path / "failed.pdf")
    flat = " ".join(text.split())
    assert "Segmentation QC: FAILED (score 0.30)" in flat
    assert "the numbers in this report are unreliable" in flat and "not a knee: femur is fragmented" in flat
