"""The one exception type for bad user input.

Anything a user can fix (a path, a config key, a file on disk) raises :class:`UserInputError` with a message that
says *what* is wrong, *where* (file, key or parameter) and *how to fix it*, on one line. The CLI prints it as
``error: <message>`` and exits with status 2; it never shows a traceback for these.

Library code names a function parameter in backticks, ```out_dir``` (a switch: ```resume=True```), never a CLI
flag; the CLI's error printer rewrites those to flags (``--out``, ``--resume``) with one table,
:data:`mri_harmonic.cli.FLAGS`.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input the user can fix. The message is one line: what, where, and the fix."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # force a single line


class Interrupted(KeyboardInterrupt):
    """A stop signal turned into an exception, so that cleanup runs as for Ctrl-C; ``signum`` is the signal.
    Commands exit with status ``128 + signum`` (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
