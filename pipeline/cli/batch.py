"""``python -m pipeline batch MANIFEST.csv --out OUT/ [--longitudinal]``: a cohort, resumable, locally or on Ray.

Exit status: 0 when every case (and pair) is done, 3 when the run finished but some failed (listed), 2 for a bad
manifest or arguments, or an OUT folder in use by another run (one specific message, nothing run), 130 when
interrupted (run the command again to resume).
"""

from __future__ import annotations

import argparse
import sys

from .analyze import add_label_scheme, add_model_options, add_stage_options, analysis_request, engine_spec

EXIT_SOME_FAILED = 3
MAX_LISTED = 20


def add_parser(sub) -> None:
    batch = sub.add_parser(
        "batch", help="analyse a cohort (MANIFEST.csv or a folder of images) into one table; resumable, Ray or local"
    )
    batch.add_argument("manifest", help="MANIFEST.csv (case_id, image and/or labels, ...) or a folder of images")
    batch.add_argument("--out", required=True, help="cohort folder: cases/<case_id>/, cohort.csv, cohort_report.html")
    batch.add_argument("--engine", choices=("local", "ray"), default="local", help="where cases run (default local)")
    batch.add_argument("--ray-address", help="join this Ray cluster (default: start a local one sized to the machine)")
    batch.add_argument("--workers", type=int, help="workers per pool (default: one per GPU, or one per CPU)")
    batch.add_argument(
        "--gpus-per-worker", type=float, help="GPU share of each segmenting worker (default 1 with GPUs, else CPU)"
    )
    batch.add_argument("--retry-failed", action="store_true", help="run again the cases that failed before")
    batch.add_argument("--zip", action="store_true", help="also write each case's results zip")
    batch.add_argument(
        "--longitudinal",
        action="store_true",
        help="the manifest has subject_id and visit (and optionally date) columns: also compare each follow-up with "
        "the subject's baseline (cohort_change.csv, change statistics on the cohort page)",
    )
    batch.add_argument(
        "--pairs",
        choices=("baseline", "consecutive"),
        default="baseline",
        help="with --longitudinal: compare each follow-up with the first visit (default) or with the visit before",
    )
    add_label_scheme(batch, applies_to="labels of rows whose label_scheme cell is empty")
    add_model_options(batch, demo_fallback=False)  # a cohort table made by the demo model would look real
    add_stage_options(batch)
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    batch.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..cohort import run_cohort

    try:
        table = run_cohort(
            args.manifest,
            args.out,
            engine=args.engine,
            ray_address=args.ray_address,
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            retry_failed=args.retry_failed,
            request=analysis_request(args),
            engine_spec=engine_spec(args, fallback_to_demo=False),
            make_zip=args.zip,
            longitudinal=args.longitudinal,
            pairs=args.pairs,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print("Interrupted: finished cases are kept; run the same command again to resume.", file=sys.stderr)
        return 130
    tables = tuple(table) if args.longitudinal else (table,)
    print(cohort_summary(tables[0], args.out))
    if args.longitudinal:
        print(change_summary(tables[1], args.out))
    if any((t["status"] == "failed").any() for t in tables):
        print("Fix them and run again with --retry-failed.")
        return EXIT_SOME_FAILED
    return 0


def cohort_summary(table, out: str) -> str:
    counts = table["status"].value_counts()
    earlier = int((table["run"] == "earlier").sum())
    lines = [
        f"Cohort of {len(table)} cases: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed "
        f"({len(table) - earlier} this run, {earlier} earlier). Table: {out}/cohort.csv; QC page: "
        f"{out}/cohort_report.html"
    ]
    return "\n".join(lines + _failures(table, "case_id", f"{out}/cohort.csv"))


def change_summary(table, out: str) -> str:
    counts = table["status"].value_counts()
    earlier = int((table["run"] == "earlier").sum())
    flagged = int(table["qc_flagged"].sum())
    lines = [
        f"{len(table)} pairs of visits compared: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed "
        f"({len(table) - earlier} this run, {earlier} earlier), {flagged} flagged by QC. Table: "
        f"{out}/cohort_change.csv; statistics: {out}/cohort_change_stats.csv"
    ]
    return "\n".join(lines + _failures(table, "pair_id", f"{out}/cohort_change.csv"))


def _failures(table, ids: str, where: str) -> list[str]:
    failed = table[table["status"] == "failed"]
    lines = [f"  FAILED {getattr(row, ids)}: {row.error}" for row in failed.head(MAX_LISTED).itertuples()]
    if len(failed) > MAX_LISTED:
        lines.append(f"  ... and {len(failed) - MAX_LISTED} more (see {where})")
    return lines
