"""The exception types that mean "the user can fix this", and the helpers that keep their
messages to one line.
"""


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


def one_line(text: str, limit: int) -> str:
    """`text` as one printable line of at most `limit` characters (then "...").

    Error messages may quote hostile input (a file name, a checkpoint's metadata): control
    characters become "?", so it cannot forge extra output lines or flood the terminal.
    """
    if len(text) > limit:
        text = text[:limit] + "..."
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, at most 200 characters; its type if empty.

    For quoting an OS or library error inside a one-line message of our own.
    """
    text = str(exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__
