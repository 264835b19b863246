"""One synthetic MESE DICOM series (with a patient name and ID in its headers), analysed once and written once,
shared by the MESE, DICOM-SEG and PDF report tests (cached per session: writing and analysing cost seconds)."""

from __future__ import annotations

import functools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

PATIENT = {"PatientName": "Zyxwort^Quillanne", "PatientID": "PID-8675309", "PatientBirthDate": "19630412"}
CASE_ID = "mese_case"
#: 1.0 mm pixels (OAI: 0.31 x 0.45 mm) keep the series small: 26 slices x 8 echoes of about 80 x 100 pixels.
IN_PLANE_MM = 1.0


@dataclass(frozen=True)
class WrittenCase:
    example: object  # pipeline.synthetic.mese.MeseExample
    result: object  # KneeAnalysis
    files: dict
    results_json: dict


@functools.lru_cache(maxsize=1)
def mese_case() -> WrittenCase:
    from pipeline.engine import analyze_labels
    from pipeline.synthetic.mese import mese_spec, write_mese_example

    root = Path(tempfile.mkdtemp(prefix="kneescope-mese-"))
    example = write_mese_example(root / "input", spec=mese_spec(in_plane_mm=IN_PLANE_MM), patient=PATIENT)
    result = analyze_labels(example.phantom.labels, image=example.series_dir, case_id=CASE_ID)
    files = result.write(root / "out")
    return WrittenCase(example, result, files, json.loads(files["results.json"].read_text()))
