"""The analysis engine: the one place that sequences an analysis, for the app, the CLI, notebooks and cohorts.

    engine = Engine.load("fullres")                      # weights resolved once (hub cache, download, or demo)
    result = engine.run(AnalysisRequest(image="knee_dicom.zip", t2=True, shape_model=True))
    result = engine.analyze("mri.nii.gz", labels="seg.nii.gz", label_scheme="native")   # the keyword form
    result.write("OUT/")

``run`` reads the inputs once (a DICOM series keeps its headers and echoes on the Volume, so T2 works whatever the
caller passed), takes the given label map (reoriented onto the image grid when it stores the same voxels in another
axis order) or segments the image, then runs the stages in order: morphometry, T2, shape model, assembly (warnings,
provenance). The stages are functions of their own packages; this module only calls them. The engine owns the
segmenters and the shape model, loaded once, and a lock that keeps cases from overlapping on one device (the
isolation the predecessor got from a subprocess per case). Engines are built by ``Engine.from_spec`` (the factory).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from .config import InferenceOptions
from .engine_spec import EngineSpec
from .errors import KneePipelineError, WeightsUnavailableError
from .io.inputs import read_image, read_inputs
from .io.limits import CaseCost
from .label_source import LabelSource
from .morphometry import measure_knee
from .outcome import NotComputed
from .progress import ProgressFn, StageTimer, no_progress, scaled
from .quality import assess_segmentation
from .report.assemble import assemble_analysis
from .report.results import KneeAnalysis
from .request import AnalysisRequest, VolumeInput
from .segmentation.loading import AUTO_MODEL, DEMO_MODEL, SEGMENTATION_MODELS, choose_segmenter, load_segmenter
from .shape.stage import ShapeOptions, shape_stage
from .t2.stage import t2_stage
from .volume import Volume

logger = logging.getLogger(__name__)

#: Share of the progress bar given to segmentation (the rest is meshes, thickness, T2, shape model).
SEGMENTATION_SHARE = 0.75
#: on_volume(kind, volume): "image" once the MRI is read, "labels" once the label map is on its grid.
VolumeObserver = Callable[[str, Volume], None]


class Engine:
    """Owns the loaded segmenter(s) and shape model and a lock; ``run`` analyses one case.

    Attributes:
        model: manifest name of the default segmentation model, or None (label-map analysis only).
        notice: set when the requested model was unavailable and the demo model stands in (show it to users).
        inference: default inference options (device, mirroring, sliding window).
    """

    def __init__(
        self,
        segmenters: dict | None = None,
        *,
        model: str | None = None,
        inference: InferenceOptions | None = None,
        notice: str | None = None,
        model_dir: Path | None = None,
        download: bool = False,
        shape: ShapeOptions | None = None,
    ):
        self.model = model
        self.notice = notice
        self.inference = inference or InferenceOptions()
        self._segmenters = dict(segmenters or {})
        self._model_dir = model_dir
        self._download = download
        self._choices: list[tuple[str, bool, str]] | None = None
        self._shape = shape
        self._shape_reason: str | None = None
        self._lock = threading.RLock()

    # --- construction: the one factory --------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: EngineSpec, *, segment: bool = True) -> Engine:
        """The engine ``spec`` describes; ``segment=False``: one that analyses label maps only (no weights touched).

        Raises:
            WeightsUnavailableError: missing, corrupt or unreachable weights (and no fallback).
        """
        if not segment:
            return cls(inference=spec.inference)
        folder = spec.folder
        chosen = choose_segmenter(
            spec.model, folder, spec.inference, download=spec.download, fallback_to_demo=spec.fallback_to_demo
        )
        segmenters = {chosen.name: chosen.segmenter} if chosen.name is not None else {}
        engine = cls(
            segmenters,
            model=chosen.name,
            notice=chosen.notice,
            inference=spec.inference,
            model_dir=folder,
            download=spec.download,
        )
        if spec.model == AUTO_MODEL and chosen.name is not None:
            engine.model_choices()  # checked once at startup, so the page lists what it can offer
        return engine

    @classmethod
    def load(
        cls,
        model: str = "fullres",
        *,
        inference: InferenceOptions | None = None,
        model_dir: str | Path | None = None,
        download: bool = True,
        fallback_to_demo: bool = False,
    ) -> Engine:
        """``Engine.from_spec(EngineSpec(model, ...))``: see :class:`~pipeline.engine_spec.EngineSpec`."""
        spec = EngineSpec(
            model,
            None if model_dir is None else str(model_dir),
            inference or InferenceOptions(),
            download,
            fallback_to_demo,
        )
        return cls.from_spec(spec)

    @classmethod
    def for_app(cls, *, model_dir: str | Path | None = None, inference: InferenceOptions | None = None) -> Engine:
        """The best model available without downloading (published weights if cached or in model_dir, else demo);
        with no usable weights at all, an engine that analyses label maps only."""
        return cls.load(AUTO_MODEL, model_dir=model_dir, inference=inference, download=False)

    # --- models -------------------------------------------------------------------------------------------------
    @property
    def can_segment(self) -> bool:
        return self.model is not None

    @property
    def is_demo(self) -> bool:
        return self.model == DEMO_MODEL

    def model_choices(self) -> list[tuple[str, bool, str]]:
        """(name, available, reason if not) for every segmentation model; checked once, without downloading."""
        if self._choices is None:
            from .weights import resolve_model

            choices = []
            for name in SEGMENTATION_MODELS:
                if name in self._segmenters:
                    choices.append((name, True, ""))
                    continue
                try:
                    model_dir = None if name == DEMO_MODEL else self._model_dir
                    resolve_model(name, model_dir=model_dir, download=False, verify_checksums=False)
                    choices.append((name, True, ""))
                except WeightsUnavailableError as exc:
                    choices.append((name, False, str(exc)))
            self._choices = choices
        return list(self._choices)

    def describe(self) -> str:
        if self.model is None:
            return "no segmentation model (label-map analysis only)"
        segmenter = self._segmenters[self.model]
        others = [name for name, ok, _ in self.model_choices() if ok and name != self.model]
        return (
            f"{self.model} ({' -> '.join(segmenter.configurations)} on {segmenter.device})"
            + (f"; also available: {', '.join(others)}" if others else "")
            + (" [DEMO model: synthetic knees only]" if self.is_demo else "")
        )

    def _segmenter(self, model: str | None):
        """The loaded segmenter for ``model`` (default: the engine's), loading it on first use. Call under the lock."""
        name = model or self.model
        if name is None:
            raise KneePipelineError(
                "No segmentation model is available here: give the label map with the image, or install the model "
                "weights (python -m pipeline weights download)."
            )
        if name not in self._segmenters:
            self._segmenters[name] = load_segmenter(name, self._model_dir, self.inference, self._download)
        return self._segmenters[name]

    def shape_options(self) -> ShapeOptions | NotComputed:
        """The shape model loaded once (ShapeMedKnee 647 from the weights cache), or why it is unavailable."""
        with self._lock:
            if self._shape is None and self._shape_reason is None:
                from .shape.loading import load_shape_options

                self._shape, self._shape_reason = load_shape_options(device=self.inference.device)
        if self._shape is None:
            reason = self._shape_reason or "shape model unavailable"
            return NotComputed(reason, warning=reason)
        return self._shape

    # --- work ---------------------------------------------------------------------------------------------------
    def segment(
        self,
        image: VolumeInput,
        *,
        model: str | None = None,
        progress: ProgressFn | None = None,
        mirroring: bool | None = None,
        require_knee: bool | None = None,
    ):
        """Segment one MRI (file, DICOM folder/zip or Volume) into a canonical label map on its grid.

        ``require_knee`` (None: the segmenter's default, True): raise EmptySegmentationError when nothing
        knee-like was found.
        """
        volume = read_image(image)
        name = model or self.model
        with self._lock:
            segmentation = self._segmenter(name).predict(
                volume,
                progress=progress,
                mirroring=self.inference.mirroring if mirroring is None else mirroring,
                require_knee=require_knee,
            )
        provenance = {**segmentation.provenance, "engine_model": name, "notice": self.notice}
        return dataclasses.replace(segmentation, provenance=provenance)

    def analyze(
        self,
        image: VolumeInput | None = None,
        *,
        progress: ProgressFn | None = None,
        on_volume: VolumeObserver | None = None,
        **options,
    ) -> KneeAnalysis:
        """``run(AnalysisRequest(image, **options))``: the keyword form (see :class:`~pipeline.request.AnalysisRequest`
        for labels, label_scheme, t2, shape_model, model, mirroring, config, case_id and limits)."""
        return self.run(AnalysisRequest(image, **options), progress=progress, on_volume=on_volume)

    def run(
        self, request: AnalysisRequest, *, progress: ProgressFn | None = None, on_volume: VolumeObserver | None = None
    ) -> KneeAnalysis:
        """One knee: read -> (segment | take the given labels) -> morphometry -> T2 -> shape model -> assembly.

        Args:
            request: what to analyse and how.
            progress: callback(fraction 0-1, message); segmentation reports per sliding-window tile. It may raise
                to stop the analysis (the app's Cancel).
            on_volume: callback(kind, volume) with the image as soon as it is read and the label map as soon as it
                is on the image grid (the app shows them before the analysis ends).
        Raises:
            InvalidInputError: unreadable or unsuitable inputs, grids that do not match.
            EmptySegmentationError: a blank image, or nothing segmented at all ("no knee structures found"); a
                segmentation that is not knee-like comes back with ``segmentation_qc.verdict`` "failed".
        """
        request.check_inputs()
        report = progress or no_progress
        notify = on_volume or (lambda kind, volume: None)
        timer = StageTimer(report)
        with timer.stage("load", 0.0, "Reading the inputs"):
            inputs = read_inputs(
                request.image, request.labels, request.label_scheme, request.limits, image_cost=self._cost(request)
            )
        image = inputs.image
        if image is not None:
            notify("image", image)
        with self._lock:
            if inputs.labels is not None:
                source = LabelSource.from_given(inputs.labels, image)
            else:
                source = self._segmented(image, request, report, timer)
            notify("labels", source.labels)
            start = 0.05 if source.given else SEGMENTATION_SHARE
            with timer.stage("morphometry", start, "Measuring"):
                morph = measure_knee(
                    source.labels,
                    request.config,
                    ignored_values=source.ignored_values,
                    progress=scaled(report, start, start + (0.93 - start) * 0.85),
                )
            with timer.stage("t2", start + (0.93 - start) * 0.85, "T2 mapping"):
                t2 = t2_stage(image, source.labels, morph, requested=request.t2)
            with timer.stage("shape_model", 0.93, "Shape model fit"):
                shape = shape_stage(
                    morph.surfaces,
                    morph.laterality.side,
                    self._shape_request(request.shape_model),
                    progress=scaled(report, 0.93, 0.99, "Shape model: "),
                )
            with timer.stage("segmentation_qc", 0.99, "Checking the segmentation"):
                quality = assess_segmentation(
                    source.labels,
                    morph,
                    confidence=source.confidence,
                    scheme=source.scheme,
                    labels_given=source.given,
                    shape=shape,
                )
            report(1.0, "Analysis complete")
            return assemble_analysis(
                request,
                image,
                source,
                morph,
                t2,
                shape,
                quality,
                inference=self.inference,
                timings_s=timer.timings,
            )

    def _segmented(self, image: Volume | None, request: AnalysisRequest, report, timer: StageTimer) -> LabelSource:
        if image is None:  # check_inputs refused neither image nor labels; this keeps the types honest
            raise KneePipelineError("Give a knee MRI to segment, or a label map.")
        with timer.stage("segmentation", 0.02, "Segmenting"):
            segmentation = self.segment(
                image,
                model=request.model,
                progress=scaled(report, 0.02, SEGMENTATION_SHARE, "Segmenting: "),
                mirroring=request.mirroring,
                require_knee=False,  # a non-knee result comes back with the quality verdict "failed"
            )
        return LabelSource.from_segmentation(segmentation.labels, segmentation.provenance, segmentation.confidence)

    def _cost(self, request: AnalysisRequest) -> CaseCost | None:
        """What segmenting the request's image will cost (its model loaded if need be); None when nothing is to be
        segmented or no model can (then reading says what is wrong with the file, or the segmentation step why)."""
        if not request.needs_segmentation or (request.model is None and not self.can_segment):
            return None
        try:
            with self._lock:
                return self._segmenter(request.model).cost
        except KneePipelineError:
            return None

    def _shape_request(self, shape_model: bool | ShapeOptions) -> ShapeOptions | NotComputed:
        if isinstance(shape_model, ShapeOptions):
            return shape_model
        return self.shape_options() if shape_model else NotComputed("Shape model not requested.")


_LABELS_ENGINE: Engine | None = None


def analyze_labels(labels: VolumeInput, *, scheme="auto", image: VolumeInput | None = None, **options) -> KneeAnalysis:
    """Analyse an existing knee segmentation (and its image, if given): the engine's path without a model.

    ``run(AnalysisRequest(image, labels=labels, label_scheme=scheme, **options))`` on an engine with no model; see
    :class:`~pipeline.request.AnalysisRequest` for the options (t2, shape_model, config, case_id, limits).
    """
    global _LABELS_ENGINE
    if _LABELS_ENGINE is None:
        _LABELS_ENGINE = Engine()
    progress = options.pop("progress", None)
    request = AnalysisRequest(image, labels=labels, label_scheme=scheme, **options)
    return _LABELS_ENGINE.run(request, progress=progress)
