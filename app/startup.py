"""Startup wiring: logging, the job store and sweeper, and the segmentation engine (loaded once)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .handlers import Services
from .jobs import JobStore, start_sweeper
from .settings import AppSettings

logger = logging.getLogger(__name__)


def load_segmenter(settings: AppSettings):
    """The pipeline's segmentation engine, or None (the app then analyses uploaded label maps only)."""
    try:
        from pipeline.engine import Engine
    except ImportError as exc:  # the engine is optional for analysis-only deployments
        logger.warning("segmentation engine not available (%s); label-map analysis only", exc)
        return None
    from pipeline.errors import KneePipelineError

    try:
        engine = Engine.for_app(model_dir=settings.model_dir)
    except KneePipelineError as exc:  # no usable weights at all: the app still analyses label maps
        logger.error("no segmentation model could be loaded: %s", exc)
        return None
    logger.info("segmentation engine ready: %s", engine.describe())
    return engine


def log_doctor_report(settings: AppSettings) -> None:
    """The same host report as `python -m pipeline doctor`, in the log, before the first job."""
    from pipeline.doctor import healthy, report, run_checks

    checks = run_checks(settings.workdir)
    (logger.info if healthy(checks) else logger.error)("host check:\n%s", report(checks))


def load_shape_options(settings: AppSettings):
    """Shape-model options with the model loaded once, or (None, reason) when the gated weights are not here."""
    from pipeline.errors import WeightsUnavailableError
    from pipeline.shape.stage import load_shape_model
    from pipeline.shape_stage import ShapeOptions
    from pipeline.weights import resolve_model, weights_dir

    try:
        resolved = resolve_model("nsm_647", download=False)
    except WeightsUnavailableError as exc:
        return None, f"Shape model unavailable: {exc}"
    model = load_shape_model(resolved.base, "647")
    if isinstance(model, str):
        return None, model
    bscore = Path(os.environ.get("KNEESCOPE_BSCORE_DIR", weights_dir() / "bscore"))
    return ShapeOptions(model_dir=resolved.base, bscore_dir=bscore, model=model, revision=resolved.revision), None


def build_services(settings: AppSettings, *, segmenter="load") -> Services:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if segmenter == "load":
        log_doctor_report(settings)
    store = JobStore(settings.workdir)
    start_sweeper(store, retention_hours=settings.retention_hours, max_disk_gb=settings.max_disk_gb)
    shape_options, shape_reason = None, "Shape model not loaded."
    if segmenter == "load":
        segmenter = load_segmenter(settings)
        shape_options, shape_reason = load_shape_options(settings)
        if shape_reason:
            logger.warning(shape_reason)
    from .viewers import ViewerPool

    return Services(
        store=store,
        segmenter=segmenter,
        max_upload_mb=settings.max_upload_mb,
        shape_options=shape_options,
        shape_reason=shape_reason,
        viewers=ViewerPool(host=settings.host),
    )
