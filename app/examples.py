"""The built-in examples: a synthetic knee MRI, and a synthetic two-echo qDESS DICOM series of known T2.

Each is generated once per server (in the work folder) and copied into the job's own folder for every run, because
a job deletes its inputs when done.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

_lock = threading.Lock()


def example_inputs(workdir: Path, target: Path, *, with_labels: bool) -> tuple[str, str | None]:
    """Fresh copies of the synthetic example knee: the MR-like image, and its labels when ``with_labels``."""
    from pipeline.io import write_volume
    from pipeline.synthetic import make_phantom, render_mr

    master = workdir / "example"
    image, labels = master / "synthetic_knee.nrrd", master / "synthetic_knee_labels.nrrd"
    with _lock:
        if not image.exists():
            phantom = make_phantom(side="right")
            write_volume(phantom.labels, labels)
            write_volume(render_mr(phantom.labels), image)
    target.mkdir(parents=True, exist_ok=True)
    copies = target
    image_copy = Path(shutil.copy(image, copies / image.name))
    if not with_labels:
        return str(image_copy), None
    return str(image_copy), str(shutil.copy(labels, copies / labels.name))


def qdess_example_inputs(workdir: Path, target: Path, *, with_labels: bool) -> tuple[str, str | None]:
    """A fresh copy of the synthetic qDESS series (a DICOM folder), and its labels when ``with_labels``."""
    from pipeline.io import write_volume
    from pipeline.synthetic.qdess import write_qdess_example

    master = workdir / "example-qdess"
    labels = master / "synthetic_qdess_labels.nrrd"
    with _lock:
        if not (master / "t2_truth.json").exists():
            example = write_qdess_example(master)
            write_volume(example.phantom.labels, labels)
    target.mkdir(parents=True, exist_ok=True)
    copies = target
    series = shutil.copytree(master / "qdess", copies / "synthetic_qdess")
    if not with_labels:
        return str(series), None
    return str(series), str(shutil.copy(labels, copies / labels.name))
