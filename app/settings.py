"""App settings from command-line flags and KNEESCOPE_* environment variables, in one frozen object."""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline.config import BACKENDS
from pipeline.io.limits import DEFAULT_MAX_AXIS, DEFAULT_MAX_VOXELS, ImageLimits


@dataclass(frozen=True)
class AppSettings:
    host: str = "127.0.0.1"
    port: int = 7860
    root_path: str = ""
    share: bool = False
    max_upload_mb: int = 1024
    auth: tuple[str, str] | None = field(default=None, repr=False)  # never logged
    workdir: Path = Path(tempfile.gettempdir()) / "kneescope"
    retention_hours: float = 24.0
    max_queue: int = 8
    max_disk_gb: float = 20.0  # job folders and Gradio's cache together
    min_free_gb: float = 1.0  # free space kept on the disk: old results go first, then new jobs and uploads wait
    model_dir: Path | None = None
    max_voxels: int = DEFAULT_MAX_VOXELS  # largest image accepted, decided from headers before decoding
    max_axis: int = DEFAULT_MAX_AXIS
    max_case_gb: float | None = None  # memory one case may need, estimated from the header (None: half the RAM)

    @property
    def image_limits(self) -> ImageLimits:
        limits = ImageLimits(max_voxels=self.max_voxels, max_axis=self.max_axis)
        if self.max_case_gb is not None:
            limits = replace(limits, max_case_bytes=int(self.max_case_gb * 1024**3))
        return limits

    backend: str = "auto"  # segmentation backend on a CPU (pipeline.config.InferenceOptions.backend)

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> AppSettings:
        env = os.environ.get
        parser = argparse.ArgumentParser(description="KneeScope web app")
        parser.add_argument(
            "--host",
            default=env("KNEESCOPE_HOST", "127.0.0.1"),
            help="bind address (0.0.0.0 to serve the network directly; 127.0.0.1 behind Caddy)",
        )
        parser.add_argument("--port", type=int, default=int(env("KNEESCOPE_PORT", "7860")))
        parser.add_argument(
            "--root-path",
            default=env("KNEESCOPE_ROOT_PATH", ""),
            help="sub-path when served behind a reverse proxy, e.g. /knee",
        )
        parser.add_argument(
            "--share",
            action="store_true",
            default=env("KNEESCOPE_SHARE", "") == "1",
            help="also make a public Gradio share link (needs internet)",
        )
        parser.add_argument("--max-upload-mb", type=int, default=int(env("KNEESCOPE_MAX_UPLOAD_MB", "1024")))
        parser.add_argument("--auth", default=env("KNEESCOPE_AUTH"), help="USER:PASSWORD for a login page")
        parser.add_argument("--workdir", default=env("KNEESCOPE_WORKDIR", str(cls.workdir)))
        parser.add_argument("--retention-hours", type=float, default=float(env("KNEESCOPE_RETENTION_HOURS", "24")))
        parser.add_argument("--max-queue", type=int, default=int(env("KNEESCOPE_MAX_QUEUE", "8")))
        parser.add_argument(
            "--min-free-gb",
            type=float,
            default=float(env("KNEESCOPE_MIN_FREE_GB", str(cls.min_free_gb))),
            help="free disk space to keep: the oldest results are removed to keep it, and no job or upload starts "
            "without it (default 1)",
        )
        parser.add_argument(
            "--model-dir",
            default=env("KNEESCOPE_MODEL_DIR"),
            help="local folder with the published nnU-Net layout (air-gapped hosts)",
        )
        parser.add_argument(
            "--max-voxels",
            type=int,
            default=int(env("KNEESCOPE_MAX_VOXELS", str(DEFAULT_MAX_VOXELS))),
            help="largest image accepted, in voxels (all echoes together); refused from the header alone",
        )
        parser.add_argument(
            "--max-axis",
            type=int,
            default=int(env("KNEESCOPE_MAX_AXIS", str(DEFAULT_MAX_AXIS))),
            help="most voxels accepted along any one axis",
        )
        case_gb = env("KNEESCOPE_MAX_CASE_GB")
        parser.add_argument(
            "--max-case-gb",
            type=float,
            default=float(case_gb) if case_gb else None,
            help="memory one case may need, estimated from the image header before decoding (default: half of this "
            "machine's memory); larger images are refused at once",
        )
        parser.add_argument(
            "--backend",
            choices=BACKENDS,
            default=env("KNEESCOPE_BACKEND", "auto"),
            help="what runs the segmentation network on a CPU: auto (fastest that agrees, measured once), torch, "
            "onnx or openvino",
        )
        args = parser.parse_args(argv)
        if args.max_voxels < 1 or args.max_axis < 1:
            parser.error("--max-voxels and --max-axis must be positive")
        if args.max_case_gb is not None and args.max_case_gb <= 0:
            parser.error("--max-case-gb must be positive")
        auth = None
        if args.auth:
            user, sep, password = args.auth.partition(":")
            if not sep or not user or not password:
                parser.error("--auth must be USER:PASSWORD")
            auth = (user, password)
        return cls(
            host=args.host,
            port=args.port,
            root_path=args.root_path.rstrip("/"),
            share=args.share,
            max_upload_mb=args.max_upload_mb,
            auth=auth,
            workdir=Path(args.workdir),
            retention_hours=args.retention_hours,
            max_queue=args.max_queue,
            min_free_gb=args.min_free_gb,
            model_dir=Path(args.model_dir) if args.model_dir else None,
            max_voxels=args.max_voxels,
            max_axis=args.max_axis,
            max_case_gb=args.max_case_gb,
            backend=args.backend,
        )
