"""Two visits of one knee: bone registration (``registration``), follow-up thickness on the baseline's vertices
(``transfer``), the visits however given (``visits``), typed change results (``change``), their files
(``outputs``), and the stage ``compare`` (``stage``)."""

from .change import ChangeStats, KneeChange, RegionChange, VolumeChange
from .compare import CompareOptions, DifferentKneesError, compare

__all__ = [
    "ChangeStats",
    "CompareOptions",
    "DifferentKneesError",
    "KneeChange",
    "RegionChange",
    "VolumeChange",
    "compare",
]
