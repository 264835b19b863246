"""Cohorts: one manifest of cases in, one output folder and one table out; resumable; local or on Ray.

``manifest`` (MANIFEST.csv or a folder of images -> cases), ``runner`` (the per-case function: Engine.analyze, then
an atomic write), ``local`` and ``ray_executor`` (where cases run), ``store`` (the output folder: done markers,
failure records, partial attempts), ``table`` (cohort.csv/.parquet/.json), ``report`` (cohort_report.html),
``run`` (``run_cohort``, which ties them together).
"""

from .manifest import CohortCase, Manifest, ManifestError, read_manifest
from .outcome import CaseOutcome
from .run import run_cohort

__all__ = ["CaseOutcome", "CohortCase", "Manifest", "ManifestError", "read_manifest", "run_cohort"]
