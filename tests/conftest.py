"""Shared fixtures: synthetic knees (cached per session, from tests/fixtures/knees.py), environment kept offline."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# Under pytest-xdist (`make test` runs one worker per core) each worker gets its share of the cores for its numeric
# threads (torch, OpenVINO and OpenMP read this): two workers each spinning two threads on two cores were slower.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _WORKERS)))

from tests.fixtures.knees import analysed, phantom  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
# Exported graphs and backend measurements go to a temporary folder, not beside the bundled demo weights.
if "KNEESCOPE_EXPORT_DIR" not in os.environ:
    os.environ["KNEESCOPE_EXPORT_DIR"] = tempfile.mkdtemp(prefix="kneescope-test-export-")
    atexit.register(shutil.rmtree, os.environ["KNEESCOPE_EXPORT_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def right_knee():
    return phantom(side="right")


@pytest.fixture(scope="session")
def right_result():
    return analysed(side="right")


#: The longest modules (seconds on one of two xdist workers, from `pytest --durations=0`), run first, longest first:
#: with `make test` (--dist loadfile --no-loadscope-reorder) a worker takes whole modules in this order, so no long
#: module starts last while the other worker has nothing left to do. Other modules follow in collection order; a
#: renamed module only loses its place here, never a test.
LONGEST_FIRST = (
    "tests/pipeline/cohort/test_batch.py",  # ~80 s: three Ray batch processes
    "tests/app/test_page_api.py",  # ~68 s
    "tests/app/test_browser.py",  # ~60 s: Chromium
    "tests/pipeline/cohort/test_longitudinal_cohort.py",  # ~48 s: a Ray cluster
    "tests/pipeline/test_engine.py",  # ~38 s
    "tests/pipeline/longitudinal/test_compare.py",  # ~37 s
    "tests/app/test_uploads.py",
    "tests/pipeline/test_analyze_labels.py",
    "tests/pipeline/segmentation/test_segmenter.py",
    "tests/app/test_compare_tab.py",
    "tests/pipeline/morphometry/test_thickness.py",
    "tests/deploy/test_caddy.py",
)


def pytest_collection_modifyitems(config, items):
    place = {module: rank for rank, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: place.get(item.nodeid.split("::", 1)[0], len(place)))  # stable: modules stay whole
