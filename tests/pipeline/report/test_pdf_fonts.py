"""The report's font subsetter (pipeline.report.pdf_fonts) against matplotlib's own, on one page of text in the
report's fonts (regular and bold, with the non-ASCII signs the report prints): the same text extracted, the same
pixels rendered by poppler, and the layout tables really left out."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.backends import _backend_pdf_ps
from PIL import Image

from pipeline.report import pdf_fonts

LINES = ["Femoral cartilage 2.20 ± 0.70 mm (n=4137)", "T2 ≥ 40 ms · menisci — QC: review", "Éléments: 0123456789 %"]


def write_page(path, subsetter, monkeypatch, lines=LINES) -> None:
    import matplotlib
    from matplotlib.figure import Figure

    monkeypatch.setattr(_backend_pdf_ps, "get_glyphs_subset", subsetter)
    fig = Figure(figsize=(4, 2))
    for n, line in enumerate(lines):
        fig.text(0.05, 0.8 - 0.25 * n, line, fontsize=9, weight="bold" if n == 1 else "normal")
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        fig.savefig(path)


def embedded_fonts(path) -> list:
    from fontTools.ttLib import TTFont
    from pypdf import PdfReader

    fonts = []
    for font in PdfReader(path).pages[0]["/Resources"]["/Font"].values():
        descriptor = font.get_object()["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        fonts.append(TTFont(io.BytesIO(descriptor["/FontFile2"].get_object().get_data())))
    return fonts


@pytest.fixture(scope="module")
def matplotlibs_subsetter():
    pdf_fonts.install()
    assert _backend_pdf_ps.get_glyphs_subset is pdf_fonts.subset_without_layout_tables
    return pdf_fonts._STATE["replaced"]


def test_same_text_and_glyphs_without_the_layout_tables(tmp_path, monkeypatch, matplotlibs_subsetter):
    from pypdf import PdfReader

    write_page(tmp_path / "theirs.pdf", matplotlibs_subsetter, monkeypatch)
    write_page(tmp_path / "ours.pdf", pdf_fonts.subset_without_layout_tables, monkeypatch)
    texts = [PdfReader(tmp_path / f"{name}.pdf").pages[0].extract_text() for name in ("theirs", "ours")]
    assert texts[0] == texts[1] and all(line in texts[1] for line in LINES)
    theirs, ours = embedded_fonts(tmp_path / "theirs.pdf"), embedded_fonts(tmp_path / "ours.pdf")
    assert len(ours) == len(theirs) >= 2  # regular and bold
    assert any("GSUB" in font and "GPOS" in font for font in theirs)  # so the check below can fail
    for mine, reference in zip(ours, theirs, strict=True):
        assert not set(pdf_fonts.LAYOUT_TABLES) & set(mine.keys())
        # matplotlib's subset also carries glyphs the layout tables reach (bracket pieces of the MATH table)
        assert set(mine.getGlyphOrder()) <= set(reference.getGlyphOrder())
        for glyph in mine.getGlyphOrder():  # outlines and advance widths unchanged
            assert mine["hmtx"][glyph] == reference["hmtx"][glyph]
            assert (
                mine["glyf"][glyph].getCoordinates(mine["glyf"])[0]
                == (reference["glyf"][glyph].getCoordinates(reference["glyf"])[0])
            )
    assert (tmp_path / "ours.pdf").stat().st_size < (tmp_path / "theirs.pdf").stat().st_size


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm missing: apt-get install poppler-utils")
def test_poppler_renders_the_same_pixels(tmp_path, monkeypatch, matplotlibs_subsetter):
    pixels = []
    for name, subsetter in (("theirs", matplotlibs_subsetter), ("ours", pdf_fonts.subset_without_layout_tables)):
        write_page(tmp_path / f"{name}.pdf", subsetter, monkeypatch)
        subprocess.run(["pdftoppm", "-r", "150", "-png", tmp_path / f"{name}.pdf", tmp_path / name], check=True)
        pixels.append(np.asarray(Image.open(next(tmp_path.glob(f"{name}*.png")))))
    assert pixels[0].shape == pixels[1].shape and (pixels[0] < 128).any()  # there is text on the page
    assert np.array_equal(pixels[0], pixels[1])


def test_a_repeated_subset_is_read_back_from_the_cache(tmp_path, monkeypatch, matplotlibs_subsetter):
    """The second page with the same glyphs makes no subset and embeds the same fonts; new glyphs make a new subset,
    and the oldest subsets go."""
    from pypdf import PdfReader

    monkeypatch.setattr(pdf_fonts, "_SUBSETS", type(pdf_fonts._SUBSETS)())
    made = []
    real = pdf_fonts._subset_bytes

    def counting(fontfile, face, glyphs):
        made.append(len(glyphs))
        return real(fontfile, face, glyphs)

    monkeypatch.setattr(pdf_fonts, "_subset_bytes", counting)
    write_page(tmp_path / "first.pdf", pdf_fonts.subset_without_layout_tables, monkeypatch)
    fonts = len(made)
    assert fonts == len(pdf_fonts._SUBSETS) >= 2  # regular and bold, each subset once
    write_page(tmp_path / "again.pdf", pdf_fonts.subset_without_layout_tables, monkeypatch)
    assert len(made) == len(pdf_fonts._SUBSETS) == fonts  # nothing subset again
    texts = [PdfReader(tmp_path / f"{name}.pdf").pages[0].extract_text() for name in ("first", "again")]
    assert texts[0] == texts[1] and all(line in texts[1] for line in LINES)
    again, first = embedded_fonts(tmp_path / "again.pdf"), embedded_fonts(tmp_path / "first.pdf")
    for cached, fresh in zip(again, first, strict=True):
        assert cached.getGlyphOrder() == fresh.getGlyphOrder()
        for glyph in fresh.getGlyphOrder():
            assert cached["hmtx"][glyph] == fresh["hmtx"][glyph]
            assert (
                cached["glyf"][glyph].getCoordinates(cached["glyf"])[0]
                == (fresh["glyf"][glyph].getCoordinates(fresh["glyf"])[0])
            )
    monkeypatch.setattr(pdf_fonts, "CACHED_SUBSETS", fonts)
    write_page(tmp_path / "more.pdf", pdf_fonts.subset_without_layout_tables, monkeypatch, [*LINES, "Zebra quartz"])
    assert len(made) > fonts == len(pdf_fonts._SUBSETS)  # new glyphs subset anew; the oldest subsets went
