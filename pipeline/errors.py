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


class DiskFullError(KneePipelineError):
    """The disk has no room for what must be written (results, a copy of an input); see pipeline/diskspace.py."""

    def __init__(self, what: str, folder: str, *, free: int | None = None, needed: int | None = None):
        self.what, self.folder, self.free, self.needed = what, folder, free, needed
        super().__init__(
            f"The disk is full: {what} could not be written to {folder}{self.amounts}. Free some space, then run again."
        )

    @property
    def amounts(self) -> str:
        """ " (12 MB free, about 80 MB needed)", or less when not known."""
        parts = [f"{_megabytes(self.free)} free"] if self.free is not None else []
        if self.needed is not None:
            parts.append(f"about {_megabytes(self.needed)} needed")
        return f" ({', '.join(parts)})" if parts else ""


def _megabytes(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"
