"""The one exception type that means "the user can fix this"."""


class UserError(Exception):
    """A mistake in input or options: shown as one line, exit code 2, no traceback."""

    exit_code = 2


class Diverged(UserError):
    """Training produced a non-finite loss; exit code 1, since no input was wrong."""

    exit_code = 1


class Interrupted(Exception):
    """Training stopped by a signal after saving; carries the conventional exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
