"""The "Compare two visits" tab through gradio_client: the example pair, two results zips, refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from gradio_client import handle_file

from tests.fixtures.app import page_client, running_app, table_rows
from tests.fixtures.knees import analysed

COARSE = (0.5, 0.5, 0.8)
STATUS, TABLE, NOTES, COLORBAR, DOWNLOADS = range(5)  # the job token (a State) is not returned


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app-compare")) as (url, _):
        yield page_client(url)


def rows(out) -> dict[str, list]:
    """The regional change table as region -> [region, change mm, ...], numbers as floats."""
    return {row[0]: [row[0], *(_number(c) for c in row[1:])] for row in table_rows(out[TABLE])}


def _number(text: str):
    return float(text) if re.fullmatch(r"[+-]?\d+(\.\d+)?", text) else text


def test_example_pair(client):
    out = client.predict(0.2, api_name="/compare_example")
    assert "<strong>Done</strong>: right knee" in out[STATUS]
    assert "medial tibial 0.50 mm thinner" in out[STATUS]  # what changed, in words
    table = rows(out)
    assert table["medial tibial"][1] == pytest.approx(-0.5, abs=0.05)
    assert table["lateral tibial"][1] == pytest.approx(0.0, abs=0.03)
    assert table["femoral"][1] == pytest.approx(-0.2, abs=0.05)
    names = {Path(f).name for f in out[DOWNLOADS]}
    assert {"change_results.zip", "change.json", "change.csv", "change.glb"} <= names
    glb = next(f for f in out[DOWNLOADS] if f.endswith(".glb"))
    assert Path(glb).read_bytes()[:4] == b"glTF"
    assert "tibia" in out[NOTES] and "follow-up minus baseline (mm)" in out[COLORBAR]
    assert ">-0.5<" in out[COLORBAR] and ">0.5<" in out[COLORBAR]  # the colour range, symmetric about 0


def test_two_results_zips(client, tmp_path):
    from pipeline.engine import analyze_labels
    from pipeline.synthetic import PhantomSpec
    from pipeline.synthetic.followup import make_followup

    baseline = analysed(side="left", spacing=COARSE).write(tmp_path / "v1")["zip"]
    visit = make_followup(PhantomSpec(side="left", spacing=COARSE), changes={"patellar": -0.4}, rotation_deg=(0, 5, 0))
    followup = analyze_labels(visit.phantom.labels, case_id="visit2").write(tmp_path / "v2")["zip"]
    out = client.predict(handle_file(str(baseline)), handle_file(str(followup)), "auto", 0.2, api_name="/compare")
    assert "<strong>Done</strong>: left knee" in out[STATUS]
    assert rows(out)["patellar"][1] == pytest.approx(-0.4, abs=0.05)
    data = json.loads(Path(next(f for f in out[DOWNLOADS] if f.endswith("change.json"))).read_text())
    assert data["baseline"]["source"] == data["followup"]["source"] == "results zip"


def test_left_and_right_refused(client, tmp_path):
    from pipeline.io import write_volume
    from tests.fixtures.knees import phantom

    right = write_volume(phantom(side="right", spacing=COARSE).labels, tmp_path / "right.nrrd")
    left = write_volume(phantom(side="left", spacing=COARSE).labels, tmp_path / "left.nrrd")
    with pytest.raises(Exception, match="is a right knee and the follow-up"):
        client.predict(handle_file(str(right)), handle_file(str(left)), "canonical", 0.2, api_name="/compare")


def test_one_visit_missing(client, tmp_path):
    with pytest.raises(Exception, match="Upload both visits"):
        client.predict(None, None, "auto", 0.2, api_name="/compare")
