"""What the page may say about a failure: the pipeline's own explanation, without the server's file paths.

Pipeline messages name files by their base name, but a message passed through from a library (pydicom, ITK,
nibabel) can carry a full path of the server (the job's folder, Gradio's upload cache). Those are reduced to the
file name, so a user learns which file is wrong and nothing about where the server keeps it.
"""

from __future__ import annotations

import re

# An absolute POSIX path of two or more parts, not part of a URL ("https://host/a/b") or a longer word.
_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^/\s'\"`,;()\[\]<>]+/)+([^/\s'\"`,;()\[\]<>]+)")


def without_paths(text: str) -> str:
    """``text`` with every absolute path replaced by its last part."""
    return _PATH.sub(lambda m: m.group(1), text)


# ITK's decorations: "sitk::ERROR:", "itk::ERROR:", "NiftiImageIO(0x55d0c8e0):"
_NATIVE = re.compile(r"\b(?:sitk|itk)::\w+:?\s*|\b\w+\(0x[0-9a-fA-F]+\):?\s*")


def user_message(text: str) -> str:
    """A pipeline error as the page shows it: no server paths, no native-library decorations."""
    return _NATIVE.sub("", without_paths(text)).strip() or "The input could not be read."


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
_COMMAND = re.compile(r"`|python -m |pip install|\bset KNEESCOPE_|\$[A-Z_]{4,}|KNEESCOPE_[A-Z_]+")


def page_reason(text: str) -> str:
    """A reason for the page: no server paths, and without the sentences meant for an administrator's shell
    (commands, environment variables); those stay in the server log and the results files."""
    sentences = [s for s in _SENTENCE.split(user_message(text)) if not _COMMAND.search(s)]
    return " ".join(sentences).strip() or "Not available on this server."
