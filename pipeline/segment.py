"""nnU-Net v2 segmentation in-process: a :class:`Segmenter` loads its predictor(s) once and segments many images.

The only place that hands arrays to nnU-Net. nnU-Net works on SimpleITK's array order, so a Volume's ``array``
(k, j, i) goes in unchanged with its spacing reversed to (sk, sj, si); that is exactly what ``nnUNetv2_predict``
sees when it reads the same image from a file with its SimpleITK reader, so results match the CLI.

Steps: preprocessing, sliding-window inference and resampling back to the image grid are nnU-Net's
(``predict_single_npy_array``; a cascade feeds the low-resolution result to the second stage as
``segmentation_previous_stage``). After it: model labels -> canonical labels by structure *name* (read from the
model's ``dataset.json``); the largest connected component of each bone, holes in bones filled; cartilage and
meniscus pieces under 10 % of their structure's largest piece removed (see ``postprocess``).

torch and nnunetv2 are imported only when a Segmenter is built, so the label-mapping helpers stay cheap.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import labels as L
from .errors import EmptySegmentationError, InvalidInputError, KneePipelineError, WeightsUnavailableError
from .volume import Volume

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]

#: A segmentation counts as a knee only if, after clean-up, femur and tibia each have at least MIN_BONE_MM3, femoral
#: and tibial cartilage at least the volumes below, and both bones are solid (a one-voxel erosion removes at most
#: MAX_BONE_SHELL_FRACTION of them). Real knees in a DESS field of view: bones 40-150 cm^3, femoral cartilage
#: 5-15 cm^3, tibial 1-4 cm^3, shell fraction < 0.1. A network shown something else labels bright blobs as bone
#: without cartilage (a ball) or paints spongy fragments of everything (noise); these checks catch both.
MIN_BONE_MM3 = 5000.0
MIN_FEMORAL_CARTILAGE_MM3 = 500.0
MIN_TIBIAL_CARTILAGE_MM3 = 200.0
MAX_BONE_SHELL_FRACTION = 0.35

# --- label names -> structures ---------------------------------------------------------------------------------
# nnU-Net dataset.json label names vary between models (the knee model's authors use DOSMA-style short names in
# places, full names elsewhere), so names are normalised to tokens and matched by meaning, not by spelling.
_TOKEN_SYNONYMS = {
    "fem": "femur",
    "femoral": "femur",
    "femur": "femur",
    "tib": "tibia",
    "tibial": "tibia",
    "tibia": "tibia",
    "pat": "patella",
    "patellar": "patella",
    "patella": "patella",
    "cart": "cartilage",
    "cartilage": "cartilage",
    "cartilages": "cartilage",
    "men": "meniscus",
    "meniscus": "meniscus",
    "menisci": "meniscus",
    "meniscal": "meniscus",
    "med": "medial",
    "medial": "medial",
    "lat": "lateral",
    "lateral": "lateral",
    "bone": "bone",
}
#: Whole-name abbreviations seen in knee datasets (after normalisation).
_ABBREVIATIONS = {
    "fc": L.FEMORAL_CARTILAGE,
    "pc": L.PATELLAR_CARTILAGE,
    "mtc": L.MEDIAL_TIBIAL_CARTILAGE,
    "ltc": L.LATERAL_TIBIAL_CARTILAGE,
    "mm": L.MEDIAL_MENISCUS,
    "lm": L.LATERAL_MENISCUS,
    "mtcart": L.MEDIAL_TIBIAL_CARTILAGE,
    "ltcart": L.LATERAL_TIBIAL_CARTILAGE,
}


def structure_for_label_name(name: str) -> str | None:
    """Our structure name for an nnU-Net label name, or None if it names something else (e.g. 'fibula').

    Examples: 'patellar_cartilage', 'pat_cart', 'Patellar Cartilage' -> 'patellar_cartilage';
    'med_men' -> 'medial_meniscus'; 'fem', 'Femur bone' -> 'femur'; 'mtc' -> 'medial_tibial_cartilage'.
    """
    normal = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if normal in _ABBREVIATIONS:
        return _ABBREVIATIONS[normal]
    words = set(normal.split("_"))
    tokens = {_TOKEN_SYNONYMS[w] for w in words if w in _TOKEN_SYNONYMS}
    if words - set(_TOKEN_SYNONYMS):
        return None  # an unknown word (fibula, ligament, effusion, ...): not one of ours
    side = {"medial", "lateral"} & tokens
    bones = {"femur", "tibia", "patella"} & tokens
    if len(side) > 1 or len(bones) > 1:
        return None
    side_name = next(iter(side), None)
    bone = next(iter(bones), None)
    if "meniscus" in tokens:
        return f"{side_name}_meniscus" if side_name and bone in (None, "tibia") else None
    if "cartilage" in tokens:
        if bone == "tibia":
            return f"{side_name}_tibial_cartilage" if side_name else None
        if side_name is None and bone in ("femur", "patella"):
            return L.FEMORAL_CARTILAGE if bone == "femur" else L.PATELLAR_CARTILAGE
        return None
    return bone if bone and side_name is None else None


@dataclass(frozen=True)
class LabelMapping:
    """How a model's output values become canonical labels.

    Attributes:
        model_to_canonical: model label value -> canonical value (values not listed become background).
        method: 'names' (matched from dataset.json) or 'fallback:<scheme>' (names unrecognised, values assumed).
        unmapped: dataset.json labels that are not knee structures, dropped from the output.
    """

    model_to_canonical: Mapping[int, int]
    method: str
    unmapped: Mapping[str, int] = field(default_factory=dict)

    def lookup_table(self) -> np.ndarray:
        """uint8 table indexed by model value (0-255)."""
        lut = np.zeros(256, dtype=np.uint8)
        for model_value, canonical in self.model_to_canonical.items():
            lut[model_value] = canonical
        return lut

    def to_dict(self) -> dict:
        names = {v: k for k, v in L.CANONICAL.items()}
        return {
            "method": self.method,
            "model_value_to_structure": {str(k): names[v] for k, v in sorted(self.model_to_canonical.items())},
            "ignored_model_labels": dict(self.unmapped),
        }


def map_model_labels(labels: Mapping[str, int | Sequence[int]], *, fallback: str = "") -> LabelMapping:
    """Build the model -> canonical mapping from a dataset.json ``labels`` table (name -> value).

    All nine structures matched by name: use the names. Otherwise, with ``fallback='native'`` and values exactly
    0-9, assume the published knee model's order (logged). Otherwise map what matched and ignore the rest.

    Raises:
        WeightsUnavailableError: region-based labels, two labels naming one structure, or no knee structure at all.
    """
    by_structure: dict[str, int] = {}
    unmapped: dict[str, int] = {}
    for name, value in labels.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise WeightsUnavailableError(
                f"Model label '{name}' is a region ({value}); KneeScope supports label-based nnU-Net models only."
            )
        if value == 0:
            continue
        structure = structure_for_label_name(name)
        if structure is None:
            unmapped[name] = value
        elif structure in by_structure:
            raise WeightsUnavailableError(
                f"Model labels {by_structure[structure]} and {value} ('{name}') both name {structure}; fix the "
                "model's dataset.json."
            )
        else:
            by_structure[structure] = value
    if len(by_structure) == len(L.STRUCTURES):
        return LabelMapping({v: L.CANONICAL[s] for s, v in by_structure.items()}, "names", unmapped)
    values = sorted(v for v in labels.values() if isinstance(v, int))
    if fallback and values == list(range(len(L.STRUCTURES) + 1)):
        scheme = L.resolve_scheme(fallback)
        logger.warning(
            "Model label names %s are not all recognised; assuming the %s label order.", sorted(labels), scheme.name
        )
        return LabelMapping(scheme.remap_table(), f"fallback:{scheme.name}")
    if not by_structure:
        raise WeightsUnavailableError(
            f"None of the model's labels {sorted(labels)} is a knee structure KneeScope knows "
            f"({', '.join(L.STRUCTURES)}); this is not a knee segmentation model."
        )
    missing = sorted(set(L.STRUCTURES) - set(by_structure))
    logger.warning("The model does not segment %s; ignoring its labels %s.", missing, unmapped)
    return LabelMapping({v: L.CANONICAL[s] for s, v in by_structure.items()}, "names", unmapped)


# --- post-processing -------------------------------------------------------------------------------------------
#: Cartilage and meniscus pieces smaller than this fraction of the structure's largest piece are removed as noise.
#: Larger pieces are kept (and flagged by the QC as a split structure): femoral cartilage can genuinely come in
#: pieces (a denuded trochlea; the synthetic phantom's two condyles), and keeping only the largest piece, as the
#: predecessor does for every label, would silently delete a whole condyle's cartilage.
SOFT_TISSUE_MIN_PIECE_FRACTION = 0.10


def postprocess(labels: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Bones: largest connected component, holes filled. Cartilage, menisci: small stray pieces removed.

    Connectivity is 26-neighbour. Args:
        labels: canonical label array (any axis order), uint8; not modified.
    Returns:
        The cleaned array and, per structure, the number of voxels changed (negative = removed).
    """
    from scipy import ndimage

    out = labels.copy()
    changes: dict[str, int] = {}
    boxes = ndimage.find_objects(out, max_label=max(L.CANONICAL.values()))
    for name in L.STRUCTURES:
        value = L.CANONICAL[name]
        box = boxes[value - 1] if value <= len(boxes) else None
        if box is None:
            continue
        view = out[box]
        mask = view == value
        components, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
        if n < 2:
            continue
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        minimum = sizes.max() if name in L.BONES else SOFT_TISSUE_MIN_PIECE_FRACTION * sizes.max()
        keep = sizes >= minimum
        keep[0] = False
        drop = mask & ~keep[components]
        if drop.any():
            view[drop] = 0
            changes[name] = -int(drop.sum())
    for name in L.BONES:
        value = L.CANONICAL[name]
        mask = out == value
        if not mask.any():
            continue
        box = ndimage.find_objects(mask.astype(np.uint8))[0]
        filled = ndimage.binary_fill_holes(mask[box])
        added = filled & ~mask[box]
        if added.any():
            # As upstream: enclosed voxels become bone, whatever they were labelled (holes inside a bone are
            # misclassified marrow, never cartilage or meniscus).
            out[box][added] = value
            changes[name] = changes.get(name, 0) + int(added.sum())
    return out, changes


# --- devices ---------------------------------------------------------------------------------------------------
def select_device(preference: str = "auto"):
    """torch.device: CUDA, else Apple MPS, else CPU ('auto'), or exactly the one asked for."""
    import torch

    preference = (preference or "auto").lower()
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if preference == "auto":
        preference = next(d for d in ("cuda", "mps", "cpu") if available[d])
    if preference not in available:
        raise KneePipelineError(f"Unknown device '{preference}': use auto, cuda, mps or cpu.")
    if not available[preference]:
        raise KneePipelineError(f"Device '{preference}' is not available on this machine; use --device auto or cpu.")
    if preference == "cuda":
        # TF32 on Ampere+ for the fp32 parts (autocast runs the convolutions in fp16 anyway).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return torch.device(preference)


def _predictor_class():
    """nnUNetPredictor that reports every sliding-window tile and can switch fp16 autocast off.

    Relies on two internal methods of nnunetv2 2.8.1 (``_internal_get_sliding_window_slicers`` is called once per
    image and returns the tiles; ``_internal_maybe_mirror_and_predict`` runs once per tile). Pinned in
    requirements.txt; tests/test_segment.py checks that tiles are reported.
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    class TileReportingPredictor(nnUNetPredictor):
        on_tile: Callable[[int, int], None] | None = None
        fp16: bool = True
        tiles_total: int = 0
        tiles_done: int = 0

        def _internal_get_sliding_window_slicers(self, image_size):
            slicers = super()._internal_get_sliding_window_slicers(image_size)
            self.tiles_total, self.tiles_done = len(slicers), 0
            return slicers

        def _internal_maybe_mirror_and_predict(self, x):
            # nnU-Net enables autocast for every CUDA run; the innermost context wins, so this turns it off.
            no_fp16 = self.device.type == "cuda" and not self.fp16
            with torch.autocast("cuda", enabled=False) if no_fp16 else contextlib.nullcontext():
                out = super()._internal_maybe_mirror_and_predict(x)
            self.tiles_done += 1
            if self.on_tile is not None:
                self.on_tile(self.tiles_done, self.tiles_total)
            return out

    return TileReportingPredictor


# --- the segmenter ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segmentation:
    """A segmentation on the image's own grid.

    Attributes:
        labels: canonical label map (uint8), same geometry as the input image.
        provenance: model and checkpoints, device, options, label mapping, post-processing, seconds.
    """

    labels: Volume
    provenance: dict


@dataclass
class _Stage:
    configuration: str
    folder: Path
    predictor: object


class Segmenter:
    """One nnU-Net model (one stage, or a lowres -> cascade_fullres pair) loaded once; one image at a time.

    Build with :meth:`from_model` (a manifest model resolved by ``pipeline.weights``) or :meth:`from_folders`.
    """

    def __init__(
        self,
        stages: list[_Stage],
        mapping: LabelMapping,
        *,
        model_info: dict,
        device,
        mirroring: bool,
        tile_step_size: float,
        fp16: bool,
        require_knee: bool = True,
    ):
        self._stages = stages
        self.require_knee = require_knee
        self.mapping = mapping
        self.model_info = model_info
        self.device = device
        self.mirroring = mirroring
        self.tile_step_size = tile_step_size
        self.fp16 = fp16
        self._lock = threading.Lock()

    # --- construction ---
    @classmethod
    def from_model(
        cls,
        resolved,
        *,
        device: str = "auto",
        mirroring: bool = False,
        tile_step_size: float = 0.5,
        fp16: bool = True,
        require_knee: bool = True,
    ) -> Segmenter:
        """From a :class:`pipeline.weights.ResolvedModel` (its stage folders, fold and checkpoint name)."""
        return cls.from_folders(
            resolved.stage_dirs,
            fold=resolved.fold,
            checkpoint=resolved.entry.checkpoint,
            device=device,
            mirroring=mirroring,
            tile_step_size=tile_step_size,
            fp16=fp16,
            require_knee=require_knee,
            label_fallback=resolved.entry.label_fallback,
            model_info=resolved.describe(),
            what_to_do=_what_to_do(resolved),
        )

    @classmethod
    def from_folders(
        cls,
        stage_dirs: Sequence[str | Path],
        *,
        fold: int | str = 0,
        checkpoint: str = "checkpoint_final.pth",
        device: str = "auto",
        mirroring: bool = False,
        tile_step_size: float = 0.5,
        fp16: bool = True,
        require_knee: bool = True,
        label_fallback: str = "",
        model_info: dict | None = None,
        what_to_do: str = "",
    ) -> Segmenter:
        """From nnU-Net trainer folders in run order (one folder, or lowres then cascade_fullres).

        ``require_knee=False`` skips the "no knee structures found" check (speed tests with random weights).
        """
        torch_device = select_device(device)
        stages = [_load_stage(Path(d), fold, checkpoint, torch_device, tile_step_size, what_to_do) for d in stage_dirs]
        _check_stages(stages)
        dataset = stages[-1].predictor.dataset_json
        channels = dataset.get("channel_names", dataset.get("modality", {}))
        if len(channels) != 1:
            raise InvalidInputError(
                f"The model in {stages[-1].folder} expects {len(channels)} input channels {dict(channels)}; "
                "KneeScope feeds one image (the RSS of the echoes for qDESS)."
            )
        mapping = map_model_labels(dataset["labels"], fallback=label_fallback)
        info = dict(model_info or {"folders": [str(s.folder) for s in stages], "fold": fold, "checkpoint": checkpoint})
        info.update(
            {
                "configurations": [s.configuration for s in stages],
                "input_channel": next(iter(channels.values())),
                "description": dataset.get("description"),
            }
        )
        logger.info("Loaded %s on %s (%s)", " -> ".join(s.configuration for s in stages), torch_device, mapping.method)
        return cls(
            stages,
            mapping,
            model_info=info,
            device=torch_device,
            mirroring=mirroring,
            tile_step_size=tile_step_size,
            fp16=fp16,
            require_knee=require_knee,
        )

    @property
    def configurations(self) -> list[str]:
        return [s.configuration for s in self._stages]

    # --- prediction ---
    def predict(
        self, image: Volume, *, progress: ProgressFn | None = None, mirroring: bool | None = None
    ) -> Segmentation:
        """Segment one image; the label map comes back on the image's grid in the canonical scheme.

        Args:
            image: the MRI, any orientation; spacing in mm.
            progress: optional callback(fraction 0-1, message), called per stage and per sliding-window tile.
            mirroring: test-time mirroring (up to 8x slower); None = the segmenter's default.
        Raises:
            EmptySegmentationError: blank image, or nothing knee-like found ("no knee structures found").
        """
        report = progress or (lambda fraction, message: None)
        _check_image(image)
        use_mirroring = self.mirroring if mirroring is None else mirroring
        with self._lock:
            t0 = time.perf_counter()
            report(0.0, "Preparing image for segmentation")
            model_labels, seconds, tiles = self._run_stages(image, report, use_mirroring)
            report(0.92, "Cleaning up the segmentation")
            t1 = time.perf_counter()
            canonical, changes = postprocess(self.mapping.lookup_table()[model_labels])
            seconds["postprocessing"] = time.perf_counter() - t1
            seconds["total"] = time.perf_counter() - t0
            self._free_memory()
        if self.require_knee:
            _check_knee_found(canonical, image)
        report(1.0, "Segmentation complete")
        provenance = {
            **self.model_info,
            "device": str(self.device),
            "fp16_autocast": self.device.type == "cuda" and self.fp16,
            "mirroring": use_mirroring,
            # nnU-Net mirrors only along the axes the checkpoint allows (none if it names none)
            "mirror_axes": list(self._stages[-1].predictor.allowed_mirroring_axes or ()) if use_mirroring else [],
            "tile_step_size": self.tile_step_size,
            "sliding_window_tiles": tiles,
            "label_mapping": self.mapping.to_dict(),
            "postprocessing": {
                "voxels_changed": changes,
                "soft_tissue_min_piece_fraction": SOFT_TISSUE_MIN_PIECE_FRACTION,
            },
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
        }
        # Fresh meta: the label map must not carry the image's file name and checksum as if they were its own.
        meta = {"content": "segmentation", "label_scheme": "canonical", "segmented_from": image.meta.get("file_name")}
        labels = Volume(canonical.astype(np.uint8), image.spacing, image.origin, image.direction, meta=meta)
        return Segmentation(labels=labels, provenance=provenance)

    def _run_stages(self, image: Volume, report: ProgressFn, mirroring: bool):
        # SimpleITK array order in, spacing reversed to match (the single axis-order conversion for nnU-Net).
        data = image.array[None].astype(np.float32, copy=False)
        properties = {"spacing": [float(s) for s in image.spacing[::-1]]}
        previous, seconds, tiles = None, {}, []
        n = len(self._stages)
        for i, stage in enumerate(self._stages):
            lo, hi = 0.02 + 0.88 * i / n, 0.02 + 0.88 * (i + 1) / n
            stage.predictor.use_mirroring = mirroring
            stage.predictor.fp16 = self.fp16
            stage.predictor.on_tile = _tile_reporter(report, lo, hi, stage.configuration)
            report(lo, f"{stage.configuration}: preprocessing")
            t0 = time.perf_counter()
            try:
                seg = stage.predictor.predict_single_npy_array(data, dict(properties), previous, None, False)
            finally:
                stage.predictor.on_tile = None
            seconds[stage.configuration] = time.perf_counter() - t0
            tiles.append(stage.predictor.tiles_total)
            # The cascade wants (1, Z, Y, X) with a signed dtype (uint8 overflows in its one-hot encoding).
            previous = seg[None].astype(np.int16)
        return seg, seconds, tiles

    def _free_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()


def _tile_reporter(report: ProgressFn, lo: float, hi: float, name: str) -> Callable[[int, int], None]:
    span = hi - lo

    def on_tile(done: int, total: int) -> None:
        if done < total:
            report(lo + span * (0.1 + 0.8 * done / total), f"{name}: tile {done}/{total}")
        else:
            report(lo + span * 0.9, f"{name}: resampling to the image grid")

    return on_tile


def _load_stage(folder: Path, fold, checkpoint: str, device, tile_step_size: float, what_to_do: str) -> _Stage:
    import torch

    path = folder / f"fold_{fold}" / checkpoint
    if not path.is_file():
        raise WeightsUnavailableError(f"Checkpoint {path} does not exist. {what_to_do}".strip())
    cls = _predictor_class()
    # nnUNetPredictor prints a notice whenever its device is not CUDA; build it "for CUDA" (which only sets a
    # cudnn flag) and switch to the real device, rather than swapping sys.stdout.
    predictor = cls(
        tile_step_size=tile_step_size,
        use_gaussian=True,
        use_mirroring=False,
        perform_everything_on_device=device.type == "cuda",
        device=torch.device("cuda"),
        verbose=False,
        verbose_preprocessing=False,
        allow_tqdm=False,
    )
    predictor.device = device
    try:
        predictor.initialize_from_trained_model_folder(str(folder), use_folds=(fold,), checkpoint_name=checkpoint)
    except Exception as exc:  # any failure to unpickle, build or load means the weights are unusable
        raise WeightsUnavailableError(
            f"Cannot load the nnU-Net model {path}: {exc.__class__.__name__}: {exc}. The checkpoint or its "
            f"plans.json/dataset.json is corrupt or does not match. {what_to_do}".strip()
        ) from exc
    return _Stage(_configuration_name(predictor), folder, predictor)


def _configuration_name(predictor) -> str:
    """The configuration the checkpoint named (nnU-Net resolved it; the folder name is not trusted)."""
    plans, chosen = predictor.plans_manager, predictor.configuration_manager.configuration
    for name in plans.available_configurations:
        if plans.get_configuration(name).configuration == chosen:
            return name
    return "unknown"


def _check_stages(stages: list[_Stage]) -> None:
    previous = [s.predictor.configuration_manager.previous_stage_name for s in stages]
    if len(stages) == 1 and previous[0] is not None:
        raise WeightsUnavailableError(
            f"{stages[0].folder} is the second stage of a cascade (previous stage '{previous[0]}'); give both "
            "folders, the previous stage first."
        )
    if len(stages) == 2 and previous[1] != stages[0].configuration:
        raise WeightsUnavailableError(
            f"{stages[1].folder} does not follow {stages[0].configuration} (its previous stage is {previous[1]})."
        )
    if len(stages) > 2:
        raise WeightsUnavailableError("Only one model, or a two-stage cascade, is supported.")


def _check_image(image: Volume) -> None:
    if not np.issubdtype(image.array.dtype, np.number):
        raise InvalidInputError(f"The image has a non-numeric voxel type ({image.array.dtype}).")
    finite = np.isfinite(image.array)
    if not finite.all():
        raise InvalidInputError(f"The image has {int((~finite).sum())} NaN/infinite voxels; fix or re-export it.")
    if float(image.array.max()) == float(image.array.min()):
        raise EmptySegmentationError(
            f"No knee structures found: the image is blank (every voxel is {float(image.array.flat[0]):g})."
        )


def knee_problems(canonical: np.ndarray, voxel_mm3: float) -> list[str]:
    """Why a canonical label array does not look like a knee (empty list: it does). See MIN_BONE_MM3."""
    from scipy import ndimage

    def volume(*names: str) -> float:
        return sum(float(np.count_nonzero(canonical == L.CANONICAL[n])) for n in names) * voxel_mm3

    problems = []
    for bone in (L.FEMUR, L.TIBIA):
        mm3 = volume(bone)
        if mm3 < MIN_BONE_MM3:
            problems.append(f"{bone} {mm3 / 1000:.1f} cm3 (needs {MIN_BONE_MM3 / 1000:g})")
            continue
        mask = canonical == L.CANONICAL[bone]
        box = ndimage.find_objects(mask.astype(np.uint8))[0]
        solid = np.pad(mask[box], 1)
        shell = 1.0 - np.count_nonzero(ndimage.binary_erosion(solid)) / np.count_nonzero(solid)
        if shell > MAX_BONE_SHELL_FRACTION:
            problems.append(f"{bone} is fragmented, not a solid bone ({shell:.0%} of it is surface)")
    cartilage = {
        "femoral cartilage": (volume(L.FEMORAL_CARTILAGE), MIN_FEMORAL_CARTILAGE_MM3),
        "tibial cartilage": (volume(L.MEDIAL_TIBIAL_CARTILAGE, L.LATERAL_TIBIAL_CARTILAGE), MIN_TIBIAL_CARTILAGE_MM3),
    }
    for name, (mm3, minimum) in cartilage.items():
        if mm3 < minimum:
            problems.append(f"{name} {mm3 / 1000:.2f} cm3 (needs {minimum / 1000:g})")
    return problems


def _check_knee_found(canonical: np.ndarray, image: Volume) -> None:
    problems = knee_problems(canonical, image.voxel_volume_mm3)
    if problems:
        raise EmptySegmentationError(
            "No knee structures found in the image: " + "; ".join(problems) + ". Check that it is a knee MRI of the "
            "kind the model was trained on (the published model: sagittal 3-D DESS/qDESS; the demo model: "
            "synthetic knees only)."
        )


def _what_to_do(resolved) -> str:
    entry = resolved.entry
    if resolved.origin == "bundled":
        return "Restore weights/demo from git or rebuild it: python scripts/train_demo_model.py --out weights/demo."
    if resolved.origin == "model-dir":
        return f"Replace the files in {resolved.base} with a good copy of {entry.repo_id or entry.name}."
    return (
        f"Delete {resolved.base} and run `python -m pipeline weights download {entry.name}` "
        "(or `python -m pipeline weights verify` to see what is wrong)."
    )
