"""Callbacks of the "Compare two visits" tab (layout in ui.py): two uploads -> ``pipeline.compare`` -> the regional
change table, the 3-D change map, downloads.

Each upload is a results zip of an earlier analysis, an MRI (segmented first) or a label map; the comparison runs in
the same one-at-a-time queue lane as analyses. The 3-D map is set by its own, non-generator event once the job is
done (Gradio 6.31's Model3D draws nothing otherwise).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import gradio as gr

from pipeline.report.colour_scales import change_scale
from pipeline.report.numbers import formatted

from . import handlers, status
from .handlers import page_errors, start_job, verified_uploads
from .jobs import Job
from .slice_images import colour_bar_html
from .startup import Services
from .uploads import copy_input
from .user_errors import user_error
from .worker import stream_in_thread

CHANGE_HEADERS = [
    "Region",
    "Change (mm)",
    "Change (%)",
    "Baseline (mm)",
    "Follow-up (mm)",
    "Thinned area (mm²)",
    "Thickened area (mm²)",
    "Points measured",
]
DOWNLOADS = ("zip", "change.json", "change.csv", "change.glb")
#: The example pair: a synthetic right knee and its follow-up (known change, moved in the scanner).
EXAMPLE_CHANGES = {"medial_tibial": -0.5, "femoral": -0.2}
EXAMPLE_MOTION = ((4.0, -3.0, 5.0), (5.0, -4.0, 6.0))
EXAMPLE_DESCRIPTION = (
    "**The example visits:** a synthetic right knee (baseline label map) and the same knee at a later visit with "
    "medial tibial cartilage 0.5 mm thinner and femoral cartilage 0.2 mm thinner, moved by about 5° and 7 mm in "
    "the scanner (the comparison registers the bones first)."
)
_example_lock = threading.Lock()
#: The status area's red banner for a failed comparison (the other five outputs unchanged).
with_error_banner = partial(
    handlers.with_error_banner, banner=lambda text: (text, *(gr.skip() for _ in range(5))), what="comparison"
)


def run_compare(
    services: Services,
    baseline: str | None,
    followup: str | None,
    scheme: str,
    threshold_mm: float | None,
    session: str | None,
    submitted_at: float | None = None,
) -> Iterator[tuple]:
    """The Compare button: status updates, then (status, job token, table, notes, colour bar, downloads).

    Like an analysis, it works on private copies of the two uploads in its job's folder (checked to be real uploads
    when its turn comes) and deletes only those."""
    if not baseline or not followup:
        raise user_error("Upload both visits: the baseline and the follow-up (results zips, MRIs or label maps).")

    def inputs(job: Job) -> tuple[str, str]:
        uploads = verified_uploads(services, session, baseline=baseline, followup=followup)
        for path in uploads.values():
            if path and path.stat().st_size > services.max_upload_mb * 1024 * 1024:
                raise user_error(f"{path.name} is larger than the {services.max_upload_mb} MB upload limit.")
        copies = {key: copy_input(path, job.inputs / key) for key, path in uploads.items() if path}
        return str(copies["baseline"]), str(copies["followup"])

    yield from _compare(services, inputs, scheme, threshold_mm, session, submitted_at)


def run_example(
    services: Services,
    threshold_mm: float | None,
    session: str | None,
    submitted_at: float | None = None,
) -> Iterator[tuple]:
    """The example button: a synthetic knee and its follow-up, as two label maps."""
    baseline, followup = example_pair(services.store.root.parent)
    yield from _compare(
        services, lambda job: (str(baseline), str(followup)), "canonical", threshold_mm, session, submitted_at
    )


def _compare(
    services: Services,
    inputs: Callable[[Job], tuple[str, str]],
    scheme: str,
    threshold_mm: float | None,
    session: str | None,
    submitted_at: float | None,
) -> Iterator[tuple]:
    from pipeline.longitudinal import CompareOptions, compare
    from pipeline.request import AnalysisRequest

    clock = status.JobClock()
    skip = tuple(gr.skip() for _ in range(5))
    job = start_job(services, session, submitted_at, "comparison")
    succeeded = False
    try:
        with page_errors(job, "comparison"):
            yield (status.running("Checking the inputs", 0.0, clock), *skip)
            baseline, followup = inputs(job)
            options = CompareOptions(threshold_mm=0.2 if threshold_mm is None else float(threshold_mm))

            def work(report, _emit):
                return compare(
                    baseline,
                    followup,
                    engine=services.engine,
                    request=AnalysisRequest(label_scheme=scheme),
                    options=options,
                    progress=report,
                )

            change, stage, fraction = None, "Reading the visits", 0.0
            for kind, value in stream_in_thread(work, job, tick_s=handlers.TICK_S):
                if kind == "result":
                    change = value
                    break
                if kind == "progress":
                    fraction, message = value  # type: ignore[misc]
                    stage = status.plain_stage(message)
                yield (status.running(stage, 0.02 + 0.9 * fraction, clock), *skip)
            yield (status.running("Writing the results", 0.95, clock), *skip)
            files = change.write(job.folder / "compare")  # type: ignore[union-attr]
            succeeded = True
            yield (
                done_message(change, services.retention_hours),
                job.token,
                change_table(change),
                registration_notes(change),
                colour_bar_html(change_scale(change.colour_range_mm), element_id="change-scale"),  # type: ignore[union-attr]
                [str(files[name]) for name in DOWNLOADS if name in files],
            )
    finally:
        services.store.finish(session, job, keep=succeeded)


def show_change_3d(services: Services, token: str | None):
    """The change map's GLB for Model3D (a separate, non-generator event)."""
    job: Job | None = services.store.get(token)
    if job is None:
        return None
    path = job.folder / "compare" / "change.glb"
    return str(path) if path.is_file() else None


def done_message(change, retention_hours: float) -> str:
    """The result banner: side, which visit minus which, what changed most, the warnings."""
    base, fu = change.baseline, change.followup
    n = len(change.warnings)
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in change.warnings)
    return (
        '<div class="ks-status ks-done" role="status"><strong>Done</strong>: '
        f"{html.escape(base.laterality.side)} knee, follow-up <em>{html.escape(fu.case_id)}</em> minus baseline "
        f"<em>{html.escape(base.case_id)}</em>, {n} QC warning{'s' if n != 1 else ''}."
        f'<div class="ks-changed">{html.escape(what_changed(change))}</div>'
        + (f"<ul>{warnings}</ul>" if warnings else "")
        + f'<div class="ks-keep">Files are kept for {retention_hours:g} hours.</div></div>'
    )


def what_changed(change) -> str:
    """The regions whose mean thickness changed beyond the threshold, in one sentence."""
    parts = []
    for region, result in change.regions.items():
        stats = result.thickness_change_mm
        if stats is None or abs(stats.mean) < change.threshold_mm or region.startswith("femoral_"):
            continue
        verb = "thinner" if stats.mean < 0 else "thicker"
        percent = "" if result.percent_change is None else f" ({formatted(result.percent_change, '%', signed=True)} %)"
        parts.append(f"{region.replace('_', ' ')} {formatted(abs(stats.mean), 'mm')} mm {verb}{percent}")
    if not parts:
        return f"No region's mean thickness changed by more than {change.threshold_mm:g} mm."
    return "Changed by more than " + f"{change.threshold_mm:g} mm: " + "; ".join(parts) + "."


def change_table(change) -> str:
    """The regional change as an HTML table with the page's decimals: thickness and its change 2 (signed), percent
    1, areas 0."""
    headers = "".join(f"<th>{html.escape(h)}</th>" for h in CHANGE_HEADERS)
    rows = []
    for region, result in change.regions.items():
        stats = result.thickness_change_mm
        name = f'<td class="ks-name">{html.escape(region.replace("_", " "))}</td>'
        if stats is None:
            rows.append(name + '<td class="ks-num">—</td>' * 6 + '<td class="ks-num">0</td>')
            continue
        cells = (
            formatted(stats.mean, "mm", signed=True),
            formatted(result.percent_change, "%", signed=True),
            formatted(result.baseline_mean_mm, "mm"),
            formatted(result.followup_mean_mm, "mm"),
            formatted(result.thinned_area_mm2, "mm²"),
            formatted(result.thickened_area_mm2, "mm²"),
            str(stats.n_vertices),
        )
        rows.append(name + "".join(f'<td class="ks-num">{c}</td>' for c in cells))
    body = "".join(f'<tr data-region="{region}">{row}</tr>' for region, row in zip(change.regions, rows, strict=True))
    return (
        '<table class="ks-table" id="change-table"><caption>Regional change (follow-up minus baseline)</caption>'
        f"<thead><tr>{headers}</tr></thead><tbody>{body}</tbody></table>"
    )


def registration_notes(change) -> str:
    lines = [
        f"Thinned/thickened: change beyond ±{change.threshold_mm:g} mm. The 3-D view is seen from the front "
        "(the patient's right on your left).",
        "How the follow-up bones were moved onto the baseline's:",
    ]
    for bone, reg in change.registrations.items():
        lines.append(
            f"- {bone}: moved {reg.transform.angle_deg:.1f}°, shapes agree within {reg.residual_rms_mm:.2f} mm RMS"
        )
    return "\n".join(lines)


def example_pair(workdir: Path) -> tuple[Path, Path]:
    """The example pair's label maps, generated once per server (a comparison never deletes them)."""
    from pipeline.io import write_volume
    from pipeline.synthetic import PhantomSpec, make_phantom
    from pipeline.synthetic.followup import make_followup

    folder = workdir / "example-visits"
    baseline, followup = folder / "baseline_knee.nrrd", folder / "followup_knee.nrrd"
    with _example_lock:
        if not followup.exists():
            spec = PhantomSpec(side="right")
            rotation, translation = EXAMPLE_MOTION
            visit = make_followup(spec, changes=EXAMPLE_CHANGES, rotation_deg=rotation, translation_mm=translation)
            write_volume(make_phantom(spec).labels, baseline)
            write_volume(visit.phantom.labels, followup)
    return baseline, followup
