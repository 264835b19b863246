"""ITK and VTK print warnings straight to the terminal; route them to Python logging instead.

The user's terminal (and the app's page) shows our messages only; ITK's "Non uniform sampling or missing slices
detected" on a real multi-echo series, or VTK's render-window chatter, go to the ``pipeline.native`` logger.
Installed once, on first use of a reader or writer.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("pipeline.native")
_lock = threading.Lock()
_installed = {"itk": False, "vtk": False}


def route_itk_messages() -> None:
    """Send SimpleITK/ITK warnings and errors to logging (idempotent)."""
    with _lock:
        if _installed["itk"]:
            return
        import SimpleITK as sitk

        class _ItkToLogging(sitk.LoggerBase):
            def DisplayText(self, text):
                logger.info("ITK: %s", text.strip())

            def DisplayErrorText(self, text):
                logger.info("ITK error: %s", text.strip())  # raised as an exception too, and explained there

            def DisplayWarningText(self, text):
                logger.warning("ITK: %s", " ".join(text.split()))

            def DisplayGenericOutputText(self, text):
                logger.info("ITK: %s", text.strip())

            def DisplayDebugText(self, text):
                logger.debug("ITK: %s", text.strip())

        bridge = _ItkToLogging()
        bridge.SetAsGlobalITKLogger()
        _installed["itk"] = True
        _keep.append(bridge)  # ITK holds a raw pointer: keep the Python object alive


def route_vtk_messages() -> None:
    """Send VTK warnings and errors to logging (idempotent)."""
    with _lock:
        if _installed["vtk"]:
            return
        from vtkmodules.vtkCommonCore import vtkCommand, vtkOutputWindow, vtkStringOutputWindow

        window = vtkStringOutputWindow()
        vtkOutputWindow.SetInstance(window)

        def forward(caller, event):
            text = window.GetOutput().strip()
            if text:
                logger.warning("VTK: %s", " ".join(text.split()))
            window.Initialize()  # type: ignore[attr-defined]  # vtkStringOutputWindow: clears its buffer

        for event in (vtkCommand.ErrorEvent, vtkCommand.WarningEvent, vtkCommand.MessageEvent):
            window.AddObserver(event, forward)
        _installed["vtk"] = True
        _keep.append(window)


_keep: list[object] = []
