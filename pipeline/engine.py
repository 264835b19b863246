"""The analysis engine: segmenters loaded once, one case at a time, MRI in -> :class:`KneeAnalysis` out.

    engine = Engine.load("fullres")                  # or "cascade", "demo"; weights from the hub cache
    result = engine.analyze("knee.nii.gz", progress=lambda f, m: ...)
    result.write("OUT/")

Notebooks, the CLI and the app share one Engine; its lock keeps cases from overlapping (GPU memory, CPU threads),
which replaces the isolation the predecessor got from running each case in a subprocess. A model other than the
default is loaded on first use and then kept.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

from .analysis import ProgressFn, analyze_labels
from .config import AnalysisConfig
from .errors import WeightsUnavailableError
from .io import file_stem, load_image
from .results import KneeAnalysis
from .segment import Segmentation, Segmenter
from .volume import Volume
from .weights import model_dir_from_env, resolve_model

logger = logging.getLogger(__name__)

DEMO_MODEL = "demo"
#: Segmentation models offered, best first.
SEGMENTATION_MODELS = ("fullres", "cascade", DEMO_MODEL)
#: Share of the progress bar given to segmentation (the rest is meshes, thickness and QC).
SEGMENTATION_SHARE = 0.75
DEMO_WARNING = (
    "Segmented by the KneeScope DEMO model, trained on synthetic knees only: on real MRI its labels and every "
    "number derived from them are meaningless."
)


class Engine:
    """Owns the loaded :class:`Segmenter` (s) and a lock; ``analyze`` segments an MRI and analyses the result.

    Attributes:
        model: manifest name of the default model ('fullres', 'cascade', 'demo').
        notice: set when the requested model was unavailable and the demo model stands in (show it to users).
    """

    def __init__(
        self,
        segmenter: Segmenter,
        *,
        model: str,
        notice: str | None = None,
        model_dir: Path | None = None,
        options: dict | None = None,
        download: bool = False,
    ):
        self.model = model
        self.notice = notice
        self._segmenters = {model: segmenter}
        self._model_dir = model_dir
        self._options = dict(options or {})
        self._download = download
        self._choices: list[tuple[str, bool, str]] | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model: str = "fullres",
        *,
        model_dir: str | Path | None = None,
        device: str = "auto",
        mirroring: bool = False,
        tile_step_size: float = 0.5,
        fp16: bool = True,
        download: bool = True,
        fallback_to_demo: bool = False,
    ) -> Engine:
        """Resolve the model's weights (see ``pipeline.weights``), verify them and load the predictor(s) once.

        Args:
            model: manifest name: 'fullres', 'cascade' or 'demo'.
            model_dir: local copy in the published layout (default: $KNEESCOPE_MODEL_DIR).
            device: 'auto' (CUDA > MPS > CPU), 'cuda', 'mps' or 'cpu'.
            mirroring: test-time mirroring by default (slower, slightly smoother).
            tile_step_size: sliding-window step as a fraction of the patch (0.5 = nnU-Net's default).
            fp16: autocast on CUDA.
            download: allow fetching missing weights from the Hub.
            fallback_to_demo: if the requested weights are unavailable and no model_dir was given, use the demo
                model and set ``notice`` instead of failing.
        Raises:
            WeightsUnavailableError: missing, corrupt or unreachable weights (and no fallback).
        """
        model_dir = Path(model_dir).expanduser() if model_dir is not None else model_dir_from_env()
        options = {"device": device, "mirroring": mirroring, "tile_step_size": tile_step_size, "fp16": fp16}
        common = {"model_dir": model_dir, "options": options, "download": download}
        try:
            return cls(_load_segmenter(model, model_dir, options, download), model=model, **common)
        except WeightsUnavailableError as exc:
            if not fallback_to_demo or model == DEMO_MODEL or model_dir is not None:
                raise
            notice = (
                f"The '{model}' model is unavailable ({exc}) Using the DEMO model instead: it was trained on "
                "synthetic knees only, so results on real MRI are meaningless."
            )
            logger.warning(notice)
        return cls(_load_segmenter(DEMO_MODEL, None, options, False), model=DEMO_MODEL, notice=notice, **common)

    @classmethod
    def for_app(cls, *, model_dir: str | Path | None = None, device: str = "auto") -> Engine:
        """The best model available without downloading (published weights if cached or in model_dir, else demo)."""
        engine = None
        for name in SEGMENTATION_MODELS:
            try:
                engine = cls.load(name, model_dir=model_dir, device=device, download=False)
                break
            except WeightsUnavailableError as exc:
                logger.info("model %s not available: %s", name, exc)
        if engine is None:  # even the bundled demo failed: say why
            engine = cls.load(DEMO_MODEL, device=device, download=False)
        engine.model_choices()
        return engine

    # --- models ---
    def model_choices(self) -> list[tuple[str, bool, str]]:
        """(name, available, reason if not) for every segmentation model; checked once, without downloading."""
        if self._choices is None:
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
        segmenter = self._segmenters[self.model]
        others = [name for name, ok, _ in self.model_choices() if ok and name != self.model]
        return (
            f"{self.model} ({' -> '.join(segmenter.configurations)} on {segmenter.device})"
            + (f"; also available: {', '.join(others)}" if others else "")
            + (" [DEMO model: synthetic knees only]" if self.is_demo else "")
        )

    @property
    def is_demo(self) -> bool:
        return self.model == DEMO_MODEL

    def _segmenter(self, model: str | None) -> Segmenter:
        """The loaded segmenter for ``model`` (default: the engine's), loading it on first use. Call under the lock."""
        name = model or self.model
        if name not in self._segmenters:
            self._segmenters[name] = _load_segmenter(name, self._model_dir, self._options, self._download)
        return self._segmenters[name]

    # --- work ---
    def segment(
        self,
        image: str | Path | Volume,
        *,
        model: str | None = None,
        progress: ProgressFn | None = None,
        mirroring: bool | None = None,
    ) -> Segmentation:
        """Segment one MRI (file, DICOM folder/zip or Volume) into a canonical label map on its grid."""
        volume = load_image(image) if isinstance(image, (str, Path)) else image
        with self._lock:
            segmenter = self._segmenter(model)
            segmentation = segmenter.predict(volume, progress=progress, mirroring=mirroring)
        name = model or self.model
        return dataclasses.replace(segmentation, provenance={**segmentation.provenance, "engine_model": name})

    def analyze(
        self,
        image: str | Path | Volume,
        *,
        config: AnalysisConfig | None = None,
        progress: ProgressFn | None = None,
        mirroring: bool = False,
        case_id: str | None = None,
        model: str | None = None,
    ) -> KneeAnalysis:
        """MRI -> segmentation -> meshes, thickness, regions, QC, with the model recorded in the provenance.

        Args:
            image: MRI file (NIfTI/NRRD/MHA), DICOM folder or zip, or a Volume.
            config: analysis parameters (default AnalysisConfig()).
            progress: callback(fraction 0-1, message); segmentation reports per sliding-window tile.
            mirroring: test-time mirroring for this case.
            case_id: output name; default the image file's stem.
            model: a model other than the engine's default (loaded on first use).
        Raises:
            EmptySegmentationError: a blank or non-knee image ("no knee structures found").
        """
        report = progress or (lambda fraction, message: None)
        volume = load_image(image) if isinstance(image, (str, Path)) else image
        if case_id is None:
            case_id = file_stem(Path(image)) if isinstance(image, (str, Path)) else volume.meta.get("name") or "knee"
        name = model or self.model
        with self._lock:
            seg = self._segmenter(name).predict(
                volume,
                progress=lambda f, m: report(SEGMENTATION_SHARE * f, f"Segmenting: {m}"),
                mirroring=mirroring,
            )
            result = analyze_labels(
                seg.labels,
                scheme="canonical",
                image=volume,
                config=config,
                case_id=case_id,
                progress=lambda f, m: report(SEGMENTATION_SHARE + (1 - SEGMENTATION_SHARE) * f, m),
                extra_provenance={"segmentation": {**seg.provenance, "engine_model": name, "notice": self.notice}},
            )
        if name == DEMO_MODEL:
            result = dataclasses.replace(result, warnings=(DEMO_WARNING, *result.warnings))
        return result


def _load_segmenter(model: str, model_dir: Path | None, options: dict, download: bool) -> Segmenter:
    # A model dir holds a copy of the published models; the demo model always comes from this repository.
    resolved = resolve_model(model, model_dir=None if model == DEMO_MODEL else model_dir, download=download)
    return Segmenter.from_model(resolved, **options)
