"""Third-party loggers that chatter at INFO (fontTools prints a line per glyph table when matplotlib subsets a PDF
font: 158 lines for one report) are set to WARNING, so a server log at INFO holds the app's own lines and the
libraries' warnings. Called where logging is configured (the app's ``main``) and by the PDF writer itself."""

from __future__ import annotations

import logging

NOISY_LIBRARIES = ("fontTools", "matplotlib", "PIL", "httpx", "httpcore", "urllib3", "numexpr", "trimesh")


def quiet_noisy_libraries(level: int = logging.WARNING) -> None:
    """Raise the noisy libraries' loggers to ``level`` (their warnings and errors still show)."""
    for name in NOISY_LIBRARIES:
        logger = logging.getLogger(name)
        if logger.level < level:  # NOTSET (0) or lower than asked; a deliberately stricter level is kept
            logger.setLevel(level)
