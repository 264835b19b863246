"""Morphometry: surfaces (``mesh``), cartilage thickness (``thickness``), knee side and femoral subregions
(``anatomy``), structure QC (``qc``), regional summaries (``summary``, ``regions``), and the stage (``stage``).
"""

from .anatomy import Laterality
from .mesh import Surface
from .stage import Morphometry, measure_knee
from .summary import RegionResult, ThicknessStats

__all__ = ["Laterality", "Morphometry", "RegionResult", "Surface", "ThicknessStats", "measure_knee"]
