"""Where an analysis's label map came from, as a typed value: given by the user (its scheme, the values it ignored,
how its grid was matched to the image) or segmented here (the segmenter's provenance). The later stages, the QC
warnings and the provenance read it instead of an untyped dict of facts."""

from __future__ import annotations

from dataclasses import dataclass, field

from .io.grids import align_to_grid
from .io.labelmaps import LoadedLabels
from .labels import CANONICAL_SCHEME, LabelScheme
from .segmentation.confidence import NetworkConfidence
from .segmentation.loading import DEMO_MODEL
from .volume import Volume


@dataclass(frozen=True)
class LabelSource:
    """The canonical label map on the image's grid, and how it was obtained.

    Attributes:
        labels: canonical label map (uint8), on the image grid when there is an image.
        scheme: the scheme the labels were read in (canonical for a segmentation made here).
        ignored_values: label values the scheme does not name (value -> voxel count), ignored.
        scheme_note: how an 'auto' scheme was decided.
        grid_note: how a given label map was reoriented onto the image grid (None when it was already there).
        segmentation: the segmenter's provenance when the labels were segmented here; None when given.
        confidence: the network's confidence in its segmentation (None when given, or not measured).
    """

    labels: Volume
    scheme: LabelScheme
    ignored_values: dict[int, int] = field(default_factory=dict)
    scheme_note: str | None = None
    grid_note: str | None = None
    segmentation: dict | None = None
    confidence: NetworkConfidence | None = None

    @property
    def given(self) -> bool:
        """The user gave the label map (no model ran)."""
        return self.segmentation is None

    @property
    def demo(self) -> bool:
        """Segmented here by the demo model (results meaningless on real MRI)."""
        return self.segmentation is not None and self.segmentation.get("engine_model") == DEMO_MODEL

    @classmethod
    def from_given(cls, loaded: LoadedLabels, image: Volume | None) -> LabelSource:
        """A label map the user gave, put onto the image's grid (reoriented exactly, or refused)."""
        labels, grid_note = align_to_grid(loaded.volume, image) if image is not None else (loaded.volume, None)
        return cls(labels, loaded.scheme, dict(loaded.ignored_values), loaded.note, grid_note)

    @classmethod
    def from_segmentation(
        cls, labels: Volume, provenance: dict, confidence: NetworkConfidence | None = None
    ) -> LabelSource:
        return cls(labels, CANONICAL_SCHEME, segmentation=dict(provenance), confidence=confidence)
