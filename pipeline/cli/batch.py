"""``python -m pipeline batch MANIFEST.csv --out OUT/``: a cohort, resumable, locally or on Ray.

Exit status: 0 when every case is done, 3 when the run finished but some cases failed (listed), 2 for a bad
manifest or arguments (one specific message, nothing run), 130 when interrupted (run the command again to resume).
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
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print("Interrupted: finished cases are kept; run the same command again to resume.", file=sys.stderr)
        return 130
    print(cohort_summary(table, args.out))
    return EXIT_SOME_FAILED if (table["status"] == "failed").any() else 0


def cohort_summary(table, out: str) -> str:
    counts = table["status"].value_counts()
    lines = [
        f"Cohort of {len(table)} cases: {counts.get('ok', 0)} analysed, {counts.get('skipped', 0)} done earlier, "
        f"{counts.get('failed', 0)} failed. Table: {out}/cohort.csv; QC page: {out}/cohort_report.html"
    ]
    failed = table[table["status"] == "failed"]
    for row in failed.head(MAX_LISTED).itertuples():
        lines.append(f"  FAILED {row.case_id}: {row.error}")
    if len(failed) > MAX_LISTED:
        lines.append(f"  ... and {len(failed) - MAX_LISTED} more (see {out}/cohort.csv)")
    if len(failed):
        lines.append("Fix them and run again with --retry-failed.")
    return "\n".join(lines)
