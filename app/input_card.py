"""Inputs understood before Run: what an upload is (MRI, label map, DICOM series with N echoes, qDESS or MESE), its
grid and voxel size, the knee's side when the file says, and what a run will do with it; wrong combinations are
refused here, before any work.

The file is read with the pipeline's own readers (``pipeline.io.load_image``: header checks, limits, DICOM echoes),
and told to be a label map the way a comparison tells it (``pipeline.longitudinal.visits.is_label_map``: a few
whole-number values). The image read for the card is also the preview the slice viewer shows at once. Facts are
cached per file (path, size, modification time), so Run does not read the upload again to decide.
"""

from __future__ import annotations

import html
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import KneePipelineError
from pipeline.io import ImageLimits, load_image
from pipeline.volume import Volume

from .messages import user_message

logger = logging.getLogger(__name__)

MRI, LABEL_MAP, DICOM = "MRI", "label map", "DICOM series"
NOTHING = "Upload a knee MRI (or a label map), or click 'Run the example'."
LABELS_IN_BOTH = (
    "Both boxes hold a label map: put the MRI in the 'Knee MRI' box, or leave that box empty to analyse the label map "
    "alone."
)
IMAGE_IN_LABEL_BOX = (
    "The file in the label-map box is an image, not a label map (it has thousands of grey values): put it in the "
    "'Knee MRI' box."
)
NO_MODEL = (
    "No segmentation model is loaded on this server, so an MRI alone cannot be analysed: add its label map, or run "
    "the example."
)


@dataclass(frozen=True)
class InputFacts:
    """What one uploaded file is, read from it before any analysis.

    Attributes:
        name: the file name as uploaded.
        kind: MRI, label map or DICOM series; None when the file could not be read (``error`` says why).
        size: voxels per axis (i, j, k); spacing: voxel size in mm; orientation: e.g. 'PIR'.
        echoes: echoes in a DICOM series; sequence: 'qDESS' or 'MESE' when T2 can be computed from it.
        t2_note: why T2 can or cannot be computed from this file.
        side: 'left' or 'right' when the file states it (DICOM laterality tags, or a label map's own anatomy).
        description: a DICOM series' description.
    """

    name: str
    kind: str | None
    size: tuple[int, ...] = ()
    spacing: tuple[float, ...] = ()
    orientation: str = ""
    echoes: int = 1
    sequence: str | None = None
    t2_note: str = ""
    side: str | None = None
    description: str = ""
    error: str | None = None

    @property
    def is_label_map(self) -> bool:
        return self.kind == LABEL_MAP

    def grid_text(self) -> str:
        grid = " × ".join(str(n) for n in self.size)
        voxel = " × ".join(f"{s:.2f}" for s in self.spacing)
        return f"{grid} voxels of {voxel} mm" + (f" ({self.orientation})" if self.orientation else "")


@dataclass(frozen=True)
class RunPlan:
    """What Run will do with the uploads: the image and label map to analyse (a label map dropped in the MRI box
    moves to the labels), whether it segments, and a refusal when the combination cannot work."""

    image: str | None
    labels: str | None
    segment: bool
    lines: tuple[str, ...]
    refusal: str | None = None


def inspect_input(path: str | Path, limits: ImageLimits | None = None) -> tuple[InputFacts, Volume | None]:
    """The facts of one upload and its volume (for the preview); an unreadable file gives facts with ``error``."""
    from pipeline.longitudinal.visits import is_label_map

    path = Path(path)
    try:
        volume = load_image(path, limits=limits)
    except KneePipelineError as exc:
        logger.info("upload %s refused: %s", path.name, user_message(str(exc)))
        logger.debug("the refusal above came from:", exc_info=True)
        return InputFacts(path.name, None, error=user_message(str(exc))), None
    except Exception as exc:  # a library's own failure on a damaged file: a sentence for the page, no traceback
        logger.info("upload %s unreadable: %s: %s", path.name, type(exc).__name__, exc)
        logger.debug("the failure above came from:", exc_info=True)
        return InputFacts(
            path.name, None, error=f"{path.name} could not be read as an image ({type(exc).__name__})."
        ), None
    common = {
        "size": volume.size,
        "spacing": volume.spacing,
        "orientation": volume.orientation,
    }
    source = volume.source
    if source is not None:
        sequence, note = _t2_sequence(source)
        return (
            InputFacts(
                path.name,
                DICOM,
                echoes=len(source.echoes),
                sequence=sequence,
                t2_note=note,
                side=_header_side(volume),
                description=str(source.series.get("description") or ""),
                **common,
            ),
            volume,
        )
    if is_label_map(volume):
        return InputFacts(path.name, LABEL_MAP, side=_label_side(volume), t2_note=_no_t2(path.name), **common), volume
    return InputFacts(path.name, MRI, t2_note=_no_t2(path.name), **common), volume


def _t2_sequence(source) -> tuple[str | None, str]:
    from pipeline.t2.mese import MeseSeries
    from pipeline.t2.series import t2_series_from_source

    try:
        series = t2_series_from_source(source)
    except KneePipelineError as exc:
        return None, user_message(str(exc))
    name = "MESE" if isinstance(series, MeseSeries) else "qDESS"
    return name, f"T2 can be computed: a {name} series with {len(source.echoes)} echoes."


def _no_t2(name: str) -> str:
    from pipeline.t2.stage import no_echoes_reason

    return no_echoes_reason(name)


def _header_side(volume: Volume) -> str | None:
    from pipeline.morphometry.label_fit import header_side

    return header_side(volume)


def _label_side(volume: Volume) -> str | None:
    """The knee side a label map's own anatomy shows (medial and lateral compartments), None when it cannot tell."""
    from pipeline.io import to_canonical
    from pipeline.morphometry.anatomy import detect_laterality

    try:
        side = detect_laterality(to_canonical(volume, "auto").volume).side
    except KneePipelineError:
        return None
    return side if side in ("left", "right") else None


def plan_run(
    image: InputFacts | None, labels: InputFacts | None, image_path, labels_path, *, can_segment: bool
) -> RunPlan:
    """What Run does with these uploads, or why it refuses (before any work)."""
    for facts in (image, labels):
        if facts is not None and facts.error:
            return RunPlan(None, None, False, (), facts.error)
    if image is None and labels is None:
        return RunPlan(None, None, False, (), NOTHING)
    if labels is not None and not labels.is_label_map:
        return RunPlan(None, None, False, (), IMAGE_IN_LABEL_BOX)
    if image is not None and image.is_label_map:
        if labels is not None:
            return RunPlan(None, None, False, (), LABELS_IN_BOTH)
        lines = (
            f"{image.name} is a label map: it is analysed as given (thickness, volumes), not segmented.",
            "T2: not possible without the MRI.",
        )
        return RunPlan(None, str(image_path), False, lines)
    if image is None:
        return RunPlan(None, str(labels_path), False, ("The label map is analysed as given (not segmented).",))
    if labels is None and not can_segment:
        return RunPlan(None, None, False, (), NO_MODEL)
    first = (
        "The label map is laid on the image and analysed (no segmentation)."
        if labels is not None
        else "The MRI is segmented, then cartilage thickness and volumes are measured."
    )
    t2 = "T2: " + (image.t2_note if image.sequence else f"not computed. {image.t2_note}")
    return RunPlan(str(image_path), str(labels_path) if labels_path else None, labels is None, (first, t2))


class InputCache:
    """The facts of recent uploads (by path, size and modification time) and their preview slice stacks (by token);
    a few of each, the oldest dropped (stacks hold whole volumes: fewer of them)."""

    def __init__(self, keep: int = 16, keep_stacks: int = 4):
        self._keep = keep
        self._keep_stacks = keep_stacks
        self._facts: OrderedDict[tuple, InputFacts] = OrderedDict()
        self._stacks: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def facts(self, path: str | Path, limits: ImageLimits | None = None) -> tuple[InputFacts, Volume | None]:
        """The upload's facts, read now (with its volume) or from the cache (volume None)."""
        key = _file_key(path)
        with self._lock:
            known = self._facts.get(key) if key else None
        if known is not None:
            return known, None
        facts, volume = inspect_input(path, limits)
        if key:
            with self._lock:
                self._facts[key] = facts
                while len(self._facts) > self._keep:
                    self._facts.popitem(last=False)
        return facts, volume

    def keep_stack(self, token: str, stack: object) -> None:
        with self._lock:
            self._stacks[token] = stack
            while len(self._stacks) > self._keep_stacks:
                self._stacks.popitem(last=False)

    def stack(self, token: str | None) -> object | None:
        with self._lock:
            return self._stacks.get(token or "")


def _file_key(path: str | Path) -> tuple | None:
    try:
        real = os.path.realpath(path)
        if os.path.isdir(real):
            return None  # a DICOM folder (API callers): read again, its files may change
        stat = os.stat(real)
    except OSError:
        return None
    return real, stat.st_size, stat.st_mtime_ns


def card_html(items: list[InputFacts], plan: RunPlan | None) -> str:
    """The card under the upload boxes: what each file is, its grid and side, then what Run will do (or why not)."""
    if not items:
        return ""
    rows = [_facts_html(facts) for facts in items]
    refused = plan is not None and plan.refusal
    if refused:
        rows.append(f'<div class="ks-refusal"><strong>Cannot run:</strong> {html.escape(plan.refusal or "")}</div>')
    elif plan is not None:
        rows += [f'<div class="ks-plan">{html.escape(line)}</div>' for line in plan.lines]
    classes = "ks-card ks-card-error" if refused else "ks-card"
    return f'<div class="{classes}" id="input-card-body">{"".join(rows)}</div>'


def _facts_html(facts: InputFacts) -> str:
    if facts.error:
        return f'<div class="ks-file"><strong>{html.escape(facts.name)}</strong>: not readable.</div>'
    kind = facts.kind or ""
    if facts.kind == DICOM:
        kind = f"DICOM series, {facts.echoes} echo{'es' if facts.echoes != 1 else ''}" + (
            f" ({facts.sequence})" if facts.sequence else ""
        )
        if facts.description:
            kind += f", “{facts.description}”"
    side = facts.side or "not stated in the file (decided from the anatomy)"
    return (
        f'<div class="ks-file" data-kind="{html.escape(facts.kind or "")}"><strong>{html.escape(facts.name)}</strong>:'
        f" {html.escape(kind)}<br>{html.escape(facts.grid_text())}<br>Knee side: {html.escape(side)}</div>"
    )
