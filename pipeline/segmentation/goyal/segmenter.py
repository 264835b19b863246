"""The Goyal 2-D U-Nets behind the same interface as the nnU-Net :class:`~pipeline.segmentation.Segmenter`.

One plane's model (``goyal-sagittal``, ``goyal-sagittal-v1``, ``goyal-coronal``, ``goyal-axial``), or the three
planes fused by STAPLE (``goyal-staple``): the image's RSS goes through each plane's path (``plane_path``), each
plane's labels get upstream's clean-up (``cleanup``), STAPLE fuses the three (``staple``), and the native labels
become canonical ones. Loaded once; ``predict`` segments one image at a time (a lock guards the networks).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ...config import InferenceOptions
from ...io.limits import CaseCost
from ...progress import ProgressFn, no_progress, scaled
from ...volume import Volume
from ..devices import release_memory
from ..postprocess import check_image, check_knee_found
from ..segmenter import Segmentation, what_to_do
from .cleanup import clean_native, native_to_canonical
from .plane_model import PlaneModel, load_plane_model
from .plane_path import segment_in_plane
from .preprocess import model_input_image
from .staple import EXCLUDED_LABELS, staple_fuse

logger = logging.getLogger(__name__)

#: Labels of the Goyal models' output (background and the nine structures).
N_NATIVE_LABELS = 10

FAMILY = "Goyal 2024 2-D U-Nets (DOSMA StanfordQDessBoneUNet2D family), Keras HDF5 run in PyTorch"


class GoyalSegmenter:
    """One or three Goyal models loaded once; ``predict`` returns canonical labels on the image's grid."""

    def __init__(
        self,
        planes: Sequence[PlaneModel],
        *,
        model_info: dict,
        device,
        options: InferenceOptions,
        require_knee: bool = True,
    ):
        self._planes = tuple(planes)
        self.model_info = model_info
        self.device = device
        self.options = options
        self.require_knee = require_knee
        self._lock = threading.Lock()

    # --- construction ---
    @classmethod
    def from_model(
        cls, resolved, *, options: InferenceOptions | None = None, require_knee: bool = True
    ) -> GoyalSegmenter:
        """From a :class:`pipeline.weights.ResolvedModel` of kind 'keras' (its files and their planes)."""
        entry = resolved.entry
        return cls.from_files(
            list(zip(entry.planes, resolved.checkpoints, strict=True)),
            options=options,
            require_knee=require_knee,
            model_info=resolved.describe(),
            what_to_do=what_to_do(resolved),
        )

    @classmethod
    def from_files(
        cls,
        files: Sequence[tuple[str, str | Path]],
        *,
        options: InferenceOptions | None = None,
        require_knee: bool = True,
        model_info: dict | None = None,
        what_to_do: str = "",
    ) -> GoyalSegmenter:
        """From (plane, .h5 path) pairs: one for a single model, sagittal/coronal/axial for STAPLE.

        ``require_knee=False`` skips the "no knee structures found" check (speed tests with random weights).
        """
        from ..devices import select_device

        options = options or InferenceOptions()
        device = select_device(options.device)
        planes = [load_plane_model(Path(p), plane, options, device, what_to_do=what_to_do) for plane, p in files]
        if len(planes) not in (1, 3) or (len(planes) == 3 and {p.layout.name for p in planes} != set(EXCLUDED_LABELS)):
            raise ValueError("Give one model, or the sagittal, coronal and axial models for STAPLE.")
        info = dict(model_info or {"files": [str(p) for _, p in files]})
        logger.info("Loaded %s on %s", " + ".join(p.layout.name for p in planes), device)
        return cls(planes, model_info=info, device=device, options=options, require_knee=require_knee)

    @property
    def configurations(self) -> list[str]:
        names = [f"{p.layout.name} 2-D U-Net" for p in self._planes]
        return [*names, "STAPLE"] if self.fused else names

    @property
    def planes(self) -> tuple[PlaneModel, ...]:
        """The loaded models, in run order."""
        return self._planes

    @property
    def fused(self) -> bool:
        return len(self._planes) > 1

    @property
    def cost(self) -> CaseCost:
        """Memory per voxel of a case (checked from an image's header before it is decoded): each plane's input
        resized to 512 in-plane (float32) and its labels, and for STAPLE a probability per label per voxel; counted
        at the image's voxels, doubled for the in-plane upsizing of a typical 384-wide series."""
        per_voxel = 2 * (4 + 1) * len(self._planes) + (2 * 4 * N_NATIVE_LABELS if self.fused else 0)
        return CaseCost("segment", bytes_per_voxel=float(per_voxel + 16))

    # --- prediction ---
    def predict(
        self,
        image: Volume,
        *,
        progress: ProgressFn | None = None,
        mirroring: bool | None = None,
        require_knee: bool | None = None,
    ) -> Segmentation:
        """Segment one image (any orientation); canonical labels come back on its grid.

        Args:
            progress: callback(fraction 0-1, message), called after every batch of slices; it may raise to cancel.
            mirroring: not offered by these models (upstream has no test-time augmentation); recorded, ignored.
            require_knee: raise when nothing knee-like was found; None = the segmenter's default (the engine passes
                False and lets the segmentation-QC verdict say "failed").
        Raises:
            EmptySegmentationError: blank image, or nothing knee-like found.
        """
        report = progress or no_progress
        check_image(image)
        if mirroring:
            logger.warning("Test-time mirroring is not offered for the Goyal 2-D U-Nets; ignored.")
        with self._lock:
            t0 = time.perf_counter()
            report(0.0, "Preparing image for segmentation")
            rss = model_input_image(image)
            votes, seconds, planes, cleanup = {}, {}, [], {}
            span = 0.88 / len(self._planes)
            for i, model in enumerate(self._planes):
                t1 = time.perf_counter()
                lo = 0.02 + span * i
                result = segment_in_plane(
                    rss,
                    image.direction,
                    model.layout,
                    model.io,
                    model.run_batch,
                    batch_size=model.batch_size,
                    progress=scaled(report, lo, lo + span * 0.95),
                )
                report(lo + span * 0.95, f"{model.layout.name}: cleaning up")
                votes[model.layout.name], cleanup[model.layout.name] = clean_native(result.labels)
                seconds[model.layout.name] = time.perf_counter() - t1
                planes.append({**model.describe(), "slices": result.slices, "batches": result.batches})
            fusion = None
            if self.fused:
                report(0.9, "Fusing the three planes (STAPLE)")
                t1 = time.perf_counter()
                fused = staple_fuse(votes)
                native, seconds["staple"] = fused.labels, time.perf_counter() - t1
                fusion = {
                    "method": "SimpleITK MultiLabelSTAPLE",
                    "excluded_native_labels": {k: list(v) for k, v in EXCLUDED_LABELS.items()},
                    "undecided_voxels_set_to_background": fused.undecided_voxels,
                }
            else:
                native = next(iter(votes.values()))
            canonical = native_to_canonical(native)
            seconds["total"] = time.perf_counter() - t0
            release_memory(self.device)
        if self.require_knee if require_knee is None else require_knee:
            check_knee_found(canonical, image)
        report(1.0, "Segmentation complete")
        provenance = {
            **self.model_info,
            "family": FAMILY,
            "device": str(self.device),
            "mirroring": False,
            "mirroring_requested": bool(mirroring),
            "planes": planes,
            "fusion": fusion,
            "input_image": "root-sum-of-squares of the echoes" if len(_echoes(image)) > 1 else "the image as given",
            "preprocessing": "reformat to the model plane, order-3 resize of every slice to the model size, whitened "
            "over the volume ((x - mean) / (std + 1e-8)); argmax; nearest-neighbour resize back",
            "label_mapping": {"method": "native (DOSMA tissue order) -> canonical", "table": _native_table()},
            "postprocessing": cleanup,
            "versions": _versions(),
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
        }
        meta = {"content": "segmentation", "label_scheme": "canonical", "segmented_from": image.meta.get("file_name")}
        labels = Volume(canonical, image.spacing, image.origin, image.direction, meta=meta)
        return Segmentation(labels=labels, provenance=provenance)


def _echoes(image: Volume) -> tuple:
    return getattr(image.source, "echoes", ()) or ()


def _native_table() -> dict[str, str]:
    from ... import labels as L

    return {str(L.NATIVE[name]): name for name in L.STRUCTURES}


def _versions() -> dict[str, str]:
    import h5py
    import torch

    return {"torch": str(torch.__version__), "h5py": str(h5py.__version__)}
