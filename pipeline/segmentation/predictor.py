"""nnU-Net predictors: loading one trainer folder, and the subclass that reports every sliding-window tile."""

from __future__ import annotations

import contextlib
import itertools
import time
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

    With ``measure_confidence`` it also summarises the network's certainty (``confidence``): each mirrored copy's
    argmax per tile, and the aggregated logits once per image, before nnU-Net resamples and argmaxes them.

    Relies on internal methods of nnunetv2 2.8.1: ``predict_logits_from_preprocessed_data`` returns the aggregated
    logits, ``predict_sliding_window_return_logits`` gets the preprocessed image,
    ``_internal_get_sliding_window_slicers`` is called once per image and returns the tiles, and
    ``_internal_maybe_mirror_and_predict`` runs once per tile, in that order, calling ``self.network`` first on the
    tile and then on its flips in ``itertools.combinations`` order. Pinned in requirements.txt;
    tests/pipeline/segmentation/ (test_segmenter.py, test_backends.py, test_confidence.py) check them.
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from .confidence import ConfidenceAccumulator, NetworkConfidence
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
        measure_confidence: bool = True
        confidence: NetworkConfidence | None = None
        _accumulator: ConfidenceAccumulator | None = None

        def predict_logits_from_preprocessed_data(self, data):
            self.confidence, self._accumulator = None, None
            if self.measure_confidence:
                mirror_axes = tuple(self.allowed_mirroring_axes or ()) if self.use_mirroring else ()
                self._accumulator = ConfidenceAccumulator(
                    self.label_manager.num_segmentation_heads,
                    tuple(float(s) for s in self.configuration_manager.spacing),
                    mirror_axes,
                )
            logits = super().predict_logits_from_preprocessed_data(data)
            if self._accumulator is not None:
                self.confidence = self._accumulator.finish(logits)
                self._accumulator = None
            return logits

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
            call = self.runner if self.runner is not None else network
            votes = None
            if self._accumulator is not None and self._accumulator.mirror_axes:
                call = votes = MirrorVotes(call, self._accumulator.mirror_axes)
            untyped.network = call  # nnU-Net's mirroring calls self.network; swap it for this tile only
            try:
                with torch.autocast("cuda", enabled=False) if no_fp16 else contextlib.nullcontext():
                    out = super()._internal_maybe_mirror_and_predict(x)
            finally:
                untyped.network = network
            if votes is not None and self._accumulator is not None:
                self._accumulator.add_mirror_votes(out, votes.copies, seconds_spent=votes.seconds)
            return out

    return TileReportingPredictor


class MirrorVotes:
    """Calls the network as nnU-Net's mirroring does, keeping each mirrored copy's argmax flipped back.

    nnU-Net calls ``self.network`` on the tile, then on its flips over every combination of the mirror axes in
    ``itertools.combinations`` order (1 axis, then 2, ...), and flips each output back before averaging. The logits
    pass through untouched; only a (1, ...) argmax per copy is kept (not a logit copy: memory stays small).
    """

    def __init__(self, network: Callable, mirror_axes: tuple[int, ...]):
        self.network = network
        spatial = [a + 2 for a in mirror_axes]
        self._flips = [()] + [c for i in range(len(spatial)) for c in itertools.combinations(spatial, i + 1)]
        self.copies: list = []
        self.seconds = 0.0  # spent on the votes (the confidence's cost), not on the network

    def __call__(self, x):
        import torch

        from .confidence import channel_argmax, one_thread

        out = self.network(x)
        t0 = time.perf_counter()
        flip = self._flips[len(self.copies)] if len(self.copies) < len(self._flips) else ()
        with one_thread():
            vote = channel_argmax(out, dim=1)
        # the argmax drops the channel axis: a flip of array axis a (>= 2) of the logits is axis a - 1 of the vote
        self.copies.append(torch.flip(vote, [a - 1 for a in flip]) if flip else vote)
        self.seconds += time.perf_counter() - t0
        return out


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
