"""cohort_report.html lists the segmentations to look at first: failed before review, lowest score first, linked."""

from __future__ import annotations

import re

import pandas as pd

from pipeline.cohort.outcome import CaseOutcome
from pipeline.cohort.report import flagged_cases, segmentations_to_review, write_report


def _cohort() -> tuple[pd.DataFrame, dict]:
    verdicts = {
        "k1": ("ok", 0.91, ""),
        "k2": ("review", 0.70, "low confidence in femoral cartilage"),
        "k3": ("failed", 0.40, "not a knee: tibia 0.4 cm3 (needs 5)"),
        "k4": ("review", 0.55, "tibia volume outside the usual range | patella missing"),
        "k5": ("failed", 0.05, "low confidence in patellar cartilage"),
        "k6": ("ok", 0.88, ""),
    }
    table = pd.DataFrame(
        {
            "case_id": list(verdicts),
            "status": ["ok"] * len(verdicts),
            "qc_segmentation_verdict": [v[0] for v in verdicts.values()],
            "qc_segmentation_score": [v[1] for v in verdicts.values()],
            "qc_segmentation_reasons": pd.array([v[2] or None for v in verdicts.values()], dtype="string"),
        }
    )
    return table, {case: CaseOutcome(case, "ok") for case in verdicts}


def test_failed_first_then_review_lowest_score_first():
    table, _ = _cohort()
    assert list(segmentations_to_review(table)["case_id"]) == ["k5", "k3", "k4", "k2"]


def test_report_links_the_segmentations_to_review_first(tmp_path):
    table, outcomes = _cohort()
    record = {"counts": {"cases": 6, "ok": 6, "failed": 0, "this_run": 6, "earlier": 0}, "engine": {"name": "local"},
              "created_utc": "2026-01-01T00:00:00+00:00", "manifest": "MANIFEST.csv"}  # fmt: skip
    html = write_report(table, outcomes, record, tmp_path).read_text()
    section = html.split("<h2>Segmentations to review</h2>", 1)[1].split("<h2>", 1)[0]
    assert re.findall(r"href='cases/(k\d)/'", section) == ["k5", "k3", "k4", "k2"]
    assert "6 segmentations judged: 2 ok, 4 to look at" in section
    assert "tibia volume outside the usual range; patella missing" in section
    assert html.index("Segmentations to review") < html.index("Flagged cases")
    reasons = flagged_cases(table, outcomes)
    assert reasons["k2"] == ["Segmentation review (score 0.70): low confidence in femoral cartilage"]
    assert "k1" not in reasons and "k6" not in reasons
