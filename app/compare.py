"""Callbacks of the "Compare two visits" tab (layout in ui.py): two uploads -> ``pipeline.compare`` -> the regional
change table, the 3-D change map, downloads.

Each upload is a results zip of an earlier analysis, an MRI (segmented first) or a label map; the comparison runs in
the same one-at-a-time queue lane as analyses. The 3-D map is set by its own, non-generator event once the job is
done (Gradio 6.31's Model3D draws nothing otherwise).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from .handlers import page_errors, start_job, verified_uploads
from .jobs import Job
from .startup import Services
from .uploads import copy_input
from .user_errors import user_error

CHANGE_HEADERS = [
    "Region",
    "Change (mm)",
    "Change (%)",
    "Baseline (mm)",
    "Follow-up (mm)",
    "Thinned (mm²)",
    "Thickened (mm²)",
    "Vertices",
]
DOWNLOADS = ("zip", "change.json", "change.csv", "change.glb")
#: The example pair: a synthetic right knee and its follow-up (known change, moved in the scanner).
EXAMPLE_CHANGES = {"medial_tibial": -0.5, "femoral": -0.2}
EXAMPLE_MOTION = ((4.0, -3.0, 5.0), (5.0, -4.0, 6.0))
_example_lock = threading.Lock()


def run_compare(
    services: Services,
    baseline: str | None,
    followup: str | None,
    scheme: str,
    threshold_mm: float | None,
    session: str | None,
    progress: gr.Progress,
    submitted_at: float | None = None,
) -> tuple:
    """The Compare button: (status, job token, table, registration notes, colour bar, downloads).

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

    return _compare(services, inputs, scheme, threshold_mm, session, progress, submitted_at)


def run_example(
    services: Services,
    threshold_mm: float | None,
    session: str | None,
    progress: gr.Progress,
    submitted_at: float | None = None,
) -> tuple:
    """The example button: a synthetic knee and its follow-up, as two label maps."""
    baseline, followup = example_pair(services.store.root.parent)
    return _compare(
        services, lambda job: (str(baseline), str(followup)), "canonical", threshold_mm, session, progress, submitted_at
    )


def _compare(
    services: Services,
    inputs: Callable[[Job], tuple[str, str]],
    scheme: str,
    threshold_mm: float | None,
    session: str | None,
    progress: gr.Progress,
    submitted_at: float | None,
) -> tuple:
    from pipeline.longitudinal import CompareOptions, compare
    from pipeline.request import AnalysisRequest

    job = start_job(services, session, submitted_at, "comparison")
    succeeded = False
    try:
        with page_errors(job, "comparison"):
            baseline, followup = inputs(job)
            options = CompareOptions(threshold_mm=0.2 if threshold_mm is None else float(threshold_mm))

            def report(fraction: float, message: str) -> None:
                job.check_cancelled()  # Cancel stops the comparison at its next report
                progress(0.02 + 0.9 * fraction, desc=message)

            change = compare(
                baseline,
                followup,
                engine=services.engine,
                request=AnalysisRequest(label_scheme=scheme),
                options=options,
                progress=report,
            )
            progress(0.95, desc="Writing results")
            files = change.write(job.folder / "compare")
            succeeded = True
            return (
                done_message(change, services.retention_hours),
                job.token,
                change_table(change),
                registration_notes(change),
                str(files["change_colorbar.png"]),
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
    base, fu = change.baseline, change.followup
    n = len(change.warnings)
    notes = "".join(f"\n- {w}" for w in change.warnings)
    return (
        f"**Done**: {base.laterality.side} knee, follow-up *{fu.case_id}* minus baseline *{base.case_id}*, "
        f"{n} QC warning{'s' if n != 1 else ''}. Files are kept for {retention_hours:g} hours.{notes}"
    )


def change_table(change) -> list[list]:
    rows = []
    for region, result in change.regions.items():
        stats = result.thickness_change_mm
        name = region.replace("_", " ")
        if stats is None:
            rows.append([name, None, None, None, None, None, None, 0])
            continue
        rows.append(
            [
                name,
                round(stats.mean, 3),
                None if result.percent_change is None else round(result.percent_change, 1),
                _round(result.baseline_mean_mm, 3),
                _round(result.followup_mean_mm, 3),
                round(result.thinned_area_mm2, 1),
                round(result.thickened_area_mm2, 1),
                stats.n_vertices,
            ]
        )
    return rows


def registration_notes(change) -> str:
    lines = [f"Thinned/thickened: change beyond ±{change.threshold_mm:g} mm. Colours: ±{change.colour_range_mm:g} mm."]
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


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
