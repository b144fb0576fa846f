"""Errors raised when delivered bytes cannot be read as CloudWatch Logs events."""

from __future__ import annotations


class DecodeError(ValueError):
    """The input is unreadable: corrupt or truncated gzip, unknown layout, missing context.

    The message is one line that says what is wrong, suitable for a log line or a CLI error.
    """


class MissingArgumentError(DecodeError):
    """The format does not carry some event context and the caller did not supply it.

    Attributes:
        argument: the keyword argument of :func:`decode_bytes` that would supply it
            (``log_group``, ``log_stream`` or ``default_timestamp_ms``).
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument

    def __reduce__(self) -> tuple[type[MissingArgumentError], tuple[str, str]]:
        # Pickled with both arguments, so the error crosses process boundaries intact.
        return type(self), (self.argument, str(self))
