"""The page's metric tables: cartilage thickness, structures, T2 (rows and their headers)."""

from __future__ import annotations

from pipeline import labels as L


def thickness_table(result) -> list[list]:
    rows = []
    for region, r in result.cartilage.items():
        t = r.thickness_mm
        cells = (
            [round(t.mean, 2), round(t.median, 2), round(t.std, 2), round(t.p95, 2), t.n_vertices] if t else [None] * 5
        )
        rows.append([region.replace("_", " "), *cells, None if r.volume_mm3 is None else round(r.volume_mm3)])
    return rows


THICKNESS_HEADERS = ["region", "mean mm", "median mm", "std mm", "p95 mm", "vertices", "volume mm³"]


def structure_table(result) -> list[list]:
    return [
        [
            L.structure_display_name(name),
            "yes" if s.present else "no",
            None if s.volume_mm3 is None else round(s.volume_mm3),
            s.n_components,
        ]
        for name, s in result.structures.items()
    ]


STRUCTURE_HEADERS = ["structure", "present", "volume mm³", "pieces"]


def t2_table(result) -> list[list]:
    regions = result.t2.to_dict()["regions"] if result.t2.computed else {}
    rows = []
    for region, stats in regions.items():
        rows.append(
            [
                region.replace("_", " "),
                stats.get("mean"),
                stats.get("median"),
                stats.get("std"),
                stats.get("n_voxels"),
                stats.get("deep", {}).get("mean"),
                stats.get("superficial", {}).get("mean"),
            ]
        )
    return rows


T2_HEADERS = ["region", "mean ms", "median ms", "std ms", "voxels", "deep mean ms", "superficial mean ms"]
