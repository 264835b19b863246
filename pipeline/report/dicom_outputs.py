"""The DICOM objects of a result: the SEG, the measurement report (SR) referencing it, the T2 Parametric Map.

Each is written, or results.json says why not (``dicom_seg``, ``dicom_sr``, ``dicom_t2_map``: ``computed`` and
``reason``), which results.csv and the PDF then show as they show every other results.json value. Where the input
was DICOM, so that the user expected the object, a refusal or a failure is also a QC warning. A failure never costs
the other outputs: highdicom and real headers can refuse in many ways, each recorded instead of raised.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .dicom_seg import write_dicom_seg
from .dicom_seg_plan import seg_file_name, seg_section, subregions_file_name
from .dicom_source import DicomObjectUnavailable
from .dicom_sr import sr_file_name, sr_section, write_measurement_report
from .parametric_map import t2_map_file_name, t2_map_section, write_t2_parametric_map

if TYPE_CHECKING:
    from .analysis_view import AnalysisView

logger = logging.getLogger(__name__)

LABELS = {"dicom_seg": "DICOM-SEG", "dicom_sr": "DICOM SR measurement report", "dicom_t2_map": "DICOM T2 map"}


def write_dicom_objects(result: AnalysisView, out_dir: Path, results: dict) -> dict[str, Path]:
    """Write the SEG, SR and T2 Parametric Map that ``result`` allows; record each outcome in ``results``."""
    files: dict[str, Path] = {}
    results["dicom_seg"] = seg_section(result)
    seg_path = out_dir / seg_file_name(result.case_id)
    segmentations = _attempt(results, "dicom_seg", result, lambda: write_dicom_seg(result, seg_path))
    if segmentations is not None:
        files[seg_path.name] = seg_path
        if len(segmentations) > 1:
            files[subregions_file_name(result.case_id)] = out_dir / subregions_file_name(result.case_id)
    results["dicom_sr"] = sr_section(results)
    sr_path = out_dir / sr_file_name(result.case_id)
    if _attempt(results, "dicom_sr", result, lambda: write_measurement_report(result, results, segmentations, sr_path)):
        files[sr_path.name] = sr_path
    results["dicom_t2_map"] = t2_map_section(result)
    pm_path = out_dir / t2_map_file_name(result.case_id)
    if _attempt(results, "dicom_t2_map", result, lambda: write_t2_parametric_map(result, pm_path)):
        files[pm_path.name] = pm_path
    return files


def _attempt(results: dict, key: str, result: AnalysisView, write) -> Any:
    """``write()`` when results[key] says the object can be made; its outcome recorded there (and warned)."""
    section = results[key]
    if not section.get("computed"):
        if key == "dicom_seg":  # the SR's and the map's refusals follow from the SEG's or from T2: said there
            _warn(results, key, section["reason"], result)
        return None
    try:
        return write()
    except DicomObjectUnavailable as exc:
        reason = str(exc)
    except Exception as exc:  # highdicom refuses odd headers in many ways; none may cost the analysis
        logger.exception("%s not written", LABELS[key])
        reason = f"writing it failed ({type(exc).__name__}: {exc})"
    results[key] = {"computed": False, "reason": reason}
    _warn(results, key, reason, result)
    return None


def _warn(results: dict, key: str, reason: str, result: AnalysisView) -> None:
    """A QC warning, when the input was DICOM (a user given a NIfTI expects no DICOM object)."""
    image = result.image
    if image is not None and str(image.meta.get("source_format", "")).lower().startswith("dicom"):
        results["qc"]["warnings"].append(f"{LABELS[key]} not written: {reason}")
