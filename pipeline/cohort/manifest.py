"""A cohort's list of cases: a MANIFEST.csv, or a folder with one case per image found in it.

MANIFEST.csv has a header row with ``case_id`` and at least one of ``image`` and ``labels``; ``label_scheme`` is
optional (per row; empty cells take the run's default) and every other column (subject, visit, side...) is carried
into the cohort table unchanged. Without a ``case_id`` column, ``subject_id`` and ``visit`` name each case
(``<subject_id>_<visit>``). Paths are relative to the manifest's folder unless absolute. Every problem with the
manifest itself is found before any case runs and reported together, with line numbers (a longitudinal cohort's
subject, visit and date problems too: ``pairs.visit_problems``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ..errors import KneePipelineError
from ..io import VOLUME_SUFFIXES, file_stem
from ..io.dicom import is_dicom_file
from ..request import AnalysisRequest

REQUIRED = "case_id"
INPUT_COLUMNS = ("image", "labels")
#: a longitudinal cohort's columns: which subject (one knee), which visit, and optionally its date (YYYY-MM-DD).
SUBJECT, VISIT, DATE = "subject_id", "visit", "date"
KNOWN_COLUMNS = (REQUIRED, *INPUT_COLUMNS, "label_scheme", SUBJECT, VISIT, DATE)
#: case ids name folders: letters, digits, '.', '_' and '-', not starting with a dot.
CASE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
#: columns the cohort table adds after the manifest's own.
RESERVED = ("status", "run", "error", "error_kind", "seconds", "segmentation_seconds")
MAX_LISTED = 10
DELIMITERS = (",", ";", "\t")


class ManifestError(KneePipelineError):
    """The manifest (or folder) cannot define a cohort; nothing has run."""


@dataclass(frozen=True)
class CohortCase:
    """One row of the manifest.

    Attributes:
        case_id: the name of the case's output folder and table row.
        image: the MRI (file, DICOM folder or zip), absolute, or None.
        labels: an existing label map, absolute, or None (then the image is segmented).
        label_scheme: scheme of ``labels`` ('auto', 'native', 'canonical' or a JSON file).
        cells: the manifest's own cells for this row, as written, by column name.
        line: the row's line in the manifest (0 for a folder's images).
    """

    case_id: str
    image: Path | None
    labels: Path | None
    label_scheme: str = "auto"
    cells: dict[str, str] = field(default_factory=dict, compare=False)
    line: int = field(default=0, compare=False)

    @property
    def needs_segmentation(self) -> bool:
        return self.labels is None

    def request(self, options: AnalysisRequest) -> AnalysisRequest:
        """The case's analysis: ``options`` (every case's) with this row's inputs, scheme and id."""
        return options.with_changes(
            image=self.image, labels=self.labels, label_scheme=self.label_scheme, case_id=self.case_id
        )

    def inputs(self) -> dict[str, str]:
        """What the case was made from, as the manifest wrote it (a moved cohort folder keeps its records valid)."""
        return {
            "image": self.cells.get("image", str(self.image or "")),
            "labels": self.cells.get("labels", str(self.labels or "")),
            "label_scheme": self.label_scheme,
        }


@dataclass(frozen=True)
class Manifest:
    source: Path
    columns: tuple[str, ...]
    cases: tuple[CohortCase, ...]


def read_manifest(source: str | Path, *, label_scheme: str = "auto", longitudinal: bool = False) -> Manifest:
    """The cohort's cases from a MANIFEST.csv or a folder of images. Raises ManifestError saying what to fix.

    With ``longitudinal``, the manifest must also say which subject and visit each row is (see ``pairs``).
    """
    path = Path(source).expanduser()
    if path.is_dir():
        if longitudinal:
            raise ManifestError(f"{path.name}: a longitudinal cohort needs a MANIFEST.csv with subject_id and visit.")
        return scan_folder(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file or folder.")
    header, rows, problems = _read_csv(path)
    if longitudinal:
        _check_longitudinal_header(header, path.name)
    derived = REQUIRED not in header  # case ids from subject_id and visit
    columns = tuple([REQUIRED, *header] if derived else header)
    cases, ids = [], []
    for line, cells in rows:
        named = dict(zip(header, cells, strict=True))
        if derived:
            named = {REQUIRED: _derived_id(named), **named}
        try:
            case = _case_from_row(named, path.parent, label_scheme, line)
        except ManifestError as exc:
            problems.append((line, f"line {line}: {exc}"))
            continue
        cases.append(case)
        ids.append((line, case.case_id))
    problems += _duplicates(ids)
    if longitudinal:
        problems += visit_problems(cases, dated=DATE in header)
    if problems:
        listed = [text for _, text in sorted(problems, key=lambda problem: problem[0])]
        raise ManifestError(_listed(f"{path.name}: {len(listed)} problem(s)", listed))
    if not cases:
        raise ManifestError(f"{path.name}: no cases (only a header row).")
    return Manifest(path.resolve(), columns, tuple(cases))


def _derived_id(cells: dict[str, str]) -> str:
    """``<subject_id>_<visit>``, with anything that cannot name a folder replaced by '_'."""
    raw = f"{cells.get(SUBJECT, '')}_{cells.get(VISIT, '')}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip(".") if cells.get(SUBJECT) and cells.get(VISIT) else ""


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]], list[tuple[int, str]]]:
    """Header (known columns lower-cased), the non-blank rows with their line numbers, and the rows' problems.

    A row with the wrong number of cells is a problem listed with the others, not a stop: the rest of the manifest is
    still checked, so one run reports everything to fix.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheet programs start their CSV with a BOM
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path.name}: not UTF-8 text; save it as 'CSV UTF-8'.") from exc
    except OSError as exc:
        raise ManifestError(f"{path.name}: cannot be read ({exc.strerror}).") from exc
    first = text.split("\n", 1)[0]
    if not first.strip():
        raise ManifestError(f"{path.name}: empty; the first line must be a header with case_id and image or labels.")
    delimiter = next((d for d in DELIMITERS if {REQUIRED, SUBJECT} & set(_header_cells(first, d))), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, problems = [], []
    try:
        header = [_column_name(cell) for cell in next(reader)]
        _check_header(header, path.name)
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                problems.append(
                    (reader.line_num, f"line {reader.line_num}: {len(cells)} cells, but the header has {len(header)}.")
                )
                continue
            rows.append((reader.line_num, [cell.strip() for cell in cells]))
    except csv.Error as exc:
        raise ManifestError(f"{path.name} line {reader.line_num}: not valid CSV ({exc}).") from exc
    return header, rows, problems


def _header_cells(line: str, delimiter: str) -> list[str]:
    return [_column_name(cell) for cell in next(csv.reader([line], delimiter=delimiter), [])]


def _column_name(cell: str) -> str:
    name = cell.strip()
    return name.lower() if name.lower() in KNOWN_COLUMNS else name


def _check_header(header: list[str], name: str) -> None:
    if REQUIRED not in header and not {SUBJECT, VISIT} <= set(header):
        raise ManifestError(
            f"{name}: no 'case_id' column, nor 'subject_id' and 'visit' to name the cases "
            f"(header: {', '.join(header)})."
        )
    if not any(column in header for column in INPUT_COLUMNS):
        raise ManifestError(f"{name}: needs an 'image' or a 'labels' column (header: {', '.join(header)}).")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated or "" in header:
        raise ManifestError(f"{name}: every column needs a distinct name (repeated or empty: {repeated or ['']}).")
    for reserved in RESERVED:
        if reserved in header:
            raise ManifestError(f"{name}: the column name '{reserved}' is reserved for the cohort table; rename it.")


def _check_longitudinal_header(header: list[str], name: str) -> None:
    missing = [column for column in (SUBJECT, VISIT) if column not in header]
    if missing:
        raise ManifestError(
            f"{name}: --longitudinal needs the columns subject_id and visit (missing: {', '.join(missing)}; header: "
            f"{', '.join(header)})."
        )


def _case_from_row(cells: dict[str, str], base: Path, default_scheme: str, line: int = 0) -> CohortCase:
    case_id = cells[REQUIRED]
    if not CASE_ID.match(case_id):
        raise ManifestError(
            f"case_id '{case_id}' cannot name a folder: use letters, digits, '.', '_' and '-' (up to 128)."
            if case_id
            else "empty case_id (or, without a case_id column, an empty subject_id or visit)."
        )
    image, labels = (_path(cells.get(column, ""), base) for column in INPUT_COLUMNS)
    if image is None and labels is None:
        raise ManifestError(f"case {case_id} has neither an image nor labels.")
    scheme = cells.get("label_scheme") or default_scheme
    if scheme.lower() not in ("auto", "native", "canonical"):
        scheme = str(_path(scheme, base))  # a JSON scheme file, relative to the manifest like the images
    return CohortCase(case_id, image, labels, scheme, cells, line)


def _path(cell: str, base: Path) -> Path | None:
    if not cell:
        return None
    path = Path(cell).expanduser()
    return path if path.is_absolute() else base / path


def _duplicates(ids: list[tuple[int, str]]) -> list[tuple[int, str]]:
    # Case-insensitive: two ids differing only in case would share one folder on macOS and Windows shares.
    first: dict[str, int] = {}
    problems = []
    for line, case_id in ids:
        key = case_id.lower()
        if key in first:
            problems.append((line, f"line {line}: duplicate case_id '{case_id}' (first on line {first[key]})."))
        else:
            first[key] = line
    return problems


def _listed(title: str, problems: list[str]) -> str:
    shown = problems[:MAX_LISTED]
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return title + ":\n  " + "\n  ".join(shown) + more


# --- a folder of images -------------------------------------------------------------------------------------------
def scan_folder(folder: Path) -> Manifest:
    """One case per image file (NIfTI/NRRD/MHA), zip, or folder of DICOM files found under ``folder``."""
    loose = [p.name for p in _visible(folder) if p.is_file() and _is_dicom_slice(p)]
    if loose:
        raise ManifestError(
            f"{folder.name}: holds loose DICOM files ({loose[0]}, ...): put each series in its own subfolder (one case "
            "per subfolder), or list the cases in a MANIFEST.csv."
        )
    found = sorted(_find_images(folder, folder))
    if not found:
        raise ManifestError(
            f"{folder}: no images found (NIfTI, NRRD, MHA, zip of a DICOM series, or subfolders of DICOM files)."
        )
    cases, ids = [], []
    for number, (relative, path) in enumerate(found, start=1):
        case_id = re.sub(r"[^A-Za-z0-9._-]+", "_", relative).strip(".") or f"case{number}"
        cases.append(CohortCase(case_id, path, None, "auto", {"case_id": case_id, "image": str(path)}))
        ids.append((number, case_id))
    problems = [p.replace("line", "image") for _, p in _duplicates(ids)]
    if problems:
        raise ManifestError(_listed(f"{folder.name}: images with the same name", problems) + "\nUse a MANIFEST.csv.")
    return Manifest(folder.resolve(), ("case_id", "image"), tuple(cases))


def _find_images(folder: Path, root: Path):
    """(case name, path) for every image under ``folder``; a folder holding DICOM files is one case."""
    for path in _visible(folder):
        if path.is_dir():
            if any(p.is_file() and _is_dicom_slice(p) for p in _visible(path)):
                yield str(path.relative_to(root)), path
            else:
                yield from _find_images(path, root)
        elif path.name.lower().endswith((*VOLUME_SUFFIXES, ".zip")):
            relative = path.relative_to(root)
            yield str(relative.parent / file_stem(relative)), path


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _is_dicom_slice(path: Path) -> bool:
    return not path.name.lower().endswith((*VOLUME_SUFFIXES, ".zip")) and is_dicom_file(path)


# --- longitudinal manifests: subjects and their visits ---------------------------------------------------------
#: subject-level columns: must be the same on every visit of a subject (the group statistics depend on it).
SUBJECT_COLUMNS = ("group",)


def visit_problems(cases: Sequence[CohortCase], *, dated: bool) -> list[tuple[int, str]]:
    """(line, message) for every subject/visit/date problem: empty or repeated visits, bad or partial dates, a
    subject-level column (group) that changes between visits."""
    problems: list[tuple[int, str]] = []
    seen: dict[tuple[str, str], int] = {}
    for case in cases:
        subject, visit = case.cells.get(SUBJECT, ""), case.cells.get(VISIT, "")
        if not subject or not visit:
            problems.append((case.line, f"line {case.line}: empty {SUBJECT if not subject else VISIT}."))
            continue
        first = seen.setdefault((subject, visit), case.line)
        if first != case.line:
            problems.append(
                (case.line, f"line {case.line}: subject {subject} has visit {visit} twice (first on line {first}).")
            )
        if dated and case.cells.get(DATE) and visit_date(case) is None:
            problems.append(
                (case.line, f"line {case.line}: date '{case.cells[DATE]}' is not a date; write it as YYYY-MM-DD.")
            )
    for subject, visits in by_subject(cases).items():
        if dated:
            undated = [case for case in visits if not case.cells.get(DATE)]
            if undated and len(undated) < len(visits):
                names = ", ".join(case.cells.get(VISIT, "") for case in undated)
                problems.append(
                    (
                        undated[0].line,
                        f"line {undated[0].line}: subject {subject} has visits with a date and without one ({names}); "
                        "give every visit of a subject a date, or none.",
                    )
                )
        for column in SUBJECT_COLUMNS:
            values = sorted({case.cells.get(column, "") for case in visits})
            if len(values) > 1:
                problems.append(
                    (
                        visits[0].line,
                        f"line {visits[0].line}: subject {subject} has more than one {column} ({', '.join(values)}); "
                        f"a subject's {column} must be the same on every visit.",
                    )
                )
    return problems


def by_subject(cases: Sequence[CohortCase]) -> dict[str, list[CohortCase]]:
    subjects: dict[str, list[CohortCase]] = {}
    for case in cases:
        if case.cells.get(SUBJECT) and case.cells.get(VISIT):
            subjects.setdefault(case.cells[SUBJECT], []).append(case)
    return subjects


def visit_date(case: CohortCase) -> date | None:
    try:
        return date.fromisoformat(case.cells.get(DATE, ""))
    except ValueError:
        return None
