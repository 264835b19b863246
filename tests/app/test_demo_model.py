"""The app with the bundled DEMO segmentation model: every result it lets users download says so.

The page shows a banner, but numbers leave the app as results.json / results.csv; both must carry the DEMO QC
warning, after "Run the example" and after an MRI upload alike.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from gradio_client import handle_file

from pipeline.config import InferenceOptions
from pipeline.engine import Engine
from pipeline.io import write_volume
from pipeline.report.table import WARNING_SEPARATOR
from pipeline.segmentation.loading import DEMO_WARNING
from pipeline.synthetic import PhantomSpec, make_phantom, render_mr
from tests.fixtures.app import DOWNLOADS, STATUS, is_done, page_client, running_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    engine = Engine.load("demo", inference=InferenceOptions(device="cpu"))
    with running_app(tmp_path_factory.mktemp("app-demo"), engine=engine) as (url, _):
        yield page_client(url)


def _downloaded(out) -> tuple[dict, dict]:
    files = {Path(f).name: Path(f) for f in out[DOWNLOADS]}
    results = json.loads(files["results.json"].read_text())
    with open(files["results.csv"], newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    return results, row


def _assert_demo_warning(out) -> None:
    assert is_done(out[STATUS]), out[STATUS]
    results, row = _downloaded(out)
    assert DEMO_WARNING in results["qc"]["warnings"]
    assert DEMO_WARNING in row["qc_warnings"].split(WARNING_SEPARATOR)
    assert int(row["n_qc_warnings"]) == len(results["qc"]["warnings"])


def test_example_segmented_by_the_demo_model_says_so(client):
    _assert_demo_warning(client.predict("demo", False, 0.5, False, api_name="/example"))


def test_uploaded_mri_segmented_by_the_demo_model_says_so(client, tmp_path):
    labels = make_phantom(PhantomSpec(side="left", spacing=(1.0, 1.0, 1.0))).labels
    image = write_volume(render_mr(labels, seed=7), tmp_path / "left_knee.nii.gz")
    out = client.predict(handle_file(str(image)), None, "auto", "demo", False, "Automatic", 0.5, False, api_name="/run")
    _assert_demo_warning(out)
    assert "left knee" in out[STATUS]
