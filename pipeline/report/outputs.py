"""Write a KneeAnalysis to a folder: label maps, meshes, GLB, results JSON/CSV, provenance, the DICOM objects (SEG,
SR, T2 Parametric Map: DICOM inputs), the PDF case report with its PNG preview, and one zip."""

from __future__ import annotations

import csv
import json
import logging
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from .. import labels as L
from .dicom_outputs import write_dicom_objects
from .meshes import knee_glb_layers, write_glb, write_vtk
from .pdf import report_file_names, write_case_report
from .table import row_of

if TYPE_CHECKING:
    from .results import KneeAnalysis
from ..io import write_volume

logger = logging.getLogger(__name__)


def write_outputs(result: KneeAnalysis, out_dir: Path, *, make_zip: bool = True) -> dict[str, Path]:
    """Write all files of ``result`` (a KneeAnalysis) under ``out_dir``; returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["labels.nii.gz"] = write_volume(result.labels, out_dir / "labels.nii.gz")
    # NRRD keeps the direction cosines in double precision (a NIfTI round trip perturbs them, see the docs).
    files["labels.nrrd"] = write_volume(result.labels, out_dir / "labels.nrrd")
    files["subregions.nii.gz"] = write_volume(result.subregions, out_dir / "subregions.nii.gz")
    files["label_table.json"] = write_json(out_dir / "label_table.json", L.label_table())
    if result.t2_map is not None and result.depth_labels is not None:
        files["t2map.nii.gz"] = write_volume(result.t2_map, out_dir / "t2map.nii.gz")
        files["depth_labels.nrrd"] = write_volume(result.depth_labels, out_dir / "depth_labels.nrrd")
    for name, surface in result.surfaces.items():
        files[f"meshes/{name}.vtk"] = write_vtk(surface, out_dir / "meshes" / f"{name}.vtk")
    if result.shape_fit is not None:
        files["nsm_params.json"] = result.shape_fit.write_params(out_dir / "nsm_params.json")
    layers = knee_glb_layers(result.surfaces, vmax_mm=result.config.thickness_colour_max_mm)
    if layers:
        files["knee.glb"] = write_glb(layers, out_dir / "knee.glb")
    results = result.to_dict()
    files.update(write_dicom_objects(result, out_dir, results))  # before the PDF and CSV: they show the outcome
    pdf_name, png_name = report_file_names(result.case_id)
    files[pdf_name] = write_case_report(result, results, out_dir / pdf_name, out_dir / png_name)
    files[png_name] = out_dir / png_name
    results["files"] = [*sorted(files), "results.json", "results.csv", "provenance.json"]
    files["results.json"] = write_json(out_dir / "results.json", results)
    files["results.csv"] = write_csv(out_dir / "results.csv", row_of(results))  # the same numbers as results.json
    files["provenance.json"] = write_json(out_dir / "provenance.json", result.provenance)
    if make_zip:
        files["zip"] = zip_files(out_dir, files, out_dir / f"{result.case_id}_results.zip")
    return files


def write_json(path: Path, data: dict) -> Path:
    # allow_nan=False: a NaN would make the file unreadable by strict JSON parsers (a predecessor defect).
    path.write_text(json.dumps(data, indent=2, allow_nan=False))
    return path


def write_csv(path: Path, row: dict) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    return path


def zip_files(out_dir: Path, files: dict[str, Path], target: Path) -> Path:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files.values():
            archive.write(path, arcname=str(path.relative_to(out_dir)))
    return target
