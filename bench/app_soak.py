"""Soak test of the running app: many jobs in a row and in parallel; are any lost, does memory plateau?

    .venv/bin/python bench/app_soak.py [--sequential 50] [--rounds 10] [--concurrency 4] [--spacing 0.8]

Starts `python app.py` as its own process (fresh workdir and upload folder), then sends label-map jobs through
`gradio_client`: ``--sequential`` jobs one after another from one client, then ``--rounds`` rounds of
``--concurrency`` clients submitting at once (they queue for the one lane). Each job uploads its own synthetic knee
label map (a left and a right knee alternate, so identical uploads are shared between clients too). Prints completed
and failed counts, p50/p95 latency (submit -> result), the server's RSS after every 10 jobs, and two ratios measured
in this run: RSS at the end / RSS after the first 10 jobs (plateau: close to 1), and concurrent p50 / sequential p50
(queueing: about the concurrency). Finally it checks the disk: one result folder per completed job, no job's input
copies left, no empty job folders.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = "demo"  # the model the started app offers (unused: every job gives its label map)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def knee_files(folder: Path, spacing: float) -> list[Path]:
    from pipeline.io import write_volume
    from pipeline.synthetic import make_phantom

    grid = (spacing, spacing, max(spacing, 0.7))
    return [
        write_volume(make_phantom(side=side, spacing=grid).labels, folder / f"{side}_labels.nrrd")
        for side in ("left", "right")
    ]


def start_app(workdir: Path, port: int) -> subprocess.Popen:
    import httpx

    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    env.pop("GRADIO_TEMP_DIR", None)  # the app's own workdir/gradio
    server = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--workdir", str(workdir), "--max-queue", "32"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the app did not start within 3 minutes")


class Soak:
    def __init__(self, url: str, pid: int, files: list[Path]):
        self.url, self.files = url, files
        import psutil

        self.process = psutil.Process(pid)
        self.latencies: dict[str, list[float]] = {"sequential": [], "concurrent": []}
        self.failures: list[str] = []
        self.rss_mib: list[tuple[int, float]] = []
        self.done = 0
        self._lock = threading.Lock()

    def rss(self) -> float:
        procs = [self.process, *self.process.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / 2**20

    def job(self, client, labels: Path, phase: str) -> None:
        from gradio_client import handle_file

        start = time.perf_counter()
        try:
            out = client.predict(
                None, handle_file(str(labels)), "canonical", MODEL, False, "Automatic", 0.5, False, api_name="/run"
            )
            ok = str(out[0]).startswith("**Done**")
            error = None if ok else str(out[0])[:200]
        except Exception as exc:  # a lost job is what this measures
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        elapsed = time.perf_counter() - start
        with self._lock:
            if error is None:
                self.latencies[phase].append(elapsed)
            else:
                self.failures.append(error)
            self.done += 1
            if self.done % 10 == 0:
                self.rss_mib.append((self.done, self.rss()))
                print(f"  {self.done:3d} jobs: server RSS {self.rss_mib[-1][1]:.0f} MiB", flush=True)

    def sequential(self, n: int) -> None:
        from gradio_client import Client

        client = Client(self.url, verbose=False)
        for i in range(n):
            self.job(client, self.files[i % 2], "sequential")

    def concurrent(self, rounds: int, width: int) -> None:
        from gradio_client import Client

        for _ in range(rounds):
            clients = [Client(self.url, verbose=False) for _ in range(width)]
            threads = [
                threading.Thread(target=self.job, args=(c, self.files[i % 2], "concurrent"))
                for i, c in enumerate(clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def disk_report(workdir: Path) -> str:
    jobs = [p for p in (workdir / "jobs").iterdir() if p.is_dir()]
    with_results = sum((j / "results" / "results.json").is_file() for j in jobs)
    inputs_left = sum((j / "input").exists() for j in jobs)
    empty = sum(not any(j.iterdir()) for j in jobs)
    uploads = sum(1 for p in (workdir / "gradio").rglob("*.nrrd"))
    return (
        f"disk: {len(jobs)} job folders, {with_results} with results, {inputs_left} with input copies left, "
        f"{empty} empty; {uploads} uploaded label maps in the upload folder"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--spacing", type=float, default=0.8, help="voxel size of the synthetic knees (mm)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="kneescope-soak-"))
    files = knee_files(tmp, args.spacing)
    port = free_port()
    started = time.perf_counter()
    server = start_app(tmp / "work", port)
    print(f"app up in {time.perf_counter() - started:.1f} s (pid {server.pid}); knees {args.spacing} mm")
    soak = Soak(f"http://127.0.0.1:{port}/", server.pid, files)
    baseline = soak.rss()
    print(f"server RSS before any job: {baseline:.0f} MiB")
    try:
        soak.sequential(args.sequential)
        soak.concurrent(args.rounds, args.concurrency)
    finally:
        print(disk_report(tmp / "work"))
        server.terminate()
        server.wait(timeout=30)
    seq, conc = soak.latencies["sequential"], soak.latencies["concurrent"]
    total = args.sequential + args.rounds * args.concurrency
    print(f"completed {len(seq) + len(conc)} of {total}, failed {len(soak.failures)}")
    for failure in soak.failures[:5]:
        print(f"  failure: {failure}")
    print(f"sequential latency: p50 {percentile(seq, 0.5):.2f} s, p95 {percentile(seq, 0.95):.2f} s (n={len(seq)})")
    print(f"concurrent latency: p50 {percentile(conc, 0.5):.2f} s, p95 {percentile(conc, 0.95):.2f} s (n={len(conc)})")
    print("RSS after every 10 jobs (MiB): " + ", ".join(f"{n}: {r:.0f}" for n, r in soak.rss_mib))
    if len(soak.rss_mib) >= 2:
        first, last = soak.rss_mib[0][1], soak.rss_mib[-1][1]
        later = [r for _, r in soak.rss_mib[len(soak.rss_mib) // 2 :]]
        print(
            f"ratio RSS end / after 10 jobs: {last / first:.2f}; spread over the second half: "
            f"{(max(later) - min(later)):.0f} MiB"
        )
    if seq and conc:
        print(f"ratio concurrent / sequential p50 latency: {statistics.median(conc) / statistics.median(seq):.2f}")


if __name__ == "__main__":
    main()
