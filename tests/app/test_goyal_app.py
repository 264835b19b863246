"""The app offers the Goyal models it finds and runs one end to end (the test stand-in in the published layout)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from gradio_client import handle_file

from pipeline.config import InferenceOptions
from pipeline.engine import Engine
from pipeline.io import write_volume
from tests.fixtures.app import page_client, running_app
from tests.fixtures.goyal import FAKE_COMMIT, STANDIN_INFO, standin_knee, write_standin_cache

pytestmark = [
    pytest.mark.skipif(not STANDIN_INFO, reason="the Goyal stand-in (tests/data/goyal/standin) is absent"),
    pytest.mark.slow,
]
STATUS, DOWNLOADS = 0, 12
GOYAL = ("goyal-sagittal", "goyal-sagittal-v1", "goyal-coronal", "goyal-axial", "goyal-staple")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    weights = write_standin_cache(tmp_path_factory.mktemp("goyal-weights"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KNEESCOPE_WEIGHTS_DIR", str(weights))
        patch.setenv("HF_HUB_OFFLINE", "1")
        engine = Engine.for_app(inference=InferenceOptions(device="cpu"))
        with running_app(tmp_path_factory.mktemp("app-goyal"), engine=engine) as (url, services):
            yield page_client(url), services


def test_the_app_offers_the_goyal_models_it_finds(app):
    _, services = app
    choices = {name: ok for name, ok, _ in services.engine.model_choices()}
    assert all(choices[name] for name in GOYAL)
    assert not choices["fullres"] and choices["demo"]
    assert services.engine.model == "goyal-sagittal"  # the best model available here, as the app picks it


def test_an_upload_segmented_by_goyal_staple(app, tmp_path):
    client, _ = app
    _, image = standin_knee(orientation="sagittal")
    path = write_volume(image, tmp_path / "knee.nii.gz")
    out = client.predict(
        handle_file(str(path)), None, "auto", "goyal-staple", False, "Automatic", 0.5, False, api_name="/run"
    )
    # The stand-in's weights are untrained (its knee misses the lateral plates): done, but judged by the QC verdict.
    assert "<strong>Done</strong>" in out[STATUS] and "segmented by the goyal-staple" in out[STATUS], out[STATUS]
    assert 'data-verdict="' in out[STATUS]
    (archive,) = [Path(f) for f in out[DOWNLOADS] if f.endswith(".zip")]
    with zipfile.ZipFile(archive) as bundle:
        (name,) = [n for n in bundle.namelist() if n.endswith("provenance.json")]
        provenance = json.loads(bundle.read(name))["segmentation"]
    assert provenance["engine_model"] == "goyal-staple" and provenance["revision"] == FAKE_COMMIT
    assert provenance["fusion"]["method"] == "SimpleITK MultiLabelSTAPLE"
