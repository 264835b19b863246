"""The network exported once to ONNX, cached beside the weights and keyed by the checkpoint's sha256.

ONNX Runtime and OpenVINO both read the same file. Where it goes, first that applies:

1. ``$KNEESCOPE_EXPORT_DIR`` (e.g. a shared cache for a cluster, or a temporary folder in tests);
2. ``<fold folder>/kneescope-export/`` beside the checkpoint, when that folder is writable and outside this source
   tree (the bundled demo weights live in the repository's ``weights/demo``, which must stay as checked out);
3. ``~/.cache/kneescope/export/`` (``$XDG_CACHE_HOME`` respected).

The file name carries the configuration, the first 16 hex digits of the checkpoint's sha256 and the input shape, so
new weights never reuse an old graph. Export writes to a temporary name and renames, so a crash or a second process
never leaves a half-written graph behind.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

EXPORT_DIR_ENV = "KNEESCOPE_EXPORT_DIR"
FOLDER_NAME = "kneescope-export"
OPSET = 17
#: The folder holding the ``pipeline`` package (the repository when run from a checkout).
SOURCE_TREE = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class ExportedGraph:
    """An ONNX file of one network at one input shape; ``seconds`` is 0 when it came from the cache."""

    path: Path
    checkpoint_sha256: str
    input_shape: tuple[int, ...]
    seconds: float

    def describe(self) -> dict:
        return {
            "file": str(self.path),
            "checkpoint_sha256": self.checkpoint_sha256,
            "input_shape": list(self.input_shape),
            "exported_now": self.seconds > 0,
            "export_seconds": round(self.seconds, 1),
        }


def export_folder(checkpoint: Path) -> Path:
    """Where graphs of this checkpoint are cached (see the module docstring)."""
    override = os.environ.get(EXPORT_DIR_ENV)
    if override:
        return Path(override).expanduser()
    beside = checkpoint.parent / FOLDER_NAME
    in_source_tree = checkpoint.resolve().is_relative_to(SOURCE_TREE)
    if not in_source_tree and os.access(beside if beside.is_dir() else checkpoint.parent, os.W_OK):
        return beside
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "kneescope" / "export"


def graph_path(folder: Path, *, configuration: str, checkpoint_sha256: str, input_shape: tuple[int, ...]) -> Path:
    shape = "x".join(str(n) for n in input_shape)
    return folder / f"{configuration}-{checkpoint_sha256[:16]}-{shape}.onnx"


def exported_onnx(
    network: Any, *, folder: Path, configuration: str, checkpoint_sha256: str, input_shape: tuple[int, ...]
) -> ExportedGraph:
    """The cached ONNX graph of ``network`` (fp32, fixed ``input_shape``), exporting it first if needed."""
    path = graph_path(folder, configuration=configuration, checkpoint_sha256=checkpoint_sha256, input_shape=input_shape)
    if path.is_file():
        return ExportedGraph(path, checkpoint_sha256, input_shape, 0.0)
    folder.mkdir(parents=True, exist_ok=True)
    logger.info("Exporting %s to ONNX (once per checkpoint): %s", configuration, path)
    t0 = time.perf_counter()
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        _export(network, partial, input_shape)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return ExportedGraph(path, checkpoint_sha256, input_shape, time.perf_counter() - t0)


def _export(network: Any, path: Path, input_shape: tuple[int, ...]) -> None:
    import torch

    # The TorchScript exporter needs only the `onnx` package (the dynamo one also wants onnxscript). A fixed shape
    # lets both runtimes plan memory once; nnU-Net always feeds whole patches of one size, batch 1.
    example = torch.zeros(input_shape, dtype=torch.float32)
    was_training = network.training
    network.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # deprecation and "instance_norm in training mode" notices
            torch.onnx.export(
                network,
                (example,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=["patch"],
                output_names=["logits"],
                do_constant_folding=True,
            )
    finally:
        network.train(was_training)
