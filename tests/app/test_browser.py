"""The page in a real browser (Debian Chromium driven by Playwright): run the example, see every result."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.fixtures import REPO
from tests.fixtures.app import files_named, running_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = REPO / "test-artifacts"
CSP_LISTENER = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", e => window.cspViolations.push(
    `${e.violatedDirective} blocked ${e.blockedURI} (${e.sourceFile}:${e.lineNumber})`));
"""

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")


def test_example_in_the_browser(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with running_app(tmp_path) as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
        page.add_init_script(CSP_LISTENER)  # the app's Content-Security-Policy must not block any part of the page
        page.goto(url, wait_until="load")
        expect(page.locator("#notice")).to_contain_text("Research use only")
        page.click("#example-btn")
        expect(page.locator("#status")).to_contain_text("Done", timeout=240_000)
        axial = page.locator("#slice-axial img").first
        expect(axial).to_be_visible()
        assert axial.evaluate("img => img.naturalWidth") > 100
        page.screenshot(path=str(ARTIFACTS / "slices.png"), full_page=True)

        canvas = page.locator("#model3d canvas").first
        expect(canvas).to_be_visible(timeout=30_000)
        page.wait_for_timeout(2000)  # let Babylon.js draw the mesh
        canvas.screenshot(path=str(ARTIFACTS / "model3d.png"))

        page.get_by_role("tab", name="Metrics").click()
        table = page.locator("#thickness-table")
        expect(table).to_contain_text("medial tibial")
        expect(table).to_contain_text("femoral trochlea")
        page.screenshot(path=str(ARTIFACTS / "metrics.png"), full_page=True)
        assert page.evaluate("window.cspViolations") == []
        browser.close()
    assert (ARTIFACTS / "model3d.png").stat().st_size > 5_000


def test_same_upload_twice_then_the_abandoned_upload_goes_with_the_session(tmp_path, monkeypatch):
    """Run twice on one upload (the job works on its own copy), then upload an image, leave the page without
    running it: the session's uploads are removed when Gradio notices the page is gone."""
    from playwright.sync_api import expect, sync_playwright

    from pipeline.io import write_volume
    from pipeline.synthetic import render_mr
    from tests.fixtures.knees import phantom

    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "1")  # notice a closed page within a second or two
    labels = phantom(side="left", spacing=(0.8, 0.8, 1.0)).labels
    labels_file = write_volume(labels, tmp_path / "knee_labels.nrrd")
    image_file = write_volume(render_mr(labels), tmp_path / "abandoned_image.nrrd")
    with running_app(tmp_path / "work") as (url, services), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
        page.goto(url, wait_until="load")
        page.get_by_text("Already segmented? Add the label map").click()
        uploads = services.uploads.folder

        def reported(name: str) -> bool:  # uploaded, and reported to the server by the page's change event
            deadline = time.time() + 30
            while time.time() < deadline:
                if any(services.uploads.in_use(p) for p in files_named(uploads, name)):
                    return True
                time.sleep(0.2)
            return False

        page.locator("#labels-input input[type=file]").set_input_files(str(labels_file))
        expect(page.locator("#labels-input")).to_contain_text("knee_labels")
        assert reported("knee_labels.nrrd")
        for _ in range(2):
            page.click("#run-btn")
            expect(page.locator("#status")).to_contain_text("measuring", timeout=60_000)
            expect(page.locator("#status")).to_contain_text("Done", timeout=120_000)
        page.locator("#image-input input[type=file]").set_input_files(str(image_file))
        expect(page.locator("#image-input")).to_contain_text("abandoned_image")
        assert reported("abandoned_image.nrrd") and files_named(uploads, "knee_labels.nrrd")
        page.close()
        deadline = time.time() + 30
        while time.time() < deadline and files_named(uploads, "*.nrrd"):
            time.sleep(0.5)
        browser.close()
        assert not files_named(uploads, "abandoned_image.nrrd") and not files_named(uploads, "knee_labels.nrrd")
        assert len([j for j in services.store.root.iterdir() if (j / "results" / "results.json").is_file()]) == 2
