"""DOSMA side of bench/t2_vs_dosma.py. Runs ONLY in the benchmark venv bench/.venv-dosma (numpy<1.24, pydicom<3).

Usage: bench/.venv-dosma/bin/python bench/_dosma_side.py SERIES_DIR OUT_DIR OUT.json

DOSMA's own reading and its own qDESS T2: ``DicomReader(num_workers=0).load(folder, group_by="EchoNumbers")`` ->
``QDess(volumes).generate_t2_map(tissue=...)`` with TR, TE, flip angle and the GE spoiler tags read by DOSMA from
the headers. One map per tissue, because DOSMA's default T1 is the tissue's (femoral cartilage 1200 ms, tibial
and patellar cartilage and meniscus 1000 ms); each with DOSMA's defaults (values outside [0, 100] ms -> 0,
rounded to 1 decimal) and once unrounded, unclipped ("raw"). Maps are written as NIfTI (``MedicalVolume.to_nib``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

t_start = time.perf_counter()
import dosma  # noqa: E402
import nibabel as nib  # noqa: E402
from dosma import DicomReader  # noqa: E402
from dosma.scan_sequences import QDess  # noqa: E402
from dosma.tissues import FemoralCartilage, Meniscus, PatellarCartilage, TibialCartilage  # noqa: E402

import_s = time.perf_counter() - t_start
TISSUES = {
    "femoral_cartilage": FemoralCartilage,
    "tibial_cartilage": TibialCartilage,
    "patellar_cartilage": PatellarCartilage,
    "meniscus": Meniscus,
}


def main(series_dir: str, out_dir: str, out_json: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    volumes = DicomReader(num_workers=0).load(series_dir, group_by="EchoNumbers")
    load_s = time.perf_counter() - t0
    scan = QDess(volumes)
    record = {"dosma_version": dosma.__version__, "import_s": import_s, "load_s": load_s, "maps": {}, "t2_s": {}}
    for name, tissue_class in TISSUES.items():
        tissue = tissue_class()
        for kind, options in (("default", {}), ("raw", {"nan_bounds": None, "decimals": None})):
            t0 = time.perf_counter()
            t2 = scan.generate_t2_map(tissue=tissue, suppress_fat=False, suppress_fluid=False, **options)
            record["t2_s"][f"{name}_{kind}"] = time.perf_counter() - t0
            path = out / f"dosma_t2_{name}_{kind}.nii.gz"
            nib.save(t2.volumetric_map.to_nib(), str(path))
            record["maps"][f"{name}_{kind}"] = str(path)
        record.setdefault("t1_ms", {})[name] = float(tissue.T1_EXPECTED)
    Path(out_json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:4])
