"""Label maps: read one and convert it to the canonical scheme, reporting the values the scheme does not name.

The one reader the CLI, the app, batch runs and the comparison share: NIfTI, NRRD and MHA files through a label
scheme, and DICOM Segmentation objects (``dicom_seg_reader``: segments mapped by their codes, placed on the image
by the instances they reference).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from ..labels import LabelScheme, resolve_scheme
from ..volume import Volume, value_counts
from .files import check_3d, read_volume_file, with_file_facts
from .label_types import LoadedLabels, SchemeSpec
from .limits import ImageLimits
from .sanity import check_finite_labels, check_geometry

LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".dcm")
AUTO = "auto"
#: 'auto' decides between the two published schemes by where the bones are: they are the three largest structures,
#: labels 1-3 in canonical maps and 7-9 in native ones; the winner must hold this many times the other's voxels.
AUTO_MARGIN = 3.0


def detect_scheme(counts: np.ndarray, name: str) -> tuple[LabelScheme, str]:
    """'native' or 'canonical' from per-value voxel counts, with a note saying why; an error when unsure."""
    from ..labels import CANONICAL_SCHEME, NATIVE_SCHEME

    present = [v for v, c in enumerate(counts) if c and v]
    if not present:  # nothing labelled: the analysis says "no knee structures found"
        return CANONICAL_SCHEME, "The label map is empty."
    canonical_bones, native_bones = float(counts[1:4].sum()), float(counts[7:10].sum()) if len(counts) > 7 else 0.0
    if present and max(present) <= 9:
        for scheme, mine, other in (
            (NATIVE_SCHEME, native_bones, canonical_bones),
            (CANONICAL_SCHEME, canonical_bones, native_bones),
        ):
            if mine > AUTO_MARGIN * other:
                share = mine / max(float(counts[1:].sum()), 1.0)
                return scheme, (
                    f"Label scheme detected as '{scheme.name}': its bone labels hold {share:.0%} of the "
                    "labelled voxels (give the scheme explicitly to skip this guess)."
                )
    raise InvalidInputError(
        f"{name}: cannot tell its label scheme (values {present[:12]}): it is neither the published knee "
        "nnU-Net's ('native') nor KneeScope's ('canonical') layout. Give it explicitly: --label-scheme native, "
        "canonical, or a JSON file mapping structure names to values."
    )


def to_canonical(volume: Volume, scheme: SchemeSpec, *, name: str = "label map") -> LoadedLabels:
    """Remap a label map to canonical values; values the scheme does not name become background.

    ``scheme='auto'`` chooses between 'native' and 'canonical' from the bones' label values (see detect_scheme).
    """
    data = volume.array
    if not np.issubdtype(data.dtype, np.integer):
        rounded = np.rint(data)
        if not np.allclose(data, rounded, atol=1e-3):
            raise InvalidInputError(
                f"{name} holds non-integer values (e.g. {float(data.flat[np.argmax(np.abs(data - rounded))]):.3f}); "
                "is it an MRI rather than a segmentation? Give the label map with --labels."
            )
        data = rounded
    low, high = data.min(), data.max()
    if low < 0 or high > 65535:
        raise InvalidInputError(f"{name}: label values range {low:g}..{high:g}; expected 0..255 labels.")
    if data.dtype not in (np.uint8, np.uint16):  # the narrowest type that holds them: less memory to count and map
        data = data.astype(np.uint8 if high <= 255 else np.uint16)
    counts = value_counts(data)
    note = None
    if isinstance(scheme, str) and scheme.lower() == AUTO:
        scheme, note = detect_scheme(counts, name)
    scheme = resolve_scheme(scheme)
    present = {int(v): int(c) for v, c in enumerate(counts) if c and v}
    lut = np.zeros(len(counts), dtype=np.uint8)
    table = scheme.remap_table()
    for value, canonical in table.items():
        if value < len(lut):
            lut[value] = canonical
    ignored = {v: c for v, c in present.items() if v not in table}
    out = Volume(lut[data], volume.spacing, volume.origin, volume.direction, meta={**volume.meta})
    return LoadedLabels(out.with_meta(label_scheme=scheme.name), scheme, ignored, note)


def check_label_map_path(path: str | Path) -> None:
    """A label map's path: it exists and has a label-map suffix (cheap; before any model loads)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path.name}: label map not found.")
    if _is_dicom(path):
        return  # a DICOM-SEG: its reader checks its header (kind and size) before decoding
    if not path.name.lower().endswith(LABEL_SUFFIXES):
        raise InvalidInputError(
            f"{path.name}: label maps must be NIfTI (.nii/.nii.gz), NRRD (.nrrd), MHA (.mha) or a DICOM-SEG (.dcm)."
        )


def load_label_map(path: str | Path, scheme: SchemeSpec, *, limits: ImageLimits | None = None) -> LoadedLabels:
    """Read a NIfTI/NRRD/MHA label map (its header checked, its data decoded once) in canonical values, or a
    DICOM-SEG (whose segments are mapped by their codes: ``scheme`` does not apply)."""
    path = Path(path)
    check_label_map_path(path)
    if _is_dicom(path):
        from .dicom_seg_reader import read_dicom_seg

        return read_dicom_seg(path, limits=limits)
    volume = with_file_facts(read_volume_file(path, limits), path)
    check_3d(volume, path.name)
    check_geometry(volume, path.name)
    check_finite_labels(volume, path.name)
    return to_canonical(volume, scheme, name=path.name)


def _is_dicom(path: Path) -> bool:
    """A .dcm name, or an extensionless DICOM file as PACS exports write them."""
    from .dicom import is_dicom_file

    return path.name.lower().endswith(".dcm") or (path.is_file() and is_dicom_file(path))
