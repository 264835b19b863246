"""The notebooks run top to bottom (so they cannot rot)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.fixtures import REPO

ROOT = REPO
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # committed notebooks are stripped of outputs
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{path.name}: outputs not stripped"
    # ipykernel's built-in "python3" kernel starts `python` from PATH: make that this interpreter.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    # ... and `import pipeline` this checkout's code (the shared venv's editable install may point elsewhere).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
