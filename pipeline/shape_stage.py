"""The shape-model stage of an analysis: NSM fit and BScore when requested, a stated reason when not possible."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import labels as L
from .mesh import Surface


@dataclass(frozen=True)
class ShapeOptions:
    """How to run the neural shape model. ``model`` is an already loaded ShapeModel (the engine loads it once)."""

    model_dir: Path | None = None
    bscore_dir: Path | None = None
    model_id: str | None = None  # "647" (bone + cartilage) or "551" (bone only); default from the surfaces
    model: object | None = None
    device: str | None = None
    revision: str | None = None  # weights revision, recorded in the results
    fit_overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ShapeOutcome:
    section: dict
    fit: object | None = None  # pipeline.shape.stage.ShapeModelResult when it ran
    surfaces: tuple[Surface, ...] = ()
    warning: str | None = None


def run_shape_stage(
    surfaces: dict[str, Surface], side: str, options: ShapeOptions | None, progress=None
) -> ShapeOutcome:
    if options is None:
        return ShapeOutcome({"computed": False, "reason": "Shape model not requested."})
    if side not in ("left", "right"):
        reason = "Shape model skipped: the knee side is unknown (the model needs right-knee orientation)."
        return ShapeOutcome({"computed": False, "reason": reason}, warning=reason)
    if L.FEMUR not in surfaces:
        reason = "Shape model skipped: no femur surface."
        return ShapeOutcome({"computed": False, "reason": reason}, warning=reason)
    from .shape.stage import run_shape_model

    fit = run_shape_model(
        surfaces[L.FEMUR],
        surfaces.get(L.FEMORAL_CARTILAGE),
        side,
        model_dir=options.model_dir,
        bscore_dir=options.bscore_dir,
        model_id=options.model_id,
        model=options.model,
        device=options.device,
        progress=progress,
        **options.fit_overrides,
    )
    if not fit.available:
        return ShapeOutcome({"computed": False, **fit.to_dict()}, warning=fit.reason)
    section = {"computed": True, **fit.to_dict(), "latent": list(fit.latent), "weights_revision": options.revision}
    return ShapeOutcome(section, fit, tuple(fit.patient_space_surfaces()))
