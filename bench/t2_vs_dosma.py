"""qDESS T2: KneeScope's map against DOSMA's own ``QDess.generate_t2_map``, voxel by voxel, per region.

Run from the repository root:  .venv/bin/python bench/t2_vs_dosma.py [--json bench/data/t2_vs_dosma.json]

- Data: the synthetic GE qDESS series of ``pipeline.synthetic.qdess.write_qdess_example`` (the phantom knee,
  0.36 x 0.36 x 0.7 mm, GE spoiler tags, Rician noise), written once into bench/data/qdess_example/ (gitignored).
- DOSMA 0.1.2 does not import on NumPy 2 / pydicom 3 (platform-notes §14): it runs in its own venv,
  bench/.venv-dosma (created here: numpy<1.24, pydicom<3, dosma==0.1.2, about 1-3 min), through
  bench/_dosma_side.py, which reads the DICOM series itself and writes one map per DOSMA tissue (DOSMA's T1:
  femoral cartilage 1200 ms, tibial/patellar cartilage and meniscus 1000 ms), with its defaults and unrounded.
- Ours: ``load_image`` -> ``qdess_from_source`` -> ``compute_t2_map``, with the predecessor's T1 (1200 ms for every
  tissue, our default) and with DOSMA's per-tissue T1 (``T2Params(t1_by_tissue_ms=DOSMA_T1_MS)``).
- DOSMA's NIfTI maps are put on our grid exactly (``align_to_grid``: axes permuted/flipped, no interpolation).
- Printed per region (voxels of the true cartilage regions and menisci): median and 99th-percentile absolute
  difference (ms) for (a) both at T1 1200 ms, (b) both with DOSMA's per-tissue T1, (c) unrounded estimates, and
  (d) how far the T1 choice moves our mean (per-tissue minus 1200 ms). Also each region's mean against the truth.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from pipeline import labels as L  # noqa: E402
from pipeline.config import AnalysisConfig  # noqa: E402
from pipeline.io import align_to_grid, load_image  # noqa: E402
from pipeline.morphometry import anatomy  # noqa: E402
from pipeline.synthetic.qdess import write_qdess_example  # noqa: E402
from pipeline.t2 import DOSMA_T1_MS, T2Params, compute_t2_map, qdess_from_source  # noqa: E402

BENCH = ROOT / "bench"
DATA = BENCH / "data"
VENV = BENCH / ".venv-dosma"
VENV_PY = VENV / "bin" / "python"
SIDE = BENCH / "_dosma_side.py"
DOSMA_PINS = ["numpy<1.24", "pydicom<3", "dosma==0.1.2"]
#: Compared regions: name -> (region ids or canonical labels, which map holds them, DOSMA tissue map to use).
REGIONS = {
    "femoral": ("region", tuple(L.FEMORAL_SUBREGIONS.values()), "femoral_cartilage"),
    "medial_tibial": ("region", (L.REGION_IDS["medial_tibial"],), "tibial_cartilage"),
    "lateral_tibial": ("region", (L.REGION_IDS["lateral_tibial"],), "tibial_cartilage"),
    "patellar": ("region", (L.REGION_IDS["patellar"],), "patellar_cartilage"),
    "menisci": ("label", (L.CANONICAL[L.MEDIAL_MENISCUS], L.CANONICAL[L.LATERAL_MENISCUS]), "meniscus"),
}


def log(message: str) -> None:
    print(message, flush=True)


def ensure_venv() -> None:
    """bench/.venv-dosma with DOSMA's old stack; never touches the project venv."""
    probe = [str(VENV_PY), "-c", "import dosma, numpy; assert numpy.__version__ < '1.24'"]
    if VENV_PY.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return
    log(f"Creating {VENV.relative_to(ROOT)} ({' '.join(DOSMA_PINS)}); this takes 1-3 minutes ...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(VENV_PY), "-m", "pip", "install", "--quiet", *DOSMA_PINS], check=True)
    if subprocess.run(probe, capture_output=True).returncode != 0:
        raise SystemExit("the DOSMA venv was created but `import dosma` still fails")


def ensure_series() -> Path:
    folder = DATA / "qdess_example"
    if not (folder / "t2_truth.json").exists():
        log("Writing the synthetic GE qDESS series ...")
        write_qdess_example(folder)
    return folder


def run_dosma(series: Path) -> dict:
    out = DATA / "dosma_out"
    record = out / "record.json"
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(VENV_PY), str(SIDE), str(series), str(out), str(record)], check=True, capture_output=True)
    return json.loads(record.read_text())


def ours(series_dir: Path) -> tuple[dict[str, np.ndarray], object]:
    image = load_image(series_dir)
    series = qdess_from_source(image.source)
    labels = load_labels_for(series.echo1)
    raw = T2Params(map_decimals=None, map_range_ms=(-1e9, 1e9))
    maps = {
        "t1_1200": compute_t2_map(series, T2Params()).array,
        "t1_dosma": compute_t2_map(series, T2Params(t1_by_tissue_ms=DOSMA_T1_MS), labels).array,
        "raw_1200": compute_t2_map(series, raw).array,
        "raw_dosma": compute_t2_map(
            series, T2Params(map_decimals=None, map_range_ms=(-1e9, 1e9), t1_by_tissue_ms=DOSMA_T1_MS), labels
        ).array,
    }
    return maps, labels


def load_labels_for(grid):
    """The phantom's canonical labels on the series grid (the example is written on the phantom's grid)."""
    from pipeline.synthetic import PhantomSpec, make_phantom

    labels = make_phantom(PhantomSpec(side="right")).labels
    if grid.same_grid(labels):
        raise SystemExit("the example series is not on the phantom's grid; delete bench/data/qdess_example")
    return labels


def dosma_maps(record: dict, grid) -> dict[str, np.ndarray]:
    return {key: align_to_grid(load_image(path), grid)[0].array for key, path in record["maps"].items()}


def compare(a: np.ndarray, b: np.ndarray, member: np.ndarray) -> dict:
    both = member & np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0) & (a < 100) & (b < 100)
    diff = np.abs(a[both].astype(np.float64) - b[both].astype(np.float64))
    return {
        "n": int(both.sum()),
        "n_region": int(member.sum()),
        "median_abs_ms": float(np.median(diff)) if diff.size else None,
        "p99_abs_ms": float(np.percentile(diff, 99)) if diff.size else None,
        "max_abs_ms": float(diff.max()) if diff.size else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    ensure_venv()
    folder = ensure_series()
    truth = json.loads((folder / "t2_truth.json").read_text())["regions"]
    record = run_dosma(folder / "qdess")
    mine, labels = ours(folder / "qdess")
    theirs = dosma_maps(record, labels)
    femoral, _ = anatomy.femoral_subregions(labels, anatomy.detect_laterality(labels), AnalysisConfig())
    region_map = anatomy.region_map(labels, femoral)
    rows = {}
    for name, (kind, ids, tissue) in REGIONS.items():
        member = np.isin(region_map if kind == "region" else labels.array, ids)
        cartilage_ok = member & (mine["t1_1200"] > 0)
        rows[name] = {
            "dosma_t1_ms": record["t1_ms"][tissue],
            "same_t1_1200": compare(mine["t1_1200"], theirs["femoral_cartilage_default"], member),
            "per_tissue_t1": compare(mine["t1_dosma"], theirs[f"{tissue}_default"], member),
            "unrounded_per_tissue": compare(mine["raw_dosma"], theirs[f"{tissue}_raw"], member),
            "t1_effect_mean_ms": float(mine["t1_dosma"][cartilage_ok].mean() - mine["t1_1200"][cartilage_ok].mean()),
            "ours_mean_ms_t1_1200": float(mine["t1_1200"][cartilage_ok].mean()),
            "truth_ms": truth.get(name),
        }
    report(rows, record)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"dosma": record, "regions": rows}, indent=2))


def fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def sci(value) -> str:
    return "—" if value is None else f"{value:.1e}"


def report(rows: dict, record: dict) -> None:
    log(f"\nDOSMA {record['dosma_version']} (side venv) vs KneeScope, synthetic GE qDESS (write_qdess_example)")
    log("abs difference per voxel, ms: median / p99 (max) over voxels valid in both maps (0 < T2 < 100)\n")
    log(
        "| region | voxels | (a) both T1 1200 | (b) DOSMA per-tissue T1 | (c) unrounded, per-tissue T1 | "
        "(d) T1 effect on our mean | ours mean (T1 1200) | truth |"
    )
    log("|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        cells = []
        for key in ("same_t1_1200", "per_tissue_t1", "unrounded_per_tissue"):
            c, show = row[key], (sci if key.startswith("unrounded") else fmt)
            cells.append(f"{show(c['median_abs_ms'])} / {show(c['p99_abs_ms'])} ({show(c['max_abs_ms'])})")
        log(
            f"| {name} (DOSMA T1 {row['dosma_t1_ms']:g}) | {row['same_t1_1200']['n']} of "
            f"{row['same_t1_1200']['n_region']} | {' | '.join(cells)} | {row['t1_effect_mean_ms']:+.2f} ms | "
            f"{row['ours_mean_ms_t1_1200']:.2f} | {fmt(row['truth_ms'], 2)} |"
        )


if __name__ == "__main__":
    main()
