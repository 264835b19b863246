"""The page in a real browser (Debian Chromium driven by Playwright): run the example, see every result."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .app_fixtures import running_app

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
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")


def test_example_in_the_browser(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with running_app(tmp_path) as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
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
        browser.close()
    assert (ARTIFACTS / "model3d.png").stat().st_size > 5_000
