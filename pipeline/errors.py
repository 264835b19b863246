"""The pipeline's exceptions: one root, a few specific kinds.

Every message says what is wrong and what to do; the UI shows it verbatim, so it must never be a traceback.
"""

from __future__ import annotations


class KneePipelineError(Exception):
    """Root of every error the pipeline raises on purpose."""


class InvalidInputError(KneePipelineError, ValueError):
    """The input file, folder or archive cannot be used as given."""


class MultipleSeriesError(InvalidInputError):
    """An archive or folder holds several DICOM series; the user must pick one."""

    def __init__(self, message: str, series: list[dict]):
        super().__init__(message)
        self.series = series


class GeometryMismatchError(InvalidInputError):
    """An image and its label map do not share one voxel grid."""


class LabelSchemeError(InvalidInputError):
    """A label scheme is unknown or malformed."""


class EmptySegmentationError(KneePipelineError):
    """No knee structure was found in a label map."""


class WeightsUnavailableError(KneePipelineError):
    """Model weights are missing, unverifiable or cannot be fetched."""
