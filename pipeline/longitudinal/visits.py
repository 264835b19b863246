"""The two visits of a comparison, whatever form they come in, read into one type: :class:`Visit`.

A visit is an analysis in memory (``KneeAnalysis``), an analysis output folder (``results.json``, ``labels.nrrd``,
``meshes/<bone>.vtk``, ``provenance.json``) or its results zip, or an input not analysed yet: a label map or an
MRI, which goes through ``Engine.analyze`` first (the one way any knee is analysed). A volume file is a label map
when its voxels are a few whole numbers, an MRI otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import labels as L
from ..config import AnalysisConfig
from ..errors import InvalidInputError
from ..morphometry.anatomy import Laterality
from ..morphometry.mesh import Surface
from ..request import AnalysisRequest
from ..volume import Volume

if TYPE_CHECKING:
    from ..engine import Engine
    from ..report.results import KneeAnalysis

VisitInput = Any  # KneeAnalysis, a path (folder, zip, label map, MRI) or a Volume
#: A volume with at most this many distinct whole-number values is a label map; an MRI has thousands.
MAX_LABEL_VALUES = 64
RESULTS_FILES = ("results.json", "labels.nrrd")
GENERIC_STEMS = ("labels", "image", "subregions")


@dataclass(frozen=True)
class Visit:
    """One visit's analysis, as much of it as a comparison needs.

    Attributes:
        source: 'analysis' (in memory), 'analysis folder', 'results zip', 'label map' or 'MRI'.
        name: the file or folder name it came from (None in memory).
        labels: canonical label map; regions: its cartilage region id per voxel (femoral 11-15, tibial 5/6,
            patellar 7; 0 elsewhere), as the analysis labelled them.
        bones: bone surfaces (with the analysis's ``thickness_mm`` and ``region`` point arrays).
        config: the analysis parameters it was measured with.
        inputs: the analysis's input record (file names, checksums, geometry).
        analysis: the full analysis when it was made (or given) in memory, so it can be written with the comparison.
        warnings: the analysis's QC warnings (a demo-model segmentation says so here).
    """

    case_id: str
    source: str
    name: str | None
    laterality: Laterality
    labels: Volume
    regions: np.ndarray
    bones: dict[str, Surface]
    cartilage_volumes_mm3: dict[str, float | None]
    config: AnalysisConfig
    inputs: dict
    analysis: KneeAnalysis | None = None
    results_sha256: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def analysed_here(self) -> bool:
        return self.source in ("label map", "MRI")

    def to_dict(self) -> dict:
        return {
            "case_id": self.case_id,
            "source": self.source,
            "name": self.name,
            "laterality": self.laterality.side,
            "labels_sha256": (self.inputs.get("labels") or {}).get("sha256"),
            "image_sha256": (self.inputs.get("image") or {}).get("sha256"),
            "results_sha256": self.results_sha256,
        }


def visit_from_analysis(analysis: KneeAnalysis, *, source: str = "analysis", name: str | None = None) -> Visit:
    return Visit(
        case_id=analysis.case_id,
        source=source,
        name=name,
        laterality=analysis.laterality,
        labels=analysis.labels,
        regions=region_ids(analysis.subregions.array),
        bones={bone: analysis.surfaces[bone] for bone in L.BONES if bone in analysis.surfaces},
        cartilage_volumes_mm3={c: analysis.structures[c].volume_mm3 for c in L.CARTILAGES},
        config=analysis.config,
        inputs=analysis.inputs,
        analysis=analysis,
        warnings=analysis.warnings,
    )


def read_analysis_folder(folder: Path, *, source: str = "analysis folder", name: str | None = None) -> Visit:
    """A visit from an analysis output folder (``python -m pipeline analyze --out FOLDER``)."""
    from ..io import load_label_map

    missing = [f for f in RESULTS_FILES if not (folder / f).is_file()]
    if missing:
        raise InvalidInputError(
            f"{name or folder.name}: not a KneeScope analysis output ({', '.join(missing)} missing). Give the folder "
            "`python -m pipeline analyze ... --out` wrote, its results zip, a label map or an MRI."
        )
    raw = (folder / "results.json").read_bytes()
    try:
        results = json.loads(raw)
        laterality = Laterality(**results["laterality"])
        volumes = {c: results["structures"][c]["volume_mm3"] for c in L.CARTILAGES}
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{name or folder.name}: results.json is not a KneeScope result ({exc}).") from exc
    bones = {bone: _read_bone(folder / "meshes" / f"{bone}.vtk") for bone in L.BONES}
    labels = load_label_map(folder / "labels.nrrd", "canonical").volume
    return Visit(
        case_id=str(results.get("case_id") or folder.name),
        source=source,
        name=name or folder.name,
        laterality=laterality,
        labels=labels,
        regions=_read_regions(folder, labels, laterality),
        bones={bone: surface for bone, surface in bones.items() if surface is not None},
        cartilage_volumes_mm3=volumes,
        config=_config_from(folder / "provenance.json"),
        inputs=results.get("input") or {},
        results_sha256=hashlib.sha256(raw).hexdigest(),
        warnings=tuple((results.get("qc") or {}).get("warnings") or ()),
    )


def region_ids(subregions: np.ndarray) -> np.ndarray:
    """Region id per voxel from a subregion label map (cartilage voxels keep their region, the rest 0)."""
    return np.where(np.isin(subregions, list(L.REGION_IDS.values())), subregions, 0).astype(np.uint8)


def _read_regions(folder: Path, labels: Volume, laterality: Laterality) -> np.ndarray:
    """The analysis's regions (subregions.nii.gz: only its voxels are used, on the labels.nrrd grid)."""
    from ..io.files import read_volume_file

    path = folder / "subregions.nii.gz"
    if path.is_file():
        subregions = read_volume_file(path).array
        if subregions.shape == labels.array.shape:
            return region_ids(subregions)
    from ..morphometry.anatomy import femoral_subregions, region_map

    femoral, _ = femoral_subregions(labels, laterality, _config_from(folder / "provenance.json"))
    return region_map(labels, femoral)


def _read_bone(path: Path) -> Surface | None:
    if not path.is_file():
        return None
    import pyvista as pv

    mesh = pv.read(str(path))
    if not {"thickness_mm", "region"} <= set(mesh.point_data.keys()):
        raise InvalidInputError(f"{path.name}: a bone surface without its thickness arrays; re-run the analysis.")
    faces = np.asarray(mesh.faces).reshape(-1, 4)[:, 1:].astype(np.int64)
    arrays = {key: np.asarray(mesh.point_data[key]) for key in ("thickness_mm", "region")}
    return Surface(path.stem, np.asarray(mesh.points, dtype=np.float64), faces, arrays)


def _config_from(provenance: Path) -> AnalysisConfig:
    """The analysis parameters recorded in provenance.json (defaults for any not recorded)."""
    if not provenance.is_file():
        return AnalysisConfig()
    try:
        parameters = json.loads(provenance.read_text()).get("parameters") or {}
    except ValueError:
        return AnalysisConfig()
    known = {f.name for f in dataclasses.fields(AnalysisConfig)}
    return AnalysisConfig(**{k: v for k, v in parameters.items() if k in known})


def load_visit(
    item: VisitInput,
    *,
    engine: Callable[[bool], Engine],
    request: AnalysisRequest | None = None,
    progress=None,
) -> Visit:
    """Read (or analyse) one visit.

    Args:
        item: a KneeAnalysis, an analysis folder or results zip, a label map or MRI file (or DICOM folder/zip),
            or a Volume.
        engine: engine(segment) -> the Engine to analyse with (segment: an MRI must be segmented).
        request: how a label map or MRI is analysed here (label scheme, config), as a request without inputs.
    """
    from ..report.results import KneeAnalysis

    if isinstance(item, KneeAnalysis):
        return visit_from_analysis(item)
    if isinstance(item, Volume):
        return _analysed(item, None, engine, request, progress)
    path = Path(item)
    if path.is_dir() and (path / "results.json").is_file():
        return read_analysis_folder(path)
    if path.is_file() and path.name.lower().endswith(".zip") and _is_results_zip(path):
        from ..io import unpacked

        with unpacked(path) as folder:
            root = next((p.parent for p in sorted(folder.rglob("results.json"))), folder)
            return read_analysis_folder(root, source="results zip", name=path.name)
    return _analysed(path, path, engine, request, progress)


def _is_results_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(Path(name).name == "results.json" for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _analysed(item, path: Path | None, engine, request: AnalysisRequest | None, progress) -> Visit:
    """Analyse a label map or an MRI through the engine (no T2: a comparison measures thickness)."""
    from ..io import load_image

    volume = load_image(path) if path is not None else item
    case_id = _case_id(path) if path is not None else str(volume.meta.get("name") or "knee")
    name = path.name if path is not None else None
    options = (request or AnalysisRequest()).with_changes(t2=False, case_id=case_id)
    if is_label_map(volume):
        analysis = engine(False).run(options.with_changes(labels=volume), progress=progress)
        return visit_from_analysis(analysis, source="label map", name=name)
    analysis = engine(True).run(options.with_changes(image=volume), progress=progress)
    return visit_from_analysis(analysis, source="MRI", name=name)


def _case_id(path: Path) -> str:
    """The file's stem, or its folder's name for the generic names KneeScope writes (labels.nrrd, image.nrrd)."""
    from ..io import file_stem

    stem = file_stem(path)
    return (path.resolve().parent.name or stem) if stem in GENERIC_STEMS else stem


def is_label_map(volume: Volume) -> bool:
    """A few distinct whole-number values: a segmentation, not an image."""
    data = volume.array
    if not np.issubdtype(data.dtype, np.integer) and not np.array_equal(data, np.rint(data)):
        return False
    sample = data.ravel()[:: max(1, data.size // 2_000_000)]
    return len(np.unique(sample)) <= MAX_LABEL_VALUES and len(np.unique(data)) <= MAX_LABEL_VALUES
