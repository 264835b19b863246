"""How large an image the readers accept, decided from headers before any voxel is decoded.

A few-kB compressed file can declare 1024^3 voxels and take every user's memory with it; the limits refuse it from
its header alone. Defaults suit knee MRI (a 512 x 512 x 300 series is 79 M voxels); set ``KNEESCOPE_MAX_VOXELS``
and ``KNEESCOPE_MAX_AXIS`` (environment variables, for the app and the command line alike) to change them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InvalidInputError

DEFAULT_MAX_VOXELS = 120_000_000
DEFAULT_MAX_AXIS = 2048


@dataclass(frozen=True)
class ImageLimits:
    """Largest image accepted: total voxels (all channels and echoes together) and voxels along any axis."""

    max_voxels: int = DEFAULT_MAX_VOXELS
    max_axis: int = DEFAULT_MAX_AXIS

    @classmethod
    def from_env(cls) -> ImageLimits:
        return cls(
            max_voxels=int(os.environ.get("KNEESCOPE_MAX_VOXELS", DEFAULT_MAX_VOXELS)),
            max_axis=int(os.environ.get("KNEESCOPE_MAX_AXIS", DEFAULT_MAX_AXIS)),
        )

    def check(self, size: Sequence[int], name: str) -> None:
        """Raise InvalidInputError when an image of ``size`` voxels per axis is over a limit."""
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
