"""The web app through gradio_client: example, every input kind, bad inputs, concurrency, isolation."""

from __future__ import annotations

import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file

from pipeline.io import write_volume
from tests.fixtures.app import (
    DOWNLOADS,
    NUMBERS,
    SMALL,
    STATUS,
    VIEWS,
    files_named,
    is_done,
    page_client,
    running_app,
)
from tests.fixtures.dicom import write_series
from tests.fixtures.knees import phantom

NO_MODEL = "(none: analysis of label maps only)"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app"), max_upload_mb=40) as (url, services):
        yield url, services


@pytest.fixture(scope="module")
def client(app):
    return page_client(app[0])


def _run(client, image=None, labels=None, scheme="canonical", t2="Automatic"):
    return client.predict(
        handle_file(str(image)) if image else None,
        handle_file(str(labels)) if labels else None,
        scheme,
        NO_MODEL,
        False,
        t2,
        0.5,
        False,
        api_name="/run",
    )


@pytest.fixture(scope="module")
def knee_files(tmp_path_factory):
    """A left knee on a 0.8 mm grid: these tests are about file kinds and the page, not accuracy (the examples, on
    the full grid, check the numbers)."""
    from pipeline.synthetic import render_mr

    folder = tmp_path_factory.mktemp("knee")
    labels = phantom(side="left", spacing=SMALL).labels
    return {
        "labels": write_volume(labels, folder / "left_labels.nrrd"),
        "nii": write_volume(render_mr(labels), folder / "left.nii.gz"),
        "mha": write_volume(render_mr(labels), folder / "left.mha"),
        "volume": labels,
    }


def results_json(out) -> dict:
    return json.loads(Path(next(f for f in out[DOWNLOADS] if f.endswith("results.json"))).read_text())


def test_example_end_to_end(client):
    out = client.predict(NO_MODEL, False, 0.5, False, api_name="/example")
    assert is_done(out[STATUS]) and "right knee" in out[STATUS]
    model, colour_bar, _ = client.predict(["Cartilage", "Menisci"], "Thickness", "Front", api_name="/layers")
    assert Path(model["value"]).read_bytes()[:4] == b"glTF" and "Cartilage thickness (mm)" in colour_bar
    assert model["label"] == "Bones coloured by cartilage thickness (mm)" and model["camera_position"][:2] == [90, 80]
    names = {Path(f).name for f in out[DOWNLOADS]}
    assert {"results.json", "results.csv", "knee.glb", "labels.nii.gz"} <= names
    mean = results_json(out)["cartilage"]["medial_tibial"]["thickness_mm"]["mean"]
    assert mean == pytest.approx(2.0, abs=0.06)
    assert f">{mean:.2f}<" in out[NUMBERS]  # the page shows results.json's number with 2 decimals
    for view in out[VIEWS]:
        assert 'src="data:image/png;base64,' in view


def test_qdess_example_shows_t2_end_to_end(client):
    """The second example button: a synthetic two-echo qDESS DICOM series through the T2 path."""
    out = client.predict(NO_MODEL, False, 0.5, False, api_name="/qdess_example")
    assert is_done(out[STATUS]) and "right knee" in out[STATUS]
    results = results_json(out)
    t2 = results["t2"]["regions"]["medial_tibial"]["mean"]
    assert 30 < t2 < 36  # the generator's truth is 32 ms
    assert 'id="t2-table"' in out[NUMBERS] and f">{t2:.1f}<" in out[NUMBERS]  # T2 with 1 decimal
    assert results["t2"]["computed"] and results["t2"]["sequence"] == "qDESS"
    assert results["dicom_seg"]["computed"]  # a DICOM input also gets its DICOM-SEG


@pytest.mark.parametrize("kind", ["nii", "mha"])
def test_image_with_labels(client, knee_files, kind):
    out = _run(client, knee_files[kind], knee_files["labels"])
    assert "left knee" in out[STATUS]
    results = next(f for f in out[DOWNLOADS] if f.endswith("results.json"))
    data = json.loads(Path(results).read_text())
    assert data["input"]["image"]["file_name"].endswith(kind if kind != "nii" else "nii.gz")


def test_zip_of_dicom_series_with_labels(client, knee_files, tmp_path):
    from pipeline.synthetic import render_mr

    image = render_mr(knee_files["volume"])
    files = write_series(image.with_array(image.array.astype(np.uint16)), tmp_path / "dcm")
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in files:
            z.write(f, f.name)
    out = _run(client, archive, knee_files["labels"])
    assert "left knee" in out[STATUS]


def test_label_map_only(client, knee_files):
    out = _run(client, None, knee_files["labels"])
    assert "left knee" in out[STATUS]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"hello", "Invalid file type"),
        ("broken.nii.gz", b"\x1f\x8bnot gzip at all", "not a readable NIfTI"),
    ],
)
def test_bad_uploads_give_specific_messages(client, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(Exception, match=message):
        _run(client, path)


def test_multi_series_zip_lists_series(client, knee_files, tmp_path):
    volume = knee_files["volume"]
    small = volume.with_array(np.zeros_like(volume.array, dtype=np.uint16))
    a = write_series(small, tmp_path / "a", description="SAG DESS", series_number=2)
    b = write_series(small, tmp_path / "b", description="COR PD", series_number=4)
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in a + b:
            z.write(f, f"{f.parent.name}/{f.name}")
    with pytest.raises(Exception, match="2 DICOM series") as info:
        _run(client, archive)
    assert "SAG DESS" in str(info.value) and "COR PD" in str(info.value)


def test_image_without_model_says_what_to_do(client, knee_files):
    with pytest.raises(Exception, match="No segmentation model is loaded"):
        _run(client, knee_files["nii"])


def test_too_large_upload_is_refused(client, tmp_path):
    big = tmp_path / "big.nrrd"
    big.write_bytes(b"\0" * (41 * 1024 * 1024))
    with pytest.raises(Exception, match=r"(?i)file size|too large|exceeds"):
        _run(client, big)


def test_two_clients_concurrently_get_their_own_results(app, knee_files, tmp_path):
    right = write_volume(phantom(side="right", spacing=SMALL).labels, tmp_path / "right_labels.nrrd")
    results: dict[str, object] = {}

    def go(key, labels):
        results[key] = _run(page_client(app[0]), None, labels)

    threads = [
        threading.Thread(target=go, args=("left", knee_files["labels"])),
        threading.Thread(target=go, args=("right", right)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert "left knee" in results["left"][STATUS] and "right knee" in results["right"][STATUS]
    left_files = {Path(f).parent for f in results["left"][DOWNLOADS]}
    right_files = {Path(f).parent for f in results["right"][DOWNLOADS]}
    assert left_files.isdisjoint(right_files)


def test_cannot_fetch_another_jobs_files(app, client, knee_files):
    import httpx

    url, services = app
    _run(client, None, knee_files["labels"])
    job_folders = [p for p in services.store.root.iterdir() if p.is_dir()]
    assert job_folders and all(len(p.name) >= 20 for p in job_folders)  # unguessable tokens
    target = next(path for folder in job_folders for path in files_named(folder, "results.json"))
    response = httpx.get(f"{url}gradio_api/file={target}", timeout=10)
    assert response.status_code in (403, 404)
    assert b"schema_version" not in response.content


def test_shape_model_requested_without_weights_says_why(client):
    out = client.predict(NO_MODEL, False, 0.5, True, api_name="/example")
    assert is_done(out[STATUS])
    assert "Shape model not run:</strong> Shape model unavailable" in out[NUMBERS]
