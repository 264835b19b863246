"""Fixtures of the app tests: one app around a label-map engine whose analyses can be held at a gate (to keep a
job running while others queue), shared by the test modules that use it, and small synthetic knees to upload."""

from __future__ import annotations

import pytest

from pipeline.io import write_volume
from tests.fixtures.app import SMALL, GatedEngine, running_app
from tests.fixtures.knees import phantom


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """(url, services, engine) of an app with a 40 MB upload limit and 6-hour retention."""
    from app.settings import AppSettings

    engine = GatedEngine()
    workdir = tmp_path_factory.mktemp("app")
    settings = AppSettings(workdir=workdir, max_upload_mb=40, retention_hours=6)
    with running_app(workdir, engine=engine, settings=settings) as (url, services):
        yield url, services, engine


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """A left and a right knee's label maps (NRRD) and the left one's MR-like image (NIfTI and NRRD)."""
    from pipeline.synthetic import render_mr

    folder = tmp_path_factory.mktemp("knees")
    left = phantom(side="left", spacing=SMALL).labels
    right = phantom(side="right", spacing=SMALL).labels
    image = render_mr(left)
    return {
        "left": write_volume(left, folder / "left_labels.nrrd"),
        "right": write_volume(right, folder / "right_labels.nrrd"),
        "image_nii": write_volume(image, folder / "left.nii.gz"),
        "image_nrrd": write_volume(image, folder / "left.nrrd"),
        "image": image,
        "folder": folder,
    }
