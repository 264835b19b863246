"""What engine to build, as one frozen value: the CLI, the app, cohort workers and ``compare`` each describe the
engine they want with an ``EngineSpec`` and build it with ``Engine.from_spec`` (the one factory).

    Engine.from_spec(EngineSpec("fullres", fallback_to_demo=True))      # the CLI's `analyze`
    Engine.from_spec(EngineSpec(AUTO_MODEL, download=False))             # the app: best model available offline
    Engine.from_spec(spec, segment=False)                                # label maps only: no model loaded
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .config import InferenceOptions
from .segmentation.loading import AUTO_MODEL

__all__ = ["AUTO_MODEL", "EngineSpec"]


@dataclass(frozen=True)
class EngineSpec:
    """Which engine to build.

    Attributes:
        model: manifest name ('fullres', 'cascade', 'demo', ...), or AUTO_MODEL (the best available offline).
        model_dir: a local copy of the model in its published layout (default: $KNEESCOPE_MODEL_DIR).
        inference: device, mirroring, sliding window, CPU backend.
        download: allow fetching missing weights from the Hub.
        fallback_to_demo: when the model's weights are unavailable (and no model dir was given), use the demo model
            and set ``Engine.notice`` instead of failing. Off for cohorts: a table made by the demo model would
            look like real results.
    """

    model: str = "fullres"
    model_dir: str | None = None
    inference: InferenceOptions = field(default_factory=InferenceOptions)
    download: bool = True
    fallback_to_demo: bool = False

    @property
    def folder(self) -> Path | None:
        """The model dir given, else $KNEESCOPE_MODEL_DIR, else None."""
        from .weights import model_dir_from_env

        return Path(self.model_dir).expanduser() if self.model_dir is not None else model_dir_from_env()

    def with_changes(self, **changes) -> EngineSpec:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "model_dir": self.model_dir,
            "inference": self.inference.to_dict(),
            "download": self.download,
            "fallback_to_demo": self.fallback_to_demo,
        }
