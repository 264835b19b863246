"""The cohort's output folder, and the rules that make a run resumable and a killed run harmless.

    OUT/cases/<case_id>/            a finished case: the usual outputs, then ``done.json`` written last
    OUT/cases/.partial/<case_id>/   attempts in progress (renamed into place when complete)
    OUT/failed/<case_id>.json       a failed case: its one-line error, kind, and traceback for crashes
    OUT/cohort_options.json         the analysis options the folder was started with
    OUT/pairs/, OUT/failed_pairs/   a longitudinal cohort's comparisons, kept by the same rules (``pair_store``)

A case counts as done only when its folder holds ``done.json`` recording the inputs the manifest gives now, so a
run killed at any point leaves nothing that a later run mistakes for a result: a partial attempt is still under
``.partial`` (discarded by the next attempt) and a folder renamed without its marker is replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import uuid
from pathlib import Path

from ..errors import KneePipelineError
from .outcome import CaseOutcome

DONE = "done.json"
OPTIONS = "cohort_options.json"


class CohortStore:
    """Paths and atomic updates under one cohort output folder (shared by the driver and every worker)."""

    def __init__(self, root: str | Path, *, items: str = "cases", failed: str = "failed"):
        self.root = Path(root).expanduser().resolve()
        self.cases = self.root / items
        self.failures = self.root / failed
        self.partial = self.cases / ".partial"

    def pair_store(self) -> CohortStore:
        """The same rules for a longitudinal cohort's comparisons: OUT/pairs/<pair_id>/, OUT/failed_pairs/."""
        return CohortStore(self.root, items="pairs", failed="failed_pairs")

    def case_dir(self, case_id: str) -> Path:
        return self.cases / case_id

    # --- reading records ------------------------------------------------------------------------------------------
    def done(self, case_id: str, inputs: dict[str, str]) -> CaseOutcome | None:
        """The case's finished record when it was made from these inputs, else None."""
        return _record(self.case_dir(case_id) / DONE, inputs)

    def failure(self, case_id: str, inputs: dict[str, str]) -> CaseOutcome | None:
        return _record(self.failures / f"{case_id}.json", inputs)

    # --- one attempt ----------------------------------------------------------------------------------------------
    def start_attempt(self, case_id: str) -> tuple[Path, int]:
        """A fresh folder for this attempt, and how many earlier attempts died mid-way (their folders removed)."""
        folder = self.partial / case_id
        earlier = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
        for stale in earlier:
            shutil.rmtree(stale, ignore_errors=True)
        attempt = folder / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        attempt.mkdir(parents=True)
        return attempt, len(earlier)

    def commit(self, attempt: Path, outcome: CaseOutcome) -> None:
        """Move a complete attempt into place, then write its done marker (the order keeps a crash harmless)."""
        target = self.case_dir(outcome.case_id)
        if target.exists():  # an older result (other inputs) or a rename whose marker was never written
            (target / DONE).unlink(missing_ok=True)
            shutil.rmtree(target)
        os.replace(attempt, target)
        write_json(target / DONE, outcome.to_dict())
        (self.failures / f"{outcome.case_id}.json").unlink(missing_ok=True)

    def discard(self, attempt: Path) -> None:
        shutil.rmtree(attempt, ignore_errors=True)
        _remove_if_empty(attempt.parent)

    def tidy(self) -> None:
        """After a run: remove the empty folder of attempts (left in place during a run, where workers share it)."""
        _remove_if_empty(self.partial)

    def record_failure(self, outcome: CaseOutcome, traceback: str | None = None) -> None:
        data = outcome.to_dict() | ({"traceback": traceback} if traceback else {})
        write_json(self.failures / f"{outcome.case_id}.json", data)

    # --- the folder's options -------------------------------------------------------------------------------------
    def check_options(self, options: dict) -> None:
        """Refuse to mix results made with other options than those the folder was started with (no write)."""
        path = self.root / OPTIONS
        if path.is_file():
            earlier = json.loads(path.read_text())
            changed = sorted(k for k in set(earlier) | set(options) if earlier.get(k) != options.get(k))
            if changed:
                detail = "; ".join(f"{k}: {earlier.get(k)!r} then, {options.get(k)!r} now" for k in changed)
                raise KneePipelineError(
                    f"{self.root} holds cases analysed with other options ({detail}). One cohort table must not mix "
                    "them: use a new --out folder, or the same options."
                )

    def record_options(self, options: dict) -> None:
        """Record the options when the first case starts (a run refused before any case leaves no record)."""
        if not (self.root / OPTIONS).is_file():
            write_json(self.root / OPTIONS, options)


def write_json(path: Path, data: dict) -> Path:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temporary.write_text(json.dumps(data, indent=2, allow_nan=False, default=str))
    os.replace(temporary, path)
    return path


def _record(path: Path, inputs: dict[str, str]) -> CaseOutcome | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent, or unreadable: the case runs again
    outcome = CaseOutcome.from_dict(data)
    return outcome if outcome.inputs == inputs else None


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty: another attempt of the case is under way
        folder.rmdir()
