"""The page's numbers, from results.json (``KneeAnalysis.to_dict()``, the one source the PDF reads too): cartilage
thickness and volume, T2, structures, the shape model, QC warnings, each with units, one decimals rule
(``pipeline.report.numbers``), one-line definitions on hover and in a legend, and the reason when T2 or the shape
model did not run. A segmentation whose quality check failed greys its numbers and says so above them.
"""

from __future__ import annotations

import html

from pipeline import labels as L
from pipeline.report.numbers import formatted

from .messages import page_reason
from .status import quality

#: One-line definitions, shown on hover over a column header and in the legend under the tables.
DEFINITIONS = {
    "Mean": "Area-weighted mean thickness over the region's bone surface, measured along the bone normal.",
    "Median": "Half the region's bone surface has thinner cartilage, half thicker.",
    "SD": "Standard deviation of the thickness over the region.",
    "p95": "95th percentile: 95 % of the region's surface has cartilage thinner than this (the thick end).",
    "Volume": "Cartilage volume of the region from the label map's voxels.",
    "Deep": "Deep layer: the half of the cartilage nearer the bone.",
    "Superficial": "Superficial layer: the half nearer the joint surface.",
    "BScore": (
        "How far the femur's shape lies along the osteoarthritis direction of the ShapeMedKnee shape model, in "
        "healthy-knee standard deviations: 0 ≈ an average healthy knee, 2 or more unlike a healthy knee."
    ),
    "Pieces": "Connected pieces of the structure; a bone or meniscus in several pieces deserves a look.",
}
REGION_NOTES = {
    "femoral": "all femoral cartilage",
    "femoral_trochlea": "front of the femur, the patellar groove",
    "femoral_medial_weight_bearing": "inner condyle, the part that meets the tibia when standing",
    "femoral_lateral_weight_bearing": "outer condyle, the part that meets the tibia when standing",
    "femoral_medial_posterior": "back of the inner condyle",
    "femoral_lateral_posterior": "back of the outer condyle",
    "medial_tibial": "inner tibial plateau",
    "lateral_tibial": "outer tibial plateau",
    "patellar": "back of the kneecap",
}
SUBREGIONS_TEXT = (
    "Regions: the femoral cartilage is divided into the trochlea (front), the medial and lateral weight-bearing "
    "zones (the lower condyles that meet the tibia standing) and the medial and lateral posterior condyles; medial "
    "is the inner side of the knee. The flattened maps (tab ‘Thickness maps’) show the same surfaces."
)


def region_name(region: str) -> str:
    return region.replace("_", " ")


def _header(label: str, unit: str = "", key: str | None = None) -> str:
    definition = DEFINITIONS.get(key or label)
    title = f' title="{html.escape(definition)}"' if definition else ""
    unit_text = f"<br><span class='ks-unit'>{html.escape(unit)}</span>" if unit else ""
    return f"<th{title}>{html.escape(label)}{unit_text}</th>"


def _table(element_id: str, caption: str, headers: list[str], rows: list[list[str]]) -> str:
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return (
        f'<table class="ks-table" id="{element_id}"><caption>{html.escape(caption)}</caption>'
        f"<thead><tr>{''.join(headers)}</tr></thead><tbody>{body}</tbody></table>"
    )


def _name_cell(region: str) -> str:
    note = REGION_NOTES.get(region)
    title = f' title="{html.escape(note)}"' if note else ""
    sub = " ks-subregion" if region.startswith("femoral_") else ""  # indented under "femoral"
    return f'<td class="ks-name{sub}"{title}>{html.escape(region_name(region))}</td>'


def _num(value: float | None, unit: str) -> str:
    return f'<td class="ks-num">{formatted(value, unit)}</td>'


def thickness_html(results: dict) -> str:
    headers = [
        _header("Region"),
        _header("Mean", "mm"),
        _header("Median", "mm"),
        _header("SD", "mm"),
        _header("p95", "mm"),
        _header("Volume", "mm³"),
    ]
    rows = []
    for region, entry in results["cartilage"].items():
        t = entry.get("thickness_mm") or {}
        rows.append(
            [
                _name_cell(region),
                *(_num(t.get(k), "mm") for k in ("mean", "median", "std", "p95")),
                _num(entry.get("volume_mm3"), "mm³"),
            ]
        )
    return _table("thickness-table", "Cartilage thickness (along the bone normal) and volume", headers, rows)


def t2_html(results: dict) -> str:
    t2 = results["t2"]
    if not t2.get("computed"):
        reason = html.escape(page_reason(t2["reason"]))
        return f'<p class="ks-not-run" id="t2-reason"><strong>T2 not computed:</strong> {reason}</p>'
    headers = [
        _header("Region"),
        _header("Mean", "ms"),
        _header("Median", "ms"),
        _header("SD", "ms"),
        _header("Deep", "mean, ms"),
        _header("Superficial", "mean, ms"),
    ]
    rows = []
    for region, stats in t2.get("regions", {}).items():
        rows.append(
            [
                _name_cell(region),
                *(_num(stats.get(k), "ms") for k in ("mean", "median", "std")),
                _num((stats.get("deep") or {}).get("mean"), "ms"),
                _num((stats.get("superficial") or {}).get("mean"), "ms"),
            ]
        )
    caption = f"T2 ({t2.get('sequence', 'qDESS')} series, inside the cartilage)"
    return _table("t2-table", caption, headers, rows)


def structures_html(results: dict) -> str:
    headers = [_header("Structure"), _header("Present"), _header("Volume", "mm³"), _header("Pieces")]
    rows = []
    for name, s in results["structures"].items():
        rows.append(
            [
                f'<td class="ks-name">{html.escape(L.structure_display_name(name))}</td>',
                f"<td>{'yes' if s.get('present') else 'no'}</td>",
                _num(s.get("volume_mm3"), "mm³"),
                f'<td class="ks-num">{s.get("n_components", "")}</td>',
            ]
        )
    return _table("structure-table", "Structures", headers, rows)


def shape_html(results: dict) -> str:
    shape = results["shape_model"]
    if not shape.get("computed"):
        reason = html.escape(page_reason(shape["reason"]))
        return f'<p class="ks-not-run" id="shape-reason"><strong>Shape model not run:</strong> {reason}</p>'
    bscore = shape.get("bscore")
    score = "BScore unavailable (the model has no BScore vectors)" if bscore is None else f"BScore {bscore:.2f}"
    return (
        f'<p id="shape-summary"><strong title="{html.escape(DEFINITIONS["BScore"])}">{score}</strong> · shape model '
        f"{html.escape(str(shape.get('model_id')))}</p>"
    )


def definitions_html() -> str:
    items = "".join(
        f"<li><strong>{html.escape(k)}</strong>: {html.escape(v)}</li>"
        for k, v in DEFINITIONS.items()
        if k in ("p95", "Deep", "Superficial", "BScore", "Pieces")
    )
    return f'<div class="ks-definitions"><p>{html.escape(SUBREGIONS_TEXT)}</p><ul>{items}</ul></div>'


def numbers_html(results: dict) -> str:
    """Every table of the Numbers tab; greyed and marked when the segmentation failed its quality check."""
    verdict, reasons = quality(results)
    classes = "ks-numbers" + (" ks-unreliable" if verdict == "failed" else "")
    mark = ""
    if verdict == "failed":
        reason = "; ".join(reasons) or "see the QC warnings"
        mark = (
            '<p class="ks-unreliable-note" role="alert">Segmentation failed its quality check: these numbers are not '
            f"reliable ({html.escape(reason)}).</p>"
        )
    parts = [thickness_html(results), t2_html(results), structures_html(results), shape_html(results)]
    return f'<div class="{classes}" id="numbers">{mark}{"".join(parts)}{definitions_html()}</div>'


def warnings_html(results: dict) -> str:
    warnings = results["qc"]["warnings"]
    if not warnings:
        return '<div id="qc-warnings" class="ks-warnings">No QC warnings.</div>'
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return f'<div id="qc-warnings" class="ks-warnings"><strong>QC warnings</strong><ul>{items}</ul></div>'
