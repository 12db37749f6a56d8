"""The one exception type for bad user input.

Anything a user can fix (a path, a config key, a file on disk) raises :class:`UserInputError` with a message that
says *what* is wrong, *where* (file, key or flag) and *how to fix it*, on one line. The CLI prints it as
``error: <message>`` and exits with status 2; it never shows a traceback for these.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input the user can fix. The message is one line: what, where, and the fix."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # force a single line
