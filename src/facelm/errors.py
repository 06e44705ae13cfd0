"""The one exception type users see.

Every expected failure (bad input file, bad config, model over budget...) raises
:class:`FacelmError` with a single-line message that names the file and the problem.
The CLI prints it as one line and exits non-zero; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import os


class FacelmError(Exception):
    """An expected, user-facing error. ``str(err)`` is one line."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        message = " ".join(str(message).split())  # force a single line
        if path is not None:
            message = f"{os.fspath(path)}: {message}"
        super().__init__(message)
