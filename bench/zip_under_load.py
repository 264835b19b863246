"""The results zip beside a busy Python thread: ZipFile.write (zlib fed 8 kB at a time, Python's lock given up and
won back around every call) against ZipAppender (one compression call per member), both alone and while another
thread runs pure Python, as the PDF report's thread does in the CLI, or another job's analysis in the app.

    .venv/bin/python bench/zip_under_load.py [FOLDER]

FOLDER: an analysis output folder (default: one is written from the SAG_3D_DESS label map in bench/data, or a
phantom when that is missing). Prints seconds per zip and the ratio to the same zip written alone.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.report.outputs import STORED_SUFFIXES, ZIP_LEVEL, ZipAppender  # noqa: E402


def members(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".zip"]


def with_zipfile_write(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as archive:
        for path in members(folder):
            stored = path.name.lower().endswith(STORED_SUFFIXES)
            kind = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            archive.write(path, arcname=str(path.relative_to(folder)), compress_type=kind)


def with_zip_appender(folder: Path, target: Path) -> None:
    archive = ZipAppender(folder, target)
    archive.add(members(folder))
    archive.close()


def timed(write, folder: Path, target: Path, *, busy: bool) -> float:
    stop = threading.Event()

    def spin() -> None:  # pure Python: holds the lock except when the interpreter hands it over
        n = 0
        while not stop.is_set():
            n += 1

    thread = threading.Thread(target=spin, daemon=True)
    if busy:
        thread.start()
        time.sleep(0.05)
    start = time.perf_counter()
    write(folder, target)
    seconds = time.perf_counter() - start
    stop.set()
    if busy:
        thread.join()
    return seconds


def example_folder(work: Path) -> Path:
    from pipeline.engine import analyze_labels

    data = ROOT / "bench" / "data" / "SAG_3D_DESS_RIGHT_bones_cart_men_fib-label.nrrd"
    if data.is_file():
        from bench.mskt_data import SAG_3D_DESS

        result = analyze_labels(data, scheme=SAG_3D_DESS)
    else:
        from pipeline.synthetic import PhantomSpec, make_phantom

        result = analyze_labels(make_phantom(PhantomSpec()).labels, scheme="canonical")
    result.write(work / "case", make_zip=False)
    return work / "case"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = Path(sys.argv[1]) if len(sys.argv) > 1 else example_folder(work)
        size_mb = sum(p.stat().st_size for p in members(folder)) / 1e6
        print(f"{len(members(folder))} files, {size_mb:.1f} MB, zlib level {ZIP_LEVEL}")
        print("| writer | alone (s) | beside a busy Python thread (s) | busy / alone |")
        print("|---|---|---|---|")
        for name, write in (("ZipFile.write (before)", with_zipfile_write), ("ZipAppender", with_zip_appender)):
            alone = min(timed(write, folder, work / "a.zip", busy=False) for _ in range(3))
            busy = timed(write, folder, work / "b.zip", busy=True)
            print(f"| {name} | {alone:.3f} | {busy:.2f} | {busy / alone:.1f}x |")


if __name__ == "__main__":
    main()
