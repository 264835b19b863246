"""One plane of the slice viewer as HTML: the picture, orientation letters on its four edges, the knee's side, and
where the slice lies (number, mm along the normal, DICOM image number); a click enlarges it and the mouse wheel
pages through the slices (the page's CSS and the ``VIEW_JS`` handlers of each view).

The picture travels as a PNG data URL inside the HTML, so the letters are text beside it (readable at any zoom, and
by tests), never burnt into the pixels.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from pipeline.report.slices import EDGE_LETTERS

from .slice_images import AUTO_WINDOW, SliceStack, render_slice

HINT = "Click to enlarge (Esc closes); scroll to page through the slices"
PLANE_TITLES = {
    "axial": "Axial (seen from the feet)",
    "coronal": "Coronal (seen from the front)",
    "sagittal": "Sagittal (anterior on the left)",
}
#: Attached to each view's gr.HTML (``js_on_load``): a click on the picture toggles the enlarged view, Escape closes
#: it; the mouse wheel over a picture pages through its slices (it moves that plane's slider, ``#<plane>-slider``).
VIEW_JS = """
element.addEventListener('click', (event) => {
  const figure = event.target.closest('figure.ks-slice');
  if (figure) figure.classList.toggle('ks-enlarged');
});
document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape') return;
  element.querySelectorAll('figure.ks-enlarged').forEach((f) => f.classList.remove('ks-enlarged'));
});
element.addEventListener('wheel', (event) => {
  const figure = event.target.closest('figure.ks-slice');
  if (!figure || figure.classList.contains('ks-empty')) return;
  const range = document.querySelector(`#${figure.dataset.plane}-slider input[type=range]`);
  if (!range) return;
  event.preventDefault();
  const next = Math.min(+range.max, Math.max(+range.min, +range.value + (event.deltaY > 0 ? 1 : -1)));
  if (next === +range.value) return;
  range.value = String(next);
  range.dispatchEvent(new Event('input', { bubbles: true }));
}, { passive: false });
"""


def png_data_url(picture: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", optimize=False, compress_level=3)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def view_html(
    stack: SliceStack | None,
    plane: str,
    index: int,
    *,
    opacity: float = 0.5,
    overlay: str = "labels",
    level_width: tuple[float, float] = AUTO_WINDOW,
) -> str:
    """The plane's figure; an empty frame with its title before there is an image."""
    title = PLANE_TITLES[plane]
    if stack is None:
        return (
            f'<figure class="ks-slice ks-empty" data-plane="{plane}"><figcaption>{html.escape(title)}</figcaption>'
            '<div class="ks-frame"><div class="ks-placeholder">No image yet</div></div></figure>'
        )
    n = stack.n_slices(plane)
    index = int(np.clip(index, 0, n - 1))
    picture = render_slice(stack, plane, index, opacity=opacity, overlay=overlay, level_width=level_width)
    where = f"slice {index + 1} of {n}"
    if stack.locations is not None:
        where += " · " + stack.locations.describe(plane, index)
    top, bottom, left, right = EDGE_LETTERS[plane]
    side = f'<span class="ks-side-badge">{html.escape(stack.side.capitalize())} knee</span>' if stack.side else ""
    letters = "".join(
        f'<span class="ks-edge ks-{edge}" data-edge="{edge}">{letter}</span>'
        for edge, letter in (("top", top), ("bottom", bottom), ("left", left), ("right", right))
    )
    height, width = picture.shape[:2]
    return (
        f'<figure class="ks-slice" data-plane="{plane}" data-index="{index}" data-overlay="{overlay}">'
        f"<figcaption><strong>{html.escape(title)}</strong> <span class='ks-where'>{html.escape(where)}</span>"
        "</figcaption>"
        f'<div class="ks-frame"><img src="{png_data_url(picture)}" width="{width}" height="{height}" '
        f'alt="{plane} slice {index + 1}" title="{HINT}">{letters}{side}</div></figure>'
    )
