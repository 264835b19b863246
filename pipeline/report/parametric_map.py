"""The T2 map as a DICOM Parametric Map (float32, ms), on the source series' own frames, for PACS and DICOM viewers.

Written when T2 ran on a DICOM series: frame k is slice k of the T2 map (which lies on the echo grid), placed at
source file k's own position and referencing it, exactly as the SEG (``dicom_source``). The values are the map
written to t2map.nii.gz, as 32-bit floats with an identity real-world value mapping in UCUM milliseconds (DICOM
"T2" as the quantity); invalid voxels keep the map's fill value (``t2.params.map_fill_ms``, 0 by default).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from .. import dicom_codes as C
from .dicom_source import DicomObjectUnavailable, series_laterality, source_frames, without_pixels

if TYPE_CHECKING:
    from .analysis_view import AnalysisView

PM_SERIES_NUMBER = 903
#: Display window (ms) offered to viewers: cartilage T2 lies within it.
WINDOW_CENTER_MS, WINDOW_WIDTH_MS = 50.0, 100.0


def t2_map_file_name(case_id: str) -> str:
    return f"{case_id}_t2map.dcm"


def t2_map_section(result: AnalysisView) -> dict:
    """The ``dicom_t2_map`` section of results.json: what will be written, or why nothing is."""
    try:
        frames = _frames(result)
    except DicomObjectUnavailable as exc:
        return {"computed": False, "reason": str(exc)}
    return {
        "computed": True,
        "file": t2_map_file_name(result.case_id),
        "units": "ms",
        "references": "frame k is T2-map slice k at the position of source file k (echo 1), which it references",
        "max_slice_offset_mm": round(frames.max_offset_mm, 6),
    }


def _frames(result: AnalysisView):
    if result.t2_map is None:
        raise DicomObjectUnavailable(f"T2 was not computed: {getattr(result.t2, 'reason', 'no T2 map')}")
    return source_frames(result.image, result.t2_map, what="DICOM Parametric Map")


def build_t2_parametric_map(result: AnalysisView) -> Any:
    """The highdicom ParametricMap of ``result.t2_map`` on its source series."""
    import highdicom as hd

    frames = _frames(result)
    t2map = result.t2_map
    values = np.ascontiguousarray(t2map.array, dtype=np.float32)  # type: ignore[union-attr]
    low, high = float(values.min()), float(values.max())
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="T2_MS",
        lut_explanation="T2 relaxation time (ms)",
        unit=C.MILLISECOND.code(),
        value_range=(low, high if high > low else low + 1.0),
        slope=1.0,
        intercept=0.0,
        quantity_definition=C.T2.code(),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*unlikely to represent the intended person name", category=UserWarning
        )
        parametric_map = hd.pm.ParametricMap(
            source_images=[without_pixels(ds) for ds in frames.headers],
            pixel_array=values,  # frame k <-> source_images[k]: their positions and references
            series_instance_uid=hd.UID(),
            series_number=PM_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="KneeScope",
            manufacturer_model_name="KneeScope",
            software_versions=__version__,
            device_serial_number="none",
            contains_recognizable_visual_features=False,
            real_world_value_mappings=[mapping],
            voi_lut_transformations=[
                hd.VOILUTTransformation(window_center=WINDOW_CENTER_MS, window_width=WINDOW_WIDTH_MS)
            ],
            content_label="T2_MAP",
            content_description=f"KneeScope T2 map, {getattr(result.t2, 'sequence', '')} (research use only)",
            series_description="KneeScope T2 map (research use only)",
        )
    parametric_map.Laterality = series_laterality(result.laterality.side)  # Type 2C for a paired body part
    return parametric_map


def write_t2_parametric_map(result: AnalysisView, path: Path) -> Any:
    parametric_map = build_t2_parametric_map(result)
    parametric_map.save_as(path)
    return parametric_map
