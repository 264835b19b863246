"""``pipeline.batch.run_cohort(manifest, out, engine="ray", ...) -> pandas.DataFrame``: see :mod:`pipeline.cohort`."""

from .cohort import CaseOutcome, CohortCase, Manifest, ManifestError, read_manifest, run_cohort

__all__ = ["CaseOutcome", "CohortCase", "Manifest", "ManifestError", "read_manifest", "run_cohort"]
