"""Errors that reach the user as one line (exit code 2), never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with what the user gave us: printed as one line, exit code 2.

    `str()` is always one line: line breaks and other control characters that came from the
    user's input (a YAML key, a file name) are shown escaped, e.g. ``\\n``.
    """

    def __str__(self) -> str:
        text = super().__str__()
        if text.isprintable():
            return text
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ConfigError(UserError):
    """A sweep/proxy/train YAML is malformed: the message names the file, key and expectation.

    Args:
        source: file (or "<inline>") the bad value came from.
        key: dotted key path, e.g. ``hyperparameters.lr.values``.
        expected: what would have been accepted.
    """

    def __init__(self, source: str, key: str, expected: str) -> None:
        self.source, self.key, self.expected = source, key, expected
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {expected}")


class UnsetVariableError(ConfigError):
    """A sweep's storage URL reads ``${NAME}`` from an environment variable that is not set
    (the sweep file is fine: the environment is missing something)."""


class DataError(UserError):
    """The corpus cannot be used (missing path, empty corpus, token id out of range)."""


class StoreError(UserError):
    """The run directory or trial database refuses the request (changed sweep, lock, corruption)."""
