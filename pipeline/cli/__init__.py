"""Command line: ``python -m pipeline analyze|batch|example|synth|weights|doctor``.

One module per command family registers its subparser. Errors the pipeline raises on purpose are printed as one
line (exit code 2), never as a traceback; so is a disk that filled up (pipeline/diskspace.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..diskspace import is_disk_full
from ..errors import DiskFullError, KneePipelineError
from . import analyze, batch, compare, synth, weights


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..doctor import healthy, report, run_checks

    checks = run_checks(Path(args.workdir) if args.workdir else None)
    print(report(checks))
    return 0 if healthy(checks) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description="KneeScope knee MRI analysis")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    analyze.add_parser(sub)
    batch.add_parser(sub)
    compare.add_parser(sub)
    synth.add_parsers(sub)
    weights.add_parser(sub)
    doctor = sub.add_parser("doctor", help="check this host: Python, packages, GPU, weights, disk, Caddy")
    doctor.add_argument("--workdir", help="folder the app writes to (default: KNEESCOPE_WORKDIR or the temp dir)")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except KneePipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a disk that filled up in a write not made by the result writers (batch records, temp)
        if not is_disk_full(exc):
            raise
        print(f"error: {DiskFullError('the output', 'its folder')}", file=sys.stderr)
        return 2
