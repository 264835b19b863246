"""What a label map read into canonical values is (``LoadedLabels``) and how its scheme may be given (``SchemeSpec``):
shared by the label-map readers (NIfTI/NRRD/MHA in ``labelmaps``, DICOM-SEG in ``dicom_seg_reader``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..labels import LabelScheme
from ..volume import Volume

#: 'auto', 'native', 'canonical', a JSON file, a dict of structure -> value, or a LabelScheme.
SchemeSpec = str | Path | Mapping[str, int] | LabelScheme


@dataclass(frozen=True)
class LoadedLabels:
    """A label map converted to the canonical scheme, and what the conversion found."""

    volume: Volume
    scheme: LabelScheme
    ignored_values: dict[int, int]  # value -> voxel count, for values the scheme does not name
    note: str | None = None  # how an 'auto' scheme was decided
