"""Server memory per client session: the same jobs from one session, or each from a new session, with glibc's
default malloc arenas or two (what app.main.limit_malloc_arenas sets).

    .venv/bin/python bench/session_memory.py [--jobs 30]

Each configuration runs in a fresh process: the app in-process (the same services, page and launch options as
`python app.py`, label-map engine) and `gradio_client` clients, RSS after every 10 jobs. The baseline is the
one-session run of the same process kind; the printed ratios are MiB gained per job against it.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NO_MODEL = "(none: analysis of label maps only)"


def measure(mode: str, jobs: int) -> None:
    """Run in a child process: print 'RSS <jobs> <MiB>' lines."""
    import psutil
    from gradio_client import Client, handle_file

    from app.main import launch_options
    from app.settings import AppSettings
    from app.startup import build_services
    from app.ui import build_demo
    from pipeline.engine import Engine
    from pipeline.io import write_volume
    from pipeline.synthetic import make_phantom

    tmp = Path(tempfile.mkdtemp(prefix="kneescope-sessions-"))
    labels = write_volume(make_phantom(side="left", spacing=(0.8, 0.8, 1.0)).labels, tmp / "knee_labels.nrrd")
    settings = AppSettings(workdir=tmp / "work", port=0)
    services = build_services(settings, engine=Engine())
    demo = build_demo(services, settings)
    demo.queue(default_concurrency_limit=1)
    options = {**launch_options(settings, services), "server_port": None}
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **options)
    process = psutil.Process()
    shared = Client(url, verbose=False)
    for i in range(jobs):
        client = shared if mode == "one" else Client(url, verbose=False)
        client.predict(
            None, handle_file(str(labels)), "canonical", NO_MODEL, False, "Automatic", 0.5, False, api_name="/run"
        )
        if client is not shared:
            client.close()
        if (i + 1) % 10 == 0:
            gc.collect()
            print(f"RSS {i + 1} {process.memory_info().rss / 2**20:.0f}", flush=True)
    demo.close()


def run_child(mode: str, arenas: str | None, jobs: int) -> list[tuple[int, float]]:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("MALLOC_ARENA_MAX", None)
    if arenas:
        env["MALLOC_ARENA_MAX"] = arenas
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--jobs", str(jobs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    ).stdout
    return [(int(n), float(r)) for _, n, r in (line.split() for line in out.splitlines() if line.startswith("RSS "))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--child", choices=["one", "many"])
    args = parser.parse_args()
    if args.child:
        measure(args.child, args.jobs)
        return
    for arenas in (None, "2"):
        rows = {mode: run_child(mode, arenas, args.jobs) for mode in ("one", "many")}
        label = "glibc default arenas" if arenas is None else f"MALLOC_ARENA_MAX={arenas}"
        for mode, points in rows.items():
            growth = points[-1][1] - points[0][1] if len(points) > 1 else float("nan")
            per_job = growth / max(points[-1][0] - points[0][0], 1) if len(points) > 1 else float("nan")
            series = ", ".join(f"{n}: {r:.0f}" for n, r in points)
            print(f"{label:22s} {mode:4s} session(s): RSS {series} MiB; +{growth:.0f} MiB, {per_job:.2f} MiB/job")


if __name__ == "__main__":
    main()
