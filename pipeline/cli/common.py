"""What the subcommands share: the progress bar and the one-screen summary of a result."""

from __future__ import annotations

import sys
from pathlib import Path

from ..progress import ProgressFn


def progress_bar() -> ProgressFn:
    """A tqdm bar on stderr driven by the pipeline's progress callback."""
    from tqdm import tqdm

    bar = tqdm(total=100, bar_format="{l_bar}{bar}| {n_fmt}% [{elapsed}]", file=sys.stderr)

    def report(fraction: float, message: str) -> None:
        bar.set_description(message[:40].ljust(40))
        bar.update(max(0, round(fraction * 100) - bar.n))
        if fraction >= 1.0:
            bar.close()

    return report


def summary(result, files: dict) -> str:
    lines = [f"Case {result.case_id}: {result.laterality.side} knee"]
    for region, r in result.cartilage.items():
        t = r.thickness_mm
        if t is not None:
            lines.append(
                f"  {region:32s} thickness {t.mean:5.2f} ± {t.std:4.2f} mm (median {t.median:4.2f}, n={t.n_vertices})"
            )
        else:
            lines.append(f"  {region:32s} not measured")
    lines.append("  T2: " + _t2_line(result))
    lines.append("  Shape model: " + _shape_line(result))
    qc = result.segmentation_qc
    if qc is not None:
        lines.append(f"  Segmentation QC: {qc.verdict} (score {qc.score:.2f}){': ' if qc.reasons else ''}"
                     + "; ".join(qc.reasons))  # fmt: skip
    for warning in result.warnings:
        lines.append(f"  QC: {warning}")
    if files:
        lines.append(f"Results written to {Path(files['results.json']).parent.resolve()}")
        if "zip" in files:
            lines.append(f"  all files: {files['zip']}")
    return "\n".join(lines)


def _t2_line(result) -> str:
    if not result.t2.computed:
        return f"not computed ({result.t2.reason})"
    femoral = result.t2.regions["femoral"]["mean"]
    return f"{result.t2.method}, femoral mean {femoral:.1f} ms" if femoral is not None else result.t2.method


def _shape_line(result) -> str:
    fit = result.shape_fit
    if fit is None:
        return f"not computed ({result.shape_model.reason})"
    return f"NSM {fit.model_id}, BScore {fit.bscore:.2f}" if fit.bscore is not None else f"NSM {fit.model_id}"
