"""nnU-Net predictors: loading one trainer folder, and the subclass that reports every sliding-window tile."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WeightsUnavailableError


@dataclass
class Stage:
    """One loaded nnU-Net configuration (a cascade has two)."""

    configuration: str
    folder: Path
    predictor: Any  # the TileReportingPredictor (nnunetv2 is imported lazily, so no static type)
    checkpoint: Path | None = None
    backend: dict = field(default_factory=dict)  # the backend's provenance record


def predictor_class():
    """nnUNetPredictor that reports every sliding-window tile, runs the network through a backend, can switch fp16
    autocast off and can skip tiles outside the knee.

    Relies on internal methods of nnunetv2 2.8.1: ``predict_sliding_window_return_logits`` gets the preprocessed
    image, ``_internal_get_sliding_window_slicers`` is called once per image and returns the tiles, and
    ``_internal_maybe_mirror_and_predict`` runs once per tile, in that order, calling ``self.network``. Pinned in
    requirements.txt; tests/pipeline/segmentation/test_segmenter.py and test_backends.py check the tiles and the
    backends.
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from .tiles import knee_box, tiles_needed

    class TileReportingPredictor(nnUNetPredictor):
        on_tile: Callable[[int, int], None] | None = None
        fp16: bool = True
        runner: Callable | None = None  # a backend runner; None = nnU-Net's own network call
        skip_empty_tiles: bool = False
        tiles_total: int = 0
        tiles_done: int = 0
        tiles_skipped: int = 0
        _image_shape: tuple = ()
        _box = None
        _needed: list[bool] | None = None
        _empty_logits = None

        def predict_sliding_window_return_logits(self, input_image):
            self._image_shape, self._empty_logits, self._box = tuple(input_image.shape[1:]), None, None
            if self.skip_empty_tiles:
                self._box = knee_box(input_image[0].cpu().numpy(), self.configuration_manager.spacing)
            return super().predict_sliding_window_return_logits(input_image)

        def _internal_get_sliding_window_slicers(self, image_size):
            slicers = super()._internal_get_sliding_window_slicers(image_size)
            self.tiles_total, self.tiles_done, self.tiles_skipped = len(slicers), 0, 0
            self._needed = tiles_needed(slicers, image_size, self._image_shape, self._box)
            return slicers

        def _internal_maybe_mirror_and_predict(self, x):
            outside = self._needed is not None and not self._needed[self.tiles_done]
            if outside and self._empty_logits is not None:
                out = self._empty_logits.clone()
                self.tiles_skipped += 1
            else:
                out = self._predict_tile(x)
                if outside:  # the network's answer for the first tile outside the knee stands in for the others
                    self._empty_logits = out.clone()
            self.tiles_done += 1
            if self.on_tile is not None:
                self.on_tile(self.tiles_done, self.tiles_total)
            return out

        def _predict_tile(self, x):
            # nnU-Net enables autocast for every CUDA run; the innermost context wins, so this turns it off.
            no_fp16 = self.device.type == "cuda" and not self.fp16
            untyped: Any = self  # nnU-Net's attributes carry no types
            network = untyped.network
            if self.runner is not None:
                untyped.network = self.runner  # nnU-Net's mirroring calls self.network; swap it for this tile only
            try:
                with torch.autocast("cuda", enabled=False) if no_fp16 else contextlib.nullcontext():
                    return super()._internal_maybe_mirror_and_predict(x)
            finally:
                untyped.network = network

    return TileReportingPredictor


def load_stage(folder: Path, fold, checkpoint: str, device, tile_step_size: float, what_to_do: str) -> Stage:
    import torch

    path = folder / f"fold_{fold}" / checkpoint
    if not path.is_file():
        raise WeightsUnavailableError(f"Checkpoint {path} does not exist. {what_to_do}".strip())
    cls = predictor_class()
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
    return Stage(_configuration_name(predictor), folder, predictor, checkpoint=path)


def _configuration_name(predictor) -> str:
    """The configuration the checkpoint named (nnU-Net resolved it; the folder name is not trusted)."""
    plans, chosen = predictor.plans_manager, predictor.configuration_manager.configuration
    for name in plans.available_configurations:
        if plans.get_configuration(name).configuration == chosen:
            return name
    return "unknown"


def check_stages(stages: list[Stage]) -> None:
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
