"""Write an analysis to a folder: label maps, meshes, GLB, results JSON/CSV, provenance, the DICOM objects (SEG, SR,
T2 Parametric Map: DICOM inputs), the PDF case report with its PNG preview, and one zip."""

from __future__ import annotations

import csv
import json
import logging
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from .. import labels as L
from .dicom_outputs import write_dicom_objects
from .meshes import knee_glb_layers, write_glb, write_vtk
from .pdf import report_file_names, write_case_report
from .table import row_of

if TYPE_CHECKING:
    from .analysis_view import AnalysisView
from ..io import write_volume

logger = logging.getLogger(__name__)


def write_outputs(
    result: AnalysisView, out_dir: Path, *, make_zip: bool = True, results: dict | None = None
) -> dict[str, Path]:
    """Write all files of ``result`` (a KneeAnalysis) under ``out_dir``; returns name -> path.

    ``results``: ``result.to_dict()`` when the caller has it already (it is derived once per case); it is completed
    here with what writing found (the DICOM objects' outcomes, the files), as results.json is. The PDF renders in a
    second thread while the label maps, meshes and GLB are written and compressed into the zip: matplotlib holds
    Python's lock, ITK, VTK and zlib mostly release it, so the two share the cores instead of taking turns.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    results = results if results is not None else result.to_dict()
    dicom_files = write_dicom_objects(result, out_dir, results)  # first: the PDF and the CSV show their outcome
    pdf_name, png_name = report_file_names(result.case_id)
    archive = ZipAppender(out_dir, out_dir / f"{result.case_id}_results.zip") if make_zip else None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="case-report") as pool:
            report = pool.submit(write_case_report, result, results, out_dir / pdf_name, out_dir / png_name)
            files = {**_volumes(result, out_dir), **_meshes(result, out_dir), **dicom_files}
            if archive is not None:
                archive.add(files.values())
            files[pdf_name], files[png_name] = report.result(), out_dir / png_name
        results["files"] = [*sorted(files), "results.json", "results.csv", "provenance.json"]
        files["results.json"] = write_json(out_dir / "results.json", results)
        files["results.csv"] = write_csv(out_dir / "results.csv", row_of(results))  # the same numbers as the JSON
        files["provenance.json"] = write_json(out_dir / "provenance.json", result.provenance)
        if archive is not None:
            archive.add(files[name] for name in (pdf_name, png_name, "results.json", "results.csv", "provenance.json"))
            files["zip"] = archive.close()
    finally:
        if archive is not None:
            archive.abandon()  # a failure part-way leaves no half-written zip (a no-op once closed)
    return files


def preload_writers() -> None:
    """Import what the writers need (matplotlib's PDF backend, trimesh, VTK's legacy writer: about a second). A
    one-case process (the CLI) runs this in a background thread while it reads and measures, so the writing does
    not wait for it; a long-lived process (the app, a cohort worker) pays it once anyway."""
    import matplotlib.backends.backend_pdf
    import matplotlib.figure  # noqa: F401
    import trimesh  # noqa: F401
    import vtkmodules.util.numpy_support
    import vtkmodules.vtkIOLegacy  # noqa: F401


def _volumes(result: AnalysisView, out_dir: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    files["labels.nii.gz"] = write_volume(result.labels, out_dir / "labels.nii.gz")
    # NRRD keeps the direction cosines in double precision (a NIfTI round trip perturbs them, see the docs).
    files["labels.nrrd"] = write_volume(result.labels, out_dir / "labels.nrrd")
    files["subregions.nii.gz"] = write_volume(result.subregions, out_dir / "subregions.nii.gz")
    files["label_table.json"] = write_json(out_dir / "label_table.json", L.label_table())
    if result.t2_map is not None and result.depth_labels is not None:
        files["t2map.nii.gz"] = write_volume(result.t2_map, out_dir / "t2map.nii.gz")
        files["depth_labels.nrrd"] = write_volume(result.depth_labels, out_dir / "depth_labels.nrrd")
    return files


def _meshes(result: AnalysisView, out_dir: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for name, surface in result.surfaces.items():
        files[f"meshes/{name}.vtk"] = write_vtk(surface, out_dir / "meshes" / f"{name}.vtk")
    if result.shape_fit is not None:
        files["nsm_params.json"] = result.shape_fit.write_params(out_dir / "nsm_params.json")
    layers = knee_glb_layers(result.surfaces, vmax_mm=result.config.thickness_colour_max_mm)
    if layers:
        files["knee.glb"] = write_glb(layers, out_dir / "knee.glb")
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
    archive = ZipAppender(out_dir, target)
    archive.add(files.values())
    return archive.close()


#: Members already compressed (or not worth it) are stored as they are: deflating them again costs time for nothing.
STORED_SUFFIXES = (".gz", ".png", ".pdf", ".zip")
#: Level 1: on the meshes (binary floats, most of the zip) it compresses as well as level 6 (2.75x) in a sixth of the
#: time (bench/RESULTS.md).
ZIP_LEVEL = 1
#: Members up to this size are read and compressed whole (see ZipAppender.add); larger ones (a T2 parametric map of a
#: big series) are streamed, so a zip never holds more than this in memory.
WHOLE_MEMBER_BYTES = 64 * 1024 * 1024


class ZipAppender:
    """A results zip filled as its files are ready; members named relative to ``out_dir``."""

    def __init__(self, out_dir: Path, target: Path):
        self.out_dir, self.target = out_dir, target
        self._archive: zipfile.ZipFile | None = zipfile.ZipFile(
            target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL
        )

    def add(self, paths) -> None:
        assert self._archive is not None, "the zip is closed"
        for path in paths:
            stored = path.name.lower().endswith(STORED_SUFFIXES)
            kind = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info = zipfile.ZipInfo.from_file(path, arcname=str(path.relative_to(self.out_dir)))
            if info.file_size > WHOLE_MEMBER_BYTES:
                self._archive.write(path, arcname=info.filename, compress_type=kind)
                continue
            # One compression call per member: ZipFile.write feeds zlib 8 kB at a time, and each call gives up
            # Python's lock and must win it back, so beside a busy Python thread (the PDF report, another job of
            # the app) a 14 MB zip took 14 s instead of 0.17 s (bench/zip_under_load.py).
            self._archive.writestr(info, path.read_bytes(), compress_type=kind, compresslevel=ZIP_LEVEL)

    def close(self) -> Path:
        if self._archive is not None:
            self._archive.close()
            self._archive = None
        return self.target

    def abandon(self) -> None:
        """Remove a zip that was not closed (the writing failed part-way)."""
        if self._archive is not None:
            self._archive.close()
            self._archive = None
            self.target.unlink(missing_ok=True)
