"""The app's Gradio queue polls for work every QUEUE_POLL_S and for progress every PROGRESS_POLL_S, not Gradio's 1
and 10 ms (an idle app's CPU, bench/app_idle_cpu.py). The polls are private attributes of Gradio's queue: these
tests fail when a Gradio release renames them, instead of the app silently polling every millisecond again."""

from __future__ import annotations

import asyncio

from app.main import PROGRESS_POLL_S, QUEUE_POLL_S, queue_jobs
from app.settings import AppSettings


def queued_page(settings: AppSettings):
    """A one-button page whose queue is set up as the app's; returns Gradio's queue."""
    import gradio as gr

    with gr.Blocks() as demo:
        gr.Button("run").click(lambda: None)
    queue_jobs(demo, settings)
    return demo._queue


def test_the_queue_polls_every_queue_poll_s_and_progress_every_progress_poll_s(tmp_path):
    queue = queued_page(AppSettings(workdir=tmp_path, max_queue=3))
    assert queue.sleep_when_free == QUEUE_POLL_S > 0.001
    assert queue.progress_update_sleep_when_free == PROGRESS_POLL_S > 0.01
    assert queue.max_size == 3 and queue.default_concurrency_limit == 1


def test_gradio_still_reads_the_polls_on_every_idle_turn(tmp_path, monkeypatch):
    """Gradio's idle loops sleep for the queue's attributes each time round (read anew, not copied at start)."""
    queue, slept, real_sleep, ours = queued_page(AppSettings(workdir=tmp_path)), [], asyncio.sleep, {}

    async def sleep(seconds, *args, **kwargs):
        # asyncio.sleep is one function for the whole process: another app's event loop in this worker (a module's
        # test server) must keep sleeping for real, and must not count here.
        if asyncio.get_running_loop() is not ours.get("loop"):
            return await real_sleep(seconds, *args, **kwargs)
        slept.append(seconds)
        if len(slept) == 3:
            queue.stopped = True

    async def run(loop) -> None:
        ours["loop"] = asyncio.get_running_loop()
        await loop()

    monkeypatch.setattr(asyncio, "sleep", sleep)
    for loop, seconds in ((queue.start_processing, QUEUE_POLL_S), (queue.start_progress_updates, PROGRESS_POLL_S)):
        slept.clear()
        queue.stopped = False
        asyncio.run(run(loop))
        assert slept == [seconds] * 3
