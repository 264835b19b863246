"""App latency and memory on the example case (CPU): Run -> first visible result, -> complete; server peak RSS.

    .venv/bin/python bench/app_latency.py [--repeats 3]

The baseline, measured in the same run, is the same analysis called directly (no server): the ratio shows what the
web layer (queue, streaming, rendering slices, GLB, files) adds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NO_MODEL = "(none: analysis of label maps only)"


def direct_baseline() -> float:
    from pipeline.engine import analyze_labels
    from pipeline.synthetic import make_phantom, render_mr

    phantom = make_phantom(side="right")
    image = render_mr(phantom.labels)
    start = time.perf_counter()
    result = analyze_labels(phantom.labels, image=image)
    result.write(Path(tempfile.mkdtemp()) / "out")
    return time.perf_counter() - start


def watch_rss(pid: int, stop: threading.Event, peak: list[float]) -> None:
    import psutil

    process = psutil.Process(pid)
    while not stop.is_set():
        try:
            rss = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
        except psutil.Error:
            break
        peak[0] = max(peak[0], rss / 2**20)
        time.sleep(0.1)


def through_app(port: int, repeats: int) -> tuple[list[float], list[float], float, float]:
    from gradio_client import Client

    workdir = tempfile.mkdtemp()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--workdir", workdir],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop, peak = threading.Event(), [0.0]
    threading.Thread(target=watch_rss, args=(server.pid, stop, peak), daemon=True).start()
    try:
        started = time.perf_counter()
        client = None
        while client is None:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:
                if time.perf_counter() - started > 120:
                    raise
                time.sleep(0.5)
        startup = time.perf_counter() - started
        idle_rss = peak[0]
        first, total = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            job = client.submit(NO_MODEL, False, 0.5, False, api_name="/example")
            seen_first = None
            while not job.done():
                if seen_first is None and job.outputs():
                    seen_first = time.perf_counter() - t0
                time.sleep(0.05)
            job.result()
            total.append(time.perf_counter() - t0)
            first.append(seen_first if seen_first is not None else total[-1])
        return first, total, startup, max(peak[0], idle_rss)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--port", type=int, default=7899)
    args = parser.parse_args()
    baseline = direct_baseline()
    first, total, startup, peak_mb = through_app(args.port, args.repeats)
    best_total = min(total)
    print(f"{'measure':44s} {'seconds':>8s}")
    print(f"{'direct analyze_labels + write (baseline)':44s} {baseline:8.2f}")
    print(f"{'app start (process -> page answers)':44s} {startup:8.2f}")
    print(f"{'Run -> first visible result (best)':44s} {min(first):8.2f}")
    label = f"Run -> complete (best of {args.repeats})"
    print(f"{label:44s} {best_total:8.2f}")
    print(f"{'ratio complete / baseline':44s} {best_total / baseline:8.2f}")
    print(f"{'server peak RSS (MiB, incl. children)':44s} {peak_mb:8.0f}")


if __name__ == "__main__":
    main()
