"""The expected errors: IwaeError and its kinds, each turned by the CLI into one line and a non-zero exit."""


class IwaeError(Exception):
    """An expected, user-facing error: its message names the problem and the fix.

    The CLI prints ``error: <message>`` and exits non-zero; no traceback.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty), for one-line
    reports of errors raised by libraries."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class DataError(IwaeError):
    """Missing, corrupt or unverifiable data files."""


class ConfigError(IwaeError):
    """A configuration value that cannot be used (k < 1, an unknown objective, ...)."""


class RunError(IwaeError):
    """A run directory that cannot be used (no checkpoint, another config's checkpoint, ...)."""


class NumericalError(IwaeError):
    """A non-finite loss or gradient; the last good checkpoint is kept."""

    exit_code = 3


class Interrupted(IwaeError):
    """A stop signal arrived (SIGINT, SIGTERM, a scheduler's warning); raised at a safe point after the state has
    been saved. `signum` says which, for the launcher's part (iwae_cli.tasks.requeue: requeue the job or not),
    and sets the exit code by the shell's convention, 128 + the signal's number (SIGINT 130, SIGTERM 143)."""

    exit_code = 128 + 2  # SIGINT's, where the signal is not known

    def __init__(self, message: str, signum: int | None = None):
        super().__init__(message, None if signum is None else 128 + int(signum))
        self.signum = signum
