"""How numbers are printed, one rule per quantity, for the page, the PDF and the comparison tables alike.

Thickness and its change in mm with 2 decimals (the measurement's resolution is about 0.05 mm), volumes in mm³
without decimals, T2 in ms and percentages with 1, areas in mm² without decimals. A value that rounds to zero is
printed without a sign ("0.00", never "-0.00"). Missing values print as a dash.
"""

from __future__ import annotations

MISSING = "—"
#: Decimals per unit.
DECIMALS = {"mm": 2, "mm³": 0, "ms": 1, "%": 1, "mm²": 0, "": 2}


def rounded(value: float | None, unit: str) -> float | None:
    """``value`` rounded to its unit's decimals (``-0.0`` made ``0.0``); None stays None."""
    if value is None:
        return None
    out = round(float(value), DECIMALS[unit])
    return out if out != 0 else 0.0  # -0.0 == 0: no signed zero


def formatted(value: float | None, unit: str, *, with_unit: bool = False, signed: bool = False) -> str:
    """``value`` as text with its unit's decimals; ``signed`` puts "+" before positive changes."""
    if value is None:
        return MISSING
    digits = DECIMALS[unit]
    number = rounded(value, unit) or 0.0
    text = f"{number:+.{digits}f}" if signed and number != 0 else f"{number:.{digits}f}"
    return f"{text} {unit}" if with_unit and unit else text
