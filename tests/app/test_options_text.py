"""What the page's options say when something is unavailable: plain sentences, never a server path or a shell
command (those stay in the server log)."""

from __future__ import annotations

import re
from types import SimpleNamespace

from app.messages import page_reason
from app.ui import _model_choices, shape_option_info
from pipeline.engine import Engine

LEAKS = re.compile(r"(/[\w.-]+){2,}|python -m|`|KNEESCOPE_")


def test_unavailable_models_are_named_without_paths_or_commands(monkeypatch, tmp_path):
    monkeypatch.setenv("KNEESCOPE_WEIGHTS_DIR", str(tmp_path))  # nothing installed but the bundled demo
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = Engine({"demo": object()}, model="demo")  # a loaded segmenter is not needed to list the choices
    reasons = [reason for _, ok, reason in engine.model_choices() if not ok]
    assert reasons and all(LEAKS.search(reason) for reason in reasons)  # the raw reasons do carry them
    models, default, note = _model_choices(SimpleNamespace(engine=engine))
    assert models == ["demo"] and default == "demo"
    unavailable = "fullres, cascade, goyal-sagittal, goyal-sagittal-v1, goyal-coronal, goyal-axial, goyal-staple"
    assert note == f"Not installed on this server: {unavailable}." and not LEAKS.search(note)


def test_shape_model_and_t2_reasons_for_the_page():
    unavailable = SimpleNamespace(shape_available=False)
    assert not LEAKS.search(shape_option_info(unavailable))
    raw = (
        "Shape model unavailable: Model 'nsm_647' (aagatti/ShapeMedKnee) is not in the local cache "
        "/root/.cache/kneescope. On a machine with internet run `python -m pipeline weights download nsm_647` "
        "(about 275 MB) and copy /root/.cache/kneescope here (or set KNEESCOPE_WEIGHTS_DIR)."
    )
    text = page_reason(raw)
    assert text.startswith("Shape model unavailable: Model 'nsm_647'") and not LEAKS.search(text)
