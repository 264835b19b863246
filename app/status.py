"""The page's one status area: what is happening in plain words, one progress bar, elapsed time and an estimate;
then a result banner (side, how the labels were made, warnings, the segmentation-quality verdict when there is one)
or an error banner with the reason, which stays until the next run.

Everything here returns HTML for one ``gr.HTML(elem_id="status")``; Gradio's own per-panel progress overlays are
switched off (``show_progress="hidden"``), so this is the only progress element on the page.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field

#: Model names as a clinician reads them.
MODEL_NAMES = {
    "fullres": "knee nnU-Net",
    "cascade": "knee nnU-Net (cascade)",
    "demo": "DEMO model (synthetic knees only)",
}
#: Segmentation-quality verdicts (results.json ``qc.segmentation.verdict``) and how the banner words them.
VERDICTS = {
    "ok": ("ok", "Segmentation quality: ok."),
    "review": ("review", "Review the segmentation:"),
    "failed": ("failed", "The segmentation failed its quality check; the numbers below are not reliable:"),
}
_TILE = re.compile(r"tile (\d+)/(\d+)")


def plain_stage(message: str) -> str:
    """A pipeline progress message in words a clinician reads ("3d_fullres: tile 2/4" -> "Segmenting the knee:
    part 2 of 4")."""
    text = message.strip()
    lower = text.lower()
    if lower.startswith("segmenting"):
        tile = _TILE.search(lower)
        if tile:
            return f"Segmenting the knee (part {tile.group(1)} of {tile.group(2)})"
        if "resampling" in lower:
            return "Segmenting the knee: putting the labels on the image grid"
        if "preprocessing" in lower:
            return "Segmenting the knee: preparing the image"
        return "Segmenting the knee"
    for start, words in (
        ("reading", "Reading the image"),
        ("loading", "Reading the image"),
        ("checking structures", "Checking the structures"),
        ("femoral subregions", "Dividing the femoral cartilage into regions"),
        ("building surfaces", "Building the bone surfaces"),
        ("measuring cartilage", "Measuring cartilage thickness"),
        ("measuring", "Measuring cartilage thickness"),
        ("morphometry complete", "Measuring cartilage thickness"),
        ("t2", "Computing the T2 map"),
        ("shape model", "Fitting the shape model"),
        ("analysis complete", "Writing the report and result files"),
        ("writing", "Writing the report and result files"),
    ):
        if lower.startswith(start):
            return words
    return text[:1].upper() + text[1:]


@dataclass
class JobClock:
    """Elapsed time of a job and a linear estimate of what is left (from the progress fraction)."""

    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self, fraction: float) -> float | None:
        """Seconds left, once enough is done to extrapolate (5 % and 3 s); None before."""
        elapsed = self.elapsed()
        if fraction < 0.05 or elapsed < 3 or fraction >= 1:
            return None
        return elapsed * (1 - fraction) / fraction


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


def idle(text: str = "Upload a knee MRI or a label map, or run an example.") -> str:
    return f'<div class="ks-status ks-idle">{html.escape(text)}</div>'


def running(stage: str, fraction: float, clock: JobClock, *, queued: bool = False) -> str:
    """Stage in words, the one progress bar, elapsed time and the estimate."""
    percent = max(0, min(100, round(100 * fraction)))
    left = clock.remaining(fraction)
    timing = f"{duration(clock.elapsed())} elapsed" + (f" · about {duration(left)} left" if left is not None else "")
    return (
        f'<div class="ks-status ks-running" role="status" aria-live="polite">'
        f'<div class="ks-stage">{html.escape(stage)}</div>'
        f'<progress class="ks-progress" max="100" value="{percent}" aria-label="Progress">{percent}%</progress>'
        f'<div class="ks-timing"><span>{percent}%</span> <span>{timing}</span></div></div>'
    )


def error(reason: str) -> str:
    """The red banner: what went wrong and what to do; it stays until the next run."""
    return (
        '<div class="ks-status ks-error" role="alert"><strong>Not analysed.</strong> '
        f"<span class='ks-reason'>{html.escape(reason)}</span></div>"
    )


def segmentation_source(provenance: dict) -> str:
    """How the labels were obtained, in words: the model's name, or that the label map was supplied."""
    segmentation = provenance.get("segmentation")
    if segmentation:
        name = segmentation.get("engine_model") or segmentation.get("model")
        return f"segmented by the {MODEL_NAMES.get(name, name)}"
    return "label map supplied (not segmented)"


def quality(results: dict) -> tuple[str | None, list[str]]:
    """The segmentation-quality verdict (ok | review | failed) and its reasons, when results.json has them."""
    section = (results.get("qc") or {}).get("segmentation")
    if not isinstance(section, dict) or section.get("verdict") not in VERDICTS:
        return None, []
    return str(section["verdict"]), [str(r) for r in section.get("reasons") or []]


def done(results: dict, source: str, retention_hours: float) -> str:
    """The result banner: side, how the labels were made, the warnings count, and the quality verdict."""
    side = results["laterality"]["side"]
    n = len(results["qc"]["warnings"])
    verdict, reasons = quality(results)
    kind = {"review": "ks-review", "failed": "ks-failed"}.get(verdict or "", "ks-done")
    side_text = f"{side} knee" if side != "unknown" else "knee side unknown"
    warnings = f"{n} QC warning{'s' if n != 1 else ''}" + (" (see Numbers)" if n else "")
    parts = [
        f'<div class="ks-status {kind}" role="status"><strong>Done</strong>: ',
        f'<span class="ks-side">{html.escape(side_text)}</span> · {html.escape(source)} · {warnings}.',
    ]
    if verdict is not None:
        _, heading = VERDICTS[verdict]
        if str(results["qc"]["segmentation"].get("basis", "")).startswith("anatomical plausibility only"):
            heading = heading.rstrip(".:") + " (anatomy checks only, no network confidence)" + heading[-1]
        reason_text = "; ".join(reasons) if reasons else ""
        parts.append(
            f'<div class="ks-verdict" data-verdict="{verdict}">{html.escape(heading)} {html.escape(reason_text)}</div>'
        )
    parts.append(f'<div class="ks-keep">Files are kept for {retention_hours:g} hours.</div></div>')
    return "".join(parts)
