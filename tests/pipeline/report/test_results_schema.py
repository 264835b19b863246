"""results.json and results.csv against docs/results-schema.md, key by key and column by column.

Three analyses between them write every key: a "full" one (a synthetic two-echo qDESS DICOM series with its labels
given in memory, T2 computed, a tiny trained shape model standing in for the gated ShapeMedKnee weights) and a
"minimal" one (a label-map file alone, the shape model requested without weights) and a "mese" one (a synthetic
multi-echo spin-echo series with its labels: the MESE fit's keys). A key written but not in the
docs' key table fails, and so does a documented key neither writes. The CSV's header must be the column list
the docs show (parsed from the docs, expanded in the docs' own order), and each cell the JSON value it names.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import labels as L
from pipeline.config import AnalysisConfig
from pipeline.engine import Engine
from pipeline.io import write_volume
from pipeline.report import table
from pipeline.shape import ShapeOptions
from pipeline.synthetic import PhantomSpec, make_phantom
from pipeline.synthetic.qdess import write_qdess_example
from pipeline.weights import REPO_ROOT
from tests.fixtures import REPO
from tests.fixtures.shape import TINY_CONFIG, train_tiny_decoder, write_bscore_folder, write_model_folder

ROOT = REPO
DOCS = ROOT / "docs" / "results-schema.md"
COARSE = (0.7, 0.7, 1.4)  # the phantom knee on a coarse grid: every structure and region, a few seconds
#: Coarser meshes: the shape-model stand-in's targets and distances are computed on every vertex.
SMALL_MESHES = AnalysisConfig(bone_vertices={"femur": 5000, "tibia": 5000, "patella": 3000}, cartilage_vertices=5000)
QUICK_FIT = {"n_iterations": 30, "n_lr_updates": 2, "resolution": 32, "icp_iterations": 10, "n_samples": 4000}
KEY_PLACEHOLDERS = {
    "structure": "|".join(L.STRUCTURES),
    "region": "|".join(L.CARTILAGE_REGIONS),
    "layer": "deep|superficial",
    "input": "labels|image",
    "stage": r"[^.]+",
    "segment": r"\d+",
}


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    """Every section computed; returns the output folder."""
    tmp = tmp_path_factory.mktemp("full")
    example = write_qdess_example(tmp / "input", spec=PhantomSpec(spacing=COARSE))
    bscore = write_bscore_folder(tmp / "bscore", np.array([1.0, -1.0, 0.0, 0.0]) / np.sqrt(2), 0.0, 0.15)
    shape = ShapeOptions(model_dir=tmp / "nsm", bscore_dir=bscore, device="cpu", revision="t", fit_overrides=QUICK_FIT)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: more threads only add overhead on a shared machine
    try:
        write_model_folder(tmp / "nsm", train_tiny_decoder(steps=300, seed=0), TINY_CONFIG, model_id="647")
        result = Engine().analyze(
            example.series_dir, labels=example.phantom.labels, t2=True, shape_model=shape, config=SMALL_MESHES
        )
    finally:
        torch.set_num_threads(threads)
    assert result.t2.computed and result.shape_model.computed
    result.write(tmp / "out", make_zip=False)
    return tmp / "out"


@pytest.fixture(scope="module")
def minimal(tmp_path_factory) -> Path:
    """A label-map file alone; the shape model asked for where there are no weights (its reason names the cache)."""
    tmp = tmp_path_factory.mktemp("minimal")
    labels = write_volume(make_phantom(PhantomSpec(side="left", spacing=COARSE)).labels, tmp / "knee_labels.nrrd")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KNEESCOPE_WEIGHTS_DIR", str(tmp / "empty-cache"))
        result = Engine().analyze(labels=labels, shape_model=True)
        reason = result.to_dict()["shape_model"]["reason"]
        assert "<weights cache>" in reason and "--model-dir" not in reason  # --model-dir is for segmentation only
        result.write(tmp / "out", make_zip=False)
    return tmp / "out"


@pytest.fixture(scope="module")
def mese(tmp_path_factory) -> Path:
    """A multi-echo spin-echo series (OAI-style T2) with its labels given: t2.fit and the MESE acquisition keys."""
    from pipeline.synthetic.mese import mese_spec, write_mese_example

    tmp = tmp_path_factory.mktemp("mese")
    example = write_mese_example(tmp / "input", spec=mese_spec(in_plane_mm=COARSE[0]))
    result = Engine().analyze(example.series_dir, labels=example.phantom.labels, t2=True, config=SMALL_MESHES)
    assert result.t2.computed and result.t2.sequence == "MESE"
    result.write(tmp / "out", make_zip=False)
    return tmp / "out"


# --- results.json ---------------------------------------------------------------------------------------------
def documented_keys() -> list[str]:
    """The key column of the docs' "Every key" table."""
    section = DOCS.read_text().split("### Every key", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


def key_pattern(template: str) -> re.Pattern:
    parts = []
    for piece in re.split(r"(<\w+>)", template):
        name = piece[1:-1] if piece.startswith("<") else None
        parts.append(f"(?:{KEY_PLACEHOLDERS[name]})" if name else re.escape(piece))
    return re.compile("".join(parts) + r"\Z")


def written_keys(data: dict, prefix: str = "") -> set[str]:
    """Dotted paths of every key of nested objects (lists are values)."""
    keys = set()
    for key, value in data.items():
        path = f"{prefix}{key}"
        keys.add(path)
        if isinstance(value, dict):
            keys |= written_keys(value, path + ".")
    return keys


def _results(*folders: Path) -> list[dict]:
    return [json.loads((folder / "results.json").read_text()) for folder in folders]


def test_every_written_key_is_documented(full, minimal, mese):
    patterns = [key_pattern(t) for t in documented_keys()]
    written = set().union(*(written_keys(data) for data in _results(full, minimal, mese)))
    undocumented = sorted(k for k in written if not any(p.match(k) for p in patterns))
    assert not undocumented, f"keys written but missing from {DOCS.name}: {undocumented}"


def test_every_documented_key_is_written(full, minimal, mese):
    written = set().union(*(written_keys(data) for data in _results(full, minimal, mese)))
    never = [t for t in documented_keys() if not any(key_pattern(t).match(k) for k in written)]
    assert not never, f"keys documented in {DOCS.name} but never written: {never}"


def test_docs_list_real_keys_once():
    keys = documented_keys()
    assert len(keys) > 100 and len(keys) == len(set(keys))


# --- results.csv ----------------------------------------------------------------------------------------------
def documented_columns() -> list[str]:
    """The CSV header as the docs describe it: each table's columns, repeated for the names the docs list."""
    section = table.documented_section(DOCS.read_text())
    columns = []
    for block in re.split(r"\n(?=\*\*)", section.strip()):
        names = re.findall(r"^\| `([^`]+)` \|", block, flags=re.M)
        repeat = re.search(r"repeated for each `\{(\w+)\}` in this order: ([\w, ]+)", block)
        values = [v.strip() for v in repeat.group(2).split(",")] if repeat else [None]
        for value in values:
            columns += [name.replace(f"{{{repeat.group(1)}}}", value) if repeat else name for name in names]
    return columns


def _csv(folder: Path) -> tuple[list[str], dict[str, str]]:
    with open(folder / "results.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert len(rows) == 1
    return list(reader.fieldnames or []), rows[0]


def test_docs_column_tables_are_generated_from_the_spec():
    assert table.documented_section(DOCS.read_text()) == table.columns_markdown(), (
        "docs/results-schema.md is out of date: run python -m pipeline.report.table --write-docs"
    )


def test_csv_columns_are_the_documented_ones(full, minimal):
    expected = documented_columns()
    assert len(expected) == len(set(expected)) > 200
    for folder in (full, minimal):
        header, _ = _csv(folder)
        assert header == expected


def _as_cell(value) -> str:
    if value is None:
        return ""
    return str(int(value)) if isinstance(value, bool) else str(value)


def test_csv_cells_are_the_json_values(full, minimal):
    """Same numbers, same rounding: each cell is the text of the JSON value its column names."""
    for folder in (full, minimal):
        (data,) = _results(folder)
        _, row = _csv(folder)
        for name, path, column in table.expanded_columns():
            value = data
            for key in path.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            if column.kind == "count":
                assert row[name] == str(len(value)), name
            elif column.kind == "join":
                assert row[name] == table.WARNING_SEPARATOR.join(value), name
            else:
                assert row[name] == (_as_cell(column.missing) if value is None else _as_cell(value)), name
    _, row = _csv(full)
    assert row["femoral_deep_t2_median_ms"] and row["patellar_thickness_area_mm2"] and row["nsm_model_id"] == "647"
    assert float(row["femur_volume_mm3"]) == round(float(row["femur_volume_mm3"]), 1)  # the JSON's 0.1 mm3


def test_outputs_name_no_server_folder(full, minimal):
    """Downloads leave the server: no path of this machine's repository, weights cache, home or work folder."""
    for folder in (full, minimal):
        for name in ("results.json", "results.csv", "provenance.json"):
            text = (folder / name).read_text()
            for local in (REPO_ROOT, Path.home(), folder.parent):
                assert str(local) not in text, (name, str(local))
