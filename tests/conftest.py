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
