"""How long ``gradio_client``'s ``job.cancel()`` (Gradio's own ``/cancel``) takes on a running analysis, and whether
the analysis stops: Gradio alone (baseline: the app's hook on that route switched off) against the app's hook
(app/session_routes.py), in the same run.

    PYTHONPATH=$PWD python bench/app_cancel_latency.py [--repeats 3]

Each app analyses a synthetic label map at 0.5 mm (about 15 s of analysis on 2 loaded cores); each job is cancelled
after 2, 4, 6 s. The client's HTTP timeout is 60 s, so a blocked cancel is measured rather than cut off at 5 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OPTIONS = ("canonical", "(none: analysis of label maps only)", False, "Automatic", 0.5, False)


def measure(hook: bool, knee: Path, delays: list[float]) -> tuple[list[float], int]:
    """Cancel latencies (s) and how many cancelled analyses ran to their end anyway."""
    from gradio_client import Client, handle_file

    import app.session_routes as routes
    from tests.fixtures.app import GatedEngine, running_app

    original = routes.SessionRouteGuard._cancel_session_jobs
    if not hook:
        routes.SessionRouteGuard._cancel_session_jobs = lambda self, scope, body: None  # type: ignore[method-assign]
    engine = GatedEngine()  # gate open: it only records which analyses finished
    try:
        with running_app(Path(tempfile.mkdtemp()), engine=engine) as (url, _):
            client = Client(url, verbose=False, httpx_kwargs={"timeout": 60})
            latencies = []
            for delay in delays:
                job = client.submit(None, handle_file(str(knee)), *OPTIONS, api_name="/run")
                time.sleep(delay)
                start = time.monotonic()
                job.cancel()
                latencies.append(time.monotonic() - start)
                time.sleep(20)  # let an analysis that was not stopped finish before the next one
            return latencies, len(engine.finished)
    finally:
        routes.SessionRouteGuard._cancel_session_jobs = original  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1, help="rounds of three cancels per variant")
    args = parser.parse_args()
    from pipeline.io import write_volume
    from tests.fixtures.knees import phantom

    knee = write_volume(phantom(side="left", spacing=(0.5, 0.5, 0.7)).labels, Path(tempfile.mkdtemp()) / "knee.nrrd")
    delays = [2.0, 4.0, 6.0] * args.repeats
    results = {name: measure(hook, knee, delays) for name, hook in (("gradio alone", False), ("app hook", True))}
    for name, (latencies, finished) in results.items():
        print(
            f"{name:13s} cancel median {statistics.median(latencies):5.2f} s, max {max(latencies):5.2f} s; "
            f"analyses that ran to their end anyway: {finished}/{len(latencies)}"
        )
    base, fixed = (statistics.median(results[n][0]) for n in ("gradio alone", "app hook"))
    print(f"ratio (gradio alone / app hook): {base / fixed:.0f}x")


if __name__ == "__main__":
    main()
