"""nnU-Net v2 segmentation in-process: a :class:`Segmenter` loads its predictor(s) once and segments many images.

The only place that hands arrays to nnU-Net. nnU-Net works on SimpleITK's array order, so a Volume's ``array``
(k, j, i) goes in unchanged with its spacing reversed to (sk, sj, si); that is exactly what ``nnUNetv2_predict``
sees when it reads the same image from a file with its SimpleITK reader, so results match the CLI.

Steps: preprocessing, sliding-window inference and resampling back to the image grid are nnU-Net's
(``predict_single_npy_array``; a cascade feeds the low-resolution result to the second stage as
``segmentation_previous_stage``). After it: model labels -> canonical labels by structure *name*
(``label_map``); clean-up and the knee check (``postprocess``).

torch and nnunetv2 are imported only when a Segmenter is built, so the label-mapping helpers stay cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import labels as L
from ..config import InferenceOptions
from ..errors import InvalidInputError
from ..io.limits import CaseCost
from ..progress import ProgressFn, no_progress
from ..volume import Volume
from .confidence import NetworkConfidence
from .cost import nnunet_cost
from .devices import release_memory, select_device
from .label_map import LabelMapping, map_model_labels
from .postprocess import SOFT_TISSUE_MIN_PIECE_FRACTION, check_image, check_knee_found, postprocess
from .predictor import Stage, check_stages, load_stage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segmentation:
    """A segmentation on the image's own grid.

    Attributes:
        labels: canonical label map (uint8), same geometry as the input image.
        provenance: model and checkpoints, device, options, label mapping, post-processing, seconds.
        confidence: the network's per-structure certainty (``confidence``), None when not measured.
    """

    labels: Volume
    provenance: dict
    confidence: NetworkConfidence | None = None


class Segmenter:
    """One nnU-Net model (one stage, or a lowres -> cascade_fullres pair) loaded once; one image at a time.

    Build with :meth:`from_model` (a manifest model resolved by ``pipeline.weights``) or :meth:`from_folders`.
    ``measure_confidence`` (default on) summarises the network's certainty with every segmentation.
    """

    measure_confidence: bool = True

    def __init__(
        self,
        stages: list[Stage],
        mapping: LabelMapping,
        *,
        model_info: dict,
        device,
        options: InferenceOptions,
        require_knee: bool = True,
    ):
        self._stages = stages
        self.require_knee = require_knee
        self.mapping = mapping
        self.model_info = model_info
        self.device = device
        self.options = options
        self._lock = threading.Lock()

    # --- construction ---
    @classmethod
    def from_model(cls, resolved, *, options: InferenceOptions | None = None, require_knee: bool = True) -> Segmenter:
        """From a :class:`pipeline.weights.ResolvedModel` (its stage folders, fold and checkpoint name)."""
        return cls.from_folders(
            resolved.stage_dirs,
            fold=resolved.fold,
            checkpoint=resolved.entry.checkpoint,
            options=options,
            require_knee=require_knee,
            label_fallback=resolved.entry.label_fallback,
            model_info=resolved.describe(),
            what_to_do=what_to_do(resolved),
        )

    @classmethod
    def from_folders(
        cls,
        stage_dirs: Sequence[str | Path],
        *,
        fold: int | str = 0,
        checkpoint: str = "checkpoint_final.pth",
        options: InferenceOptions | None = None,
        require_knee: bool = True,
        label_fallback: str = "",
        model_info: dict | None = None,
        what_to_do: str = "",
    ) -> Segmenter:
        """From nnU-Net trainer folders in run order (one folder, or lowres then cascade_fullres).

        ``require_knee=False`` skips the "no knee structures found" check (speed tests with random weights).
        """
        options = options or InferenceOptions()
        torch_device = select_device(options.device)
        stages = [
            load_stage(Path(d), fold, checkpoint, torch_device, options.tile_step_size, what_to_do) for d in stage_dirs
        ]
        check_stages(stages)
        for stage in stages:
            attach_backend(stage, options, torch_device)
        dataset = stages[-1].predictor.dataset_json
        channels = dataset.get("channel_names", dataset.get("modality", {}))
        if len(channels) != 1:
            raise InvalidInputError(
                f"The model in {stages[-1].folder} expects {len(channels)} input channels {dict(channels)}; "
                "KneeScope feeds one image (the RSS of the echoes for qDESS)."
            )
        mapping = map_model_labels(dataset["labels"], fallback=label_fallback)
        info = dict(model_info or {"folders": [s.folder.name for s in stages], "fold": fold, "checkpoint": checkpoint})
        info.update(
            {
                "configurations": [s.configuration for s in stages],
                "input_channel": next(iter(channels.values())),
                "description": dataset.get("description"),
            }
        )
        logger.info("Loaded %s on %s (%s)", " -> ".join(s.configuration for s in stages), torch_device, mapping.method)
        return cls(stages, mapping, model_info=info, device=torch_device, options=options, require_knee=require_knee)

    @property
    def configurations(self) -> list[str]:
        return [s.configuration for s in self._stages]

    @property
    def cost(self) -> CaseCost:
        """The memory a case costs this model per voxel (checked from an image's header before it is decoded)."""
        last = self._stages[-1].predictor
        return nnunet_cost(len(last.dataset_json["labels"]), tuple(last.configuration_manager.spacing))

    # --- prediction ---
    def predict(
        self,
        image: Volume,
        *,
        progress: ProgressFn | None = None,
        mirroring: bool | None = None,
        require_knee: bool | None = None,
    ) -> Segmentation:
        """Segment one image; the label map comes back on the image's grid in the canonical scheme.

        Args:
            image: the MRI, any orientation; spacing in mm.
            progress: optional callback(fraction 0-1, message), called per stage and per sliding-window tile.
            mirroring: test-time mirroring (up to 8x slower); None = the segmenter's default.
            require_knee: raise when nothing knee-like was found; None = the segmenter's default. The engine's
                analysis passes False: its quality check marks such a result "failed" instead (pipeline.quality).
        Raises:
            EmptySegmentationError: blank image, or nothing knee-like found ("no knee structures found").
        """
        report = progress or no_progress
        check_image(image)
        use_mirroring = self.options.mirroring if mirroring is None else mirroring
        with self._lock:
            t0 = time.perf_counter()
            report(0.0, "Preparing image for segmentation")
            model_labels, seconds, tiles, skipped = self._run_stages(image, report, use_mirroring)
            confidence = self._confidence()
            report(0.92, "Cleaning up the segmentation")
            t1 = time.perf_counter()
            canonical, changes = postprocess(self.mapping.lookup_table()[model_labels])
            seconds["postprocessing"] = time.perf_counter() - t1
            seconds["total"] = time.perf_counter() - t0
            release_memory(self.device)
        if self.require_knee if require_knee is None else require_knee:
            check_knee_found(canonical, image)
        report(1.0, "Segmentation complete")
        provenance = {
            **self.model_info,
            "device": str(self.device),
            "fp16_autocast": self.device.type == "cuda" and self.options.fp16,
            "mirroring": use_mirroring,
            # nnU-Net mirrors only along the axes the checkpoint allows (none if it names none)
            "mirror_axes": list(self._stages[-1].predictor.allowed_mirroring_axes or ()) if use_mirroring else [],
            "tile_step_size": self.options.tile_step_size,
            "sliding_window_tiles": tiles,
            "skip_empty_tiles": self.options.skip_empty_tiles,
            "tiles_skipped": skipped,
            "inference_backend": [s.backend for s in self._stages],
            "label_mapping": self.mapping.to_dict(),
            "postprocessing": {
                "voxels_changed": changes,
                "soft_tissue_min_piece_fraction": SOFT_TISSUE_MIN_PIECE_FRACTION,
            },
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "confidence": None if confidence is None else confidence.describe(),
        }
        # Fresh meta: the label map must not carry the image's file name and checksum as if they were its own.
        meta = {"content": "segmentation", "label_scheme": "canonical", "segmented_from": image.meta.get("file_name")}
        labels = Volume(canonical.astype(np.uint8), image.spacing, image.origin, image.direction, meta=meta)
        return Segmentation(labels=labels, provenance=provenance, confidence=confidence)

    def _confidence(self) -> NetworkConfidence | None:
        """The last stage's confidence, keyed by structure name."""
        raw = self._stages[-1].predictor.confidence
        if raw is None:
            return None
        names = {v: k for k, v in L.CANONICAL.items()}
        return raw.for_structures({m: names[c] for m, c in self.mapping.model_to_canonical.items()})

    def _run_stages(self, image: Volume, report: ProgressFn, mirroring: bool):
        # SimpleITK array order in, spacing reversed to match (the single axis-order conversion for nnU-Net).
        data = image.array[None].astype(np.float32, copy=False)
        properties = {"spacing": [float(s) for s in image.spacing[::-1]]}
        previous, seconds, tiles, skipped = None, {}, [], []
        n = len(self._stages)
        for i, stage in enumerate(self._stages):
            lo, hi = 0.02 + 0.88 * i / n, 0.02 + 0.88 * (i + 1) / n
            stage.predictor.use_mirroring = mirroring
            stage.predictor.fp16 = self.options.fp16
            stage.predictor.on_tile = _tile_reporter(report, lo, hi, stage.configuration)
            stage.predictor.measure_confidence = self.measure_confidence and i == n - 1
            report(lo, f"{stage.configuration}: preprocessing")
            t0 = time.perf_counter()
            try:
                seg = stage.predictor.predict_single_npy_array(data, dict(properties), previous, None, False)
            finally:
                stage.predictor.on_tile = None
            seconds[stage.configuration] = time.perf_counter() - t0
            tiles.append(stage.predictor.tiles_total)
            skipped.append(stage.predictor.tiles_skipped)
            # The cascade wants (1, Z, Y, X) with a signed dtype (uint8 overflows in its one-hot encoding).
            previous = seg[None].astype(np.int16)
        return seg, seconds, tiles, skipped


def attach_backend(stage: Stage, options: InferenceOptions, device) -> None:
    """Give the stage's predictor the backend ``options`` ask for (see ``backends.select``) and the tile options."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    from ..weights import sha256_file
    from .backends import NetworkSpec, load_runner
    from .calibration import knee_patch

    predictor = stage.predictor
    channels = determine_num_input_channels(
        predictor.plans_manager,
        predictor.configuration_manager,
        predictor.dataset_json,
    )
    shape = (1, channels, *predictor.configuration_manager.patch_size)
    checkpoint = Path(stage.checkpoint or "")
    spec = NetworkSpec(
        network=predictor.network,
        configuration=stage.configuration,
        checkpoint=checkpoint,
        checkpoint_sha256=sha256_file(checkpoint),
        input_shape=tuple(shape),
        device=device,
    )
    loaded = load_runner(
        spec, backend=options.backend, precision=options.precision, make_patch=lambda: knee_patch(predictor, shape)
    )
    # On CUDA/MPS nnU-Net's own call (with its autocast) stays exactly as it was.
    predictor.runner = loaded.runner if device.type == "cpu" else None
    predictor.skip_empty_tiles = options.skip_empty_tiles
    stage.backend = loaded.info


def _tile_reporter(report: ProgressFn, lo: float, hi: float, name: str) -> Callable[[int, int], None]:
    span = hi - lo

    def on_tile(done: int, total: int) -> None:
        if done < total:
            report(lo + span * (0.1 + 0.8 * done / total), f"{name}: tile {done}/{total}")
        else:
            report(lo + span * 0.9, f"{name}: resampling to the image grid")

    return on_tile


def what_to_do(resolved) -> str:
    entry = resolved.entry
    if resolved.origin == "bundled":
        return "Restore weights/demo from git or rebuild it: python scripts/train_demo_model.py --out weights/demo."
    if resolved.origin == "model-dir":
        return f"Replace the files in {resolved.base} with a good copy of {entry.repo_id or entry.name}."
    return (
        f"Delete {resolved.base} and run `python -m pipeline weights download {entry.name}` "
        "(or `python -m pipeline weights verify` to see what is wrong)."
    )
