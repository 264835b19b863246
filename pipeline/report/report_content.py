"""The words and numbers of the PDF case report, built from ``KneeAnalysis.to_dict()`` (what results.json holds).

One source: every number printed is a results.json value, rounded by the one rule of :mod:`numbers` (thickness 2
decimals, volume 0, T2 1), so the report, the page and the file can never disagree. No patient identifiers:
nothing here reads patient attributes, and :class:`Redactor` removes the source DICOM's patient name and IDs from
every string anyway (a case id or series description can contain them when an export was named after the patient).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .. import labels as L
from .numbers import formatted

RESEARCH_STATEMENT = (
    "Research use only. Not a medical device; not for clinical diagnosis or treatment decisions. "
    "Check every segmentation before using its numbers."
)
MISSING = "—"
PATIENT_KEYWORDS = ("PatientName", "PatientID", "OtherPatientIDs", "PatientBirthDate", "IssuerOfPatientID")
REDACTED = "[removed]"


@dataclass(frozen=True)
class Redactor:
    """Removes the patient identifiers of the source DICOM (name parts, IDs, birth date) from report strings."""

    words: tuple[str, ...] = ()

    @classmethod
    def from_headers(cls, headers: list[Any]) -> Redactor:
        words: set[str] = set()
        for ds in headers[:1]:  # one series: one patient
            for keyword in PATIENT_KEYWORDS:
                value = getattr(ds, keyword, None)
                text = "" if value is None else str(value)
                parts = [text, *re.split(r"[\^\s,]+", text)]
                words.update(p for p in parts if len(p) >= 3 and p.upper() != "ANONYMOUS")
        return cls(tuple(sorted(words, key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        for word in self.words:
            text = re.sub(re.escape(word), REDACTED, text, flags=re.IGNORECASE)
        return text


def number(value: float | None, unit: str = "") -> str:
    """A results.json number with 2 decimals (thickness in mm, BScore), or a dash when missing."""
    return formatted(value, "mm") + (f" {unit}" if unit and value is not None else "")


def region_name(region: str) -> str:
    return region.replace("_", " ")


def input_lines(results: dict, provenance: dict) -> list[str]:
    """Knee side, image and segmentation, one line each (no file names: they can hold a patient name)."""
    image = results["input"].get("image")
    lat = results["laterality"]
    lines = [f"Knee side: {lat['side']} ({lat['method']})"]
    if image is None:
        lines.append("Image: none (label map only)")
    else:
        grid = "x".join(str(n) for n in image.get("size", []))
        spacing = " x ".join(f"{s:.2f}" for s in image.get("spacing_mm", []))
        fmt = image.get("source_format", "file")
        lines.append(f"Image: {fmt}, {grid} voxels of {spacing} mm, {image.get('orientation', '')}")
        series, dicom = image.get("series") or {}, image.get("dicom") or {}
        if series:
            n_images = series.get("n_images")
            lines.append(f"Series: {series.get('description')} ({series.get('modality')}, {n_images} images)")
        if dicom:
            lines.append(acquisition_line(dicom))
    lines.append(segmentation_line(provenance, results))
    return lines


def acquisition_line(dicom: dict) -> str:
    echoes = ", ".join(f"{t:g}" for t in dicom.get("echo_times_ms") or [] if t is not None)
    tr = dicom.get("repetition_time_ms")
    scanner = dicom.get("manufacturer") or "unknown scanner"
    return (
        f"Acquisition: {scanner}, sequence {dicom.get('scanning_sequence') or '?'}, "
        f"TR {MISSING if tr is None else f'{tr:g}'} ms, TE {echoes or MISSING} ms"
    )


def segmentation_line(provenance: dict, results: dict) -> str:
    """The model and weights revision, or that the label map was supplied."""
    seg = provenance.get("segmentation")
    if not seg:
        scheme = results["input"]["labels"].get("label_scheme", "?")
        return f"Segmentation: label map supplied by the user ({scheme} labels); KneeScope {software(provenance)}"
    return (
        f"Segmentation: model '{seg.get('engine_model') or seg.get('model')}', weights revision "
        f"{seg.get('revision')}, on {seg.get('device')}; KneeScope {software(provenance)}"
    )


def software(provenance: dict) -> str:
    return str(provenance.get("software", {}).get("version", "?"))


def table_header(results: dict) -> list[str]:
    header = ["Region", "Mean (mm)", "Median (mm)", "P95 (mm)", "Volume (mm³)"]
    if results["t2"].get("computed"):
        header += ["T2 mean (ms)", "T2 deep (ms)", "T2 superf. (ms)"]
    return header


def table_rows(results: dict) -> list[list[str]]:
    """One row per reported cartilage region: thickness mean/median/p95, volume, and T2 when computed."""
    t2 = results["t2"].get("regions", {}) if results["t2"].get("computed") else None
    rows = []
    for region in L.CARTILAGE_REGIONS:
        entry = results["cartilage"][region]
        thickness = entry["thickness_mm"] or {}
        row = [region_name(region), *(number(thickness.get(k)) for k in ("mean", "median", "p95"))]
        row.append(formatted(entry["volume_mm3"], "mm³"))
        if t2 is not None:
            stats = t2.get(region, {})
            row += [formatted(stats.get("mean"), "ms"), formatted(stats.get("deep", {}).get("mean"), "ms")]
            row.append(formatted(stats.get("superficial", {}).get("mean"), "ms"))
        rows.append(row)
    return rows


def summary_lines(results: dict) -> list[str]:
    """T2 method and BScore, when computed; why not otherwise."""
    lines = []
    t2 = results["t2"]
    if t2.get("computed"):
        limits = t2.get("statistics_range_ms", {})
        lines.append(
            f"T2: {t2.get('sequence', 'qDESS')} series, method {t2['method']}; statistics over values in "
            f"({limits.get('exclusive_min', 0):g}, {limits.get('inclusive_max', 80):g}] ms"
        )
    shape = results["shape_model"]
    if shape.get("computed"):
        lines.append(f"BScore: {number(shape.get('bscore'))} (shape model {shape.get('model_id')})")
    return [*lines, dicom_line(results)]


DICOM_OBJECTS = (("dicom_seg", "SEG"), ("dicom_sr", "SR measurement report"), ("dicom_t2_map", "T2 Parametric Map"))


def dicom_line(results: dict) -> str:
    """Which DICOM objects were written, and why any was not (the T2 map only where T2 was computed)."""
    seg = results.get("dicom_seg") or {}
    if not seg.get("computed"):
        return f"DICOM objects: none. DICOM-SEG not written: {seg.get('reason', 'not attempted')}"
    parts = []
    for key, label in DICOM_OBJECTS:
        section = results.get(key) or {}
        if section.get("computed"):
            parts.append(f"{label} written")
        elif key != "dicom_t2_map" or results["t2"].get("computed"):
            parts.append(f"{label} not written: {section.get('reason', 'not attempted')}")
    return "DICOM objects: " + "; ".join(parts)


#: Colour of each segmentation QC verdict in the report.
VERDICT_COLOURS = {"ok": "forestgreen", "review": "darkorange", "failed": "firebrick"}


def segmentation_verdict(results: dict) -> tuple[str, str] | None:
    """The page header's badge: ("Segmentation QC: REVIEW (score 0.62)", colour), None without a verdict."""
    qc = results["qc"].get("segmentation")
    if not qc:
        return None
    return f"Segmentation QC: {qc['verdict'].upper()} (score {number(qc['score'])})", VERDICT_COLOURS[qc["verdict"]]


def segmentation_qc_lines(results: dict) -> list[str]:
    """The verdict, what it rests on and its reasons (first lines of the QC block)."""
    qc = results["qc"].get("segmentation")
    if not qc:
        return []
    lines = [f"Segmentation QC: {qc['verdict']}, score {number(qc['score'])} ({qc['basis']})."]
    if qc["verdict"] == "failed":
        lines.append("The segmentation failed its quality check: the numbers in this report are unreliable.")
    lines += [f"• {reason}" for reason in qc["reasons"]]
    return lines


def numbers_unreliable(results: dict) -> bool:
    """True when the segmentation failed its quality check (the report greys its numbers)."""
    qc = results["qc"].get("segmentation")
    return bool(qc) and qc["verdict"] == "failed"


def warning_lines(results: dict, *, limit: int = 10) -> list[str]:
    warnings = results["qc"]["warnings"]
    if not warnings:
        return ["No QC warnings."]
    shown = [f"• {w}" for w in warnings[:limit]]
    if len(warnings) > limit:
        shown.append(f"… and {len(warnings) - limit} more (see results.json)")
    return shown
