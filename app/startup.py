"""Startup wiring: logging, the job store and sweeper, and the segmentation engine (loaded once)."""

from __future__ import annotations

import logging
import os

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
    engine = Engine.for_app(model_dir=settings.model_dir)
    logger.info("segmentation engine ready: %s", engine.describe())
    return engine


def log_doctor_report(settings: AppSettings) -> None:
    """The same host report as `python -m pipeline doctor`, in the log, before the first job."""
    from pipeline.doctor import healthy, report, run_checks

    checks = run_checks(settings.workdir)
    (logger.info if healthy(checks) else logger.error)("host check:\n%s", report(checks))


def build_services(settings: AppSettings, *, segmenter="load") -> Services:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if segmenter == "load":
        log_doctor_report(settings)
    store = JobStore(settings.workdir)
    start_sweeper(store, retention_hours=settings.retention_hours, max_disk_gb=settings.max_disk_gb)
    if segmenter == "load":
        segmenter = load_segmenter(settings)
    return Services(store=store, segmenter=segmenter, max_upload_mb=settings.max_upload_mb)
