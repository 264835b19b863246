"""Pure-data label registry: structure names, label schemes, colours, cartilage regions.

No heavy imports here, so tests, notebooks and the UI can use it instantly.

Two published schemes exist (see docs/results-schema.md): ``native`` is what the published knee nnU-Net
outputs, ``canonical`` is the predecessor's newer table and the one every KneeScope output uses.
Reading one as the other "paints every bone as cartilage", so the scheme is always explicit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from .errors import LabelSchemeError

FEMUR = "femur"
TIBIA = "tibia"
PATELLA = "patella"
FEMORAL_CARTILAGE = "femoral_cartilage"
MEDIAL_TIBIAL_CARTILAGE = "medial_tibial_cartilage"
LATERAL_TIBIAL_CARTILAGE = "lateral_tibial_cartilage"
PATELLAR_CARTILAGE = "patellar_cartilage"
MEDIAL_MENISCUS = "medial_meniscus"
LATERAL_MENISCUS = "lateral_meniscus"

STRUCTURES: tuple[str, ...] = (
    FEMUR,
    TIBIA,
    PATELLA,
    FEMORAL_CARTILAGE,
    MEDIAL_TIBIAL_CARTILAGE,
    LATERAL_TIBIAL_CARTILAGE,
    PATELLAR_CARTILAGE,
    MEDIAL_MENISCUS,
    LATERAL_MENISCUS,
)
BONES: tuple[str, ...] = (FEMUR, TIBIA, PATELLA)
CARTILAGES: tuple[str, ...] = (
    FEMORAL_CARTILAGE,
    MEDIAL_TIBIAL_CARTILAGE,
    LATERAL_TIBIAL_CARTILAGE,
    PATELLAR_CARTILAGE,
)
MENISCI: tuple[str, ...] = (MEDIAL_MENISCUS, LATERAL_MENISCUS)

#: Which cartilage labels sit on which bone (thickness is measured from that bone's surface).
BONE_CARTILAGE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        FEMUR: (FEMORAL_CARTILAGE,),
        TIBIA: (MEDIAL_TIBIAL_CARTILAGE, LATERAL_TIBIAL_CARTILAGE),
        PATELLA: (PATELLAR_CARTILAGE,),
    }
)

CANONICAL: Mapping[str, int] = MappingProxyType({name: i + 1 for i, name in enumerate(STRUCTURES)})
NATIVE: Mapping[str, int] = MappingProxyType(
    {
        PATELLAR_CARTILAGE: 1,
        FEMORAL_CARTILAGE: 2,
        MEDIAL_TIBIAL_CARTILAGE: 3,
        LATERAL_TIBIAL_CARTILAGE: 4,
        MEDIAL_MENISCUS: 5,
        LATERAL_MENISCUS: 6,
        FEMUR: 7,
        TIBIA: 8,
        PATELLA: 9,
    }
)

# Cartilage regions. Femoral subregion ids are the same in both published schemes (11-15).
FEMORAL_SUBREGIONS: Mapping[str, int] = MappingProxyType(
    {
        "femoral_trochlea": 11,
        "femoral_medial_weight_bearing": 12,
        "femoral_lateral_weight_bearing": 13,
        "femoral_medial_posterior": 14,
        "femoral_lateral_posterior": 15,
    }
)
#: Region id per vertex/voxel: femoral subregions 11-15, tibial and patellar regions by canonical label.
REGION_IDS: Mapping[str, int] = MappingProxyType(
    {
        **FEMORAL_SUBREGIONS,
        "medial_tibial": CANONICAL[MEDIAL_TIBIAL_CARTILAGE],
        "lateral_tibial": CANONICAL[LATERAL_TIBIAL_CARTILAGE],
        "patellar": CANONICAL[PATELLAR_CARTILAGE],
    }
)
#: Reported cartilage regions, in report order, with the region ids each one pools.
CARTILAGE_REGIONS: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {
        "femoral": tuple(FEMORAL_SUBREGIONS.values()),
        **{name: (rid,) for name, rid in FEMORAL_SUBREGIONS.items()},
        "medial_tibial": (REGION_IDS["medial_tibial"],),
        "lateral_tibial": (REGION_IDS["lateral_tibial"],),
        "patellar": (REGION_IDS["patellar"],),
    }
)
#: Bone on which each reported region is measured.
REGION_BONE: Mapping[str, str] = MappingProxyType(
    {
        name: (FEMUR if name.startswith("femoral") else TIBIA if "tibial" in name else PATELLA)
        for name in CARTILAGE_REGIONS
    }
)

#: Display colours (RGB 0-255), shared by the slice overlay, the GLB and the legend.
COLOURS: Mapping[str, tuple[int, int, int]] = MappingProxyType(
    {
        FEMUR: (241, 214, 145),
        TIBIA: (216, 101, 79),
        PATELLA: (177, 122, 101),
        FEMORAL_CARTILAGE: (111, 184, 210),
        MEDIAL_TIBIAL_CARTILAGE: (144, 238, 144),
        LATERAL_TIBIAL_CARTILAGE: (60, 179, 113),
        PATELLAR_CARTILAGE: (220, 130, 220),
        MEDIAL_MENISCUS: (255, 200, 0),
        LATERAL_MENISCUS: (255, 140, 0),
    }
)


def structure_display_name(name: str) -> str:
    """'medial_tibial_cartilage' -> 'Medial tibial cartilage'."""
    return name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class LabelScheme:
    """A mapping from structure names to the integer values used in one label map.

    Structures missing from the mapping are simply absent; values not in it are ignored.
    """

    name: str
    values: Mapping[str, int]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.values) - set(STRUCTURES))
        if unknown:
            raise LabelSchemeError(
                f"Label scheme '{self.name}' names unknown structures {unknown}; "
                f"known structures are {list(STRUCTURES)}."
            )
        bad = {k: v for k, v in self.values.items() if not isinstance(v, int) or isinstance(v, bool) or v <= 0}
        if bad:
            raise LabelSchemeError(f"Label scheme '{self.name}': label values must be positive integers, got {bad}.")
        inverse: dict[int, str] = {}
        for structure, value in self.values.items():
            if value in inverse:
                raise LabelSchemeError(
                    f"Label scheme '{self.name}' gives value {value} to both {inverse[value]} and {structure}."
                )
            inverse[value] = structure
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def remap_table(self) -> dict[int, int]:
        """Source value -> canonical value, for every structure this scheme names."""
        return {value: CANONICAL[structure] for structure, value in self.values.items()}

    def to_dict(self) -> dict:
        return {"name": self.name, "values": dict(self.values)}


NATIVE_SCHEME = LabelScheme("native", NATIVE)
CANONICAL_SCHEME = LabelScheme("canonical", CANONICAL)


def resolve_scheme(spec: str | Path | Mapping[str, int] | LabelScheme) -> LabelScheme:
    """Turn 'native', 'canonical', a JSON file path or a dict into a LabelScheme."""
    if isinstance(spec, LabelScheme):
        return spec
    if isinstance(spec, Mapping):
        return LabelScheme("custom", dict(spec))
    text = str(spec)
    if text.lower() == "native":
        return NATIVE_SCHEME
    if text.lower() == "canonical":
        return CANONICAL_SCHEME
    path = Path(text)
    if not path.is_file():
        raise LabelSchemeError(
            f"Unknown label scheme '{text}': use 'native' (the published knee nnU-Net), 'canonical', "
            "or a path to a JSON file mapping structure names to label values."
        )
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelSchemeError(f"Label scheme file {path.name} is not valid JSON: {exc}.") from exc
    if isinstance(values, dict) and "values" in values and isinstance(values["values"], dict):
        values = values["values"]
    if not isinstance(values, dict):
        raise LabelSchemeError(f'Label scheme file {path.name} must hold a JSON object like {{"femur": 5, ...}}.')
    return LabelScheme(path.stem, values)


def label_table() -> dict:
    """The canonical label table written next to every output label map (label_table.json)."""
    return {
        "scheme": "canonical",
        "labels": {str(CANONICAL[s]): {"name": s, "rgb": list(COLOURS[s])} for s in STRUCTURES},
        "femoral_subregions": {str(v): k for k, v in FEMORAL_SUBREGIONS.items()},
        "note": "0 is background. subregions.nii.gz replaces femoral cartilage (4) by its subregions 11-15.",
    }
