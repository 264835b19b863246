"""Startup wiring: the services every session shares (``Services``), built once here: the host check in the log, the
job store, retention sweep, upload registry, viewers, and the one engine (loaded once)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import InferenceOptions
from pipeline.engine import Engine
from pipeline.engine_spec import AUTO_MODEL, EngineSpec
from pipeline.io import ImageLimits

from .input_card import InputCache
from .jobs import JobStore
from .retention import RetentionPolicy, start_sweeper
from .settings import AppSettings
from .uploads import UploadRegistry

logger = logging.getLogger(__name__)


@dataclass
class Services:
    """What the handlers need, built once at startup and shared read-only by every session."""

    store: JobStore
    engine: Engine  # the pipeline's one engine (segments when weights are there; analyses label maps always)
    max_upload_mb: int = 1024
    retention_hours: float = 24.0
    viewers: object | None = None  # app.viewer_processes.ViewerPool for the interactive trame views
    shape_available: bool = False  # the shape model's weights are loaded (decides the option's default)
    shape_reason: str | None = None  # why the shape model is unavailable
    limits: ImageLimits = field(default_factory=ImageLimits)  # largest image accepted (--max-voxels/--max-axis)
    uploads: UploadRegistry | None = None  # which inputs are real uploads, and who uses them
    retention: RetentionPolicy | None = None  # what is kept on disk, and the free space kept (app/retention.py)
    inputs: InputCache = field(default_factory=InputCache)  # what recent uploads are, and their previews


def load_engine(settings: AppSettings) -> Engine:
    """The pipeline's engine: the best segmentation model available offline, or label-map analysis only."""
    spec = EngineSpec(
        AUTO_MODEL,
        None if settings.model_dir is None else str(settings.model_dir),
        InferenceOptions(backend=settings.backend),
        download=False,
    )
    engine = Engine.from_spec(spec)
    logger.info("engine ready: %s", engine.describe())
    return engine


def log_doctor_report(settings: AppSettings) -> None:
    """The same host report as `python -m pipeline doctor`, in the log, before the first job."""
    from pipeline.doctor import healthy, report, run_checks

    checks = run_checks(settings.workdir)
    (logger.info if healthy(checks) else logger.error)("host check:\n%s", report(checks))


def build_services(settings: AppSettings, *, engine: Engine | None = None) -> Services:
    """Everything the page needs; ``engine`` given (tests) skips the host check and model loading."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    upload_folder = gradio_folder(settings)
    if engine is None:
        log_doctor_report(settings)
        engine = load_engine(settings)
    store = JobStore(settings.workdir)
    policy = RetentionPolicy(
        max_age_s=settings.retention_hours * 3600,
        max_bytes=settings.max_disk_gb * 1e9,
        min_free_bytes=settings.min_free_gb * 1e9,
    )
    uploads = UploadRegistry(upload_folder)  # ui.build_demo hands it Gradio's record of uploads
    start_sweeper(store, upload_folder, policy, uploads)
    shape = engine.shape_options()
    shape_reason = getattr(shape, "reason", None)
    if shape_reason:
        logger.warning(shape_reason)
    from .viewer_processes import ViewerPool

    return Services(
        store=store,
        engine=engine,
        max_upload_mb=settings.max_upload_mb,
        retention_hours=settings.retention_hours,
        shape_available=shape_reason is None,
        shape_reason=shape_reason,
        viewers=ViewerPool(),
        limits=settings.image_limits,
        uploads=uploads,
        retention=policy,
    )


def gradio_folder(settings: AppSettings) -> Path:
    """Gradio's upload and cache folder: $GRADIO_TEMP_DIR, else the app's own ``workdir/gradio`` (set in the
    environment here, before the page is built), so that the retention sweep never touches another program's files
    in a shared /tmp/gradio."""
    folder = Path(os.environ.get("GRADIO_TEMP_DIR") or settings.workdir / "gradio")
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder
