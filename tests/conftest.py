"""Shared fixtures: synthetic knees (cached per session), environment kept offline."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
# Exported graphs and backend measurements go to a temporary folder, not beside the bundled demo weights.
if "KNEESCOPE_EXPORT_DIR" not in os.environ:
    os.environ["KNEESCOPE_EXPORT_DIR"] = tempfile.mkdtemp(prefix="kneescope-test-export-")
    atexit.register(shutil.rmtree, os.environ["KNEESCOPE_EXPORT_DIR"], ignore_errors=True)


@functools.lru_cache(maxsize=16)
def phantom(**kwargs):
    """A synthetic knee (cached: several tests share the same few phantoms)."""
    from pipeline.synthetic import make_phantom

    return make_phantom(**kwargs)


@functools.lru_cache(maxsize=16)
def analysed(**kwargs):
    """analyze_labels on a cached phantom."""
    from pipeline.engine import analyze_labels

    return analyze_labels(phantom(**kwargs).labels)


@pytest.fixture(scope="session")
def right_knee():
    return phantom(side="right")


@pytest.fixture(scope="session")
def right_result():
    return analysed(side="right")
