"""Options of an analysis, with units, in frozen objects recorded in every provenance file.

``AnalysisConfig``: what happens after segmentation (meshes, thickness, regions). ``InferenceOptions``: how a
segmentation model runs (device, mirroring, sliding window). ``ImageLimits``: what the readers accept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

#: Inference backends and precisions (pipeline.segmentation.backends implements them).
BACKENDS = ("auto", "torch", "onnx", "openvino")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class AnalysisConfig:
    """Knobs of the analysis after segmentation. Distances in mm, variances in mm^2."""

    # Surfaces: Gaussian smoothing of the binary mask before marching cubes (level 0.5); the variances match
    # the predecessor's (bone 0.5 mm^2, cartilage 0.3125 mm^2) so surfaces sit where its surfaces sit.
    bone_smoothing_var_mm2: float = 0.5
    cartilage_smoothing_var_mm2: float = 0.3125
    bone_vertices: dict = field(default_factory=lambda: {"femur": 20_000, "tibia": 20_000, "patella": 10_000})
    cartilage_vertices: int = 15_000
    meniscus_vertices: int = 6_000

    # Thickness (pipeline/thickness.py): sampled along each bone-vertex normal from ray_inside_mm inside the bone
    # to ray_outside_mm outside it, every ray_step_mm, on the cartilage mask smoothed with this variance.
    ray_inside_mm: float = 2.5
    ray_outside_mm: float = 10.0
    ray_step_mm: float = 0.1  # crossings are linearly refined: 0.05 gives the same means to 0.001 mm, slower
    thickness_smoothing_var_mm2: float = 0.1
    max_gap_mm: float = 2.0  # cartilage must start within this distance of the bone surface
    min_exit_cos: float = 0.7  # rays leaving through the cartilage's side (> 45.6 deg off) clip an edge: skipped

    # Femoral subregions: weight-bearing/posterior boundary at this fraction of the way from the notch to the
    # posterior end of the cartilage (as the predecessor); weight-bearing only in the lower part of the cartilage.
    weight_bearing_fraction: float = 0.6
    weight_bearing_height_fraction: float = 0.33

    # Display
    thickness_colour_max_mm: float = 4.0

    def to_dict(self) -> dict:
        return asdict(self)

    def with_changes(self, **changes) -> AnalysisConfig:
        return replace(self, **changes)


@dataclass(frozen=True)
class InferenceOptions:
    """How the segmentation network runs; one object instead of keyword arguments in every signature.

    Attributes:
        device: 'auto' (CUDA > MPS > CPU), 'cuda', 'mps' or 'cpu'.
        mirroring: test-time mirroring (up to 8x slower, slightly smoother).
        tile_step_size: sliding-window step as a fraction of the patch (0.5 = nnU-Net's default).
        fp16: autocast on CUDA.
        backend: what runs the network on a CPU: 'auto' (the fastest backend measured to agree with PyTorch eager
            fp32 on this machine), 'torch', 'onnx' (ONNX Runtime) or 'openvino'. On CUDA/MPS: PyTorch.
        precision: 'auto' (with backend 'auto': whatever agrees; otherwise fp32), 'fp32' or 'bf16' (CPUs with
            native bf16 only).
        skip_empty_tiles: skip sliding-window tiles wholly outside the knee's bounding box (first pass on the image).
    """

    device: str = "auto"
    mirroring: bool = False
    tile_step_size: float = 0.5
    fp16: bool = True
    backend: str = "auto"
    precision: str = "auto"
    skip_empty_tiles: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.tile_step_size <= 1.0:
            raise ValueError(f"tile_step_size must lie in (0, 1], got {self.tile_step_size}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def with_changes(self, **changes) -> InferenceOptions:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
