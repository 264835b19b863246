"""Which segmentation models exist, and which segmenter class loads each kind (the seam the engine uses).

Pure names and a lazy class lookup: importing this module imports neither torch nor nnU-Net.
"""

from __future__ import annotations

from .goyal import GOYAL_MODELS

#: Segmentation models offered (manifest names), best first: nnU-Net, the predecessor's Goyal U-Nets, the demo.
SEGMENTATION_MODELS = ("fullres", "cascade", *GOYAL_MODELS, "demo")


def segmenter_class(entry):
    """The class whose ``from_model(resolved, options=...)`` loads a manifest entry of this kind."""
    if entry.kind == "nnunet":
        from .segmenter import Segmenter

        return Segmenter
    if entry.kind == "keras":
        from .goyal.segmenter import GoyalSegmenter

        return GoyalSegmenter
    raise ValueError(f"Model '{entry.name}' (kind '{entry.kind}') is not a segmentation model.")
