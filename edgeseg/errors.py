"""Exceptions that mean "the user asked for something that cannot be done".

The CLI turns an :class:`EdgesegError` into one line on stderr and exit code 1; any other exception is a bug.
This module imports nothing heavy so the runtime (no torch) can use it.
"""


class EdgesegError(Exception):
    """A user-facing error: bad input, a missing file, an unknown name. The message is the whole story."""


class UnknownModelError(EdgesegError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(EdgesegError):
    """A checkpoint that is missing, unreadable, or does not fit the model it is loaded into."""
