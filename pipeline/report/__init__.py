"""Reporting: typed results (``results``), the flat table row (``table``), files (``outputs``), mesh writers
(``meshes``: VTK and GLB), provenance records (``provenance``) and the interactive view (``viewer``).
Only this package writes result files."""

from .results import SCHEMA_VERSION, KneeAnalysis

__all__ = ["SCHEMA_VERSION", "KneeAnalysis"]
