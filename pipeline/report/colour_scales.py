"""The colour scales of every picture (page, PDF, GLB, colour-bar PNGs): one definition each, so a legend always
matches the colours it explains.

T2 is shown over a fixed 20-80 ms: healthy knee cartilage lies around 30-45 ms and degenerated cartilage rises above
50 ms, so a fixed range makes two knees (or two visits) comparable by eye; values outside are drawn at the ends.
"""

from __future__ import annotations

from dataclasses import dataclass

#: T2 display range (ms) of the slice overlay, the 3-D colouring and their legends.
T2_DISPLAY_MS = (20.0, 80.0)


@dataclass(frozen=True)
class ColourScale:
    """A colour map over [vmin, vmax] with its legend title and unit."""

    title: str
    unit: str
    vmin: float
    vmax: float
    cmap: str

    @property
    def label(self) -> str:
        return f"{self.title} ({self.unit})"

    def ticks(self, n: int = 5) -> list[float]:
        step = (self.vmax - self.vmin) / (n - 1)
        return [self.vmin + i * step for i in range(n)]

    def css_gradient(self, stops: int = 11) -> str:
        """A CSS ``linear-gradient`` left (vmin) to right (vmax) through the colour map."""
        from matplotlib import colormaps

        cmap = colormaps[self.cmap]
        colours = []
        for i in range(stops):
            r, g, b, _ = cmap(i / (stops - 1))
            colours.append(f"rgb({round(r * 255)},{round(g * 255)},{round(b * 255)}) {100 * i / (stops - 1):.0f}%")
        return f"linear-gradient(to right, {', '.join(colours)})"


def thickness_scale(vmax_mm: float) -> ColourScale:
    return ColourScale("Cartilage thickness", "mm", 0.0, vmax_mm, "viridis")


def t2_scale(title: str = "T2") -> ColourScale:
    return ColourScale(title, "ms", *T2_DISPLAY_MS, "magma")


def change_scale(range_mm: float) -> ColourScale:
    return ColourScale("Thickness change, follow-up minus baseline", "mm", -range_mm, range_mm, "RdBu_r")
