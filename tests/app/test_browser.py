"""The page in a real browser (Debian Chromium driven by Playwright, 1440 x 1000) as a clinician uses it: a bad file
whose reason stays, the example with one progress bar and the image before the end, orientation letters, the qDESS
example's T2 overlay inside the cartilage only, a label map dropped in the MRI box, the compare tab, no clipped text,
and uploads that go with the page. One app and one browser for the module; screenshots go to test-artifacts/.
"""

from __future__ import annotations

import base64
import io
import shutil
import threading
import time

import numpy as np
import pytest

from pipeline.engine import Engine
from tests.fixtures import REPO
from tests.fixtures.app import SMALL, files_named, running_app

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
VIEWPORT = {"width": 1440, "height": 1000}
#: Records what the app's Content-Security-Policy blocks (it must block no part of the page).
CSP_LISTENER = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", e => window.cspViolations.push(
    `${e.violatedDirective} blocked ${e.blockedURI} (${e.sourceFile}:${e.lineNumber})`));
"""
ERROR_STAYS_S = 30
#: Text that overflows its box: clipped by itself, or running past the nearest ancestor that clips (DOM boxes).
OVERFLOWING_TEXT = """(root) => {
  const clips = (s) => ['hidden', 'clip', 'auto', 'scroll'].includes(s.overflowX);
  const found = [];
  for (const el of document.querySelector(root).querySelectorAll('*')) {
    if (el.offsetParent === null) continue;  // not displayed (another tab)
    if (el.closest('.visually-hidden, .sr-only, [aria-hidden="true"]')) continue;  // Gradio's measuring copies
    const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
    if (!text) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    const style = getComputedStyle(el);
    const name = `${el.tagName}.${el.className}: "${text}"`;
    if (clips(style) && el.scrollWidth > el.clientWidth + 1) found.push(`${name} clipped`);
    let parent = el.parentElement;
    while (parent && !clips(getComputedStyle(parent))) parent = parent.parentElement;
    if (parent) {
      const outer = parent.getBoundingClientRect();
      if (box.right > outer.right + 1 || box.left < outer.left - 1)
        found.push(`${name} runs out of ${parent.tagName}.${parent.className}`);
    }
  }
  return found;
}"""

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (make system-tools)"),
    pytest.mark.slow,
]


class HeldEngine(Engine):
    """The real label-map engine; with ``hold`` cleared, a run waits right after handing the image to the page (so a
    test sees the page mid-run). It records every request it is given."""

    def __init__(self):
        super().__init__()
        self.hold = threading.Event()
        self.hold.set()
        self.requests: list = []

    def run(self, request, *, progress=None, on_volume=None):
        self.requests.append(request)

        def notify(kind, volume):
            if on_volume is not None:
                on_volume(kind, volume)
            if kind == "image":
                self.hold.wait(timeout=120)

        return super().run(request, progress=progress, on_volume=notify)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    engine = HeldEngine()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_HEARTBEAT_INTERVAL", "1")  # notice a closed page within a second or two
        with running_app(tmp_path_factory.mktemp("browser-app"), engine=engine) as (url, services):
            yield url, services, engine


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url):
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.add_init_script(CSP_LISTENER)
    page.goto(url, wait_until="load")
    page.locator("#status").wait_for()
    return page


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def no_csp_violations(page) -> None:
    assert page.evaluate("window.cspViolations") == []


def no_overflowing_text(page, root: str) -> None:
    found = page.evaluate(OVERFLOWING_TEXT, root)
    assert not found, "\n".join(found)


def slice_picture(page, plane: str) -> np.ndarray:
    from PIL import Image

    src = page.locator(f"#slice-{plane} img").first.get_attribute("src")
    data = base64.b64decode(src.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def refused_upload(app, browser, tmp_path_factory):
    """A page whose bad file was refused, left open from the module's first test to its last
    (test_a_bad_files_reason_is_still_there_30_s_later): the other tests run during the 30 s the reason must stay,
    so waiting for it costs little time of its own. Yields (page, reason, when the run failed)."""
    from playwright.sync_api import expect

    bad = tmp_path_factory.mktemp("bad-upload") / "scan.nii.gz"
    bad.write_text("a text file renamed to .nii.gz")
    page = open_page(browser, app[0])
    page.locator("#image-input input[type=file]").set_input_files(str(bad))
    reason = "scan.nii.gz: not a readable NIfTI file"
    expect(page.locator("#input-card")).to_contain_text(reason, timeout=30_000)
    page.click("#run-btn")
    expect(page.locator("#status .ks-error")).to_contain_text(reason, timeout=30_000)
    yield page, reason, time.monotonic()
    page.close()


def test_the_example_shows_its_progress_while_another_page_shows_a_refused_file(app, browser, refused_upload):
    """(c) one progress element while a job runs and the image before it ends, while another user's page shows why
    its file was refused; (e) orientation letters on the three views; (f) no overflowing text."""
    from playwright.sync_api import expect

    url, _, engine = app
    second = open_page(browser, url)  # meanwhile, another user runs the example
    engine.hold.clear()
    try:
        second.click("#example-btn")
        for plane in ("axial", "coronal", "sagittal"):
            expect(second.locator(f"#slice-{plane} img")).to_be_visible(timeout=60_000)
        expect(second.locator("#status progress")).to_have_count(1)
        assert second.locator("progress, [role=progressbar], .progress-bar, .eta-bar, .progress-text").count() == 1
        assert "Done" not in second.locator("#status").inner_text()
        shot(second, "running")
    finally:
        engine.hold.set()
    expect(second.locator("#status")).to_contain_text("Done", timeout=120_000)
    expect(second.locator("#status progress")).to_have_count(0)
    for plane, letters in (("axial", "APRL"), ("coronal", "SIRL"), ("sagittal", "SIAP")):
        edges = second.locator(f"#slice-{plane} .ks-edge").all_inner_texts()
        assert "".join(edges) == letters, (plane, edges)
        expect(second.locator(f"#slice-{plane} .ks-side-badge")).to_have_text("Right knee")
    no_overflowing_text(second, "#analyse-tab")
    shot(second, "slices")
    sagittal = second.locator("#slice-sagittal figure")
    before = int(sagittal.get_attribute("data-index"))
    second.locator("#slice-sagittal img").hover()
    second.mouse.wheel(0, 120)  # scroll pages to the next slice
    expect(sagittal).to_have_attribute("data-index", str(before + 1))
    second.locator("#slice-sagittal img").click()  # click to enlarge
    expect(second.locator("#slice-sagittal figure.ks-enlarged")).to_have_count(1)
    assert second.locator("#slice-sagittal img").bounding_box()["height"] > 700
    second.keyboard.press("Escape")
    expect(second.locator("#slice-sagittal figure.ks-enlarged")).to_have_count(0)

    second.get_by_role("tab", name="3-D").click()
    canvas = second.locator("#model3d canvas").first
    expect(canvas).to_be_visible(timeout=30_000)
    second.wait_for_timeout(2500)  # let Babylon.js draw the mesh
    canvas.screenshot(path=str(ARTIFACTS / "model3d.png"))
    expect(second.locator("#colorbar-3d")).to_contain_text("Cartilage thickness (mm)")
    no_overflowing_text(second, "#analyse-tab")
    shot(second, "three_d")
    second.get_by_role("tab", name="Numbers").click()
    expect(second.locator("#thickness-table")).to_contain_text("femoral trochlea")
    no_overflowing_text(second, "#analyse-tab")
    second.get_by_role("tab", name="Files").click()
    expect(second.locator("#downloads")).to_contain_text("synthetic_knee_report")
    assert second.locator("#downloads button[aria-label='Remove this file']").count() == 7  # one per file, ...
    expect(second.locator("#downloads button[aria-label='Remove this file']:visible")).to_have_count(0)  # hidden

    no_csp_violations(second)  # the app's Content-Security-Policy blocks no part of the page
    second.close()
    assert (ARTIFACTS / "model3d.png").stat().st_size > 5_000


def test_qdess_example_t2_overlay_only_inside_the_cartilage(app, browser):
    """(d) on the qDESS example with the T2 overlay, no overlay pixel outside the cartilage, and a T2 scale in ms;
    the 3-D title and colour bar follow the colouring; (f) no overflowing text."""
    from PIL import Image
    from playwright.sync_api import expect
    from scipy import ndimage

    from pipeline import labels as L
    from pipeline.io import load_image
    from pipeline.report.slices import take_slice, to_lps_array

    url, services, _ = app
    page = open_page(browser, url)
    page.click("#qdess-example-btn")
    expect(page.locator("#status")).to_contain_text("Done", timeout=240_000)
    page.locator("#overlay label", has_text="T2").click()
    expect(page.locator("#legend-box")).to_contain_text("T2 inside the cartilage (ms)")
    expect(page.locator("#slice-coronal figure")).to_have_attribute("data-overlay", "t2")
    labels, _ = to_lps_array(load_image(services.store.root.parent / "example-qdess" / "synthetic_qdess_labels.nrrd"))
    cartilage_values = [L.CANONICAL[c] for c in L.CARTILAGES]
    for plane in ("coronal", "sagittal"):
        picture = slice_picture(page, plane)
        index = int(page.locator(f"#slice-{plane} figure").get_attribute("data-index"))
        coloured = (picture.max(axis=2) - picture.min(axis=2)) > 24  # the grey image is never coloured
        mask = np.isin(take_slice(labels, plane, index), cartilage_values).astype(np.uint8) * 255
        on_screen = np.asarray(Image.fromarray(mask).resize(coloured.shape[::-1], Image.Resampling.NEAREST)) > 0
        assert coloured.sum() > 0.5 * ndimage.binary_erosion(on_screen, iterations=2).sum(), plane
        outside = coloured & ~ndimage.binary_dilation(on_screen, iterations=2)
        assert not outside.any(), f"{plane}: {outside.sum()} overlay pixels outside the cartilage"
    no_overflowing_text(page, "#analyse-tab")
    shot(page, "t2_overlay")

    page.get_by_role("tab", name="3-D").click()
    page.locator("#colour-by label", has_text="T2").click()
    expect(page.locator("#colorbar-3d")).to_contain_text("Mean cartilage T2 along the bone normal (ms)")
    expect(page.locator("#model3d")).to_contain_text("mean cartilage T2")
    page.wait_for_timeout(2500)
    no_overflowing_text(page, "#analyse-tab")
    shot(page, "t2_three_d")
    page.get_by_role("tab", name="Numbers").click()
    expect(page.locator("#t2-table")).to_contain_text("Superficial")
    no_overflowing_text(page, "#analyse-tab")
    shot(page, "t2_numbers")
    no_csp_violations(page)
    page.close()


def test_label_map_in_the_mri_box_and_the_compare_tab(app, browser, tmp_path):
    """(b) a label map dropped in the MRI box is analysed as a label map, never segmented; (g) the compare tab is a
    top-level tab; (f) no overflowing text there."""
    from playwright.sync_api import expect

    from pipeline.io import write_volume
    from tests.fixtures.knees import phantom

    url, _, engine = app
    labels = write_volume(phantom(side="left", spacing=SMALL).labels, tmp_path / "knee_labels.nii.gz")
    page = open_page(browser, url)
    page.locator("#image-input input[type=file]").set_input_files(str(labels))
    card = page.locator("#input-card")
    expect(card).to_contain_text("knee_labels.nii.gz: label map", timeout=30_000)
    expect(card).to_contain_text("analysed as given (thickness, volumes), not segmented")
    expect(page.locator("#slice-axial .ks-side-badge")).to_have_text("Left knee")  # the preview, before any run
    shot(page, "label_map_card")
    page.click("#run-btn")
    expect(page.locator("#status")).to_contain_text("Done", timeout=120_000)
    expect(page.locator("#status")).to_contain_text("left knee · label map supplied (not segmented)")
    request = engine.requests[-1]
    assert request.image is None and str(request.labels).endswith("knee_labels.nii.gz")  # nothing to segment

    tab = page.locator("#main-tabs").get_by_role("tab", name="Compare two visits")
    tab.click()
    page.click("#compare-example-btn")
    expect(page.locator("#compare-status")).to_contain_text("Done", timeout=240_000)
    expect(page.locator("#change-table")).to_contain_text("medial tibial")
    page.wait_for_timeout(2500)
    no_overflowing_text(page, "#compare-tab")
    shot(page, "compare")
    page.close()


def test_same_upload_twice_then_the_abandoned_upload_goes_with_the_session(app, browser, tmp_path):
    """Run twice on one upload (the job works on its own copy), then upload an image, leave the page without
    running it: the session's uploads are removed when Gradio notices the page is gone."""
    from playwright.sync_api import expect

    from pipeline.io import write_volume
    from pipeline.synthetic import render_mr
    from tests.fixtures.knees import phantom

    url, services, _ = app
    labels = phantom(side="left", spacing=SMALL).labels
    labels_file = write_volume(labels, tmp_path / "knee_labels.nrrd")
    image_file = write_volume(render_mr(labels), tmp_path / "abandoned_image.nrrd")
    page = open_page(browser, url)
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

    def finished() -> int:
        root = services.store.root  # a finished job: TOKEN/results/results.json
        found = files_named(root, "results.json")
        return sum(p.parent.name == "results" and p.parents[1].parent == root for p in found)

    done_before = finished()
    for run in range(1, 3):
        page.click("#run-btn")
        deadline = time.time() + 120
        while finished() < done_before + run and time.time() < deadline:
            time.sleep(0.2)
        expect(page.locator("#status")).to_contain_text("Done", timeout=60_000)
    page.locator("#image-input input[type=file]").set_input_files(str(image_file))
    expect(page.locator("#image-input")).to_contain_text("abandoned_image")
    assert reported("abandoned_image.nrrd") and files_named(uploads, "knee_labels.nrrd")
    page.close()
    deadline = time.time() + 30
    while time.time() < deadline and files_named(uploads, "*.nrrd"):
        time.sleep(0.5)
    assert not files_named(uploads, "abandoned_image.nrrd") and not files_named(uploads, "knee_labels.nrrd")
    assert finished() == done_before + 2


def test_a_bad_files_reason_is_still_there_30_s_later(refused_upload):
    """(a) the refused file's reason is still on its page ERROR_STAYS_S after the run failed, in the status area (not
    a passing toast). Last in the module: the other tests ran meanwhile, so only what is left of the 30 s is waited
    (run alone, it waits them all)."""
    from playwright.sync_api import expect

    page, reason, failed_at = refused_upload
    page.wait_for_timeout(max(0.0, ERROR_STAYS_S - (time.monotonic() - failed_at)) * 1000 + 100)
    assert time.monotonic() - failed_at >= ERROR_STAYS_S
    expect(page.locator("#status .ks-error")).to_contain_text(reason)
    assert page.locator(".toast-item").count() == 0
    shot(page, "error_stays")
    no_csp_violations(page)
