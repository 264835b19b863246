"""T2 series from a loaded DICOM image: echo grouping, which T2 sequence it is (qDESS or multi-echo spin echo),
header values.

The image was read once by ``pipeline.io`` (its ``source`` holds every header and each echo's image); nothing
here opens a file, except :func:`load_qdess`, a convenience that loads a folder or zip first.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInputError
from ..io.dicom import DicomSource, header_text
from .mese import MIN_ECHOES, MeseSeries
from .qdess import GE_PRIVATE_CREATOR, GL_AREA_TAG, TG_TAG, NotQDessError, QDessSeries

#: A spin-echo TR below this is not a T2-weighted multi-echo acquisition (T1 weighting would bias T2).
MIN_MESE_TR_MS = 500.0


def t2_series_from_source(source: DicomSource) -> QDessSeries | MeseSeries:
    """The T2 acquisition behind a loaded DICOM image: a two-echo qDESS series or a multi-echo spin-echo series.

    A spin-echo series (ScanningSequence SE, or no sequence type with at least 4 echoes) with at least 4 echoes is
    MESE; anything else must be qDESS (:func:`qdess_from_source`).

    Raises:
        NotQDessError: neither (one echo, a dual-echo spin echo, a gradient echo with 3+ echoes, ...): says why.
        InvalidInputError: a T2 series that cannot be used (echo geometry differs, timing missing, ...).
    """
    echoes = source.echoes  # grouped once, by pipeline.io.dicom, as it read the series
    first = source.first_header
    sequence = header_text(first, "ScanningSequence")
    spin_echo = "SE" in sequence.split("\\") and "GR" not in sequence
    if spin_echo and len(echoes) >= MIN_ECHOES:
        return mese_from_source(source)
    if not sequence and len(echoes) >= MIN_ECHOES:
        return mese_from_source(source, notes=(NO_SEQUENCE_NOTE.format(n=len(echoes)),))
    try:
        return qdess_from_source(source)
    except NotQDessError as exc:
        raise NotQDessError(
            f"{exc} Multi-echo spin-echo T2 (the OAI protocol) needs a spin-echo series with at least {MIN_ECHOES} "
            f"echoes; this series has {len(echoes)}."
        ) from exc


NO_SEQUENCE_NOTE = (
    "The DICOM header does not name the sequence type (ScanningSequence); this {n}-echo series was assumed to be a "
    "multi-echo spin echo. Check the T2 values if it is a different sequence."
)
MESE_NOTE = (
    "T2 from a multi-echo spin-echo series: spin-echo T2 runs systematically higher than steady-state (qDESS) T2 "
    "of the same cartilage; never pool the two."
)


def mese_from_source(source: DicomSource, *, notes: tuple[str, ...] = ()) -> MeseSeries:
    """The echoes of a multi-echo spin-echo series, checked: single-frame, same slices per echo, one TR.

    Raises:
        InvalidInputError: an enhanced multi-frame file, echoes with different slice counts or TR, a short TR.
    """
    name = source.name
    description = header_text(source.first_header, "SeriesDescription") or "(no description)"
    if all(len(e.headers) == 1 for e in source.echoes):
        raise InvalidInputError(
            f"{name}: an enhanced (multi-frame) DICOM; MESE T2 reads classic single-frame series. Export the "
            "series as one file per slice and echo."
        )
    counts = {len(e.headers) for e in source.echoes}
    if len(counts) > 1:
        raise InvalidInputError(
            f"{name}: the echoes of series '{description}' have different numbers of slices ({sorted(counts)}); "
            "upload the complete series (every slice of every echo)."
        )
    tr = _consistent(source.headers, "RepetitionTime", name)
    if tr is not None and tr < MIN_MESE_TR_MS:
        raise InvalidInputError(
            f"{name}: series '{description}' has TR {tr:g} ms; a multi-echo spin-echo T2 series needs a long TR "
            f"(>= {MIN_MESE_TR_MS:g} ms, OAI: 2700 ms) or its T1 weighting biases T2."
        )
    times = []
    for echo in source.echoes:
        te = _consistent(list(echo.headers), "EchoTime", name)
        if te is None:
            raise InvalidInputError(f"{name}: echo {echo.number} has no EchoTime; MESE T2 needs every echo time.")
        times.append(te)
    return MeseSeries(
        tuple(e.volume for e in source.echoes),
        tuple(times),
        tr,
        notes=(*notes, MESE_NOTE),
        source={**source.series, "manufacturer": str(getattr(source.first_header, "Manufacturer", ""))},
    )


def load_qdess(path: str | Path) -> QDessSeries:
    """Read one two-echo qDESS DICOM series from a folder or a zip (see :func:`qdess_from_source`)."""
    from ..io import load_image

    path = Path(path)
    if path.exists() and not (path.is_dir() or path.name.lower().endswith(".zip")):
        raise NotQDessError(
            f"{path.name}: T2 mapping needs the qDESS DICOM series itself (both echoes with their headers), as a "
            "folder or one zip; a single file or a NIfTI/NRRD image has no echo timing."
        )
    image = load_image(path)
    if image.source is None:
        raise NotQDessError(f"{path.name}: no DICOM series with echo timing inside.")
    return qdess_from_source(image.source)


def qdess_from_source(source: DicomSource) -> QDessSeries:
    """The two echoes of a qDESS series and its header values.

    Checks: single-frame files, exactly two echoes of a gradient-echo sequence, one geometry, TR/TE/flip angle
    present and consistent. Reads the GE spoiler tags to pick the estimator.

    Raises:
        NotQDessError: not a two-echo qDESS series (one echo, more echoes, spin echo, long TR): skip T2, say why.
        InvalidInputError: a qDESS series that cannot be used (echo geometry differs, TR/TE/flip missing, ...).
    """
    name = source.name
    headers = source.headers
    first = headers[0]
    if len(source.echoes) == 1 and len(source.echoes[0].headers) == 1:
        raise InvalidInputError(
            f"{name}: an enhanced (multi-frame) DICOM; qDESS T2 reads classic single-frame "
            "series. Export the qDESS series as one file per slice and echo."
        )
    _check_is_qdess([echo.headers for echo in source.echoes], first, name)
    echo1, echo2 = source.echoes[0].volume, source.echoes[1].volume
    problems = echo1.same_grid(echo2)
    if problems:
        raise InvalidInputError(
            f"{name}: echo 2 does not share echo 1's geometry ({'; '.join(problems)}). Both qDESS echoes must "
            "come from one acquisition; export the complete original series again."
        )
    creator = _element_value(first, (0x0019, 0x0010))
    foreign = None
    if creator is not None and str(creator).strip() != GE_PRIVATE_CREATOR:
        # (0019,10B6/7) are GE's only inside the GEMS_ACQU_01 block; another vendor's block means other data.
        foreign = f"the private tags at (0019,10B6/7) belong to '{str(creator).strip()}', not GE's {GE_PRIVATE_CREATOR}"
    return QDessSeries.from_volumes(
        echo1,
        echo2,
        tr_ms=_consistent(headers, "RepetitionTime", name),
        te_ms=_consistent(list(source.echoes[0].headers), "EchoTime", name),
        flip_deg=_consistent(headers, "FlipAngle", name),
        gl_area=_element_value(first, GL_AREA_TAG),
        tg_us=_element_value(first, TG_TAG),
        notes=tuple(_sequence_notes(first)),
        source={**source.series, "manufacturer": str(getattr(first, "Manufacturer", ""))},
        name=name,
        ignore_spoiler_tags=foreign,
    )


def _check_is_qdess(echoes: list[tuple], first, name: str) -> None:
    """``echoes``: each echo's headers in slice order, as pipeline.io.dicom grouped them."""
    sequence = header_text(first, "ScanningSequence")
    description = header_text(first, "SeriesDescription") or "(no description)"
    if "GR" not in sequence and sequence:
        raise NotQDessError(
            f"{name}: series '{description}' is a {sequence.replace(chr(92), '/')} sequence with {len(echoes)} "
            "echo(es), not qDESS (a gradient-echo double-echo steady-state scan). T2 mapping needs the qDESS "
            "series; other series can still be segmented without T2."
        )
    if len(echoes) == 1 and _repeated_positions(list(echoes[0])):
        raise InvalidInputError(
            f"{name}: series '{description}' has two images per slice position but no EchoNumbers or EchoTime that "
            "tell the echoes apart, so S1 and S2 cannot be separated. Export the series with its echo tags."
        )
    if len(echoes) == 1:
        raise NotQDessError(
            f"{name}: series '{description}' has one echo only; qDESS T2 needs both echoes (S1 and S2) of the same "
            "series. Export the whole qDESS series, both echoes, and upload it as one zip."
        )
    if len(echoes) != 2:
        raise NotQDessError(
            f"{name}: series '{description}' has {len(echoes)} echoes; this is not qDESS, which has exactly 2. "
            "A multi-echo T2 series needs a different fit that KneeScope does not provide; upload the qDESS series."
        )
    counts = [len(headers) for headers in echoes]
    if counts[0] != counts[1]:
        raise InvalidInputError(
            f"{name}: the two echoes have {counts[0]} and {counts[1]} slices; upload the "
            "complete series (every slice of both echoes)."
        )


def _repeated_positions(headers: list) -> bool:
    positions = [
        tuple(round(float(x), 3) for x in p)
        for ds in headers
        if (p := getattr(ds, "ImagePositionPatient", None)) is not None
    ]
    return len(positions) == len(headers) and len(set(positions)) < len(positions)


def _sequence_notes(first) -> list[str]:
    words = " ".join(header_text(first, k) for k in ("SeriesDescription", "SequenceName")).lower()
    if "dess" in words:
        return []
    return [
        "The DICOM header does not name the sequence DESS; this two-echo gradient-echo series was assumed "
        "to be qDESS. Check the T2 values if it is a different sequence."
    ]


def _consistent(headers: list, keyword: str, name: str) -> float | None:
    values = {round(float(v), 4) for ds in headers if (v := getattr(ds, keyword, None)) not in (None, "")}
    if len(values) > 1:
        raise InvalidInputError(
            f"{name}: {keyword} differs between images ({sorted(values)}); the series mixes "
            "acquisitions. Upload one qDESS series."
        )
    return values.pop() if values else None


def _element_value(ds, tag: tuple[int, int]):
    element = ds.get(tag)
    return None if element is None else element.value
