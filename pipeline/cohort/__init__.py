"""Cohorts: one manifest of cases in, one output folder and one table out; resumable; local or on Ray.

``manifest`` (MANIFEST.csv or a folder of images -> cases), ``runner`` (the per-case function: Engine.analyze, then
an atomic write), ``local`` and ``ray_executor`` (where cases run), ``store`` (the output folder: done markers,
failure records, partial attempts), ``table`` (cohort.csv/.parquet/.json), ``report`` (cohort_report.html),
``run`` (``run_cohort``, which ties them together).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .manifest import CohortCase, Manifest, ManifestError, read_manifest
from .outcome import CaseOutcome

if TYPE_CHECKING:
    from .run import run_cohort


def __getattr__(name: str):
    # Lazy: a Ray worker unpickles its actor from `ray_executor`, which imports this package; it never needs
    # run_cohort's table and report writers (pandas), which cost each worker process a quarter of a second.
    if name == "run_cohort":
        from .run import run_cohort

        return run_cohort
    raise AttributeError(f"module 'pipeline.cohort' has no attribute {name!r}")


__all__ = ["CaseOutcome", "CohortCase", "Manifest", "ManifestError", "read_manifest", "run_cohort"]
