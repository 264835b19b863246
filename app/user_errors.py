"""Failures the user can act on, as the page shows them and as the server log keeps them.

Gradio prints the full traceback of every ``gr.Error`` raised in an event (``print_exception`` defaults to True), so
each wrong upload wrote a traceback to the server log. A refusal made here is one line at INFO; its traceback (of the
exception being handled) only at DEBUG. Unexpected failures keep their traceback at ERROR (handlers.page_errors).
"""

from __future__ import annotations

import logging
import sys

import gradio as gr

from pipeline.errors import DiskFullError

logger = logging.getLogger(__name__)


def user_error(message: str) -> gr.Error:
    """The page's error for ``message``, logged as one line (the traceback at DEBUG); raise it."""
    logger.info("page error: %s", message)
    if sys.exc_info()[0] is not None and logger.isEnabledFor(logging.DEBUG):
        logger.debug("the page error above came from:", exc_info=True)
    return gr.Error(message, print_exception=False)


def server_disk_full(exc: DiskFullError | None = None) -> gr.Error:
    """The page's error for a full disk on the server: said as such, with what the user can do."""
    amounts = exc.amounts if exc is not None else ""
    logger.warning("disk full%s: %s", amounts, exc.what if exc is not None else "a write failed")
    return gr.Error(
        f"The server's disk is full{amounts}: your job could not be run or its results kept. Try again later; if this "
        "persists, tell the server's administrator.",
        print_exception=False,
    )
