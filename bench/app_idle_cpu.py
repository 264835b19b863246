"""CPU an idle app uses: Gradio's queue polling for work every 1 ms and for progress every 10 ms (its own defaults
on Linux) against the app's QUEUE_POLL_S and PROGRESS_POLL_S, and against 1-s polls (what the rest of the app
costs), in the same run. The app is the one the tests run in-process (tests.fixtures.app.running_app: the same
services, page, queue and launch options as `python app.py`), with no page open.

    .venv/bin/python bench/app_idle_cpu.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import app.main
from tests.fixtures.app import running_app


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def idle_cpu_ms_per_s(polls_s: tuple[float, float], seconds: float) -> float:
    app.main.QUEUE_POLL_S, app.main.PROGRESS_POLL_S = polls_s  # read by queue_jobs when the app starts
    with tempfile.TemporaryDirectory() as workdir, running_app(Path(workdir)):
        time.sleep(2.0)  # start-up settles
        start = process_cpu_s()
        time.sleep(seconds)
        return (process_cpu_s() - start) / seconds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    ours = app.main.QUEUE_POLL_S, app.main.PROGRESS_POLL_S
    rows = {"Gradio's own": (0.001, 0.01), "the app's": ours, "(1 s: the rest)": (1.0, 1.0)}
    print(f"{'polls':>16s} {'queue (ms)':>10s} {'progress (ms)':>13s} {'idle CPU (ms per s)':>20s}")
    for name, polls in rows.items():
        cpu = idle_cpu_ms_per_s(polls, args.seconds)
        print(f"{name:>16s} {polls[0] * 1000:10.0f} {polls[1] * 1000:13.0f} {cpu:20.1f}")


if __name__ == "__main__":
    main()
