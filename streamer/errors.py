"""The one error type users see: its message says what was wrong and what to do."""


class StreamerError(Exception):
    """A user-facing failure; the CLI prints it on one line and exits non-zero."""

    exit_code = 2  # a usage error or bad input


class RunFailed(StreamerError):
    """A failure while running, after the options and the input were found good (a model that crashed)."""

    exit_code = 1
