"""Synthetic knees of exactly known anatomy: label maps (``phantom``), MR-like images (``render``), DICOM series
(``dicom_series``) and a qDESS series of known T2 (``qdess``). For tests, examples and the demo model."""

from .phantom import ORIENTATIONS, Phantom, PhantomSpec, make_grid, make_phantom
from .render import render_mr

__all__ = ["ORIENTATIONS", "Phantom", "PhantomSpec", "make_grid", "make_phantom", "render_mr"]
