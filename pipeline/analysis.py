"""From a knee label map (and optionally its image) to meshes, thickness, regions and QC: ``analyze_labels``.

Each stage is a pure function in its own module; this module only sequences them, times them and reports
progress through an optional callback ``progress(fraction, message)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import anatomy, qc
from . import labels as L
from .config import AnalysisConfig
from .errors import EmptySegmentationError, GeometryMismatchError
from .io import LoadedLabels, file_stem, load_image, load_label_map, to_canonical
from .labels import LabelScheme
from .mesh import Surface, surface_from_mask
from .provenance import build_provenance
from .results import KneeAnalysis, RegionResult, ThicknessStats
from .shape_stage import ShapeOptions, run_shape_stage
from .t2_stage import run_t2_stage
from .thickness import ThicknessMap, mean_along_runs, measure_thickness
from .volume import Volume

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    return None


class _Stages:
    """Times named stages and forwards progress."""

    def __init__(self, progress: ProgressFn | None, start: float = 0.0, end: float = 1.0):
        self.report = progress or _no_progress
        self.start, self.end = start, end
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, fraction: float, message: str):
        self.report(self.start + fraction * (self.end - self.start), message)
        t0 = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0


def analyze_labels(
    labels: str | Path | Volume,
    *,
    scheme: str | Path | dict | LabelScheme = "canonical",
    image: str | Path | Volume | None = None,
    config: AnalysisConfig | None = None,
    case_id: str | None = None,
    progress: ProgressFn | None = None,
    extra_provenance: dict | None = None,
    t2: bool | None = None,
    shape_model: ShapeOptions | None = None,
) -> KneeAnalysis:
    """Analyse a knee segmentation: structures, QC, knee side, femoral subregions, meshes, thickness.

    Args:
        labels: label map file (NIfTI/NRRD/MHA) or Volume, in ``scheme``.
        scheme: 'native', 'canonical', a JSON file or a dict of structure name -> label value.
        image: the MRI the labels belong to (file or Volume); its grid must match the labels'.
        config: analysis parameters (defaults: AnalysisConfig()).
        case_id: name used for output files; defaults to the label (or image) file stem.
        progress: optional callback(fraction in [0, 1], message).
        extra_provenance: merged into the provenance record (e.g. segmentation model details).
        t2: qDESS T2 mapping: None = when the image is a qDESS DICOM series, True = requested (a warning says
            why when it cannot run), False = skip.
        shape_model: run the neural shape model and BScore with these options (None = not requested).
    """
    config = config or AnalysisConfig()
    stages = _Stages(progress)
    with stages.stage("load", 0.0, "Loading label map"):
        loaded = _load_labels(labels, scheme)
        image_volume = load_image(image) if isinstance(image, (str, Path)) else image
    canonical = loaded.volume
    if image_volume is not None:
        problems = image_volume.same_grid(canonical)
        if problems:
            raise GeometryMismatchError(
                "The label map does not lie on the image's voxel grid (" + "; ".join(problems) + "). "
                "Give the segmentation that was made from this image, or resample it onto the image first."
            )
    case_id = case_id or _default_case_id(labels, image)

    with stages.stage("structures", 0.05, "Checking structures"):
        stats = qc.structure_stats(canonical)
        if not any(s.present for s in stats.values()):
            raise EmptySegmentationError(
                "No knee structures found in the label map (all voxels are background or unnamed labels"
                + (f": values {sorted(loaded.ignored_values)}" if loaded.ignored_values else "")
                + "). Check the label scheme."
            )
        warnings = qc.qc_warnings(stats, loaded.ignored_values)
        laterality = anatomy.detect_laterality(canonical)
        if laterality.side == "unknown":
            warnings.append("Knee side could not be determined (" + laterality.method + ").")

    with stages.stage("regions", 0.15, "Femoral subregions"):
        femoral, region_warnings = anatomy.femoral_subregions(canonical, laterality, config)
        warnings.extend(region_warnings)
        regions = anatomy.region_map(canonical, femoral)
        subregions = canonical.with_array(anatomy.subregion_label_map(canonical, femoral), content="subregions")

    with stages.stage("meshes", 0.25, "Building surfaces"):
        surfaces = build_surfaces(canonical, config)

    with stages.stage("thickness", 0.7, "Measuring cartilage thickness"):
        thickness_maps = {}
        for bone, cartilages in L.BONE_CARTILAGE.items():
            if bone not in surfaces:
                continue
            values = tuple(L.CANONICAL[c] for c in cartilages)
            tmap = measure_thickness(surfaces[bone], canonical, values, regions, config)
            thickness_maps[bone] = tmap
            surfaces[bone] = surfaces[bone].with_point_data(thickness_mm=tmap.thickness_mm, region=tmap.region)
        areas = {bone: surfaces[bone].vertex_areas() for bone in thickness_maps}
        cartilage = summarise_regions(thickness_maps, areas, regions, canonical)
        warnings.extend(_region_warnings(cartilage, stats))

    with stages.stage("t2", 0.9, "T2 mapping"):
        t2_outcome = run_t2_stage(image if isinstance(image, (str, Path)) else None, canonical, regions, requested=t2)
        if t2_outcome.warning:
            warnings.append(t2_outcome.warning)
        if t2_outcome.t2map is not None:  # mean T2 across the cartilage along each bone normal, for colouring
            for bone, tmap in thickness_maps.items():
                t2_ms = mean_along_runs(surfaces[bone], tmap, t2_outcome.t2map)
                surfaces[bone] = surfaces[bone].with_point_data(t2_ms=t2_ms)

    with stages.stage("shape_model", 0.93, "Shape model fit"):
        shape = run_shape_stage(surfaces, laterality.side, shape_model)
        if shape.warning:
            warnings.append(shape.warning)
        for surface in shape.surfaces:
            surfaces[surface.name] = surface

    stages.report(1.0, "Analysis complete")
    inputs = {
        "labels": _describe(canonical, loaded.scheme),
        "image": None if image_volume is None else _describe(image_volume),
    }
    provenance = build_provenance(
        parameters=config.to_dict(),
        inputs=inputs,
        timings_s=stages.timings,
        extra={"label_scheme": loaded.scheme.to_dict(), **(extra_provenance or {})},
    )
    return KneeAnalysis(
        case_id=case_id,
        inputs=inputs,
        laterality=laterality,
        structures=stats,
        cartilage=cartilage,
        warnings=tuple(warnings),
        labels=canonical,
        subregions=subregions,
        surfaces=surfaces,
        config=config,
        provenance=provenance,
        image=image_volume,
        t2=t2_outcome.section,
        t2_map=t2_outcome.t2map,
        depth_labels=t2_outcome.depth_labels,
        shape_model=shape.section,
        shape_fit=shape.fit,
    )


def _load_labels(labels: str | Path | Volume, scheme) -> LoadedLabels:
    if isinstance(labels, Volume):
        return to_canonical(labels, scheme)
    return load_label_map(labels, scheme)


def _default_case_id(labels, image) -> str:
    for candidate in (image, labels):
        if isinstance(candidate, (str, Path)):
            return file_stem(Path(candidate))
        if isinstance(candidate, Volume) and candidate.meta.get("name"):
            return str(candidate.meta["name"])
    return "knee"


def _describe(volume: Volume, scheme: LabelScheme | None = None) -> dict:
    info = {
        key: volume.meta[key]
        for key in ("file_name", "file_size_bytes", "sha256", "source_format", "series", "dicom")
        if key in volume.meta
    }
    info.update(volume.geometry_dict())
    if scheme is not None:
        info["label_scheme"] = scheme.name
    return info


def build_surfaces(labels: Volume, config: AnalysisConfig) -> dict[str, Surface]:
    """Every present structure's surface, bones with the bone recipe, cartilage and menisci with the soft one."""
    surfaces: dict[str, Surface] = {}
    for name in L.STRUCTURES:
        mask = labels.array == L.CANONICAL[name]
        if not mask.any():
            continue
        if name in L.BONES:
            var, budget = config.bone_smoothing_var_mm2, config.bone_vertices.get(name, 20_000)
        elif name in L.MENISCI:
            var, budget = config.cartilage_smoothing_var_mm2, config.meniscus_vertices
        else:
            var, budget = config.cartilage_smoothing_var_mm2, config.cartilage_vertices
        surface = surface_from_mask(labels, mask, name=name, smoothing_var_mm2=var, target_vertices=budget)
        if surface is not None and len(surface.faces):
            surfaces[name] = surface
    return surfaces


def summarise_regions(
    thickness_maps: dict[str, ThicknessMap], areas: dict[str, np.ndarray], regions: np.ndarray, labels: Volume
) -> dict[str, RegionResult]:
    """Per reported region: area-weighted thickness statistics over its vertices, and its cartilage volume."""
    voxel_counts = np.bincount(regions.ravel(), minlength=16)
    out = {}
    for region, ids in L.CARTILAGE_REGIONS.items():
        bone = L.REGION_BONE[region]
        n_voxels = int(sum(voxel_counts[i] for i in ids))
        volume = n_voxels * labels.voxel_volume_mm3 if n_voxels else None
        tmap = thickness_maps.get(bone)
        stats = None
        if tmap is not None:
            member = np.isin(tmap.region, ids)
            stats = ThicknessStats.from_values(tmap.thickness_mm[member], areas[bone][member])
        out[region] = RegionResult(bone=bone, thickness_mm=stats, volume_mm3=volume)
    return out


def _region_warnings(cartilage: dict[str, RegionResult], stats) -> list[str]:
    warnings = []
    for region, result in cartilage.items():
        if result.volume_mm3 and result.thickness_mm is None:
            if stats[L.REGION_BONE[region]].present:
                warnings.append(f"Cartilage region {region} has voxels but no bone vertex measured through it.")
            else:
                warnings.append(f"Cartilage region {region} cannot be measured: its bone is missing.")
    return warnings
