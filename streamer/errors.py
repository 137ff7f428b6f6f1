"""The one error type users see: its message says what was wrong and what to do."""


class StreamerError(Exception):
    """A user-facing failure; the CLI prints it on one line and exits non-zero."""

    exit_code = 2
