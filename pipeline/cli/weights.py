"""``python -m pipeline weights list|download|verify``: the models of weights/manifest.toml on this machine."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    weights_cmd = sub.add_parser("weights", help="list, download or verify model weights")
    weights_cmd.add_argument("action", choices=("list", "download", "verify"))
    weights_cmd.add_argument("models", nargs="*", help="model names (default: every model of the manifest)")
    weights_cmd.add_argument("--model-dir", default=None, help="verify a local copy in the published layout")
    weights_cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import weights
    from ..errors import WeightsUnavailableError

    manifest = weights.load_manifest()
    names = args.models or [n for n, e in manifest.items() if args.action != "download" or e.kind == "nnunet"]
    if args.action == "list":
        for name in names:
            entry = weights.get_entry(name, manifest)
            pinned = "" if entry.pinned else "  [revision not pinned]"
            gated = "  [gated: needs HF_TOKEN]" if entry.gated else ""
            print(f"{name:18s} {weights.model_status(entry):15s} {entry.title}{pinned}{gated}")
        print(f"cache: {weights.weights_dir()} (KNEESCOPE_WEIGHTS_DIR)")
        return 0
    failed = 0
    for name in names:
        entry = weights.get_entry(name, manifest)
        if args.action == "verify" and not args.models and weights.model_status(entry) == "not downloaded":
            print(f"{name}: not downloaded (nothing to verify)")
            continue
        try:
            resolved = weights.resolve_model(entry, model_dir=args.model_dir, download=args.action == "download")
        except WeightsUnavailableError as exc:
            if args.models or args.action == "download":
                raise
            print(f"{name}: FAILED: {exc}")
            failed += 1
            continue
        info = resolved.describe()
        print(f"{name}: OK ({resolved.origin}, revision {resolved.revision}) {resolved.folder}")
        for path, digest in info["checkpoints"].items():
            print(f"  {path}  sha256 {digest}")
    return 2 if failed else 0
