"""How large an image the readers accept, decided from headers before any voxel is decoded.

A few-kB compressed file can declare 1024^3 voxels and take every user's memory with it; the limits refuse it from
its header alone. Three bounds, all from the header:

* voxels in all and along any axis (``KNEESCOPE_MAX_VOXELS``, ``KNEESCOPE_MAX_AXIS``): a 512 x 512 x 300 series is
  79 M voxels;
* the memory the case would need (``KNEESCOPE_MAX_CASE_GB``, default half of this machine's memory): estimated from
  the voxel count, the voxel size and what will be done with the image (:class:`CaseCost`: segmenting resamples to
  the model's voxel size and holds a float per class per voxel; measuring a label map needs far less);
* the bytes an archive may unpack to, derived from the voxel limit (a zip bomb of ratio 135 is refused unopened).

The same object carries them to every reader (CLI, app, batch, compare say the same sentence).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ..errors import InvalidInputError

DEFAULT_MAX_VOXELS = 120_000_000
DEFAULT_MAX_AXIS = 2048
#: A DICOM series's headers and the archive's own overhead on top of its voxels.
ARCHIVE_OVERHEAD_BYTES = 64 * 1024**2
#: The largest voxel type a knee MRI arrives in (float32); an archive holds at most max_voxels of them.
ARCHIVE_BYTES_PER_VOXEL = 4
#: The default case budget as a share of this machine's memory: room is left for the app, the OS and the page cache.
DEFAULT_MEMORY_SHARE = 0.5


def machine_memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a modest machine
        return 8 * 1024**3


def default_case_bytes() -> int:
    return int(DEFAULT_MEMORY_SHARE * machine_memory_bytes())


@dataclass(frozen=True)
class CaseCost:
    """What the work on an image costs in memory, estimated per voxel.

    Attributes:
        what: the work, for the message ("segment", "analyse").
        bytes_per_voxel: bytes per voxel of the image as it is (copies, masks, per-class maps resampled back).
        bytes_per_work_voxel: bytes per voxel after resampling to ``work_spacing_mm`` (the network's input and
            its per-class logits).
        work_spacing_mm: the voxel size the work resamples to (ITK order), None when it does not resample.
    """

    what: str
    bytes_per_voxel: float
    bytes_per_work_voxel: float = 0.0
    work_spacing_mm: tuple[float, float, float] | None = None

    def estimate(self, size: Sequence[int], spacing: Sequence[float] | None) -> float:
        voxels = math.prod(int(n) for n in size[:3])
        scale = 1.0
        if self.work_spacing_mm is not None and spacing is not None and len(spacing) >= 3:
            scale = math.prod(float(s) / w for s, w in zip(spacing[:3], self.work_spacing_mm, strict=True))
        return voxels * self.bytes_per_voxel + voxels * scale * self.bytes_per_work_voxel


#: Measuring a label map (meshes, thickness, regions): about 18 bytes per voxel measured on the 384 x 384 x 160
#: real label map (bench/RESULTS.md); 24 leaves a margin.
MEASURE_COST = CaseCost("analyse", 24.0)


@dataclass(frozen=True)
class ImageLimits:
    """Largest image accepted: total voxels (all channels and echoes together), voxels along any axis, and the
    memory the case may need (``max_case_bytes``; checked when ``cost`` says what the case will do)."""

    max_voxels: int = DEFAULT_MAX_VOXELS
    max_axis: int = DEFAULT_MAX_AXIS
    max_case_bytes: int = field(default_factory=default_case_bytes)
    cost: CaseCost | None = None

    @classmethod
    def from_env(cls) -> ImageLimits:
        gigabytes = os.environ.get("KNEESCOPE_MAX_CASE_GB")
        return cls(
            max_voxels=int(os.environ.get("KNEESCOPE_MAX_VOXELS", DEFAULT_MAX_VOXELS)),
            max_axis=int(os.environ.get("KNEESCOPE_MAX_AXIS", DEFAULT_MAX_AXIS)),
            max_case_bytes=int(float(gigabytes) * 1024**3) if gigabytes else default_case_bytes(),
        )

    def for_work(self, cost: CaseCost | None) -> ImageLimits:
        """These limits for an image that will undergo ``cost``'s work."""
        return replace(self, cost=cost)

    @property
    def max_unpacked_bytes(self) -> int:
        """What an uploaded archive may unpack to: the largest image accepted, in float32, plus its headers."""
        return self.max_voxels * ARCHIVE_BYTES_PER_VOXEL + ARCHIVE_OVERHEAD_BYTES

    def check(self, size: Sequence[int], name: str, spacing: Sequence[float] | None = None) -> None:
        """Raise InvalidInputError when an image of ``size`` voxels per axis (and ``spacing`` mm, when the header
        gives it) is over a limit."""
        size = [int(n) for n in size]
        if any(n < 0 for n in size):
            raise InvalidInputError(f"{name}: the header declares a negative image size {size}; the file is corrupt.")
        too_long = [n for n in size if n > self.max_axis]
        if too_long:
            raise InvalidInputError(
                f"{name}: the header declares {max(too_long)} voxels along one axis (size {size}); at most "
                f"{self.max_axis} are accepted. A knee MRI is far smaller: is the file corrupt?"
            )
        total = math.prod(size)
        if total > self.max_voxels:
            raise InvalidInputError(
                f"{name}: the header declares {total / 1e6:.0f} M voxels (size {size}); at most "
                f"{self.max_voxels / 1e6:.0f} M are accepted. Crop or downsample the image, or raise the limit "
                "(KNEESCOPE_MAX_VOXELS)."
            )
        if spacing is not None:
            check_spacing(spacing, name)
        if self.cost is not None:
            needed = self.cost.estimate(size, spacing)
            if needed > self.max_case_bytes:
                raise InvalidInputError(
                    f"{name}: to {self.cost.what} this image ({' x '.join(map(str, size[:3]))} voxels) would need "
                    f"about {needed / 1024**3:.1f} GB of memory; this server allows "
                    f"{self.max_case_bytes / 1024**3:.1f} GB per case. Crop the image to the knee or downsample "
                    "it (or raise KNEESCOPE_MAX_CASE_GB / --max-case-gb on a larger machine)."
                )


def check_spacing(spacing: Sequence[float], name: str) -> None:
    """Voxel sizes must be finite and positive: a zero or negative spacing in a header is refused, never replaced
    (ITK reads a NIfTI pixdim of 0 as 1 mm and would measure the knee at the wrong scale)."""
    values = [float(s) for s in spacing[:3]]
    if not all(math.isfinite(v) and v > 0 for v in values):
        shown = ", ".join(f"{v:g}" for v in values)
        raise InvalidInputError(
            f"{name}: the voxel spacing is ({shown}) mm; every voxel size must be a positive number. The file's "
            "geometry is damaged: export it again from the scanner or the DICOM original."
        )
