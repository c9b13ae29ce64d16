"""Exceptions that mean "the user asked for something that cannot be done".

The CLI turns an :class:`EdgesegError` into one line on stderr and exit code 1; any other exception is a bug.
This module imports nothing heavy so the runtime (no torch) can use it.
"""


import re

_WRAPPED = "Original Traceback"  # torch's DataLoader re-raises a worker's exception with its traceback as text
_EXC_PREFIX = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")


def one_line(text: str) -> str:
    """The message as one line: a DataLoader worker's wrapped traceback gives its last line (the message
    itself, without the exception's class name); other line breaks are folded."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if _WRAPPED in str(text) and lines:
        return _EXC_PREFIX.sub("", lines[-1])
    return " ".join(lines)


class EdgesegError(Exception):
    """A user-facing error: bad input, a missing file, an unknown name. The message is the whole story.

    Raised in a DataLoader worker it reaches the main process with the worker's traceback as its message;
    the constructor keeps only the original message, so the one-line contract holds with any worker count."""

    def __init__(self, *args) -> None:
        if len(args) == 1 and isinstance(args[0], str) and _WRAPPED in args[0]:
            args = (one_line(args[0]),)
        super().__init__(*args)


class UnknownModelError(EdgesegError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(EdgesegError):
    """A checkpoint that is missing, unreadable, or does not fit the model it is loaded into."""
