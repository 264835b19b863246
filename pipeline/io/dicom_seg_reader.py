"""A DICOM Segmentation (SEG) read as a label map: e.g. a segmentation corrected in 3D Slicer or OHIF, or one
KneeScope wrote, given back with ``--labels seg.dcm`` (CLI, app, batch, comparison: ``labelmaps`` dispatches here).

Segments become KneeScope structures by what they are, not by their numbers or order: by their coded segmented
property type and category (with the anatomic region and its modifiers, ``pipeline.dicom_codes``), and by their
label where the codes are generic (e.g. "Tissue"). Several segments of one structure are merged (KneeScope's own
SEG adds femoral subregion segments inside the femoral cartilage); segments of other structures must not overlap;
segments that are no knee structure (fibula, effusion, ...) are ignored and reported.

Placement on the image: a SEG that references a different series than the image given is refused. Otherwise each
frame goes to the image slice of the source instance it references (any echo), which is robust to the slice-position
jitter and gaps of real series; a SEG without usable references is placed by its frames' positions (its own grid
must then be a block of the image's grid). Without an image, the SEG's own grid is used. highdicom decodes the
frames (BINARY, FRACTIONAL thresholded at 0.5, LABELMAP alike).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import dicom_codes as C
from .. import labels as L
from ..errors import GeometryMismatchError, InvalidInputError
from ..volume import Volume
from .files import sha256_of
from .limits import ImageLimits

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
SCHEME_NAME = "dicom-seg"


@dataclass(frozen=True)
class SegmentMatch:
    """One segment of the file and the structure it was mapped to (None: not a knee structure)."""

    number: int
    label: str
    structure: str | None
    by: str  # "codes", "label" or "unmapped"

    def describe(self) -> str:
        target = self.structure or "ignored"
        return f"{self.number} '{self.label}' -> {target}" + (f" (by its {self.by})" if self.structure else "")


@dataclass(frozen=True)
class DicomSegLabels:
    """What a label Volume read from a DICOM-SEG needs to place itself on an image grid (its ``source``)."""

    name: str
    segmentation: Any = field(repr=False)  # the highdicom Segmentation, pixel data read
    matches: tuple[SegmentMatch, ...]
    referenced_series: tuple[str, ...]
    referenced_instances: frozenset[str]
    own_grid: Volume = field(repr=False)

    def place_on(self, image: Volume) -> tuple[Volume, str | None]:
        """The canonical label map on ``image``'s grid, and a note when it was placed by positions."""
        source = image.source
        if source is not None:
            image_series = str(source.series.get("series_instance_uid", ""))
            if self.referenced_series and image_series not in self.referenced_series:
                raise GeometryMismatchError(
                    f"{self.name} references a different series than the image given: the DICOM-SEG was made on "
                    f"series {', '.join(self.referenced_series)}, the image is series {image_series} "
                    f"('{source.series.get('description', '')}'). Give the series it segments, or a SEG made on "
                    "this one."
                )
            for echo in source.echoes:
                uids = [str(ds.SOPInstanceUID) for ds in echo.headers]
                if self.referenced_instances and self.referenced_instances <= set(uids):
                    return self._by_references(uids, image), None
        from .grids import describe_grid, embed_on_grid

        placed = embed_on_grid(self.own_grid, image)
        if placed is None:
            raise GeometryMismatchError(
                f"{self.name}: the DICOM-SEG's frames do not lie on the image's voxel grid (image: "
                f"{describe_grid(image)}; SEG: {describe_grid(self.own_grid)}). Give the series it was made on."
            )
        note = (
            f"{self.name} was placed on the image by its frames' positions (it references no instance of the "
            "image's series)."
        )
        return placed.with_meta(**self.own_grid.meta), note

    def _by_references(self, uids: list[str], image: Volume) -> Volume:
        def fetch(numbers: list[int]) -> np.ndarray:
            return self.segmentation.get_pixels_by_source_instance(
                uids, segment_numbers=numbers, assert_missing_frames_are_empty=True, dtype=pixel_type(self.segmentation)
            )

        _, nj, ni = image.array.shape
        rows, columns = int(self.segmentation.Rows), int(self.segmentation.Columns)
        if (rows, columns) != (nj, ni):
            raise GeometryMismatchError(
                f"{self.name}: the DICOM-SEG's frames are {rows} x {columns} pixels, the image's slices {nj} x {ni}; "
                "KneeScope reads a SEG on its source images' own pixel grid."
            )
        labels = combine(self.matches, fetch, self.name)
        return Volume(labels, image.spacing, image.origin, image.direction, meta=dict(self.own_grid.meta))


def is_dicom_seg(path: Path) -> bool:
    """A DICOM file (by its preamble) whose SOP class is Segmentation Storage."""
    import pydicom

    from .dicom import is_dicom_file

    if not path.is_file() or not is_dicom_file(path):
        return False
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"])
    except Exception:  # a damaged header is not a SEG; the caller says what it expected
        return False
    return str(getattr(header, "SOPClassUID", "")) == SEGMENTATION_STORAGE or getattr(header, "Modality", "") == "SEG"


def preflight_dicom_seg(path: Path, limits: ImageLimits | None = None) -> None:
    """Refuse a DICOM file that is no SEG, or a SEG whose declared frames exceed the limits, before decoding."""
    import pydicom

    if not is_dicom_seg(path):
        raise InvalidInputError(
            f"{path.name}: a DICOM label map must be a DICOM Segmentation (SEG) object; this file is another kind "
            "of DICOM (give the MRI as the image, not as the label map)."
        )
    header = pydicom.dcmread(path, stop_before_pixels=True)
    frames = int(getattr(header, "NumberOfFrames", 1) or 1)
    size = (int(getattr(header, "Columns", 0) or 0), int(getattr(header, "Rows", 0) or 0), frames)
    (limits or ImageLimits.from_env()).check(size, path.name)


def read_dicom_seg(path: Path, *, limits: ImageLimits | None = None):
    """A DICOM-SEG as canonical labels (a :class:`~pipeline.io.labelmaps.LoadedLabels`) on the SEG's own grid,
    whose Volume ``source`` places it on an image's grid (``align_to_grid``)."""
    import highdicom as hd

    from ..labels import LabelScheme
    from .label_types import LoadedLabels

    path = Path(path)
    preflight_dicom_seg(path, limits)
    try:
        segmentation = hd.seg.segread(path)
    except Exception as exc:  # highdicom refuses malformed SEGs in many ways
        raise InvalidInputError(f"{path.name}: the DICOM-SEG cannot be read ({exc}). Export it again.") from exc
    matches = tuple(match_segment(item) for item in segmentation.SegmentSequence)
    mapped = sorted({m.structure for m in matches if m.structure})
    if not mapped:
        listed = ", ".join(f"'{m.label}'" for m in matches)
        raise InvalidInputError(
            f"{path.name}: none of the DICOM-SEG's segments ({listed}) is a knee structure KneeScope knows (femur, "
            "tibia, patella, cartilage, menisci), by its codes or its label. Name the segments, e.g. "
            "'femoral cartilage'."
        )
    facts = {
        "file_name": path.name,
        "file_size_bytes": path.stat().st_size,
        "sha256": sha256_of(path),
        "source_format": "DICOM-SEG",
    }
    own_grid = _own_grid(segmentation, matches, path.name, facts)  # also when an image will place it: cheap
    reader = DicomSegLabels(
        path.name,
        segmentation,
        matches,
        tuple(str(item.SeriesInstanceUID) for item in segmentation.get("ReferencedSeriesSequence", [])),
        frozenset(str(sop) for _, _, sop in segmentation.get_source_image_uids()),
        own_grid,
    )
    scheme = LabelScheme(SCHEME_NAME, {name: L.CANONICAL[name] for name in mapped})
    ignored = {m.number: _voxels(segmentation, m.number) for m in matches if m.structure is None}
    note = f"{path.name}: DICOM-SEG segments mapped by their codes and labels: " + "; ".join(
        m.describe() for m in matches
    )
    volume = Volume(own_grid.array, own_grid.spacing, own_grid.origin, own_grid.direction, own_grid.meta, reader)
    return LoadedLabels(volume.with_meta(label_scheme=SCHEME_NAME), scheme, ignored, note)


# --- segments -> structures -------------------------------------------------------------------------------------
def match_segment(item: Any) -> SegmentMatch:
    """The structure of one SegmentSequence item: by its codes, else by its label, else None."""
    number, label = int(item.SegmentNumber), str(getattr(item, "SegmentLabel", "") or "")
    structure = structure_for_codes(item)
    if structure is not None:
        return SegmentMatch(number, label, structure, "codes")
    structure = structure_for_label(label)
    return SegmentMatch(number, label, structure, "label" if structure else "unmapped")


def _code(sequence: Any) -> str | None:
    if not sequence:
        return None
    value = str(sequence[0].CodeValue)
    return C.SYNONYMS.get(value, value)


def structure_for_codes(item: Any) -> str | None:
    """A structure from the segmented property type, its anatomic region and their modifiers; None when the codes
    do not decide it (generic codes, or cartilage/meniscus without its side)."""
    kind = _code(item.get("SegmentedPropertyTypeCodeSequence"))
    regions = item.get("AnatomicRegionSequence") or []
    region = _code(regions)
    modifiers = set()
    for holder in (*regions, *(item.get("SegmentedPropertyTypeCodeSequence") or [])):
        for key in ("AnatomicRegionModifierSequence", "SegmentedPropertyTypeModifierCodeSequence"):
            modifiers |= {str(m.CodeValue) for m in holder.get(key, [])}
    bones = {code.value: bone for bone, code in C.BONE_CONCEPTS.items()}
    side = {C.MEDIAL.value: "medial", C.LATERAL.value: "lateral"}
    sides = {side[m] for m in modifiers if m in side}
    one_side = next(iter(sides)) if len(sides) == 1 else None
    if kind in bones:
        return bones[kind]
    if kind == C.BONE.value and region in bones:
        return bones[region]
    if kind == C.CARTILAGE.value:
        bone = bones.get(region or "")
        if bone == L.FEMUR:
            return L.FEMORAL_CARTILAGE  # whole, or a subregion of it (merged)
        if bone == L.PATELLA:
            return L.PATELLAR_CARTILAGE
        if bone == L.TIBIA and one_side:
            return f"{one_side}_tibial_cartilage"
    if kind == C.MENISCUS.value and one_side:
        return f"{one_side}_meniscus"
    return None


def structure_for_label(label: str) -> str | None:
    """A structure from a segment label ('Femoral cartilage', 'fem_cart', 'femoral_trochlea', 'MTC', ...)."""
    from ..segmentation.label_map import structure_for_label_name

    normal = label.strip().lower().replace(" ", "_").replace("-", "_")
    if normal in L.FEMORAL_SUBREGIONS:
        return L.FEMORAL_CARTILAGE
    return structure_for_label_name(label) if label else None


# --- pixels -------------------------------------------------------------------------------------------------------
def combine(matches: tuple[SegmentMatch, ...], fetch, name: str) -> np.ndarray:
    """Canonical labels from the mapped segments: each structure the union of its segments; ``fetch(numbers)``
    returns (..., len(numbers)) masks. Segments of different structures must not overlap."""
    groups: dict[str, list[int]] = defaultdict(list)
    for m in matches:
        if m.structure:
            groups[m.structure].append(m.number)
    out: np.ndarray | None = None
    for structure in L.STRUCTURES:
        numbers = groups.get(structure)
        if not numbers:
            continue
        mask = (fetch(numbers) >= 0.5).any(axis=-1)  # FRACTIONAL segments: at least half the voxel
        if out is None:
            out = np.zeros(mask.shape, dtype=np.uint8)
        clash = mask & (out != 0)
        if clash.any():
            other = L.STRUCTURES[int(np.bincount(out[clash]).argmax()) - 1]
            raise InvalidInputError(
                f"{name}: the DICOM-SEG's {structure} and {other} segments overlap in {int(clash.sum())} voxels; "
                "KneeScope needs each voxel in one structure. Remove the overlap (e.g. Slicer's 'Overwrite other "
                "segments') and export the SEG again."
            )
        out[mask] = L.CANONICAL[structure]
    assert out is not None  # read_dicom_seg refuses a SEG without a knee structure
    return out


def pixel_type(segmentation: Any) -> type:
    """Fractions (0-1, thresholded at 0.5) for a FRACTIONAL SEG; bytes (0/1) otherwise, a quarter of the memory."""
    return np.float32 if getattr(segmentation, "SegmentationType", "") == "FRACTIONAL" else np.uint8


def _voxels(segmentation: Any, number: int) -> int:
    """Voxels of one (ignored) segment, for the QC warning."""
    frames = [
        i
        for i, item in enumerate(segmentation.PerFrameFunctionalGroupsSequence)
        if "SegmentIdentificationSequence" in item
        and int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber) == number
    ]
    if not frames:
        return 0
    pixels = segmentation.pixel_array.reshape(-1, int(segmentation.Rows), int(segmentation.Columns))
    return int(np.count_nonzero(pixels[frames]))


def _own_grid(segmentation: Any, matches: tuple[SegmentMatch, ...], name: str, facts: dict) -> Volume:
    """The SEG on its own grid, from its frames' positions (highdicom tolerates the jitter of real series: 1 % of
    the slice spacing); an error when its frames are not evenly spaced parallel slices."""
    try:
        geometry = segmentation.get_volume_geometry()
    except Exception:  # highdicom raises for frames without positions (e.g. 2-D derived SEGs)
        geometry = None
    if geometry is None:
        raise InvalidInputError(
            f"{name}: the DICOM-SEG's frames are not evenly spaced parallel slices, so they form no 3-D label map. "
            "Export the segmentation of the whole 3-D series."
        )

    def fetch(numbers: list[int]) -> np.ndarray:
        return segmentation.get_volume(segment_numbers=numbers, dtype=pixel_type(segmentation)).array

    labels = combine(matches, fetch, name)
    affine = np.asarray(geometry.affine, dtype=float)  # (slice, row, column) index -> patient LPS mm
    columns = affine[:3, [2, 1, 0]]  # KneeScope's (i, j, k) = (column, row, slice)
    spacing = np.linalg.norm(columns, axis=0)
    return Volume(labels, tuple(spacing), tuple(affine[:3, 3]), columns / spacing, meta=dict(facts))
