"""nnU-Net model label names -> KneeScope structures, matched by meaning rather than spelling.

nnU-Net dataset.json label names vary between models (the knee model's authors use DOSMA-style short names in
places, full names elsewhere), so names are normalised to tokens and matched by meaning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import labels as L
from ..errors import WeightsUnavailableError

logger = logging.getLogger(__name__)

_TOKEN_SYNONYMS = {
    "fem": "femur",
    "femoral": "femur",
    "femur": "femur",
    "tib": "tibia",
    "tibial": "tibia",
    "tibia": "tibia",
    "pat": "patella",
    "patellar": "patella",
    "patella": "patella",
    "cart": "cartilage",
    "cartilage": "cartilage",
    "cartilages": "cartilage",
    "men": "meniscus",
    "meniscus": "meniscus",
    "menisci": "meniscus",
    "meniscal": "meniscus",
    "med": "medial",
    "medial": "medial",
    "lat": "lateral",
    "lateral": "lateral",
    "bone": "bone",
}
#: Whole-name abbreviations seen in knee datasets (after normalisation).
_ABBREVIATIONS = {
    "fc": L.FEMORAL_CARTILAGE,
    "pc": L.PATELLAR_CARTILAGE,
    "mtc": L.MEDIAL_TIBIAL_CARTILAGE,
    "ltc": L.LATERAL_TIBIAL_CARTILAGE,
    "mm": L.MEDIAL_MENISCUS,
    "lm": L.LATERAL_MENISCUS,
    "mtcart": L.MEDIAL_TIBIAL_CARTILAGE,
    "ltcart": L.LATERAL_TIBIAL_CARTILAGE,
}


def structure_for_label_name(name: str) -> str | None:
    """Our structure name for an nnU-Net label name, or None if it names something else (e.g. 'fibula').

    Examples: 'patellar_cartilage', 'pat_cart', 'Patellar Cartilage' -> 'patellar_cartilage';
    'med_men' -> 'medial_meniscus'; 'fem', 'Femur bone' -> 'femur'; 'mtc' -> 'medial_tibial_cartilage'.
    """
    normal = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if normal in _ABBREVIATIONS:
        return _ABBREVIATIONS[normal]
    words = set(normal.split("_"))
    tokens = {_TOKEN_SYNONYMS[w] for w in words if w in _TOKEN_SYNONYMS}
    if words - set(_TOKEN_SYNONYMS):
        return None  # an unknown word (fibula, ligament, effusion, ...): not one of ours
    side = {"medial", "lateral"} & tokens
    bones = {"femur", "tibia", "patella"} & tokens
    if len(side) > 1 or len(bones) > 1:
        return None
    side_name = next(iter(side), None)
    bone = next(iter(bones), None)
    if "meniscus" in tokens:
        return f"{side_name}_meniscus" if side_name and bone in (None, "tibia") else None
    if "cartilage" in tokens:
        if bone == "tibia":
            return f"{side_name}_tibial_cartilage" if side_name else None
        if side_name is None and bone in ("femur", "patella"):
            return L.FEMORAL_CARTILAGE if bone == "femur" else L.PATELLAR_CARTILAGE
        return None
    return bone if bone and side_name is None else None


@dataclass(frozen=True)
class LabelMapping:
    """How a model's output values become canonical labels.

    Attributes:
        model_to_canonical: model label value -> canonical value (values not listed become background).
        method: 'names' (matched from dataset.json) or 'fallback:<scheme>' (names unrecognised, values assumed).
        unmapped: dataset.json labels that are not knee structures, dropped from the output.
    """

    model_to_canonical: Mapping[int, int]
    method: str
    unmapped: Mapping[str, int] = field(default_factory=dict)

    def lookup_table(self) -> np.ndarray:
        """uint8 table indexed by model value (0-255)."""
        lut = np.zeros(256, dtype=np.uint8)
        for model_value, canonical in self.model_to_canonical.items():
            lut[model_value] = canonical
        return lut

    def to_dict(self) -> dict:
        names = {v: k for k, v in L.CANONICAL.items()}
        return {
            "method": self.method,
            "model_value_to_structure": {str(k): names[v] for k, v in sorted(self.model_to_canonical.items())},
            "ignored_model_labels": dict(self.unmapped),
        }


def map_model_labels(labels: Mapping[str, int | Sequence[int]], *, fallback: str = "") -> LabelMapping:
    """Build the model -> canonical mapping from a dataset.json ``labels`` table (name -> value).

    All nine structures matched by name: use the names. Otherwise, with ``fallback='native'`` and values exactly
    0-9, assume the published knee model's order (logged). Otherwise map what matched and ignore the rest.

    Raises:
        WeightsUnavailableError: region-based labels, two labels naming one structure, or no knee structure at all.
    """
    by_structure: dict[str, int] = {}
    unmapped: dict[str, int] = {}
    for name, value in labels.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise WeightsUnavailableError(
                f"Model label '{name}' is a region ({value}); KneeScope supports label-based nnU-Net models only."
            )
        if value == 0:
            continue
        structure = structure_for_label_name(name)
        if structure is None:
            unmapped[name] = value
        elif structure in by_structure:
            raise WeightsUnavailableError(
                f"Model labels {by_structure[structure]} and {value} ('{name}') both name {structure}; fix the "
                "model's dataset.json."
            )
        else:
            by_structure[structure] = value
    if len(by_structure) == len(L.STRUCTURES):
        return LabelMapping({v: L.CANONICAL[s] for s, v in by_structure.items()}, "names", unmapped)
    values = sorted(v for v in labels.values() if isinstance(v, int))
    if fallback and values == list(range(len(L.STRUCTURES) + 1)):
        scheme = L.resolve_scheme(fallback)
        logger.warning(
            "Model label names %s are not all recognised; assuming the %s label order.", sorted(labels), scheme.name
        )
        return LabelMapping(scheme.remap_table(), f"fallback:{scheme.name}")
    if not by_structure:
        raise WeightsUnavailableError(
            f"None of the model's labels {sorted(labels)} is a knee structure KneeScope knows "
            f"({', '.join(L.STRUCTURES)}); this is not a knee segmentation model."
        )
    missing = sorted(set(L.STRUCTURES) - set(by_structure))
    logger.warning("The model does not segment %s; ignoring its labels %s.", missing, unmapped)
    return LabelMapping({v: L.CANONICAL[s] for s, v in by_structure.items()}, "names", unmapped)
