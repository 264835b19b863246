"""Pipeline stage: femur (+ femoral cartilage) surfaces -> NSM latent, BScore, reconstruction and ASSD.

``run_shape_model`` never raises for missing weights: the ShapeMedKnee weights are gated on the HF hub, so a result
with ``available=False`` and a readable ``reason`` is returned instead and the rest of the analysis goes on.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..morphometry.mesh import Surface
from ..outcome import NotComputed
from ..progress import ProgressFn
from .bscore import BScoreModel, resolve_bscore_folder
from .files import find_model_files

if TYPE_CHECKING:  # torch-importing modules load lazily, so the unavailable path stays cheap
    from .fit import KneeFit
    from .model import ShapeModel

logger = logging.getLogger(__name__)

_HF_HINT = "they are gated on the HuggingFace hub, set HF_TOKEN after accepting the terms"


@dataclass(frozen=True)
class ShapeModelResult:
    """Outcome of the shape-model stage. Distances in mm; ``icp_transform`` maps patient mm -> model space.

    For a left knee every geometric output (reconstructions, ICP transform) is in the mirrored (right-knee) frame.
    """

    available: bool
    reason: str | None = None
    model_id: str | None = None
    side: str | None = None
    mirrored: bool = False
    latent: tuple[float, ...] | None = None
    bscore: float | None = None
    bscore_model: str | None = None
    assd_bone_mm: float | None = None
    assd_cartilage_mm: float | None = None
    iterations: int | None = None
    final_loss: float | None = None
    seconds: float | None = None
    timings_s: dict = field(default_factory=dict)
    device: str | None = None
    icp_transform: tuple[tuple[float, ...], ...] | None = None
    centre: tuple[float, float, float] | None = None
    scale: float | None = None
    reconstructed_bone: Surface | None = None
    reconstructed_cartilage: Surface | None = None
    notes: tuple[str, ...] = ()
    mirror_centre_x: float | None = None  # the plane x = c (LPS mm) a left knee was mirrored about
    weights_revision: str | None = None  # hub commit of the weights, recorded in the results

    @property
    def computed(self) -> bool:
        return self.available

    @property
    def warning(self) -> str | None:
        return None

    def section(self) -> dict:
        """The ``shape_model`` section of results.json (with the latent)."""
        return {
            "computed": True,
            **self.to_dict(),
            "latent": list(self.latent or ()),
            "weights_revision": self.weights_revision,
        }

    @property
    def surfaces(self) -> dict[str, Surface]:
        """The reconstructions in the patient's frame, by name: what the shape stage adds to the analysis's surfaces."""
        return {surface.name: surface for surface in self.patient_space_surfaces()}

    def patient_space_surfaces(self) -> list[Surface]:
        """The reconstructions in the patient's own frame (a left knee's mirroring undone), for display."""
        out = []
        for surface in (self.reconstructed_bone, self.reconstructed_cartilage):
            if surface is None:
                continue
            if self.mirrored and self.mirror_centre_x is not None:
                points = surface.points.copy()
                points[:, 0] = 2.0 * self.mirror_centre_x - points[:, 0]
                surface = Surface(surface.name, points, surface.faces[:, ::-1].copy())  # reflection flips winding
            out.append(surface)
        return out

    def to_dict(self) -> dict:
        """JSON-safe summary for the ``shape_model`` section of results.json (no latent, no meshes)."""
        return {
            "available": self.available,
            "reason": self.reason,
            "model_id": self.model_id,
            "side": self.side,
            "mirrored": self.mirrored,
            "bscore": self.bscore,
            "bscore_model": self.bscore_model,
            "assd_bone_mm": self.assd_bone_mm,
            "assd_cartilage_mm": self.assd_cartilage_mm,
            "iterations": self.iterations,
            "final_loss": self.final_loss,
            "seconds": self.seconds,
            "timings_s": dict(self.timings_s),
            "device": self.device,
            "icp_transform": [list(row) for row in self.icp_transform] if self.icp_transform else None,
            "center": list(self.centre) if self.centre else None,
            "scale": self.scale,
            "latent_size": len(self.latent) if self.latent else None,
            "notes": list(self.notes),
        }

    def params_dict(self) -> dict:
        """The upstream ``NSM_recon_params.json`` keys (latent as [[...]], ``Bscore``, ...) plus model/side."""
        if not self.available or self.latent is None or self.icp_transform is None or self.centre is None:
            raise ValueError(f"no shape-model parameters to write: {self.reason}")
        params: dict[str, object] = {
            "latent": [list(self.latent)],
            "Bscore": self.bscore,
            "icp_transform": [list(row) for row in self.icp_transform],
            "center": list(self.centre),
            "scale": self.scale,
            "assd_bone_mm": self.assd_bone_mm,
        }
        if self.reconstructed_cartilage is not None or self.assd_cartilage_mm is not None:
            params["assd_cartilage_mm"] = self.assd_cartilage_mm
        params.update(model_id=self.model_id, bscore_model=self.bscore_model, side=self.side, mirrored=self.mirrored)
        return params

    def write_params(self, path: Path) -> Path:
        """Write ``params_dict()`` as JSON (conventionally ``nsm_params.json``); returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.params_dict(), indent=2))
        return path


def unavailable(reason: str, *, model_id: str | None = None, side: str | None = None) -> ShapeModelResult:
    logger.warning(reason)
    return ShapeModelResult(available=False, reason=reason, model_id=model_id, side=side)


def choose_model_id(femoral_cartilage: Surface | None) -> str:
    """647 (bone + cartilage) when a cartilage surface exists, else 551 (bone only)."""
    return "647" if femoral_cartilage is not None else "551"


def load_shape_model(model_dir: Path | None, model_id: str, *, device: str | None = None) -> ShapeModel | str:
    """The loaded model, or the reason it is unavailable (a string) when its files are missing."""
    if model_dir is None or find_model_files(model_dir, model_id) is None:
        where = str(model_dir) if model_dir is not None else "(no model folder configured)"
        return f"shape model unavailable: weights for ShapeMedKnee {model_id} not found in {where}; {_HF_HINT}"
    from .model import ShapeModel  # torch: only once weights are there

    return ShapeModel.from_folder(Path(model_dir), model_id, device=device)


def run_shape_model(
    femur: Surface,
    femoral_cartilage: Surface | None,
    side: str,
    *,
    model_dir: Path | None,
    bscore_dir: Path | None,
    model_id: str | None = None,
    model: ShapeModel | None = None,
    device: str | None = None,
    clip_femur: bool = True,
    progress: ProgressFn | None = None,
    **fit_overrides: object,
) -> ShapeModelResult:
    """Fit the NSM to one knee and score it.

    Args:
        femur, femoral_cartilage: surfaces in patient LPS mm, outward faces; the cartilage is optional (bone-only
            model 551 is used without it unless ``model_id`` says otherwise).
        side: "left" or "right"; left knees are mirrored to the right-knee frame the models were trained on.
        model_dir: the model folder or the HF snapshot root holding ``<id>_nsm_*``; None or missing files give an
            unavailable result. Ignored when ``model`` (an already loaded ShapeModel) is given.
        bscore_dir: the BScore folder or the ``BSCORE_MODELS`` root; without it ``bscore`` is None (with a note).
        device: "cuda" / "cpu"; default CUDA when available. Used only when the model is loaded here.
        clip_femur: clip the femur shaft as upstream (the published models and BScores expect it); turn it off only
            for input that is already clipped or synthetic.
        fit_overrides: FitSettings fields (n_iterations, resolution, n_samples, ...), e.g. for quick tests.
    """
    model_id = model.model_id if model is not None else (model_id or choose_model_id(femoral_cartilage))
    if model is None:
        loaded = load_shape_model(model_dir, model_id, device=device)
        if isinstance(loaded, str):
            return unavailable(loaded, model_id=model_id, side=side)
        model = loaded
    if model.n_objects == 2 and femoral_cartilage is None:
        reason = f"shape model {model_id} needs a femoral cartilage surface; none was found"
        return unavailable(reason, model_id=model_id, side=side)
    from .fit import FitSettings, fit_knee, prepare_knee  # torch: only once a model is really there

    settings = FitSettings.from_config(model.config, **fit_overrides)
    start = time.perf_counter()
    cartilage = None
    if model.n_objects == 2 and femoral_cartilage is not None:
        cartilage = (femoral_cartilage.points, femoral_cartilage.faces)
    prepared = prepare_knee((femur.points, femur.faces), cartilage, side, clip=clip_femur)
    fitted = fit_knee(model, prepared, settings, progress=progress)
    return _result(model, fitted, side, bscore_dir, seconds=time.perf_counter() - start)


def _result(
    model: ShapeModel, fitted: KneeFit, side: str, bscore_dir: Path | None, *, seconds: float
) -> ShapeModelResult:
    notes: list[str] = []
    score, score_name = None, None
    folder = resolve_bscore_folder(bscore_dir, model.model_id)
    if folder is None:
        notes.append(f"BScore unavailable: no BScore model for {model.model_id} in {bscore_dir}")
    else:
        scorer = BScoreModel.from_folder(folder)
        score, score_name = scorer.score(fitted.latent.latent), scorer.name
    names = ("femur_nsm_reconstruction", "femoral_cartilage_nsm_reconstruction")
    surfaces = [None if s is None else Surface(n, s[0], s[1]) for n, s in zip(names, fitted.surfaces, strict=False)]
    surfaces += [None] * (2 - len(surfaces))
    for name, surface in zip(names[: model.n_objects], surfaces[: model.n_objects], strict=True):
        if surface is None:
            notes.append(f"{name}: the fitted SDF has no zero crossing")
    assd_mm = list(fitted.assd_mm) + [None] * (2 - len(fitted.assd_mm))
    frame = fitted.frame
    return ShapeModelResult(
        available=True,
        model_id=model.model_id,
        side=side.strip().lower(),
        mirrored=fitted.prepared.mirrored,
        latent=tuple(float(v) for v in fitted.latent.latent),
        bscore=score,
        bscore_model=score_name,
        assd_bone_mm=assd_mm[0],
        assd_cartilage_mm=assd_mm[1],
        iterations=fitted.latent.iterations,
        final_loss=fitted.latent.best_loss,
        seconds=seconds,
        timings_s=dict(fitted.timings_s),
        device=str(model.device),
        icp_transform=tuple(tuple(float(v) for v in row) for row in frame.matrix),
        centre=(float(frame.centre[0]), float(frame.centre[1]), float(frame.centre[2])),
        scale=float(frame.scale),
        reconstructed_bone=surfaces[0],
        reconstructed_cartilage=surfaces[1],
        notes=tuple(notes),
        mirror_centre_x=fitted.prepared.mirror_centre_x,
    )


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


def shape_stage(
    surfaces: dict[str, Surface],
    side: str,
    options: ShapeOptions | NotComputed | None,
    progress: ProgressFn | None = None,
) -> ShapeModelResult | NotComputed:
    """Fit the shape model when requested (``options``); otherwise (None, or why the model is unavailable), or when it
    cannot run, say why."""
    from .. import labels as L

    if options is None:
        return NotComputed("Shape model not requested.")
    if isinstance(options, NotComputed):
        return options
    if side not in ("left", "right"):
        reason = "Shape model skipped: the knee side is unknown (the model needs right-knee orientation)."
        return NotComputed(reason, warning=reason)
    if L.FEMUR not in surfaces:
        reason = "Shape model skipped: no femur surface."
        return NotComputed(reason, warning=reason)
    fit = run_shape_model(
        surfaces[L.FEMUR],
        surfaces.get(L.FEMORAL_CARTILAGE),
        side,
        model_dir=options.model_dir,
        bscore_dir=options.bscore_dir,
        model_id=options.model_id,
        model=options.model,  # type: ignore[arg-type]
        device=options.device,
        progress=progress,
        **options.fit_overrides,
    )
    if not fit.available:
        reason = fit.reason or "shape model unavailable"
        return NotComputed(reason, warning=reason, details={"model_id": fit.model_id, "side": fit.side})
    return replace(fit, weights_revision=options.revision)
