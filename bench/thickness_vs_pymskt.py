"""Cartilage thickness and run time: KneeScope's analyze_labels against pymskt (the predecessor's method).

Run from the repository root:  .venv/bin/python bench/thickness_vs_pymskt.py  (or `make bench`)

- Data: the two real knee label maps shipped in the mskt source distribution (MIT), fetched once with pip
  (bench/mskt_data.py, a per-user cache), and the synthetic phantom of known thickness (pipeline.synthetic),
  written as NRRD into bench/data/ (gitignored).
- Ours runs in this process (--repeat runs; imports timed apart). pymskt runs in a subprocess of its own venv
  bench/.venv-pymskt (gitignored; created here with the lean recipe of platform-notes §12, plus pymeshfix 0.17.2),
  through bench/_pymskt_side.py, with the predecessor's BoneMesh settings (reference-pipeline §2.6-2.7), for
  --pymskt-repeat runs. pymskt's interpreter start and imports are reported apart from its work. Times are the
  best of the runs on both sides (the ratio divides the two bests): on a shared machine the least disturbed run
  is the fairest figure.
- Printed: wall times and their ratio, per-cartilage mean thickness of both and the difference, and two
  diagnostics that explain differences: ours area-weighted (each vertex weighted by its share of the surface,
  as ACVD's near-uniform vertices weight pymskt's mean) and ours sampled at pymskt's own bone vertices.
  The measured figures and their explanation are recorded in bench/RESULTS.md.
- --investigate also reruns ours with other AnalysisConfig settings (edge rule, smoothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.mskt_data import RIGHT_KNEE_EXAMPLE, SAG_3D_DESS, mskt_data  # noqa: E402

BENCH = ROOT / "bench"
DATA = BENCH / "data"
PYMSKT_VENV = BENCH / ".venv-pymskt"
PYMSKT_PY = PYMSKT_VENV / "bin" / "python"
SIDE_SCRIPT = BENCH / "_pymskt_side.py"
MSKT = "mskt==0.1.22"
# Lean recipe (platform-notes §12) plus the stack pins of §2. pymeshfix 0.17.2, not 0.18.x: mskt 0.1.22 calls
# MeshFix.repair(verbose=...), a keyword 0.18 removed (TypeError in BoneMesh.fix_mesh).
PYMSKT_DEPS = [
    "numpy==2.4.6",
    "scipy==1.17.1",
    "SimpleITK==2.5.7",
    "vtk==9.7.2",
    "pyvista==0.49.1",
    "pyacvd==0.4.0",
    "pymeshfix==0.17.2",
    "nibabel==5.4.2",
    "point-cloud-utils==0.34.0",
    "cycpd==0.28",
]
SDIST_FILES = ("right_knee_example.nrrd", "SAG_3D_DESS_RIGHT_bones_cart_men_fib-label.nrrd")
REGIONS = ("femoral", "medial_tibial", "lateral_tibial", "patellar")
# Our region ids per reported cartilage (pipeline.labels.CARTILAGE_REGIONS) and the bone each sits on.
OUR_REGION_IDS = {"femoral": (11, 12, 13, 14, 15), "medial_tibial": (5,), "lateral_tibial": (6,), "patellar": (7,)}
BONE_OF = {"femoral": "femur", "medial_tibial": "tibia", "lateral_tibial": "tibia", "patellar": "patella"}
# Predecessor's BoneMesh settings (reference-pipeline §2.6): bone, n_points (ACVD clusters), crop_percent.
PREDECESSOR_BONES = (("femur", 20_000, 0.8), ("tibia", 20_000, 0.8), ("patella", 10_000, None))

CANONICAL = {
    "femur": 1,
    "tibia": 2,
    "patella": 3,
    "femoral_cartilage": 4,
    "medial_tibial_cartilage": 5,
    "lateral_tibial_cartilage": 6,
    "patellar_cartilage": 7,
    "medial_meniscus": 8,
    "lateral_meniscus": 9,
}
CARTILAGE_OF = {
    "femur": {"femoral": "femoral_cartilage"},
    "tibia": {"medial_tibial": "medial_tibial_cartilage", "lateral_tibial": "lateral_tibial_cartilage"},
    "patella": {"patellar": "patellar_cartilage"},
}


@dataclass
class Case:
    name: str
    path: Path
    scheme: dict
    truth_mm: dict | None = None
    ours: dict = field(default_factory=dict)
    cli: dict = field(default_factory=dict)
    pymskt: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    load_avg: tuple = ()


def log(message: str) -> None:
    print(message, flush=True)


def pip_quiet(python: Path | str, *args: str) -> None:
    """pip install/download with the local-index 'Location ... is ignored' noise dropped."""
    proc = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True)
    noise = "WARNING: Location"
    text = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if not line.startswith(noise))
    if proc.returncode != 0:
        raise SystemExit(f"pip {' '.join(args)} failed:\n{text}")


# --- setup ----------------------------------------------------------------------------------------------
def ensure_data() -> None:
    """The two label maps out of the mskt sdist (fetched once per user: bench/mskt_data.py)."""
    for name in SDIST_FILES:
        mskt_data(name)


def pymskt_ready() -> bool:
    if not PYMSKT_PY.exists():
        return False
    probe = (
        "import inspect, pymeshfix, pymskt.mesh; "
        "assert 'verbose' in inspect.signature(pymeshfix.MeshFix.repair).parameters"
    )
    return subprocess.run([str(PYMSKT_PY), "-c", probe], capture_output=True).returncode == 0


def ensure_pymskt_venv() -> None:
    """Create bench/.venv-pymskt with the lean recipe (about 2.5 min); never touches the project venv."""
    if pymskt_ready():
        return
    log(f"Creating {PYMSKT_VENV.relative_to(ROOT)} (lean mskt recipe, about 2.5 min) ...")
    if not PYMSKT_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PYMSKT_VENV)], check=True)
    pip_quiet(PYMSKT_PY, "install", "--no-cache-dir", *PYMSKT_DEPS)
    pip_quiet(PYMSKT_PY, "install", "--no-cache-dir", "--no-deps", MSKT)
    if not pymskt_ready():
        raise SystemExit("pymskt venv was created but `import pymskt.mesh` still fails")


def make_cases(names: list[str], phantom_mm: list[float]) -> list[Case]:
    cases = []
    if "right_knee_example" in names:
        cases.append(Case("right_knee_example", mskt_data(SDIST_FILES[0]), RIGHT_KNEE_EXAMPLE))
    if "SAG_3D_DESS" in names:
        cases.append(Case("SAG_3D_DESS", mskt_data(SDIST_FILES[1]), SAG_3D_DESS))
    if "phantom" in names:
        from pipeline.io import write_volume
        from pipeline.synthetic import make_phantom

        for mm in phantom_mm:
            path = DATA / f"phantom_right_{mm:g}mm.nrrd"
            if not path.is_file():
                p = make_phantom(side="right", femoral_mm=mm, tibial_mm=mm, patellar_mm=mm)
                write_volume(p.labels, path)
            cases.append(Case(f"phantom {mm:g} mm", path, CANONICAL, truth_mm=dict.fromkeys(REGIONS, mm)))
    return cases


# --- the two sides ----------------------------------------------------------------------------------------
def run_ours(case: Case, repeat: int, config=None) -> dict:
    """analyze_labels `repeat` times; per-region vertex mean (the API's), area-weighted mean, per-vertex arrays."""
    from pipeline.engine import analyze_labels

    walls, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = analyze_labels(case.path, scheme=case.scheme, config=config)
        walls.append(time.perf_counter() - t0)
    timings = result.provenance["timings_s"]
    out = {
        "wall_s": walls,
        "wall_best_s": min(walls),
        "wall_median_s": statistics.median(walls),
        "stages_s": timings,
        "mesh_plus_thickness_s": timings.get("meshes", 0) + timings.get("thickness", 0),
        "regions": {},
        "surfaces": {},
    }
    for region in REGIONS:
        stats = result.cartilage[region].thickness_mm
        bone = result.surfaces.get(BONE_OF[region])
        entry = {"mean": None, "median": None, "n_vertices": 0, "area_weighted_mean": None}
        if stats is not None and bone is not None:
            mask = _isin(bone.point_data["region"], OUR_REGION_IDS[region])
            weights = vertex_areas(bone.points, bone.faces)[mask]
            weighted = float((bone.point_data["thickness_mm"][mask] * weights).sum() / weights.sum())
            entry = {
                "mean": stats.mean,
                "median": stats.median,
                "n_vertices": stats.n_vertices,
                "area_weighted_mean": weighted,
            }
        out["regions"][region] = entry
    for name in ("femur", "tibia", "patella"):
        if name in result.surfaces:
            s = result.surfaces[name]
            out["surfaces"][name] = (s.points, s.point_data["thickness_mm"], s.point_data["region"])
    return out


def run_cli(case: Case, repeat: int, work: Path) -> dict:
    """The whole ``python -m pipeline analyze --labels`` process, as a user runs it: interpreter start, imports,
    reading, the analysis and every output file (label maps, meshes, GLB, PDF, JSON/CSV, zip). Its own morphometry
    stages come from the provenance it writes, so whole / morphometry is measured within one run."""
    scheme = work / "scheme.json"
    scheme.parent.mkdir(parents=True, exist_ok=True)
    scheme.write_text(json.dumps(case.scheme))
    runs = []
    for i in range(repeat):
        out = work / f"run{i + 1}"
        command = [sys.executable, "-m", "pipeline", "analyze", "--labels", str(case.path), "--out", str(out), "-q"]
        command += ["--label-scheme", str(scheme)]
        t0 = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        timings = json.loads((out / "provenance.json").read_text())["timings_s"]
        means = {
            r: v["thickness_mm"]["mean"]
            for r, v in json.loads((out / "results.json").read_text())["cartilage"].items()
            if v.get("thickness_mm")
        }
        runs.append({"wall_s": wall, "morphometry_s": timings["morphometry"], "means": means})
    best = min(runs, key=lambda run: run["wall_s"])
    return {
        "wall_s": [r["wall_s"] for r in runs],
        "wall_best_s": best["wall_s"],
        "morphometry_s": best["morphometry_s"],
        "whole_over_morphometry": best["wall_s"] / best["morphometry_s"],
        "ratios": [r["wall_s"] / r["morphometry_s"] for r in runs],
        "means": best["means"],
    }


def run_pymskt(case: Case, work: Path) -> dict:
    """The predecessor's BoneMesh sequence in the pymskt venv; returns its JSON plus the process wall time."""
    bones = []
    for bone, n_points, crop in PREDECESSOR_BONES:
        cart = {region: case.scheme[structure] for region, structure in CARTILAGE_OF[bone].items()}
        bones.append(
            {"name": bone, "label": case.scheme[bone], "cartilage": cart, "n_points": n_points, "crop_percent": crop}
        )
    spec = {
        "label_map": str(case.path),
        "bone_smooth_var": 0.5,
        "cart_smooth_var": 0.3125,
        "ray_cast_length": 10.0,
        "percent_ray_length_opposite_direction": 0.25,
        "save_npz": str(work),
        "bones": bones,
    }
    spec_path, out_path = work / "spec.json", work / "out.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(PYMSKT_PY), str(SIDE_SCRIPT), str(spec_path), str(out_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    process_s = time.perf_counter() - t0
    (work / "pymskt_stdout.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"pymskt side failed on {case.name}:\n{proc.stderr[-3000:]}")
    out = json.loads(out_path.read_text())
    out["process_s"] = process_s
    per_bone = out["bones"].values()
    out["mesh_plus_thickness_s"] = out["load_s"] + sum(b["timings_s"]["mesh_plus_thickness_s"] for b in per_bone)
    out["regions_s"] = sum(b["timings_s"]["regions_s"] for b in per_bone)
    out["with_regions_s"] = out["mesh_plus_thickness_s"] + out["regions_s"]
    out["npz_dir"] = str(work)
    return out


def combine_pymskt_runs(runs: list[dict]) -> dict:
    """Thickness and per-vertex files from the first run; times the best (least disturbed) of the runs; the
    spread of each region's mean across runs (ACVD resampling is not deterministic)."""
    out = dict(runs[0])
    for key in ("mesh_plus_thickness_s", "with_regions_s", "import_s", "process_s"):
        out[key + "_runs"] = [r[key] for r in runs]
        out[key] = min(r[key] for r in runs)
    out["bones"] = min(runs, key=lambda r: r["mesh_plus_thickness_s"])["bones"]
    out["mean_spread"] = {
        region: max(r["regions"][region]["mean"] for r in runs) - min(r["regions"][region]["mean"] for r in runs)
        for region in runs[0]["regions"]
    }
    return out


# --- diagnostics ------------------------------------------------------------------------------------------
def _isin(values, ids):
    import numpy as np

    return np.isin(values, ids)


def vertex_areas(points, faces):
    """Each vertex's share (one third of each adjacent triangle) of the surface area, mm^2."""
    import numpy as np

    tri = points[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    weights = np.zeros(len(points))
    for corner in range(3):
        np.add.at(weights, faces[:, corner], area / 3)
    return weights


def at_pymskt_vertices(case: Case) -> dict:
    """Ours sampled at pymskt's bone vertices (nearest of our vertices), per region.

    same_rays: vertices both measured, mean of ours minus pymskt's (the per-ray difference);
    ours_at_theirs: mean of ours over pymskt's vertices where ours has the region (the same vertex sampling).
    """
    import numpy as np
    from scipy.spatial import cKDTree

    out = {}
    label_of = {region: case.scheme[s] for b in CARTILAGE_OF.values() for region, s in b.items()}
    for region in REGIONS:
        bone = BONE_OF[region]
        npz = Path(case.pymskt["npz_dir"]) / f"pymskt_{bone}.npz"
        if bone not in case.ours["surfaces"] or not npz.is_file():
            continue
        theirs = np.load(npz)
        points, thickness, regions = case.ours["surfaces"][bone]
        distance, nearest = cKDTree(points).query(theirs["points"])
        measured_theirs = theirs["labels"] == label_of[region]
        measured_ours = np.isin(regions[nearest], OUR_REGION_IDS[region])
        both = measured_theirs & measured_ours
        ours_there = thickness[nearest]
        out[region] = {
            "ours_at_theirs": float(ours_there[measured_ours].mean()) if measured_ours.any() else None,
            "same_rays_diff": float((ours_there[both] - theirs["thickness"][both]).mean()) if both.any() else None,
            "n_both": int(both.sum()),
            "n_theirs_only": int((measured_theirs & ~measured_ours).sum()),
            "n_ours_only": int((measured_ours & ~measured_theirs).sum()),
            "theirs_only_mean": float(theirs["thickness"][measured_theirs & ~measured_ours].mean())
            if (measured_theirs & ~measured_ours).any()
            else None,
            "ours_only_mean": float(thickness[nearest][measured_ours & ~measured_theirs].mean())
            if (measured_ours & ~measured_theirs).any()
            else None,
            "nn_distance_median_mm": float(np.median(distance)),
        }
    return out


# --- report -----------------------------------------------------------------------------------------------
def fmt(value, digits=3, signed=False):
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def report(cases: list[Case], ours_import_s: float, repeat: int, pymskt_repeat: int) -> None:
    log(f"\n## Wall time (s), {os.cpu_count()} CPU cores, {platform.machine()}")
    log(
        f"Best of {repeat} in-process runs of ours (all runs in brackets) and of {pymskt_repeat} pymskt subprocess "
        "runs (the machine is shared, so the least disturbed run is the fairest figure; the ratio uses the two bests)."
    )
    log(
        f"ours: analyze_labels, whole call (load, QC, laterality, femoral subregions, 9 surfaces, thickness, regions);"
        f" its imports {ours_import_s:.2f} s (pipeline.engine + scipy/skimage/fast_simplification, once per process)"
    )
    log(
        "pymskt mesh+thickness: read + BoneMesh create_mesh + resample_surface + fix_mesh + cartilage meshes + "
        "calc_cartilage_thickness, femur/tibia/patella; 'with regions' adds the cartilage fix_mesh + "
        "assign_cartilage_regions the predecessor ran to get per-region means"
    )
    log("")
    log(
        "| case | ours (s) | ours meshes+thickness stages (s) | pymskt mesh+thickness (s) | ratio | "
        "pymskt with regions (s) | ratio | pymskt import (s) | pymskt process incl. start (s) | load avg after |"
    )
    log("|---|---|---|---|---|---|---|---|---|---|")
    for c in cases:
        o, p = c.ours, c.pymskt
        runs = ", ".join(f"{w:.2f}" for w in o["wall_s"])
        their_runs = ", ".join(f"{w:.1f}" for w in p["mesh_plus_thickness_s_runs"])
        load = "/".join(f"{x:.1f}" for x in c.load_avg)
        ratio, ratio_regions = p["mesh_plus_thickness_s"] / o["wall_best_s"], p["with_regions_s"] / o["wall_best_s"]
        log(
            f"| {c.name} | {o['wall_best_s']:.2f} [{runs}] | {o['mesh_plus_thickness_s']:.2f} | "
            f"{p['mesh_plus_thickness_s']:.1f} [{their_runs}] | **{ratio:.1f}x** "
            f"| {p['with_regions_s']:.1f} | {ratio_regions:.1f}x | {p['import_s']:.2f} | "
            f"{p['process_s']:.1f} | {load} |"
        )
    if any(c.cli for c in cases):
        log("")
        log("## The whole `python -m pipeline analyze --labels` process (start, imports, reading, outputs included)")
        log(
            "| case | whole process, best (s) [all runs] | its morphometry stages (s) | whole / morphometry "
            "[per run] | pymskt mesh+thickness (s) | pymskt / whole process |"
        )
        log("|---|---|---|---|---|---|")
        for c in cases:
            if not c.cli:
                continue
            q, p = c.cli, c.pymskt
            runs = ", ".join(f"{w:.1f}" for w in q["wall_s"])
            ratios = ", ".join(f"{r:.2f}" for r in q["ratios"])
            log(
                f"| {c.name} | {q['wall_best_s']:.1f} [{runs}] | {q['morphometry_s']:.1f} | "
                f"**{q['whole_over_morphometry']:.2f}** [{ratios}] | {p['mesh_plus_thickness_s']:.1f} | "
                f"**{p['mesh_plus_thickness_s'] / q['wall_best_s']:.1f}x** |"
            )
    log("")
    log("## Mean cartilage thickness (mm)")
    log(
        "| case | cartilage | pymskt | ours | ours - pymskt | ours area-weighted | diff | ours at pymskt's vertices | "
        "per-ray diff (both measured) | n pymskt / ours | pymskt run-to-run spread |"
    )
    log("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in cases:
        for region in REGIONS:
            theirs = c.pymskt["regions"].get(region, {})
            ours = c.ours["regions"][region]
            diag = c.diagnostics.get(region, {})
            tm, om, aw = theirs.get("mean"), ours["mean"], ours["area_weighted_mean"]
            truth = f" (truth {c.truth_mm[region]:g})" if c.truth_mm else ""
            diff = None if tm is None or om is None else om - tm
            diff_aw = None if tm is None or aw is None else aw - tm
            log(
                f"| {c.name}{truth} | {region} | {fmt(tm)} | {fmt(om)} | {fmt(diff, signed=True)} | {fmt(aw)} | "
                f"{fmt(diff_aw, signed=True)} | {fmt(diag.get('ours_at_theirs'))} | "
                f"{fmt(diag.get('same_rays_diff'), signed=True)} | "
                f"{theirs.get('n_vertices', 0)} / {ours['n_vertices']} | "
                f"{fmt(c.pymskt.get('mean_spread', {}).get(region))} |"
            )
    log("")
    log("Coverage at pymskt's vertices: measured by both / pymskt only (its mean there) / ours only (our mean there)")
    for c in cases:
        for region, d in c.diagnostics.items():
            log(
                f"  {c.name:20s} {region:15s} both {d['n_both']:5d}  pymskt-only {d['n_theirs_only']:4d} "
                f"({fmt(d['theirs_only_mean'], 2)})  ours-only {d['n_ours_only']:4d} ({fmt(d['ours_only_mean'], 2)})  "
                f"vertex match distance median {d['nn_distance_median_mm']:.2f} mm"
            )
    log("")
    log("Timing detail per bone (pymskt, s):")
    for c in cases:
        for bone, b in c.pymskt["bones"].items():
            t = b["timings_s"]
            log(
                f"  {c.name:20s} {bone:8s} n_points {b['n_points']:6d}  bone mesh {t['bone_mesh_s']:.2f}  "
                f"resample+fix {t['resample_fix_s']:.2f}  cartilage meshes {t['cartilage_meshes_s']:.2f}  "
                f"ray cast {t['ray_cast_s']:.2f}  regions {t['regions_s']:.2f}"
            )
        stages = ", ".join(f"{k} {v:.2f}" for k, v in c.ours["stages_s"].items())
        log(f"  {c.name:20s} ours stages (last run; meshes+thickness column above is this run): {stages}")


def investigate(cases: list[Case]) -> None:
    """Ours with other edge-rule and smoothing settings: vertex mean / area-weighted mean per region."""
    from pipeline.config import AnalysisConfig

    variants = {
        "default (min_exit_cos 0.7, smoothing 0.1)": AnalysisConfig(),
        "min_exit_cos 0 (count edge clips)": AnalysisConfig(min_exit_cos=0.0),
        "min_exit_cos 0.9 (stricter)": AnalysisConfig(min_exit_cos=0.9),
        "thickness_smoothing_var 0": AnalysisConfig(thickness_smoothing_var_mm2=0.0),
        "thickness_smoothing_var 0.3125": AnalysisConfig(thickness_smoothing_var_mm2=0.3125),
    }
    log("\n## Investigation: ours under other AnalysisConfig settings (vertex mean / area-weighted mean, mm)")
    log("| case | setting | " + " | ".join(REGIONS) + " |")
    log("|---|---|" + "---|" * len(REGIONS))
    for c in cases:
        theirs = " | ".join(fmt(c.pymskt["regions"].get(r, {}).get("mean")) for r in REGIONS)
        log(f"| {c.name} | pymskt | {theirs} |")
        for label, config in variants.items():
            o = run_ours(c, 1, config)
            cells = " | ".join(
                f"{fmt(o['regions'][r]['mean'])} / {fmt(o['regions'][r]['area_weighted_mean'])}" for r in REGIONS
            )
            log(f"| {c.name} | {label} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["right_knee_example", "SAG_3D_DESS", "phantom"],
        choices=["right_knee_example", "SAG_3D_DESS", "phantom"],
    )
    parser.add_argument("--phantom-mm", nargs="+", type=float, default=[2.0], help="phantom cartilage thickness(es)")
    parser.add_argument("--repeat", type=int, default=3, help="in-process runs of ours per case (best and median)")
    parser.add_argument("--pymskt-repeat", type=int, default=2, help="pymskt subprocess runs per case (best reported)")
    parser.add_argument(
        "--cli-repeat", type=int, default=3, help="whole `pipeline analyze --labels` processes per case (0: skip)"
    )
    parser.add_argument("--investigate", action="store_true", help="also rerun ours with other AnalysisConfig settings")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    ensure_data()
    ensure_pymskt_venv()

    t0 = time.perf_counter()
    # ours imports these lazily inside its first call; import them here so that run is not charged for them
    import fast_simplification
    import scipy.ndimage
    import scipy.spatial
    import skimage.measure

    from pipeline.engine import analyze_labels

    del fast_simplification, scipy, skimage, analyze_labels
    ours_import_s = time.perf_counter() - t0

    cases = make_cases(args.cases, args.phantom_mm)
    work_root = DATA / "pymskt_out"
    for case in cases:
        log(f"{case.name}: ours x{args.repeat} ...")
        case.ours = run_ours(case, args.repeat)
        if args.cli_repeat:
            log(f"{case.name}: `python -m pipeline analyze --labels` x{args.cli_repeat} (whole process) ...")
            case.cli = run_cli(case, args.cli_repeat, work_root / case.name.replace(" ", "_") / "cli")
        runs = []
        for i in range(args.pymskt_repeat):
            log(f"{case.name}: pymskt run {i + 1}/{args.pymskt_repeat} (subprocess, 1-2 min) ...")
            work = work_root / case.name.replace(" ", "_") / f"run{i + 1}"
            work.mkdir(parents=True, exist_ok=True)
            runs.append(run_pymskt(case, work))
        case.pymskt = combine_pymskt_runs(runs)
        case.load_avg = os.getloadavg()
        case.diagnostics = at_pymskt_vertices(case)
    report(cases, ours_import_s, args.repeat, args.pymskt_repeat)
    if args.investigate:
        investigate(cases)
    if args.json:
        payload = {
            c.name: {
                "ours": {k: v for k, v in c.ours.items() if k != "surfaces"},
                "pymskt": c.pymskt,
                "diagnostics": c.diagnostics,
            }
            for c in cases
        }
        args.json.write_text(json.dumps({"ours_import_s": ours_import_s, "cases": payload}, indent=1))


if __name__ == "__main__":
    main()
