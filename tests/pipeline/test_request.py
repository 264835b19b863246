"""The request every caller builds (pipeline.request.AnalysisRequest) and the one engine factory
(Engine.from_spec(EngineSpec)): case ids derived in one place, options serialised for cohorts, the keyword form the
same analysis as the request form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import AnalysisConfig, InferenceOptions
from pipeline.engine import Engine
from pipeline.engine_spec import AUTO_MODEL, EngineSpec
from pipeline.errors import InvalidInputError
from pipeline.io import load_label_map, write_volume
from pipeline.request import AnalysisRequest
from tests.fixtures.knees import phantom


@pytest.mark.parametrize(
    ("image", "labels", "case_id", "expected"),
    [
        ("/data/knee_001.nii.gz", None, None, "knee_001"),
        (None, "seg/knee_002_labels.nrrd", None, "knee_002_labels"),
        ("/data/series.zip", "seg.nrrd", None, "series"),
        (Path("/data/dicom_folder"), None, None, "dicom_folder"),
        ("/data/a.nii.gz", None, "chosen", "chosen"),
    ],
)
def test_the_case_id_is_derived_from_the_first_input_file(image, labels, case_id, expected):
    assert AnalysisRequest(image, labels=labels, case_id=case_id).name == expected


def test_a_volume_read_already_keeps_the_name_of_its_file(tmp_path):
    path = write_volume(phantom(side="left", spacing=(0.8, 0.8, 1.0)).labels, tmp_path / "visit_2.nrrd")
    loaded = load_label_map(path, "canonical")
    assert AnalysisRequest(labels=loaded).name == "visit_2"
    assert AnalysisRequest(labels=loaded.volume.with_meta(name="named")).name == "named"
    assert AnalysisRequest(labels=loaded.volume.with_meta(file_name=None)).name == "knee"


def test_config_none_means_the_defaults():
    assert AnalysisRequest(labels="x.nrrd", config=None).config == AnalysisConfig()


def test_a_request_without_inputs_is_a_template_and_cannot_run():
    template = AnalysisRequest(t2=True, config=AnalysisConfig(ray_step_mm=0.05))
    case = template.with_changes(labels="x.nrrd", case_id="x")
    assert case.t2 is True and case.config.ray_step_mm == 0.05 and case.name == "x"
    with pytest.raises(InvalidInputError, match="Give a knee MRI, a label map, or both"):
        Engine().run(template)
    with pytest.raises(InvalidInputError, match="path is empty"):
        AnalysisRequest(image=" ")


def test_options_are_serialised_for_cohorts_and_differ_when_the_numbers_would():
    base = AnalysisRequest()
    options = base.options_dict()
    assert json.loads(json.dumps(options)) == options  # JSON-ready
    assert set(options) == {"t2", "shape_model", "model", "mirroring", "config"}
    assert base.with_changes(image="a.nii.gz", case_id="a").options_dict() == options  # inputs are not options
    assert base.with_changes(config=AnalysisConfig(max_gap_mm=3.0)).options_dict() != options
    record = AnalysisRequest("a.nii.gz", labels="b.nrrd", label_scheme={"femur": 5}).to_dict()
    assert json.loads(json.dumps(record))["label_scheme"] == {"femur": 5} and record["case_id"] == "a"


def test_the_keyword_form_runs_the_same_analysis_as_the_request_form():
    labels = phantom(side="right", spacing=(0.8, 0.8, 1.0)).labels
    engine = Engine()
    by_keywords = engine.analyze(labels=labels, label_scheme="canonical", case_id="k")
    by_request = engine.run(AnalysisRequest(labels=labels, label_scheme="canonical", case_id="k"))
    assert by_keywords.case_id == by_request.case_id == "k"
    for region, result in by_keywords.cartilage.items():
        assert result.thickness_mm == by_request.cartilage[region].thickness_mm
    np.testing.assert_array_equal(by_keywords.labels.array, by_request.labels.array)


def test_the_factory_builds_a_labels_only_engine_without_touching_weights(tmp_path):
    spec = EngineSpec("fullres", model_dir=str(tmp_path / "nowhere"), inference=InferenceOptions(device="cpu"))
    engine = Engine.from_spec(spec, segment=False)
    assert not engine.can_segment and engine.inference.device == "cpu"
    assert json.loads(json.dumps(spec.to_dict()))["model"] == "fullres"


def test_the_factory_falls_back_to_the_demo_model_only_when_asked(monkeypatch, tmp_path):
    from pipeline.errors import WeightsUnavailableError

    monkeypatch.setenv("KNEESCOPE_WEIGHTS_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("KNEESCOPE_MODEL_DIR", raising=False)
    with pytest.raises(WeightsUnavailableError):
        Engine.from_spec(EngineSpec("fullres", download=False))
    engine = Engine.from_spec(EngineSpec("fullres", download=False, fallback_to_demo=True))
    assert engine.is_demo and "Using the DEMO model instead" in (engine.notice or "")
    best = Engine.from_spec(EngineSpec(AUTO_MODEL, download=False))
    assert best.is_demo and best.notice is None  # the best available offline: the demo, without a fallback notice
