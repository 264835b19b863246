"""What one analysis is asked to do: one frozen value that every caller builds and nothing else.

    request = AnalysisRequest(image="knee_qdess.zip", t2=True, shape_model=True)
    result = engine.run(request)

The CLI, the app's job, the cohort runner (its fingerprint is ``request.options_dict()``), ``compare`` and
``analyze_labels`` build an ``AnalysisRequest``; ``Engine.analyze(image, **options)`` is a keyword wrapper that builds
one. The case id is derived here and only here (:attr:`AnalysisRequest.name`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import AnalysisConfig
from .errors import InvalidInputError
from .io.files import file_stem
from .io.limits import ImageLimits
from .labels import LabelScheme
from .volume import Volume

if TYPE_CHECKING:
    from .io.labelmaps import LoadedLabels
    from .shape.stage import ShapeOptions

#: An image or label map: a file, a DICOM folder or zip (images), or a Volume in memory.
VolumeInput = str | Path | Volume
#: 'auto', 'native', 'canonical', a JSON file, a dict of structure -> value, or a LabelScheme.
SchemeSpec = str | Path | Mapping[str, int] | LabelScheme
DEFAULT_CASE_ID = "knee"


@dataclass(frozen=True)
class AnalysisRequest:
    """One knee to analyse and how.

    Attributes:
        image: the MRI: NIfTI/NRRD/MHA file, DICOM folder or zip, multi-frame DICOM, or a Volume.
        labels: an existing segmentation (file or Volume, or one read already by ``pipeline.io.load_label_map``) in
            ``label_scheme``; without it the image is segmented.
        label_scheme: the scheme of ``labels``: 'auto' (native or canonical, decided from the bones' label values),
            'native', 'canonical', a JSON file, a dict of structure -> value, or a LabelScheme.
        t2: T2 mapping: None = when the image is a T2 series (qDESS or MESE), True = requested (a QC warning says
            why when it cannot run), False = skip.
        shape_model: False = skip; True = the engine's shape model; or explicit ShapeOptions.
        model: a segmentation model other than the engine's default (loaded on first use).
        mirroring: test-time mirroring for this case (None: the engine's inference options).
        config: analysis parameters after segmentation (meshes, thickness, regions).
        case_id: the case's name in the outputs (default: derived from the input's file name, see ``name``).
        limits: largest image accepted, checked from headers before decoding (None: ``ImageLimits.from_env()``).
    """

    image: VolumeInput | None = None
    labels: VolumeInput | LoadedLabels | None = None
    label_scheme: SchemeSpec = "auto"
    t2: bool | None = None
    shape_model: bool | ShapeOptions = False
    model: str | None = None
    mirroring: bool | None = None
    config: AnalysisConfig = field(default_factory=AnalysisConfig)
    case_id: str | None = None
    limits: ImageLimits | None = None

    def __post_init__(self) -> None:
        if self.config is None:  # callers pass config=None for "the defaults" (as Engine.analyze always allowed)
            object.__setattr__(self, "config", AnalysisConfig())
        # Inputs may be missing here: a request without them is the options every case of a cohort shares (each case
        # adds its own); the engine refuses to run one (``check_inputs``).
        for name, value in (("image", self.image), ("labels", self.labels)):
            if isinstance(value, str) and not value.strip():
                raise InvalidInputError(f"The {name} path is empty.")

    def check_inputs(self) -> None:
        """Raise unless there is something to analyse."""
        if self.image is None and self.labels is None:
            raise InvalidInputError("Give a knee MRI, a label map, or both.")

    # --- derived ---------------------------------------------------------------------------------------------------
    @property
    def needs_segmentation(self) -> bool:
        """True when no label map is given: the image is segmented."""
        return self.labels is None

    @property
    def name(self) -> str:
        """The case id: the one given, else the image's (or label map's) file name without its suffix (also when
        it was read already: its Volume keeps the name), else the name a Volume carries in its meta, else 'knee'."""
        if self.case_id:
            return self.case_id
        for candidate in (self.image, _labels_source(self.labels)):
            if isinstance(candidate, (str, Path)):
                return file_stem(Path(candidate))
            if isinstance(candidate, Volume):
                if candidate.meta.get("name"):
                    return str(candidate.meta["name"])
                if candidate.meta.get("file_name"):  # read from a file already: named as the file would be
                    return file_stem(Path(candidate.meta["file_name"]))
        return DEFAULT_CASE_ID

    def with_changes(self, **changes: Any) -> AnalysisRequest:
        return replace(self, **changes)

    # --- records ---------------------------------------------------------------------------------------------------
    def options_dict(self) -> dict:
        """The options that change the numbers, JSON-ready (inputs, case id and limits left out): what makes two
        analyses comparable. A cohort records it once and refuses a folder started with other options."""
        shape = self.shape_model
        return {
            "t2": self.t2,
            "shape_model": shape if isinstance(shape, bool) else _shape_options_dict(shape),
            "model": self.model,
            "mirroring": self.mirroring,
            "config": self.config.to_dict(),
        }

    def to_dict(self) -> dict:
        """Every field, JSON-ready: paths as text, volumes by their name, schemes by their content."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("config", "shape_model")}
        out.update(self.options_dict())
        out["image"] = _describe_input(self.image)
        out["labels"] = _describe_input(_labels_source(self.labels))
        out["label_scheme"] = _scheme_dict(self.label_scheme)
        out["case_id"] = self.name
        limits = self.limits
        out["limits"] = None if limits is None else {"max_voxels": limits.max_voxels, "max_axis": limits.max_axis}
        return out


def _labels_source(labels: Any) -> VolumeInput | None:
    """The file or Volume behind ``labels`` (a LoadedLabels read already keeps its volume)."""
    volume = getattr(labels, "volume", None)
    if volume is not None and not isinstance(labels, Volume):
        file_name = volume.meta.get("file_name")
        return Path(file_name) if file_name else volume
    return labels


def _describe_input(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Volume):
        return f"<Volume {value.meta.get('name') or value.meta.get('file_name') or 'in memory'}>"
    return str(value)


def _scheme_dict(scheme: SchemeSpec) -> object:
    if isinstance(scheme, LabelScheme):
        return scheme.to_dict()
    if isinstance(scheme, Mapping):
        return dict(scheme)
    return str(scheme)


def _shape_options_dict(options: ShapeOptions) -> dict:
    return {
        "model_id": options.model_id,
        "revision": options.revision,
        "fit_overrides": dict(options.fit_overrides),
    }
