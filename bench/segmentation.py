"""Segmentation speed on the CPU: KneeScope's in-process engine vs the ``nnUNetv2_predict`` command line.

Both segment the same synthetic MR-like knee (174 x 249 x 127 voxels, 0.36 x 0.36 x 0.7 mm) with the bundled demo
model, single fold, no test-time mirroring, tile step 0.5:

* **engine**: ``Segmenter`` built once (``Engine``-style), then ``--cases`` predictions in the same process; this is
  what the app, notebooks and the CLI do. Reported: load time, each case, peak RSS of the process.
* **CLI**: ``nnUNetv2_predict -d Dataset901_KneeScopeDemo -tr nnUNetTrainer -p nnUNetPlans -c 3d_fullres -f 0
  -chk checkpoint_final.pth --disable_tta -device cpu -npp 1 -nps 1`` once per case, as the predecessor ran it
  (a fresh process per case: imports, model load, worker processes, NIfTI in and out). Reported: wall time per
  case and the peak RSS of its largest process (the CLI runs under a small wrapper process so that only its own
  process tree is measured).

Each side runs in its own child process so the peak memory figures do not mix. The two label maps are compared
(Dice after mapping the CLI's native labels to canonical; the engine also removes stray components).

    .venv/bin/python bench/segmentation.py [--cases 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEMO_RESULTS = ROOT / "weights" / "demo"

ENGINE_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    from pipeline.io import load_image
    from pipeline.config import InferenceOptions
    from pipeline.segmentation import Segmenter
    from pipeline.weights import resolve_model
    from pipeline.io import write_volume
    image = load_image(sys.argv[1])
    t1 = time.perf_counter()
    segmenter = Segmenter.from_model(resolve_model("demo"), options=InferenceOptions(device="cpu"))
    t2 = time.perf_counter()
    cases = []
    for _ in range(int(sys.argv[3])):
        t = time.perf_counter()
        seg = segmenter.predict(image)
        cases.append(time.perf_counter() - t)
    write_volume(seg.labels, sys.argv[2])
    print(json.dumps({"imports_and_read_s": t1 - t0, "load_s": t2 - t1, "cases_s": cases,
                      "stages_s": seg.provenance["seconds"],
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def make_input(folder: Path) -> Path:
    """The synthetic right knee as nnU-Net's CLI wants it: <case>_0000.nii.gz in a folder of its own."""
    from pipeline.io import write_volume
    from pipeline.synthetic import make_phantom, render_mr

    knee = make_phantom(side="right")
    (folder / "in").mkdir(parents=True, exist_ok=True)
    write_volume(knee.labels, folder / "truth.nii.gz")
    return write_volume(render_mr(knee.labels, seed=2024), folder / "in" / "knee_0000.nii.gz")


def run_engine(image: Path, out: Path, cases: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", ENGINE_CHILD, str(image), str(out), str(cases)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


CLI_WRAPPER = textwrap.dedent(
    """
    import json, resource, subprocess, sys, time
    t0 = time.perf_counter()
    subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True)
    # a fresh process: its children are only the CLI and the workers it spawned
    print(json.dumps({"case_s": time.perf_counter() - t0,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
    """
)


def run_cli(in_dir: Path, out_dir: Path, env: dict) -> dict:
    command = [
        str(Path(sys.executable).with_name("nnUNetv2_predict")), "-i", str(in_dir), "-o", str(out_dir),
        "-d", "Dataset901_KneeScopeDemo", "-tr", "nnUNetTrainer", "-p", "nnUNetPlans", "-c", "3d_fullres",
        "-f", "0", "-chk", "checkpoint_final.pth", "--disable_tta", "-device", "cpu", "-npp", "1", "-nps", "1",
        "--disable_progress_bar",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", CLI_WRAPPER, *command], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def agreement(engine_labels: Path, cli_labels: Path) -> dict:
    from pipeline import labels as L
    from pipeline.io import load_label_map

    a = load_label_map(engine_labels, "canonical").volume.array
    b = load_label_map(cli_labels, "native").volume.array
    dice = {}
    for name, value in L.CANONICAL.items():
        x, y = a == value, b == value
        dice[name] = round(2 * float((x & y).sum()) / max(1, int(x.sum() + y.sum())), 4)
    return {"mean_dice": round(float(np.mean(list(dice.values()))), 4), "dice": dice}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=2, help="cases per side (default 2)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kneescope-bench-") as tmp:
        tmp = Path(tmp)
        image = make_input(tmp)
        engine = run_engine(image, tmp / "engine.nii.gz", args.cases)
        env = {
            **os.environ,
            "nnUNet_results": str(DEMO_RESULTS),
            "nnUNet_raw": str(tmp / "raw"),
            "nnUNet_preprocessed": str(tmp / "pre"),
        }
        cli = [run_cli(image.parent, tmp / f"cli{i}", env) for i in range(args.cases)]
        match = agreement(tmp / "engine.nii.gz", tmp / "cli0" / "knee.nii.gz")
    engine_case = float(np.mean(engine["cases_s"]))
    cli_case = float(np.mean([c["case_s"] for c in cli]))
    report = {
        "input": "synthetic right knee 174x249x127, 0.36x0.36x0.7 mm (demo model, CPU, no TTA, tile step 0.5)",
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "engine": {**engine, "mean_case_s": round(engine_case, 2)},
        "cli": {"cases": cli, "mean_case_s": round(cli_case, 2), "peak_rss_mb": max(c["peak_rss_mb"] for c in cli)},
        "cli_over_engine_per_case": round(cli_case / engine_case, 2),
        "agreement_engine_vs_cli": match,
    }
    print(format_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def format_table(r: dict) -> str:
    e, c = r["engine"], r["cli"]
    engine_cases = ", ".join(f"{s:.1f}" for s in e["cases_s"])
    cli_cases = ", ".join(f"{x['case_s']:.1f}" for x in c["cases"])
    rows = [
        ("", "in-process engine", "nnUNetv2_predict CLI"),
        ("read the image", f"{e['imports_and_read_s']:.1f} s", "every case (NIfTI)"),
        ("import torch/nnU-Net + load model (once)", f"{e['load_s']:.1f} s", "every case"),
        ("per case", f"{e['mean_case_s']:.1f} s ({engine_cases})", f"{c['mean_case_s']:.1f} s ({cli_cases})"),
        ("peak RSS", f"{e['peak_rss_mb']:.0f} MB", f"{c['peak_rss_mb']:.0f} MB (largest process)"),
    ]
    lines = [f"| {a} | {b} | {d} |" for a, b, d in rows]
    lines.insert(1, "|---|---|---|")
    lines.append(
        f"\nCLI / engine time per case: {r['cli_over_engine_per_case']:.2f}x; agreement (mean Dice over 9 "
        f"structures): {r['agreement_engine_vs_cli']['mean_dice']:.4f}; {r['cpu_count']} CPUs, load average "
        f"{r['load_average_1min']}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
