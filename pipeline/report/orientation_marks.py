"""Words in the 3-D scene that say which way the knee faces: MEDIAL and LATERAL under each compartment, facing the
front (they read correctly only from the front, so a mirrored word tells the viewer they look from behind), and
ANTERIOR lying flat in front of the knee (read from above).

A browser's glTF viewer cannot draw text, so the letters are built as meshes: each lit dot of a 5 x 7 dot-matrix
glyph becomes a small box. Geometry in LPS mm like every other surface.
"""

from __future__ import annotations

import numpy as np

from .. import labels as L
from ..morphometry.mesh import Surface

#: 5 x 7 glyphs (rows top to bottom, "#" lit) of the letters the marks use.
GLYPHS = {
    "A": (" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"),
    "D": ("#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "),
    "E": ("#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"),
    "I": ("#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "#####"),
    "L": ("#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"),
    "M": ("#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"),
    "N": ("#   #", "##  #", "# # #", "#  ##", "#   #", "#   #", "#   #"),
    "O": (" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "),
    "R": ("#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"),
    "T": ("#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "),
}
DOT_MM = 1.0
TEXT_RGB = (55, 55, 70)
_CUBE_CORNERS = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
# Twelve outward triangles of the unit cube, corners indexed as above (x*4 + y*2 + z).
_CUBE_FACES = np.array(
    [
        [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5],  # x = 0, x = 1
        [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6],  # y = 0, y = 1
        [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],  # z = 0, z = 1
    ]
)  # fmt: skip


def text_dots(word: str) -> list[tuple[int, int]]:
    """(column, row) of every lit dot of ``word``, a one-dot gap between letters."""
    dots = []
    for n, letter in enumerate(word.upper()):
        for row, line in enumerate(GLYPHS[letter]):
            dots += [(6 * n + col, row) for col, ch in enumerate(line) if ch == "#"]
    return dots


def word_surface(name: str, word: str, origin: np.ndarray, across: np.ndarray, down: np.ndarray) -> Surface:
    """A word as boxes: its first column at ``origin``, columns along ``across`` and rows along ``down`` (unit LPS
    vectors), each dot DOT_MM wide."""
    normal = np.cross(across, down)
    points, faces = [], []
    for n, (col, row) in enumerate(text_dots(word)):
        corner = origin + DOT_MM * (col * across + row * down)
        cube = corner + DOT_MM * 0.9 * (
            _CUBE_CORNERS[:, :1] * across + _CUBE_CORNERS[:, 1:2] * down + _CUBE_CORNERS[:, 2:] * normal
        )
        points.append(cube)
        faces.append(_CUBE_FACES + 8 * n)
    return Surface(name, np.concatenate(points), np.concatenate(faces))


def word_width_mm(word: str) -> float:
    return DOT_MM * (6 * len(word) - 1)


def orientation_marks(surfaces: dict[str, Surface], side: str) -> list[Surface]:
    """MEDIAL / LATERAL under the compartments and ANTERIOR in front, around the bones present; none when the side
    is unknown (medial and lateral not decided)."""
    bones = [surfaces[b].points for b in L.BONES if b in surfaces]
    if side not in ("left", "right") or not bones:
        return []
    points = np.concatenate(bones)
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre_x = (lo[0] + hi[0]) / 2
    medial_sign = 1.0 if side == "right" else -1.0  # a right knee's medial side is toward the patient's left (+x)
    across = np.array([1.0, 0.0, 0.0])  # seen from the front, the patient's left is on the viewer's right
    down = np.array([0.0, 0.0, -1.0])
    front = lo[1] - 4.0  # in front of the bones (anterior is -y in LPS)
    below = lo[2] - 4.0
    marks = []
    for word, sign in (("MEDIAL", medial_sign), ("LATERAL", -medial_sign)):
        width = word_width_mm(word)
        start = centre_x + 4.0 if sign > 0 else centre_x - 4.0 - width
        marks.append(word_surface(f"mark_{word.lower()}", word, np.array([start, front, below]), across, down))
    # Lying flat in front of the knee, under the upright words (so the two never overlap from the front), read from
    # above with anterior toward the viewer.
    flat_down = np.array([0.0, -1.0, 0.0])
    width = word_width_mm("ANTERIOR")
    origin = np.array([centre_x - width / 2, front - 6.0, below - 7 * DOT_MM - 4.0])
    marks.append(word_surface("mark_anterior", "ANTERIOR", origin, across, flat_down))
    return marks
