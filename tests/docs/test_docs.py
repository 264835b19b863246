"""The documentation cites only what exists and names every option and environment variable the code reads."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import re
from pathlib import Path

import pytest

from tests.fixtures import REPO

ROOT = REPO
USER_DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "weights" / "README.md",
    ROOT / "bench" / "RESULTS.md",
    ROOT / "Makefile",
    ROOT / "requirements.txt",
    ROOT / "requirements-dev.txt",
    *sorted((ROOT / "deploy").rglob("*")),
]
TOP_FOLDERS = ("app", "bench", "deploy", "docs", "notebooks", "pipeline", "scripts", "tests", "weights")
PATH_RE = re.compile(r"(?<![\w./<-])((?:" + "|".join(TOP_FOLDERS) + r")/[\w./-]*\w)")
MD_RE = re.compile(r"(?<![\w./-])([\w-]+\.md)\b")


def _docs_text() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in USER_DOCS if p.is_file()}


def _ignored(path: str) -> bool:
    """Made by a script, not committed (a .gitignore pattern such as bench/data/ or bench/.venv-*/)."""
    patterns = [p.strip().lstrip("/").rstrip("/") for p in (ROOT / ".gitignore").read_text().splitlines()]
    return any("/" in p and (fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p + "/*")) for p in patterns if p)


def _repo_paths() -> set[str]:
    """Every file and folder of the checkout (relative paths), without .git, virtual environments and bytecode.
    os.walk passes over a folder that vanishes while it walks (other tests write and remove theirs meanwhile)."""
    found = set()
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in (".git", "__pycache__") and not d.startswith(".venv")]
        relative = Path(folder).relative_to(ROOT)
        found.update(str(relative / name) for name in (*subfolders, *files))
    return found


def test_cited_files_exist():
    repo_files = _repo_paths()
    missing = []
    for name, text in _docs_text().items():
        for path in PATH_RE.findall(text):
            if path.rstrip(".") not in repo_files and not _ignored(path):
                missing.append(f"{name}: {path}")
        for doc in MD_RE.findall(text):
            if not any(f == doc or f.endswith("/" + doc) for f in repo_files):
                missing.append(f"{name}: {doc}")
    assert not missing, "documentation cites files that are not in the repository: " + ", ".join(missing)


def _help_options(help_text: str) -> set[tuple[str, ...]]:
    """Each option of an argparse help text, as the tuple of its spellings (e.g. ("-q", "--quiet"))."""
    found = re.findall(r"^  (-[\w-]+)(?: \S+)?(?:, (--[\w-]+))?", help_text, flags=re.M)
    return {tuple(s for s in spellings if s) for spellings in found} - {("-h", "--help")}


def _cli_options() -> dict[str, set[tuple[str, ...]]]:
    import argparse

    from pipeline.cli import build_parser

    parser = build_parser()
    options = {"python -m pipeline": _help_options(parser.format_help())}
    for action in parser._actions:  # the subcommands' parsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                options[f"python -m pipeline {name}"] = _help_options(sub.format_help())
    return options


def _help_of(main, argv=("--help",)) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(list(argv))
    return out.getvalue()


def test_every_command_line_option_is_in_the_readme():
    from app.serve import main as serve_main
    from app.settings import AppSettings

    readme = (ROOT / "README.md").read_text()
    commands = _cli_options()
    commands["python app.py"] = _help_options(_help_of(AppSettings.from_args))
    commands["python -m app.serve"] = _help_options(_help_of(serve_main))
    undocumented = {
        command: sorted(o for o in opts if not any(re.search(re.escape(s) + r"(?![\w-])", readme) for s in o))
        for command, opts in commands.items()
    }
    assert not any(undocumented.values()), {k: v for k, v in undocumented.items() if v}


def test_every_environment_variable_is_documented():
    code = "".join(p.read_text() for folder in ("pipeline", "app") for p in (ROOT / folder).rglob("*.py"))
    docs = "".join(_docs_text().values())
    read = {v for v in re.findall(r"KNEESCOPE_[A-Z_]+", code) if "_TEST_" not in v}  # test hooks are not for users
    assert read, "no KNEESCOPE_* variable found in the code"
    assert not sorted(v for v in read if v not in docs), "KNEESCOPE_* variables read by the code but not documented"
