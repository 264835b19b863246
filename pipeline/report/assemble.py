"""The last stage of an analysis: the stages' results put together into one ``KneeAnalysis``, with its QC warnings
(in the order a reader should see them) and its provenance record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import InferenceOptions
from ..io.sanity import INPUT_NOTES
from ..label_source import LabelSource
from ..morphometry import Morphometry
from ..morphometry.label_fit import laterality_warnings
from ..outcome import NotComputed
from ..segmentation.loading import DEMO_WARNING
from ..volume import Volume
from .provenance import build_provenance, describe_input
from .results import KneeAnalysis

if TYPE_CHECKING:
    from ..quality.verdict import SegmentationQC
    from ..request import AnalysisRequest
    from ..shape.stage import ShapeModelResult
    from ..t2.stage import T2Result


def assemble_analysis(
    request: AnalysisRequest,
    image: Volume | None,
    source: LabelSource,
    morph: Morphometry,
    t2: T2Result | NotComputed,
    shape: ShapeModelResult | NotComputed,
    segmentation_qc: SegmentationQC | None = None,
    *,
    inference: InferenceOptions,
    timings_s: dict[str, float],
) -> KneeAnalysis:
    """One KneeAnalysis from the stages' results; surfaces from T2 (coloured bones) and the shape model (its
    reconstructions) replace or join the morphometry's."""
    inputs = {
        "labels": describe_input(source.labels, source.scheme),
        "image": None if image is None else describe_input(image),
    }
    return KneeAnalysis(
        case_id=request.name,
        inputs=inputs,
        laterality=morph.laterality,
        structures=morph.structures,
        cartilage=morph.cartilage,
        warnings=tuple(analysis_warnings(image, source, morph, t2, shape)),
        labels=source.labels,
        subregions=morph.subregions,
        surfaces={**morph.surfaces, **t2.surfaces, **shape.surfaces},
        config=request.config,
        provenance=analysis_provenance(request, inputs, source, inference, {**timings_s, **morph.timings_s}),
        image=image,
        t2=t2,
        shape_model=shape,
        segmentation_qc=segmentation_qc,
    )


def analysis_warnings(
    image: Volume | None,
    source: LabelSource,
    morph: Morphometry,
    t2: T2Result | NotComputed,
    shape: ShapeModelResult | NotComputed,
) -> list[str]:
    """QC warnings: what was wrong with the image as read (NaN voxels masked), how the labels were obtained (demo
    model, reoriented grid), whether they fit the image's side, then the morphometry's, T2's and the shape model's."""
    warnings = list(image.meta.get(INPUT_NOTES, ())) if image is not None else []
    warnings += [DEMO_WARNING] if source.demo else []
    warnings += [source.grid_note] if source.grid_note else []
    warnings += laterality_warnings(image, source.labels, morph.laterality.side, labels_given=source.given)
    warnings += [*morph.warnings, *(w for w in (t2.warning, shape.warning) if w)]
    return warnings


def analysis_provenance(
    request: AnalysisRequest, inputs: dict, source: LabelSource, inference: InferenceOptions, timings_s: dict
) -> dict:
    extra: dict = {"label_scheme": source.scheme.to_dict(), "inference": inference.to_dict()}
    for key, value in (("segmentation", source.segmentation), ("grid_note", source.grid_note)):
        if value:
            extra[key] = value
    if source.scheme_note:
        extra["scheme_note"] = source.scheme_note
    return build_provenance(parameters=request.config.to_dict(), inputs=inputs, timings_s=timings_s, extra=extra)
