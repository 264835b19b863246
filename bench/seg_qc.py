"""Segmentation QC against known truth: does the verdict catch the segmentations that failed?

Run from the repository root:  .venv/bin/python bench/seg_qc.py [--set report] [--json OUT] [--real]

- Cases: synthetic knees (``pipeline.synthetic.degrade``) rendered clean and degraded as real scans fail (noise,
  bias field, blur, thick slices, motion ghosting, partial field of view, contrast moved toward another sequence,
  inverted contrast, the grid rotated far from the training pose, images that are not knees), each with its true
  label map on the image's own grid. ``PLAN`` lists the severities per kind; every case has its own seed.
- Each case goes through ``Engine.analyze`` with the bundled demo model, exactly as the app and the CLI run it, and
  gives its ``qc.segmentation`` score and verdict; the truth gives its Dice per cartilage plate (femoral, medial and
  lateral tibial, patellar), averaged (a plate absent from both truth and segmentation is left out; a non-knee
  image has true Dice 0: nothing in it is cartilage). A case the analysis refuses (nothing segmented at all) counts
  as score 0, "failed".
- Two disjoint seed sets with the same plan: ``--set calibration`` (seeds 10000+) prints the thresholds
  ``SCORE_OK`` / ``SCORE_FAILED`` that fit it (``--calibrate``), which were then written into
  ``pipeline/quality/verdict.py``; ``--set report`` (seeds 20000+, the default) judges with the thresholds in the
  code, so the figures in bench/RESULTS.md are not fitted to themselves.
- Printed: cases per kind, Spearman(score, true mean cartilage Dice), the share of true Dice < 0.7 sent to review
  or failed (acceptance >= 95 %), the share of true Dice >= 0.9 sent to review (acceptance <= 10 %), and the
  confusion table (true Dice bins x verdict).
- ``--real``: the acceptance cases on real data (mskt sdist, fetched once by bench/mskt_data.py): the three real
  label maps given (plausibility only: expected "ok"), the real GE MESE T2 series segmented by the demo model
  (expected "review" or "failed" with a reason), and the built-in example, segmented and given (expected "ok").

Finished cases are kept in bench/data/seg_qc/<set>.jsonl, so an interrupted run resumes (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import labels as L  # noqa: E402

CACHE = ROOT / "bench" / "data" / "seg_qc"
SEEDS = {"calibration": 10_000, "report": 20_000}
#: Severities per kind (units: pipeline/synthetic/degrade.py). Clean cases repeat with different knees.
PLAN: dict[str, tuple[float, ...]] = {
    "clean": (0,) * 10,
    "noise": (0.06, 0.1, 0.15, 0.22, 0.3, 0.4, 0.6),
    "bias": (0.4, 0.7, 1.0, 1.4, 1.9, 2.6),
    "blur": (0.5, 0.8, 1.1, 1.5, 2.0, 2.6),
    "anisotropic": (1.5, 2.5, 3.5, 5.0, 7.0),
    "ghosting": (0.2, 0.4, 0.7, 1.0, 1.5, 2.2),
    "partial_fov": (0.1, 0.2, 0.3, 0.4, 0.55),
    "contrast": (0.05, 0.1, 0.15, 0.2, 0.3, 0.6),
    "inversion": (1, 1, 1),
    "rotation": (10, 20, 30, 45, 70, 90),
    "non_knee": (0, 1, 2, 3),
}
LOW_DICE, HIGH_DICE = 0.7, 0.9
DICE_BINS = ((0.0, 0.5, "< 0.5"), (0.5, 0.7, "0.5-0.7"), (0.7, 0.9, "0.7-0.9"), (0.9, 1.01, ">= 0.9"))
#: Calibration targets (half the acceptance's 5 % and 10 %: a margin for the other seed set): at most these shares of
#: true Dice < 0.7 at or above SCORE_OK, and of true Dice >= 0.9 below it, on the score alone.
MAX_MISSED_BAD = 0.025
MAX_GOOD_BELOW = 0.05
#: SCORE_FAILED lies at least this far below SCORE_OK.
REVIEW_BAND = 0.05


def log(message: str) -> None:
    print(message, flush=True)


def cartilage_dice(truth: np.ndarray | None, labels: np.ndarray) -> tuple[float, dict[str, float]]:
    """Mean Dice over the cartilage plates present in the truth or the segmentation (non-knee: 0)."""
    if truth is None:
        return 0.0, {}
    per = {}
    for name in L.CARTILAGES:
        a, b = truth == L.CANONICAL[name], labels == L.CANONICAL[name]
        total = int(a.sum()) + int(b.sum())
        if total:
            per[name] = 2.0 * float(np.logical_and(a, b).sum()) / total
    return (float(np.mean(list(per.values()))) if per else 0.0), per


def run_case(engine, kind: str, severity: float, seed: int) -> dict:
    from pipeline.errors import KneePipelineError
    from pipeline.segmentation.postprocess import knee_problems
    from pipeline.synthetic.degrade import degraded_knee

    case = degraded_knee(kind, severity, seed=seed)
    truth = None if case.truth is None else case.truth.array
    t0 = time.perf_counter()
    row: dict = {"name": case.name, "kind": kind, "severity": severity, "seed": seed, "note": case.note}
    try:
        result = engine.analyze(case.image, t2=False, case_id=case.name)
    except KneePipelineError as exc:  # nothing segmented at all: the analysis refuses, which is a failure caught
        row.update(dice=cartilage_dice(truth, np.zeros(case.image.array.shape, np.uint8))[0], dice_per_plate={},
                   score=0.0, verdict="failed", reasons=[f"refused: {exc}"], refused=True, any_failed_finding=True,
                   findings=[],
                   expected_dice={}, knee_check=[])  # fmt: skip
        row["seconds"] = round(time.perf_counter() - t0, 1)
        return row
    qc = result.segmentation_qc
    dice, per = cartilage_dice(truth, result.labels.array)
    row.update(
        dice=dice,
        dice_per_plate=per,
        score=qc.score,
        verdict=qc.verdict,
        reasons=list(qc.reasons),
        refused=False,
        any_failed_finding=any(f.level == "failed" for f in qc.findings),
        findings=[f.to_dict() for f in qc.findings],
        expected_dice={n: s.expected_dice for n, s in qc.per_structure.items()},
        # what the segmenter's knee check (which used to refuse such images outright) says
        knee_check=knee_problems(result.labels.array, result.labels.voxel_volume_mm3, result.labels.spacing[::-1]),
        seconds=round(time.perf_counter() - t0, 1),
    )
    return row


def run_set(name: str, *, fresh: bool) -> list[dict]:
    from pipeline.engine import Engine

    CACHE.mkdir(parents=True, exist_ok=True)
    cache = CACHE / f"{name}.jsonl"
    if fresh:
        cache.unlink(missing_ok=True)
    done = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            row = json.loads(line)
            done[row["name"]] = row
    engine = Engine.load("demo", download=False)
    rows, index = [], 0
    for kind, severities in PLAN.items():
        for severity in severities:
            seed = SEEDS[name] + index
            index += 1
            key = f"{kind}-{severity:g}-s{seed}"
            if key in done:
                rows.append(done[key])
                continue
            row = run_case(engine, kind, severity, seed)
            with cache.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            rows.append(row)
            log(f"  {key:28s} Dice {row['dice']:.3f}  score {row['score']:.3f}  {row['verdict']:7s} "
                f"{row['seconds']:5.1f} s  {'; '.join(row['reasons'][:3])}")  # fmt: skip
    return rows


# --- judging and figures ----------------------------------------------------------------------------------------
def verdict_with(row: dict, ok: float, failed: float) -> str:
    """The verdict ``row`` gets with other score thresholds (its reasons and findings unchanged)."""
    if row["any_failed_finding"] or row["score"] < failed:
        return "failed"
    if row["reasons"] or row["score"] < ok:
        return "review"
    return "ok"


def calibrate(rows: list[dict]) -> dict:
    """Thresholds that fit ``rows``, on the score alone (the findings' reasons send cases to review regardless).

    SCORE_OK: the middle of the interval of thresholds that leave at most MAX_MISSED_BAD of the true Dice < 0.7
    cases at or above it and at most MAX_GOOD_BELOW of the true Dice >= 0.9 cases below it (each acceptance bound
    with a margin); if no threshold does both, the middle of those with the best balanced accuracy.
    SCORE_FAILED: the middle of the thresholds that best separate true Dice < 0.5 (unusable) from true Dice >= 0.7
    (balanced accuracy; between them either verdict is defensible), at least REVIEW_BAND below SCORE_OK so that a
    score band asks for review.
    """
    grid = np.round(np.arange(0.20, 0.96, 0.005), 3)
    scores = np.array([r["score"] for r in rows])
    dice = np.array([r["dice"] for r in rows])
    bad, good = scores[dice < LOW_DICE], scores[dice >= HIGH_DICE]
    missed = np.array([(bad >= t).mean() for t in grid])
    held = np.array([(good < t).mean() for t in grid])
    feasible = grid[(missed <= MAX_MISSED_BAD) & (held <= MAX_GOOD_BELOW)]
    if len(feasible):
        ok, rule = float(np.round((feasible.min() + feasible.max()) / 2, 2)), "feasible interval"
    else:
        ok, rule = _middle_of_best(grid, 0.5 * ((1 - missed) + (1 - held))), "best balanced accuracy"
    unusable, usable = dice < 0.5, dice >= LOW_DICE
    below = grid[grid <= ok - REVIEW_BAND + 1e-9]
    accuracy = np.array([0.5 * ((scores[unusable] < t).mean() + (scores[usable] >= t).mean()) for t in below])
    failed = _middle_of_best(below, accuracy)
    return {"SCORE_OK": ok, "rule_ok": rule, "SCORE_FAILED": failed,
            "balanced_accuracy_failed": round(float(accuracy.max()), 3)}  # fmt: skip


def _middle_of_best(grid: np.ndarray, accuracy: np.ndarray) -> float:
    best = grid[accuracy >= accuracy.max() - 1e-12]
    return float(np.round((best.min() + best.max()) / 2, 2))


def _share(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def figures(rows: list[dict], ok: float, failed: float) -> dict:
    from scipy.stats import spearmanr

    verdicts = [verdict_with(r, ok, failed) for r in rows]
    dice = np.array([r["dice"] for r in rows])
    score = np.array([r["score"] for r in rows])
    low = [v for v, d in zip(verdicts, dice, strict=True) if d < LOW_DICE]
    high = [v for v, d in zip(verdicts, dice, strict=True) if d >= HIGH_DICE]
    confusion = {}
    for lo, hi, label in DICE_BINS:
        inside = [v for v, d in zip(verdicts, dice, strict=True) if lo <= d < hi]
        confusion[label] = {v: inside.count(v) for v in ("ok", "review", "failed")}
    kinds: dict[str, dict] = {}
    for row, verdict in zip(rows, verdicts, strict=True):
        entry = kinds.setdefault(row["kind"], {"n": 0, "dice": [], "score": [], "ok": 0, "review": 0, "failed": 0})
        entry["n"] += 1
        entry["dice"].append(row["dice"])
        entry["score"].append(row["score"])
        entry[verdict] += 1
    for entry in kinds.values():
        entry["dice"], entry["score"] = float(np.mean(entry["dice"])), float(np.mean(entry["score"]))
    return {
        "cases": len(rows),
        "kinds": kinds,
        "spearman": float(spearmanr(score, dice).statistic),
        "n_low": len(low),
        "low_flagged": _share([v != "ok" for v in low]),
        "n_high": len(high),
        "high_review": _share([v == "review" for v in high]),
        "high_failed": _share([v == "failed" for v in high]),
        "confusion": confusion,
        "refused": sum(r["refused"] for r in rows),
        "knee_check_would_refuse": sum(bool(r["knee_check"]) for r in rows),
        "thresholds": {"SCORE_OK": ok, "SCORE_FAILED": failed},
    }


def print_figures(f: dict) -> None:
    log(f"\n{f['cases']} cases over {len(f['kinds'])} kinds; thresholds ok >= {f['thresholds']['SCORE_OK']}, "
        f"failed < {f['thresholds']['SCORE_FAILED']}")  # fmt: skip
    log("| kind | cases | mean true Dice | mean score | ok | review | failed |")
    log("|---|---|---|---|---|---|---|")
    for kind, v in f["kinds"].items():
        log(f"| {kind} | {v['n']} | {v['dice']:.3f} | {v['score']:.3f} | {v['ok']} | {v['review']} | {v['failed']} |")
    log(f"\nSpearman(score, true mean cartilage Dice) = {f['spearman']:.3f}  (acceptance >= 0.8)")
    if f["low_flagged"] is not None:
        log(
            f"true Dice < {LOW_DICE}: {f['n_low']} cases, {f['low_flagged']:.1%} review or failed  (acceptance >= 95 %)"
        )
    if f["high_review"] is not None:
        log(f"true Dice >= {HIGH_DICE}: {f['n_high']} cases, {f['high_review']:.1%} review, {f['high_failed']:.1%} "
            "failed  (acceptance: review <= 10 %)")  # fmt: skip
    log(f"refused by the analysis (nothing segmented): {f['refused']}; the old knee check would have refused "
        f"{f['knee_check_would_refuse']}")  # fmt: skip
    log("\n| true Dice | ok | review | failed |\n|---|---|---|---|")
    for label, counts in f["confusion"].items():
        log(f"| {label} | {counts['ok']} | {counts['review']} | {counts['failed']} |")


# --- real data ------------------------------------------------------------------------------------------------
def real_cases() -> list[dict]:
    """The acceptance cases on real data and on the built-in example (see the module docstring)."""
    from bench.mskt_data import LABEL_MAPS, MESE_SERIES, SCHEMES, mskt_data
    from pipeline.engine import Engine, analyze_labels
    from pipeline.synthetic import make_phantom, render_mr

    out = []

    def record(name: str, result, expected: str) -> None:
        qc = result.segmentation_qc
        row = {"case": name, "score": round(qc.score, 3), "verdict": qc.verdict, "expected": expected,
               "basis": qc.basis, "reasons": list(qc.reasons)}  # fmt: skip
        out.append(row)
        log(f"  {name:52s} {qc.verdict:7s} score {qc.score:.3f}  (expected {expected})  {'; '.join(qc.reasons[:4])}")

    for path in LABEL_MAPS:
        record(f"given labels: {path}", analyze_labels(mskt_data(path), scheme=SCHEMES[path]), "ok")
    engine = Engine.load("demo", download=False)
    record(f"demo model on the real GE MESE series {MESE_SERIES}",
           engine.analyze(mskt_data(MESE_SERIES), t2=False), "review or failed")  # fmt: skip
    phantom = make_phantom(side="right")
    record("built-in example, segmented by the demo model", engine.analyze(render_mr(phantom.labels)), "ok")
    record("built-in example, labels given", analyze_labels(phantom.labels), "ok")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=tuple(SEEDS), default="report", help="which seed set (default report)")
    parser.add_argument("--calibrate", action="store_true", help="print the thresholds that fit this set")
    parser.add_argument("--fresh", action="store_true", help="ignore finished cases of an earlier run")
    parser.add_argument("--real", action="store_true", help="also the real-data and built-in example cases")
    parser.add_argument("--json", type=Path, help="write cases and figures to this JSON file")
    args = parser.parse_args(argv)
    from pipeline.quality import verdict

    t0 = time.perf_counter()
    log(f"Seed set '{args.set}' ({sum(len(v) for v in PLAN.values())} cases, demo model):")
    rows = run_set(args.set, fresh=args.fresh)
    out: dict = {"set": args.set, "cases": rows}
    if args.calibrate:
        fitted = calibrate(rows)
        log(f"\nCalibrated on '{args.set}': {fitted}")
        out["calibrated"] = fitted
    out["figures"] = figures(rows, verdict.SCORE_OK, verdict.SCORE_FAILED)
    print_figures(out["figures"])
    if args.real:
        log("\nReal data and the built-in example:")
        out["real"] = real_cases()
    log(f"\nwall {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
