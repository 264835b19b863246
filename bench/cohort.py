"""Cohort throughput: ``pipeline batch`` (local and Ray with 2 workers) vs one ``pipeline analyze`` process per case.

The cohort: 12 synthetic label maps (labels only: meshes, thickness, regions, QC; sides and thicknesses vary) and 4
synthetic MR-like images segmented with the bundled demo model, all at the phantom's default grid (0.36 x 0.36 x
0.7 mm, about 174 x 249 x 127 voxels). Three ways to run it, each a fresh process (imports and start-up counted):

* ``batch --engine local``: the per-case function in one process, the model loaded once;
* ``batch --engine ray --workers 2``: a local Ray cluster, two actors per pool, the model loaded once per actor;
* the predecessor's way: ``python -m pipeline analyze`` once per case (a new process, imports and model load per
  case), one after the other.

Printed: wall time and cases per hour of each, their ratios, how the seconds of an MRI case split between
segmentation and the rest, and the largest difference between the three runs' thickness numbers (the same code
must give the same numbers).

``--longitudinal`` (issue 24): a cohort of subjects x 3 visits (synthetic label maps; each follow-up with known
change, moved and voxelised afresh), run by ``batch --longitudinal`` locally and on Ray with 2 workers. Printed:
visits (subjects x visits) per hour and pairs per hour of each, Ray vs local, the share of the workers' seconds
spent comparing, and the largest difference between the two runs' change numbers and from the truth.

    .venv/bin/python bench/cohort.py [--quick] [--longitudinal [--subjects 6]] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_LABELS, N_IMAGES = 12, 4
THICKNESS_COLUMNS = ("femoral_thickness_mean_mm", "medial_tibial_thickness_mean_mm", "patellar_thickness_mean_mm")


def make_cohort(folder: Path, *, spacing: tuple[float, float, float]) -> Path:
    from pipeline.io import write_volume
    from pipeline.synthetic import PhantomSpec, make_phantom, render_mr

    rows = ["case_id,image,labels,side"]
    for number in range(N_LABELS + N_IMAGES):
        side = ("right", "left")[number % 2]
        thickness = 1.6 + 0.15 * (number % 8)
        spec = PhantomSpec(side=side, femoral_mm=thickness, tibial_mm=thickness + 0.3, patellar_mm=thickness + 0.5,
                           spacing=spacing)  # fmt: skip
        labels = make_phantom(spec).labels
        if number < N_LABELS:
            write_volume(labels, folder / f"labels_{number:02d}.nii.gz")
            rows.append(f"knee{number:02d},,labels_{number:02d}.nii.gz,{side}")
        else:
            write_volume(render_mr(labels, seed=number), folder / f"mri_{number:02d}.nii.gz")
            rows.append(f"mri{number:02d},mri_{number:02d}.nii.gz,,{side}")
    manifest = folder / "MANIFEST.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def run_batch(manifest: Path, out: Path, *extra: str) -> float:
    command = [sys.executable, "-m", "pipeline", "batch", str(manifest), "--out", str(out), "--model", "demo", "-q"]
    start = time.perf_counter()
    proc = subprocess.run([*command, *extra], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"batch {' '.join(extra)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds


def run_loop(manifest: Path, out: Path) -> float:
    """One `pipeline analyze` process per case, as the predecessor ran cohorts."""
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    start = time.perf_counter()
    for row in table.itertuples():
        command = [sys.executable, "-m", "pipeline", "analyze", "--out", str(out / row.case_id), "--case-id",
                   row.case_id, "--no-zip", "-q", "--model", "demo"]  # fmt: skip
        command += [str(manifest.parent / row.image)] if row.image else ["--labels", str(manifest.parent / row.labels)]
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"analyze {row.case_id} failed:\n{proc.stderr}")
    return time.perf_counter() - start


def split_seconds(out: Path) -> dict[str, float]:
    """Mean seconds per case: MRI cases (segmentation / the rest) and label-map cases, from the done records."""
    done = [json.loads(p.read_text()) for p in sorted((out / "cases").glob("*/done.json"))]
    mri = [d for d in done if d["segmentation"]]
    labels = [d for d in done if not d["segmentation"]]
    segmentation = sum(d["timings_s"]["segmentation"] for d in mri) / len(mri)
    return {
        "mri_case_s": sum(d["seconds"] for d in mri) / len(mri),
        "mri_segmentation_s": segmentation,
        "mri_rest_s": sum(d["seconds"] for d in mri) / len(mri) - segmentation,
        "labels_case_s": sum(d["seconds"] for d in labels) / len(labels),
    }


def loop_table(out: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in sorted(out.glob("*/results.csv"))]).set_index("case_id")


#: visit -> (regional change per subject number: a function of it, rotation, translation)
FOLLOWUPS = {
    "V12": (lambda k: {"medial_tibial": -0.10 - 0.05 * (k % 3), "femoral": -0.05 * (k % 2)}, (4, -3, 2), (3, -2, 4)),
    "V24": (lambda k: {"medial_tibial": -0.25 - 0.05 * (k % 3), "patellar": 0.1}, (-3, 5, -2), (-4, 3, 2)),
}


def make_longitudinal_cohort(folder: Path, *, subjects: int, spacing: tuple[float, float, float]) -> Path:
    """subjects x 3 visits (V00 as generated, V12 and V24 changed, moved and resampled); truth beside each."""
    from pipeline.io import write_volume
    from pipeline.synthetic import PhantomSpec, make_phantom
    from pipeline.synthetic.followup import make_followup

    rows = ["subject_id,visit,labels,group"]
    for k in range(subjects):
        side = ("right", "left")[k % 2]
        spec = PhantomSpec(side=side, femoral_mm=1.9 + 0.1 * (k % 4), tibial_mm=2.0, spacing=spacing)
        write_volume(make_phantom(spec).labels, folder / f"s{k:02d}_V00.nii.gz")
        rows.append(f"s{k:02d},V00,s{k:02d}_V00.nii.gz,{'AB'[k % 2]}")
        for visit, (changes, rotation, translation) in FOLLOWUPS.items():
            fu = make_followup(spec, changes=changes(k), rotation_deg=rotation, translation_mm=translation,
                               resample=True)  # fmt: skip
            write_volume(fu.phantom.labels, folder / f"s{k:02d}_{visit}.nii.gz")
            (folder / f"s{k:02d}_{visit}.json").write_text(json.dumps(fu.changes_mm))
            rows.append(f"s{k:02d},{visit},s{k:02d}_{visit}.nii.gz,{'AB'[k % 2]}")
    manifest = folder / "MANIFEST.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def longitudinal(args: argparse.Namespace, spacing: tuple[float, float, float]) -> dict:
    from pipeline import labels as L

    n_visits, n_pairs = 3 * args.subjects, 2 * args.subjects
    with tempfile.TemporaryDirectory(prefix="kneescope_longitudinal_bench_") as tmp:
        folder = Path(tmp)
        manifest = make_longitudinal_cohort(folder / "data", subjects=args.subjects, spacing=spacing)
        load_before = os.getloadavg()
        walls = {
            "local": run_batch(manifest, folder / "local", "--longitudinal", "--engine", "local"),
            "ray_2_workers": run_batch(manifest, folder / "ray", "--longitudinal", "--engine", "ray", "--workers", "2"),
        }
        load_after = os.getloadavg()
        records = {name: json.loads((folder / name.split("_")[0] / "cohort.json").read_text()) for name in walls}
        tables = {name: pd.read_csv(folder / name.split("_")[0] / "cohort_change.csv") for name in walls}
        columns = [f"{region}_change_mean_mm" for region in L.CARTILAGE_REGIONS]
        truth = pd.DataFrame(
            [json.loads((folder / "data" / f"{row.followup_case_id}.json").read_text())
             for row in tables["local"].itertuples()]
        )  # fmt: skip
        truth.columns = [f"{c}_change_mean_mm" for c in truth.columns]
        return {
            "subjects": args.subjects,
            "visits": n_visits,
            "pairs": n_pairs,
            "spacing_mm": spacing,
            "cpus": os.cpu_count(),
            "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            "wall_s": {k: round(v, 1) for k, v in walls.items()},
            "visits_per_hour": {k: round(3600 * n_visits / v, 1) for k, v in walls.items()},
            "pairs_per_hour": {k: round(3600 * n_pairs / v, 1) for k, v in walls.items()},
            "ray_vs_local": round(walls["local"] / walls["ray_2_workers"], 2),
            "worker_seconds": {
                name: {
                    "visits": record["timings"]["case_seconds_sum"],
                    "pairs": record["pairs"]["timings"]["pair_seconds_sum"],
                    "comparison_share": record["pairs"]["timings"]["comparison_share"],
                }
                for name, record in records.items()
            },
            "max_change_difference_ray_vs_local_mm": float(
                (tables["ray_2_workers"][columns] - tables["local"][columns]).abs().max().max()
            ),
            "max_error_vs_truth_mm": float((tables["local"][columns] - truth[columns]).abs().max().max()),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="coarse phantoms (0.6 x 0.6 x 1.2 mm): a smoke run")
    parser.add_argument("--longitudinal", action="store_true", help="subjects x 3 visits, batch --longitudinal")
    parser.add_argument("--subjects", type=int, default=6, help="with --longitudinal: subjects (default 6)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    spacing = (0.6, 0.6, 1.2) if args.quick else (0.36, 0.36, 0.7)
    if args.longitudinal:
        figures = longitudinal(args, spacing)
        print(json.dumps(figures, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2))
        return
    n = N_LABELS + N_IMAGES
    with tempfile.TemporaryDirectory(prefix="kneescope_cohort_bench_") as tmp:
        folder = Path(tmp)
        manifest = make_cohort(folder / "data", spacing=spacing)
        load_before = os.getloadavg()
        walls = {
            "local": run_batch(manifest, folder / "local", "--engine", "local"),
            "ray_2_workers": run_batch(manifest, folder / "ray", "--engine", "ray", "--workers", "2"),
            "analyze_per_case": run_loop(manifest, folder / "loop"),
        }
        load_after = os.getloadavg()
        tables = {
            "local": pd.read_csv(folder / "local" / "cohort.csv").set_index("case_id"),
            "ray_2_workers": pd.read_csv(folder / "ray" / "cohort.csv").set_index("case_id"),
            "analyze_per_case": loop_table(folder / "loop"),
        }
        differences = {
            name: float((table.loc[:, THICKNESS_COLUMNS] - tables["local"].loc[:, THICKNESS_COLUMNS]).abs().max().max())
            for name, table in tables.items()
        }
        figures = {
            "cases": n,
            "spacing_mm": spacing,
            "cpus": os.cpu_count(),
            "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            "wall_s": {k: round(v, 1) for k, v in walls.items()},
            "cases_per_hour": {k: round(3600 * n / v, 1) for k, v in walls.items()},
            "ratios": {
                "ray_vs_local": round(walls["local"] / walls["ray_2_workers"], 2),
                "local_vs_analyze_per_case": round(walls["analyze_per_case"] / walls["local"], 2),
                "ray_vs_analyze_per_case": round(walls["analyze_per_case"] / walls["ray_2_workers"], 2),
            },
            "seconds_per_case_local": {k: round(v, 2) for k, v in split_seconds(folder / "local").items()},
            "seconds_per_case_ray": {k: round(v, 2) for k, v in split_seconds(folder / "ray").items()},
            "max_thickness_difference_vs_local_mm": differences,
        }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
