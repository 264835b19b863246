"""A synthetic longitudinal cohort of known change: 4 subjects (both sides, two groups) x 3 visits.

Every visit is written by the CLI, ``python -m pipeline synth`` (called in-process): the baseline as is, each
follow-up with ``--change`` (known regional thickness change against the baseline), ``--rotate``, ``--translate``
and ``--resample`` (the moved knee voxelised afresh on the scanner's grid, as a real rescan), its truth in
change_truth.json. Coarse voxels (0.6 x 0.6 x 1.2 mm) keep the runs short; a comparison there is within 0.03 mm of
the truth per region (bench/RESULTS.md). Subject S2's rows are listed out of date order: the baseline is the
first visit by date, not the first row.
"""

from __future__ import annotations

import json
from pathlib import Path

SPACING = "0.6,0.6,1.2"
#: subject -> (side, baseline thickness mm, group, {visit: {region: change mm}}).
SUBJECTS: dict[str, tuple[str, float, str, dict[str, dict[str, float]]]] = {
    "S1": ("right", 2.0, "A", {"V12": {"medial_tibial": -0.30, "femoral": -0.10},
                               "V24": {"medial_tibial": -0.55, "femoral": -0.20, "patellar": 0.15}}),
    "S2": ("left", 2.2, "A", {"V12": {"medial_tibial": -0.25, "femoral": -0.15},
                              "V24": {"medial_tibial": -0.50, "femoral": -0.25, "patellar": 0.10}}),
    "S3": ("right", 2.1, "B", {"V12": {"medial_tibial": -0.10},
                               "V24": {"medial_tibial": -0.20, "lateral_tibial": -0.10}}),
    "S4": ("left", 1.9, "B", {"V12": {"medial_tibial": -0.05, "lateral_tibial": 0.10},
                              "V24": {"medial_tibial": -0.15, "femoral": -0.05}}),
}  # fmt: skip
#: visit -> (days after the subject's baseline, rotation about x,y,z in degrees, translation in mm)
VISITS = {"V00": (0, None, None), "V12": (371, "4,-3,2", "3,-2,4"), "V24": (728, "-3,5,-2", "-4,3,2")}
BASELINE_DATES = {"S1": "2019-03-01", "S2": "2019-04-15", "S3": "2019-05-20", "S4": "2019-06-03"}
ROW_ORDER = {"S2": ("V12", "V00", "V24")}  # listed out of date order


def write_cohort(folder: Path) -> Path:
    """The visits' label maps and MANIFEST.csv (subject_id, visit, date, labels, group, age); returns the manifest."""
    from datetime import date, timedelta

    from pipeline.cli import main

    rows = ["subject_id,visit,date,labels,group,age"]
    for number, (subject, (side, thickness, group, changes)) in enumerate(SUBJECTS.items()):
        for visit in ROW_ORDER.get(subject, tuple(VISITS)):
            days, rotate, translate = VISITS[visit]
            out = folder / subject / visit
            args = ["synth", "--out", str(out), "--side", side, "--thickness", str(thickness), "--spacing", SPACING]
            for region, mm in changes.get(visit, {}).items():
                args += ["--change", f"{region}={mm}"]
            if rotate:
                args += [f"--rotate={rotate}", f"--translate={translate}", "--resample"]
            assert main(args) == 0
            day = date.fromisoformat(BASELINE_DATES[subject]) + timedelta(days=days)
            rows.append(f"{subject},{visit},{day.isoformat()},{subject}/{visit}/labels.nrrd,{group},{60 + number}")
    manifest = folder / "MANIFEST.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def truth(folder: Path, subject: str, visit: str) -> dict[str, float]:
    """True regional thickness change of a follow-up against its subject's baseline (from synth)."""
    return json.loads((folder / subject / visit / "change_truth.json").read_text())["thickness_change_mm"]
