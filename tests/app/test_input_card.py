"""Inputs understood before Run (app/input_card.py): what each upload is, read with the pipeline's readers, and what
Run will do with a combination, refusals included; the T2 choice that follows the upload (app/handlers.py)."""

from __future__ import annotations

import pytest

from app.handlers import _t2_choice
from app.input_card import (
    DICOM,
    IMAGE_IN_LABEL_BOX,
    LABEL_MAP,
    LABELS_IN_BOTH,
    MRI,
    NO_MODEL,
    NOTHING,
    InputCache,
    card_html,
    inspect_input,
    plan_run,
)
from pipeline.io import write_volume
from tests.fixtures.app import SMALL
from tests.fixtures.knees import phantom


@pytest.fixture(scope="module")
def uploads(tmp_path_factory) -> dict:
    from pipeline.synthetic import render_mr

    folder = tmp_path_factory.mktemp("uploads")
    labels = phantom(side="left", spacing=SMALL).labels
    bad = folder / "notes.nii.gz"
    bad.write_text("a text file renamed")
    return {
        "labels": write_volume(labels, folder / "left_labels.nii.gz"),
        "mri": write_volume(render_mr(labels), folder / "left_mri.nrrd"),
        "bad": bad,
        "size": labels.size,
    }


def test_a_label_map_is_told_from_an_mri_by_its_values(uploads):
    facts, volume = inspect_input(uploads["labels"])
    assert facts.kind == LABEL_MAP and facts.size == uploads["size"] and volume is not None
    assert facts.side == "left"  # from the label map's own medial and lateral compartments
    assert facts.spacing == pytest.approx(SMALL)
    mri, _ = inspect_input(uploads["mri"])
    assert mri.kind == MRI and mri.side is None and mri.sequence is None
    assert "has no echo and timing information" in mri.t2_note


def test_a_dicom_series_reports_its_echoes_and_sequence():
    from tests.fixtures.clinical import mese_case

    facts, _ = inspect_input(mese_case().example.series_dir)
    assert facts.kind == DICOM and facts.echoes == 8 and facts.sequence == "MESE"
    assert "T2 can be computed: a MESE series with 8 echoes" in facts.t2_note
    choice = _t2_choice(facts)
    assert choice.value == "On" and choice.interactive is True


def test_an_unreadable_file_gets_its_reason_not_a_traceback(uploads):
    facts, volume = inspect_input(uploads["bad"])
    assert facts.kind is None and volume is None
    assert facts.error == "notes.nii.gz: not a readable NIfTI file (its gzip data is corrupt)."
    plan = plan_run(facts, None, uploads["bad"], None, can_segment=True)
    assert plan.refusal == facts.error
    assert "Cannot run:" in card_html([facts], plan)


def test_a_label_map_in_the_mri_box_is_analysed_as_a_label_map(uploads):
    facts, _ = inspect_input(uploads["labels"])
    plan = plan_run(facts, None, uploads["labels"], None, can_segment=True)  # even where a model could segment it
    assert plan.refusal is None and plan.segment is False
    assert plan.image is None and plan.labels == str(uploads["labels"])
    assert "is a label map: it is analysed as given" in plan.lines[0]


@pytest.mark.parametrize(
    ("image", "labels", "can_segment", "refusal"),
    [
        ("labels", "labels", True, LABELS_IN_BOTH),
        ("mri", "mri", True, IMAGE_IN_LABEL_BOX),
        (None, "mri", True, IMAGE_IN_LABEL_BOX),
        ("mri", None, False, NO_MODEL),
        (None, None, True, NOTHING),
    ],
)
def test_wrong_combinations_are_refused_before_any_work(uploads, image, labels, can_segment, refusal):
    image_facts = inspect_input(uploads[image])[0] if image else None
    labels_facts = inspect_input(uploads[labels])[0] if labels else None
    image_path = uploads[image] if image else None
    labels_path = uploads[labels] if labels else None
    plan = plan_run(image_facts, labels_facts, image_path, labels_path, can_segment=can_segment)
    assert plan.refusal == refusal and plan.image is None and plan.labels is None


def test_what_run_will_do(uploads):
    mri, _ = inspect_input(uploads["mri"])
    labels, _ = inspect_input(uploads["labels"])
    segment = plan_run(mri, None, uploads["mri"], None, can_segment=True)
    assert segment.segment and segment.image == str(uploads["mri"]) and segment.labels is None
    assert segment.lines[0].startswith("The MRI is segmented") and segment.lines[1].startswith("T2: not computed")
    given = plan_run(mri, labels, uploads["mri"], uploads["labels"], can_segment=False)
    assert not given.segment and given.refusal is None and given.labels == str(uploads["labels"])
    card = card_html([mri, labels], given)
    assert "left_mri.nrrd</strong>: MRI" in card and "left_labels.nii.gz</strong>: label map" in card
    assert "Knee side: left" in card and "voxels of 0.80 × 0.80 × 1.00 mm" in card


def test_facts_are_read_once_per_file(uploads, monkeypatch):
    import app.input_card as card

    cache, reads = InputCache(), []
    real = card.inspect_input
    monkeypatch.setattr(card, "inspect_input", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    first, volume = cache.facts(uploads["labels"])
    again, no_volume = cache.facts(uploads["labels"])
    assert first == again and volume is not None and no_volume is None and len(reads) == 1


def test_a_path_that_was_not_uploaded_is_not_read(uploads, tmp_path):
    """The upload event names the file the page holds; a hand-made request naming any other file gets no card of
    it and no preview (as a run refuses it)."""
    from app.handlers import UPLOAD_OUTPUTS, inspect_uploads
    from app.jobs import JobStore
    from app.startup import Services
    from app.uploads import UploadRegistry
    from pipeline.engine import Engine

    services = Services(store=JobStore(tmp_path), engine=Engine(), uploads=UploadRegistry(tmp_path / "gradio"))
    values = dict(zip(UPLOAD_OUTPUTS, inspect_uploads(services, str(uploads["labels"]), None), strict=True))
    assert "was not uploaded to this server" in values["card"] and "label map" not in values["card"]
    assert "job_token" not in values or not isinstance(values["job_token"], str)  # no preview made
