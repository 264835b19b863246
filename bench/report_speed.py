"""The PDF case report with its font subsets kept per process (as shipped) against subsetting every report afresh
(the cache emptied before each report: what every report cost before), in the same run, on two knees.

    .venv/bin/python bench/report_speed.py [--repeat N]

Prints the median and best CPU seconds per report (PDF and PNG preview) each way, their ratio, and whether the
two ways extract the same text from the same pages.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.engine import analyze_labels
from pipeline.report import pdf_fonts
from pipeline.report.pdf import write_case_report
from pipeline.synthetic import PhantomSpec, make_phantom


def cpu_per_report(cases, out: Path, repeat: int, *, kept: bool) -> list[float]:
    times = []
    for n in range(repeat):
        result, results = cases[n % len(cases)]
        if not kept:
            pdf_fonts._SUBSETS.clear()
        start = time.process_time()  # the report renders in this thread: its CPU is this process's
        write_case_report(result, results, out / f"{kept}_{n}.pdf", out / f"{kept}_{n}.png")
        times.append(time.process_time() - start)
    return times


def page_text(path: Path) -> list[str]:
    """The pages' text, the footer's time of writing left out (the two ways run seconds apart)."""
    from pypdf import PdfReader

    return [re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<time>", page.extract_text()) for page in PdfReader(path).pages]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=12)
    args = parser.parse_args()
    cases = []
    for side, femoral in (("right", 2.0), ("left", 2.6)):
        result = analyze_labels(make_phantom(PhantomSpec(side=side, femoral_mm=femoral)).labels)
        cases.append((result, result.to_dict()))
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        write_case_report(*cases[0], out / "warm.pdf")  # imports and matplotlib's font cache, for both ways
        afresh = cpu_per_report(cases, out, args.repeat, kept=False)
        kept = cpu_per_report(cases, out, args.repeat, kept=True)
        same = all(page_text(out / f"False_{n}.pdf") == page_text(out / f"True_{n}.pdf") for n in range(2))
    print(f"{args.repeat} reports each way, two knees alternating; CPU seconds per report (PDF + PNG preview)")
    print("| font subsets | median (s) | best (s) |")
    print("|---|---|---|")
    for name, times in (("made afresh for every report", afresh), ("kept per process (shipped)", kept)):
        print(f"| {name} | {statistics.median(times):.3f} | {min(times):.3f} |")
    ratio = statistics.median(afresh) / statistics.median(kept)
    print(f"ratio of medians: {ratio:.2f}x; same extracted text: {same}")


if __name__ == "__main__":
    main()
