"""Leaner font embedding for the PDF report.

matplotlib embeds each TrueType font it uses (``pdf.fonttype`` 42) as a subset made by fontTools, and keeps the
OpenType layout tables (GSUB, GPOS, GDEF, MATH, ...). A PDF never reads them: matplotlib has laid the text out
before it embeds anything, and the page places glyphs by index. Reading and subsetting those tables is most of the
subsetting's time (0.06 of 0.09 s per DejaVu subset; a report embeds three). :func:`install` puts a subsetter that
leaves them out in matplotlib's place: the same glyphs, outlines, hinting, metrics, names and Unicode map, so the
pages render and extract identically (tests/pipeline/report/test_pdf_fonts.py compares them), a few kB smaller.

Reports of one process often use the same glyphs of the same font (the same labels, digits and warnings): the last
:data:`CACHED_SUBSETS` subsets are kept as bytes, keyed by font file, face and glyph set, and a repeat is read back
from them (a few milliseconds) instead of subset again (about 0.07 s per font, three fonts a report).

matplotlib has no option for this, so :func:`install` replaces one function of its private
``backends._backend_pdf_ps`` module (``get_glyphs_subset(fontfile, glyphs)``, a context manager whose value has
``font`` and ``glyph_index_map``), process-wide and once. It checks that function's signature first and leaves
matplotlib alone when it differs (a newer matplotlib): the reports are then as before, only slower.
"""

from __future__ import annotations

import inspect
import io
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

#: Tables a PDF viewer never reads from an embedded TrueType font: OpenType layout (substitution, positioning,
#: glyph classes, baselines, justification, maths layout) and kerning, all applied (or not) by matplotlib already.
LAYOUT_TABLES = ("GSUB", "GPOS", "GDEF", "BASE", "JSTF", "MATH", "kern", "kerx", "morx", "feat", "trak", "just")
#: Font-editor and bitmap tables that have no place in an embedded outline font either.
EDITOR_TABLES: tuple[str, ...] = ("FFTM", "PfEd", "BDF", "meta", "MERG", "TSIV", "Zapf", "bdat", "bloc", "cidg")
EDITOR_TABLES += ("fdsc", "fmtx", "fond", "ltag", "xref")

#: "replaced": matplotlib's own subsetter once :func:`install` has put ours in its place (tests compare the two).
_STATE: dict = {"replaced": None}
_LOCK = threading.Lock()
#: Subsets kept per process: (font file, face index, glyph indices) -> (the subset's bytes, old -> new glyph index).
CACHED_SUBSETS = 32
_SUBSETS: OrderedDict[tuple, tuple[bytes, dict[int, int]]] = OrderedDict()


class GlyphSubset(NamedTuple):
    """What matplotlib's PDF writer reads from a subset: the subset font and old -> new glyph indices."""

    font: object  # fontTools.ttLib.TTFont
    glyph_index_map: dict[int, int]


@contextmanager
def subset_without_layout_tables(fontfile, glyphs: Iterable[int]) -> Iterator[GlyphSubset]:
    """The font restricted to ``glyphs`` (glyph indices), without the tables listed above; closed on exit. A subset
    made before in this process is read back from its bytes."""
    from fontTools.ttLib import TTFont

    glyphs = frozenset(glyphs)
    face = getattr(fontfile, "face_index", 0)  # a .ttc collection: the face matplotlib used
    key = (str(fontfile), face, glyphs)
    with _LOCK:
        kept = _SUBSETS.get(key)
        if kept is not None:
            _SUBSETS.move_to_end(key)
    if kept is None:
        kept = _subset_bytes(fontfile, face, glyphs)
        with _LOCK:
            _SUBSETS[key] = kept
            while len(_SUBSETS) > CACHED_SUBSETS:
                _SUBSETS.popitem(last=False)
    with TTFont(io.BytesIO(kept[0])) as font:
        yield GlyphSubset(font, dict(kept[1]))


def _subset_bytes(fontfile, face: int, glyphs: frozenset[int]) -> tuple[bytes, dict[int, int]]:
    """The subset as :func:`subset_without_layout_tables` serves it: the font file's bytes and the glyph map."""
    from fontTools import subset

    options = subset.Options(glyph_names=True, recommended_glyphs=True)
    options.drop_tables += [*LAYOUT_TABLES, *EDITOR_TABLES]
    options.font_number = face
    with subset.load_font(fontfile, options) as font:
        for tag in LAYOUT_TABLES:  # gone before the subsetter's first look, which would read GSUB/GPOS/GDEF
            if tag in font:
                del font[tag]
        subsetter = subset.Subsetter(options=options)
        subsetter.populate(gids=list(glyphs))
        subsetter.subset(font)
        data = io.BytesIO()
        font.save(data, reorderTables=False)
    return data.getvalue(), subsetter.glyph_index_map


def install() -> bool:
    """Use :func:`subset_without_layout_tables` for matplotlib's PDF (and PS) font subsets from now on; True when
    it is in place. Safe to call from several threads and many times."""
    with _LOCK:
        if _STATE["replaced"] is not None:
            return True
        from matplotlib.backends import _backend_pdf_ps

        current = getattr(_backend_pdf_ps, "get_glyphs_subset", None)
        if current is None or list(inspect.signature(current).parameters) != ["fontfile", "glyphs"]:
            return False
        _STATE["replaced"] = current
        # Our result has the two attributes the PDF and PS writers read, not their NamedTuple's type.
        _backend_pdf_ps.get_glyphs_subset = subset_without_layout_tables  # type: ignore[assignment]
        return True
