"""The cohort page's change sections: pairs flagged by QC (registration or either visit) listed first."""

from __future__ import annotations

import pandas as pd

from pipeline.cohort.change_report import change_sections, flag_reasons
from pipeline.cohort.statistics import change_statistics


def test_flagged_pairs_listed_first_with_their_reasons():
    table = pd.DataFrame(
        {
            "pair_id": ["a__b", "c__d", "e__f"],
            "subject_id": ["S1", "S2", "S3"],
            "baseline_visit": ["V0"] * 3,
            "followup_visit": ["V1"] * 3,
            "status": ["ok", "ok", "failed"],
            "error": ["", "", "the follow-up visit f failed (no knee found)"],
            "error_kind": ["", "", "visit_failed"],
            "qc_flagged": [False, True, False],
            "qc_warnings": ["", "Registration of the tibia is uncertain (x) | Follow-up: thin cartilage", ""],
            "medial_tibial_change_mean_mm": [-0.2, -0.3, None],
        }
    )
    assert flag_reasons(table) == {
        "c__d": ["QC: Registration of the tibia is uncertain (x)", "QC: Follow-up: thin cartilage"]
    }
    counts = {"pairs": 3, "ok": 2, "failed": 1, "this_run": 3, "earlier": 0}
    page = "".join(change_sections(table, change_statistics(table), counts))
    rows = page.split("<h3>Pairs (flagged first)</h3>")[1].split("</table>")[0].split("<tr>")[2:]
    assert [row.split("'")[1] for row in rows] == ["pairs/c__d/", "pairs/a__b/", "pairs/e__f/"]
    assert "Registration of the tibia is uncertain" in rows[0]
    assert "<h3>Failed pairs</h3>" in page and "visit_failed" in page
